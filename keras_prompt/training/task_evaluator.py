"""Score a prompted model on a task: greedy exact match or rank
classification."""

import logging

import numpy as np
import tensorflow as tf

logger = logging.getLogger(__name__)


class TaskEvaluator:
    """Predicts label indices for a task's examples and computes its metrics.

    Two modes:
    - greedy decoding (the default): decode up to `max_target_length` tokens
      and compare the text, stripped, with the label words (exact match);
      text that matches no label word counts as wrong (index `-1`).
    - rank classification: score every label word as the target
      (summed log-likelihood) and pick the most likely.

    Both run as one compiled function per batch with static shapes.

    Args:
        model: a `keras_prompt.PromptedT5Seq2SeqLM`.
        task: a `keras_prompt.data.Task`.
        pipeline: the `keras_prompt.data.TextToTextPipeline` for the model's
            tokenizer.
        batch_size: evaluation batch size.
        rank_classification: score label words instead of decoding.
        jit_compile: compile with XLA.

    Example:

    ```python
    evaluator = TaskEvaluator(model, task, pipeline, batch_size=32)
    metrics = evaluator.evaluate(task.load("validation"))
    ```
    """

    def __init__(self, model, task, pipeline, batch_size=32,
                 rank_classification=False, jit_compile=True):
        self.model = model
        self.task = task
        self.pipeline = pipeline
        self.batch_size = int(batch_size)
        self.rank_classification = bool(rank_classification)
        self.jit_compile = bool(jit_compile)
        self._greedy_fn = None
        self._rank_fn = None

    # === Compiled steps ===

    def _greedy(self):
        if self._greedy_fn is None:
            model = self.model
            length = self.pipeline.max_target_length
            pad_id = self.pipeline.pad_id

            def greedy(encoder_token_ids, encoder_padding_mask):
                encoder_outputs, mask = model.encode(
                    encoder_token_ids, encoder_padding_mask, training=False)
                batch = tf.shape(encoder_token_ids)[0]
                # Position 0 holds the decoder start (pad) id; the causal mask
                # keeps later, not yet written positions from mattering.
                tokens = tf.fill([batch, length], pad_id)
                ones = tf.ones([batch, length], tf.int32)
                outputs = tf.zeros([batch, length], tf.int32)
                positions = tf.range(length)
                for step in range(length):
                    logits = model.decode(encoder_outputs, mask, tokens, ones,
                                          training=False)
                    next_ids = tf.argmax(logits[:, step, :], axis=-1,
                                         output_type=tf.int32)
                    here = tf.equal(positions, step)[None, :]
                    outputs = tf.where(here, next_ids[:, None], outputs)
                    if step + 1 < length:
                        there = tf.equal(positions, step + 1)[None, :]
                        tokens = tf.where(there, next_ids[:, None], tokens)
                return outputs

            self._greedy_fn = tf.function(greedy, jit_compile=self.jit_compile)
        return self._greedy_fn

    def _rank(self):
        if self._rank_fn is None:
            model = self.model
            dec_ids, dec_mask, targets, target_mask = (
                self.pipeline.encode_label_words(self.task.label_words))

            def rank(encoder_token_ids, encoder_padding_mask):
                encoder_outputs, mask = model.encode(
                    encoder_token_ids, encoder_padding_mask, training=False)
                batch = tf.shape(encoder_token_ids)[0]
                scores = []
                for c in range(len(self.task.label_words)):
                    tile = lambda t: tf.tile(t[c][None, :], [batch, 1])  # noqa
                    logits = model.decode(
                        encoder_outputs, mask, tile(dec_ids), tile(dec_mask),
                        training=False)
                    log_probs = tf.nn.log_softmax(
                        tf.cast(logits, tf.float32), axis=-1)
                    picked = tf.gather(log_probs, tile(targets), axis=-1,
                                       batch_dims=2)
                    scores.append(tf.reduce_sum(
                        picked * tile(target_mask), axis=-1))
                return tf.stack(scores, axis=1)

            self._rank_fn = tf.function(rank, jit_compile=self.jit_compile)
        return self._rank_fn

    # === Public API ===

    def generate_ids(self, encoder_token_ids, encoder_padding_mask):
        """Greedy target ids `[batch, max_target_length]`."""
        return self._greedy()(encoder_token_ids, encoder_padding_mask).numpy()

    def score(self, encoder_token_ids, encoder_padding_mask):
        """Label-word log-likelihoods `[batch, num_labels]`."""
        return self._rank()(encoder_token_ids, encoder_padding_mask).numpy()

    def text_to_label(self, text):
        """The label index of a decoded text, or -1."""
        words = self.task.label_words
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
                batch_texts = self.pipeline.decode_generated(
                    self.generate_ids(ids, mask))
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
