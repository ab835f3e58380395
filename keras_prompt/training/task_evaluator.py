"""Score a prompted model on a task: greedy exact match or rank
classification."""

import logging

import numpy as np

logger = logging.getLogger(__name__)


class TaskEvaluator:
    """Predicts label indices for a task's examples and computes its metrics.

    Two modes:
    - greedy decoding (the default): decode up to `max_target_length` tokens
      and compare the text, stripped, with the label words (exact match);
      text that matches no label word counts as wrong (index `-1`).
    - rank classification: score every label word as the target
      (summed log-likelihood) and pick the most likely.

    Both use the model's own compiled functions (`generate()`, KerasHub's
    cached decoding, and `score()`), XLA-compiled when the model is.

    Args:
        model: a `keras_prompt.PromptedT5Seq2SeqLM`.
        task: a `keras_prompt.data.Task`.
        pipeline: the `keras_prompt.data.TextToTextPipeline` for the model's
            tokenizer.
        batch_size: evaluation batch size.
        rank_classification: score label words instead of decoding.

    Example:

    ```python
    evaluator = TaskEvaluator(model, task, pipeline, batch_size=32)
    metrics = evaluator.evaluate(task.load("validation"))
    ```
    """

    def __init__(self, model, task, pipeline, batch_size=32,
                 rank_classification=False):
        self.model = model
        self.task = task
        self.pipeline = pipeline
        self.batch_size = int(batch_size)
        self.rank_classification = bool(rank_classification)
        self._label_token_ids = None

    def generate_texts(self, encoder_token_ids, encoder_padding_mask):
        """Greedy outputs of a batch as text (`max_target_length` tokens at
        most), by the model's one detokenization rule: an id without a
        piece never fails the batch."""
        outputs = self.model.generate(
            {
                "encoder_token_ids": encoder_token_ids,
                "encoder_padding_mask": encoder_padding_mask,
            },
            max_length=self.pipeline.max_target_length + 1,
            stop_token_ids=(self.pipeline.end_id,),
        )
        return self.model.detokenize(
            outputs["decoder_token_ids"], outputs["decoder_padding_mask"]
        )

    def score(self, encoder_token_ids, encoder_padding_mask):
        """Label-word log-likelihoods `[batch, num_labels]`."""
        if self._label_token_ids is None:
            _, _, targets, target_mask = self.pipeline.encode_label_words(
                self.task.label_words)
            self._label_token_ids = [
                [int(t) for t, keep in zip(row, keep_row) if keep]
                for row, keep_row in zip(targets.numpy(), target_mask.numpy())
            ]
        return self.model.score(
            {
                "encoder_token_ids": encoder_token_ids,
                "encoder_padding_mask": encoder_padding_mask,
            },
            self._label_token_ids,
        )

    def text_to_label(self, text):
        """The label index of a decoded text, or -1."""
        words = self.task.label_words
        text = text.strip()
        return words.index(text) if text in words else -1

    def predict(self, examples, num_examples=None):
        """Predict every example.

        Returns:
            dict with `predictions` (label indices, -1 = no label word),
            `labels`, and `texts` (decoded strings; label words for rank
            classification).
        """
        ds = self.pipeline.evaluation_dataset(examples, self.batch_size,
                                              num_examples=num_examples)
        predictions, labels, texts = [], [], []
        for batch in ds:
            keep = batch["is_padding"].numpy() == 0
            ids, mask = batch["encoder_token_ids"], batch["encoder_padding_mask"]
            if self.rank_classification:
                preds = np.argmax(self.score(ids, mask), axis=1)
                batch_texts = [self.task.label_words[p] for p in preds]
            else:
                batch_texts = self.generate_texts(ids, mask)
                preds = np.array([self.text_to_label(t) for t in batch_texts])
            predictions.append(preds[keep])
            labels.append(batch["label"].numpy()[keep])
            texts.extend(t for t, k in zip(batch_texts, keep) if k)
        return {
            "predictions": np.concatenate(predictions).astype(np.int64),
            "labels": np.concatenate(labels).astype(np.int64),
            "texts": texts,
        }

    def evaluate(self, examples, num_examples=None):
        """Metrics (percent) of the task over `examples` with labels.

        Also reports `num_examples` and `invalid` (greedy outputs matching no
        label word).
        """
        out = self.predict(examples, num_examples=num_examples)
        labelled = out["labels"] >= 0
        if not labelled.any():
            from keras_prompt.data import DataError

            raise DataError(
                f"No labelled examples to evaluate task '{self.task.name}' on "
                "(test splits usually have no labels; use the validation split)."
            )
        metrics = self.task.compute_metrics(
            out["predictions"][labelled], out["labels"][labelled])
        metrics["num_examples"] = int(labelled.sum())
        metrics["invalid"] = int((out["predictions"][labelled] < 0).sum())
        return metrics
