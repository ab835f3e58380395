"""Score a prompted model on a task: greedy exact match or rank
classification."""

import logging

import numpy as np

logger = logging.getLogger(__name__)


def check_evaluation_mode(task, rank_classification):
    """Refuse rank classification for a task without label words.

    Raises:
        DataError: naming the task and the fix.
    """
    if rank_classification and not task.has_fixed_labels:
        from keras_prompt.data import DataError

        raise DataError(
            f"Task '{task.name}' has free-form targets "
            f"({type(task.targets).__name__}), not a fixed set of label "
            "words, so rank classification has no labels to score; evaluate "
            "it with greedy decoding (rank_classification=False, no "
            "--rank-classification)."
        )


class TaskEvaluator:
    """Predicts a task's examples and computes its metrics.

    Two modes:
    - greedy decoding (the default): decode up to `max_target_length`
      tokens. For label-word tasks the text, stripped, is compared with the
      label words (exact match); text that matches no label word counts as
      wrong (index `-1`). For free-form tasks (ReCoRD, WSC) the text and the
      example's reference answers go to the task's metrics, and the task
      maps the text to its label (`Task.prediction_label`).
    - rank classification (label-word tasks only): score every label word
      as the target (summed log-likelihood) and pick the most likely.

    Both use the model's own compiled functions (`generate()`, KerasHub's
    cached decoding, and `score()`), XLA-compiled when the model is.

    Args:
        model: a `keras_prompt.PromptedT5Seq2SeqLM` or `PromptedCausalLM`.
        task: a `keras_prompt.data.Task`.
        pipeline: the model's text-to-text pipeline
            (`keras_prompt.data.TextToTextPipeline` or
            `CausalTextToTextPipeline`) for its tokenizer.
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
        check_evaluation_mode(task, rank_classification)
        self.model = model
        self.task = task
        self.pipeline = pipeline
        self.batch_size = int(batch_size)
        self.rank_classification = bool(rank_classification)
        self._label_token_ids = None
        self._extra_columns = {}

    def generate_texts(self, inputs):
        """Greedy outputs of a batch of model inputs as text
        (`max_target_length` tokens at most per example), by the model's
        one detokenization rule: an id without a piece never fails the
        batch."""
        return self.model.generated_texts(
            inputs,
            max_new_tokens=self.pipeline.max_target_length,
            stop_token_ids=(self.pipeline.end_id,),
        )

    def score(self, inputs):
        """Label-word log-likelihoods `[batch, num_labels]`."""
        check_evaluation_mode(self.task, rank_classification=True)
        if self._label_token_ids is None:
            self._label_token_ids = self.pipeline.label_token_ids(
                self.task.label_words)
        return self.model.score(inputs, self._label_token_ids)

    def text_to_label(self, text):
        """The label index of a decoded text, or -1 (always -1 for a task
        without label words: its texts are scored with their references,
        see `predict`)."""
        words = self.task.label_words
        if words is None:
            return -1
        text = text.strip()
        return words.index(text) if text in words else -1

    def extra_columns(self, examples):
        """The task's per-example `references`/`group` (and `label`, to
        check the order), in the order of the evaluation batches; cached
        like the pipeline's tokenization."""
        keys = self.task.extra_keys
        cached = self._extra_columns.get(id(examples))
        if cached is not None:
            return cached[1]
        columns = {key: [] for key in keys + ["label"]}
        for example in examples.map(
                lambda ex: {k: ex[k] for k in keys + ["label"]}
        ).as_numpy_iterator():
            for key in columns:
                value = example[key]
                if key == "references":
                    value = [v.decode("utf-8") for v in value]
                elif key == "group":
                    value = value.decode("utf-8")
                columns[key].append(value)
        columns["label"] = np.asarray(columns["label"], np.int64)
        # Keep `examples` alive so that `id()` stays unique.
        self._extra_columns[id(examples)] = (examples, columns)
        return columns

    def predict(self, examples, num_examples=None):
        """Predict every example (in the order of `examples`, whatever
        order the pipeline's length buckets batch them in).

        Returns:
            dict with `predictions` (label indices, -1 = no label word; for
            free-form tasks `Task.prediction_label` of the text), `labels`,
            `texts` (decoded strings; label words for rank classification)
            and, where the task has them, `references` (a list of answers
            per example) and `groups`.
        """
        ds = self.pipeline.evaluation_dataset(examples, self.batch_size,
                                              num_examples=num_examples)
        predictions, labels, texts, indices = [], [], [], []
        for batch in ds:
            keep = batch["is_padding"].numpy() == 0
            inputs = {key: batch[key] for key in self.pipeline.model_input_keys}
            if self.rank_classification:
                preds = np.argmax(self.score(inputs), axis=1)
                batch_texts = [self.task.label_words[p] for p in preds]
            else:
                batch_texts = self.generate_texts(inputs)
                preds = np.array([self.text_to_label(t) for t in batch_texts])
            predictions.append(preds[keep])
            labels.append(batch["label"].numpy()[keep])
            texts.extend(t for t, k in zip(batch_texts, keep) if k)
            indices.append(batch["index"].numpy()[keep])
        # Length buckets batch the examples out of order.
        order = np.argsort(np.concatenate(indices), kind="stable")
        out = {
            "predictions": np.concatenate(predictions).astype(np.int64)[order],
            "labels": np.concatenate(labels).astype(np.int64)[order],
            "texts": [texts[i] for i in order],
        }
        if not self.task.extra_keys:
            return out
        extra = self.extra_columns(examples)
        if not np.array_equal(extra["label"], out["labels"]):
            raise RuntimeError(
                f"The examples of task '{self.task.name}' came in another "
                "order on a second pass, so their references and groups "
                "cannot be matched with the predictions; make the dataset "
                "deterministic (no unseeded shuffle, "
                "`options.deterministic=True`)."
            )
        if "references" in extra:
            out["references"] = extra["references"]
            out["predictions"] = np.array(
                [self.task.prediction_label(text, refs)
                 for text, refs in zip(texts, extra["references"])],
                np.int64).reshape(-1)
        if "group" in extra:
            out["groups"] = extra["group"]
        return out

    def evaluate(self, examples, num_examples=None):
        """Metrics (percent) of the task over `examples` with labels.

        Also reports `num_examples` and `invalid` (greedy outputs matching no
        label word; for free-form tasks outputs whose `prediction_label` is
        -1, such as empty ones).
        """
        return self.metrics(self.predict(examples, num_examples=num_examples))

    def metrics(self, out):
        """The task's metrics (percent) of `predict()`'s output (or a dict
        like it: `predictions`, `labels`, `texts`, and `references`/`groups`
        where the task has them) over its labelled examples, with
        `num_examples` and `invalid`."""
        labelled = out["labels"] >= 0
        if not labelled.any():
            from keras_prompt.data import DataError

            raise DataError(
                f"No labelled examples to evaluate task '{self.task.name}' on "
                "(test splits usually have no labels; use the validation split)."
            )
        kept = np.flatnonzero(labelled)
        extras = {
            name: [out[name][i] for i in kept]
            for name in ("references", "groups") if name in out
        }
        metrics = self.task.compute_metrics(
            out["predictions"][labelled], out["labels"][labelled],
            texts=[out["texts"][i] for i in kept], **extras)
        metrics["num_examples"] = int(labelled.sum())
        metrics["invalid"] = int((out["predictions"][labelled] < 0).sum())
        return metrics
