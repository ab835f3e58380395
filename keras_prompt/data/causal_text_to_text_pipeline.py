"""Text-to-text examples as decoder-only LM batches in `tf.data`."""

import numpy as np
import tensorflow as tf

from keras_prompt.data.data_error import DataError
from keras_prompt.data.text_to_text_pipeline import TextToTextPipeline

DEFAULT_SEPARATOR = "\nAnswer:"
DEFAULT_TARGET_PREFIX = " "


class CausalTextToTextPipeline(TextToTextPipeline):
    """Turns `{"inputs", "targets", "label"}` examples into batches for a
    decoder-only model (`PromptedCausalLM`).

    One sequence per example: the start token, the input's tokens, the
    separator's tokens, then the target as the continuation it is after the
    separator (`target_prefix + target`: with the default `" "`, a
    byte-level BPE's label word gets its leading-space token, as a
    SentencePiece vocabulary's gets its word-start piece) and the end token.
    Inputs and targets are tokenized apart, so a target's tokens never
    depend on its input. Too-long inputs are truncated before the separator
    (so it is always there) and too-long targets before the end token;
    `stats()` counts both.

    Training batches are `(x, y, sample_weight)` as KerasHub's
    `CausalLMPreprocessor` makes them (`x` the sequence without its last
    token, `y` without its first), with the weight on the target and end
    tokens only: the loss is the target's. Evaluation batches hold the start
    token, the input and the separator, right-padded with room for
    `max_target_length` generated tokens. Every shape is static
    (`sequence_length = max_input_length + max_target_length`), for XLA and
    TPUs. With length buckets, a bucket bounds the start token, input and
    separator, and its batches are `bucket + max_target_length` long.

    Args:
        tokenizer: the model's KerasHub tokenizer (with start and end
            tokens, e.g. `GPT2Tokenizer`, `Llama3Tokenizer`,
            `GemmaTokenizer`).
        max_input_length: tokens of start token + input + separator.
        max_target_length: tokens of target + end token.
        separator: text between input and target (default `"\\nAnswer:"`).
        target_prefix: text before the target (default `" "`).
        num_parallel_calls: parallelism of the tokenization map.

    Example:
    ```python
    pipeline = CausalTextToTextPipeline(model.preprocessor.tokenizer, 64, 4)
    x, y, sample_weight = next(iter(
        pipeline.training_dataset(task.load("train"), batch_size=8)))
    ```
    """

    model_input_keys = ("token_ids", "padding_mask")

    def __init__(
        self,
        tokenizer,
        max_input_length=256,
        max_target_length=16,
        separator=DEFAULT_SEPARATOR,
        target_prefix=DEFAULT_TARGET_PREFIX,
        num_parallel_calls=tf.data.AUTOTUNE,
    ):
        super().__init__(
            tokenizer, max_input_length, max_target_length, num_parallel_calls
        )
        self.start_id = int(tokenizer.start_token_id)
        self.separator = str(separator)
        self.target_prefix = str(target_prefix)
        self.separator_ids = self._eager_ids(self.separator)
        # Traced once and called by every split's map (tracing a byte-level
        # BPE tokenizer takes seconds; each `map` would trace its own).
        self._tokenize_strings = tf.function(
            lambda texts: tf.cast(self.tokenizer(texts), tf.int32),
            input_signature=[tf.TensorSpec([None], tf.string)],
        )
        # Start token, separator and at least one input token.
        if self.max_input_length < len(self.separator_ids) + 2:
            raise DataError(
                f"max_input_length={self.max_input_length} leaves no room "
                f"for an input beside the start token and the separator "
                f"{self.separator!r} ({len(self.separator_ids)} tokens); use "
                f"at least {len(self.separator_ids) + 2}."
            )
        self.sequence_length = self.max_input_length + self.max_target_length

    def _eager_ids(self, text):
        """A short text's ids, tokenized eagerly: tracing a byte-level BPE
        tokenizer takes seconds."""
        if not text:
            return []
        return [int(i) for i in np.asarray(self.tokenizer(text)).reshape(-1)]

    def prompt_file_fields(self):
        return {
            "sequence_length": self.sequence_length,
            "max_input_length": self.max_input_length,
            "separator": self.separator,
            "target_prefix": self.target_prefix,
        }

    def _prefix(self, ids):
        """Start token + input (truncated) + separator, ragged; and which
        inputs were truncated."""
        batch = ids.nrows()
        room = self.max_input_length - 1 - len(self.separator_ids)
        truncated = ids.row_lengths() > room
        parts = [
            tf.RaggedTensor.from_tensor(tf.fill([batch, 1], self.start_id)),
            ids[:, :room],
        ]
        if self.separator_ids:
            parts.append(tf.RaggedTensor.from_tensor(tf.tile(
                tf.constant([self.separator_ids], tf.int32), [batch, 1])))
        return tf.concat(parts, axis=1), truncated

    def _targets(self, ids):
        """Target (truncated) + end token, ragged; and which were
        truncated."""
        room = self.max_target_length - 1
        truncated = ids.row_lengths() > room
        end = tf.RaggedTensor.from_tensor(tf.fill([ids.nrows(), 1], self.end_id))
        return tf.concat([ids[:, :room], end], axis=1), truncated

    def _dense(self, ragged, length):
        return (
            ragged.to_tensor(default_value=self.pad_id, shape=[None, length]),
            tf.ones_like(ragged).to_tensor(default_value=0, shape=[None, length]),
        )

    def _tokenize_batch(self, batch):
        # One tokenizer call for inputs and targets: each call is traced.
        texts = tf.concat(
            [
                batch["inputs"],
                tf.strings.join([self.target_prefix, batch["targets"]]),
            ],
            axis=0,
        )
        ids = self._tokenize_strings(texts)
        count = tf.shape(batch["inputs"])[0]
        inputs, targets = ids[:count], ids[count:]
        prefix, in_trunc = self._prefix(inputs)
        target, tgt_trunc = self._targets(targets)
        full = tf.concat([prefix, target], axis=1)
        # One position more than the model sees: x drops the last, y the
        # first.
        token_ids, mask = self._dense(full, self.sequence_length + 1)
        is_target = tf.concat(
            [tf.zeros_like(prefix), tf.ones_like(target)], axis=1
        )
        is_target, _ = self._dense(is_target, self.sequence_length + 1)
        prompt_ids, prompt_mask = self._dense(prefix, self.sequence_length)
        return {
            "token_ids": token_ids[:, :-1],
            "padding_mask": mask[:, :-1],
            "target_ids": token_ids[:, 1:],
            "target_mask": tf.cast(is_target[:, 1:], tf.float32),
            "prompt_token_ids": prompt_ids,
            "prompt_padding_mask": prompt_mask,
            "label": tf.cast(batch["label"], tf.int32),
            "input_truncated": tf.cast(in_trunc, tf.int32),
            "target_truncated": tf.cast(tgt_trunc, tf.int32),
        }

    # Every sequence feature: a bucket holds the start token, the input and
    # the separator, and the target's `max_target_length` positions follow.
    _bucketed_keys = ("token_ids", "padding_mask", "target_ids",
                      "target_mask", "prompt_token_ids", "prompt_padding_mask")

    def _input_length(self, ex):
        return tf.reduce_sum(ex["prompt_padding_mask"])

    def _bucket_width(self, bucket):
        return bucket + self.max_target_length

    @property
    def label_length(self):
        return self.sequence_length

    @staticmethod
    def _model_batch(ex):
        x = {"token_ids": ex["token_ids"], "padding_mask": ex["padding_mask"]}
        return x, ex["target_ids"], ex["target_mask"]

    def _evaluation_inputs(self, ex):
        return {
            "token_ids": ex["prompt_token_ids"],
            "padding_mask": ex["prompt_padding_mask"],
        }

    def _dummy_inputs(self):
        return {
            "token_ids": tf.fill([self.sequence_length], self.start_id),
            "padding_mask": tf.one_hot(0, self.sequence_length, dtype=tf.int32),
        }

    def encode_texts(self, texts, length=None):
        """Start token + text + separator for each string, right-padded to
        `length` (default `sequence_length`): generation inputs."""
        return self.generation_inputs(
            tf.constant(list(texts), tf.string), length or self.sequence_length
        )

    def generation_inputs(self, texts, length=None):
        """string `[B]` -> int32 `token_ids`, `padding_mask` `[B, length]`
        (default `max_input_length`): start token + text (truncated) +
        separator, right-padded, in TensorFlow ops (the exported text
        signatures format text with it)."""
        prefix, _ = self._prefix(self._tokenize_strings(texts))
        return self._dense(prefix, length or self.max_input_length)

    def label_token_ids(self, label_words):
        """Each label word's continuation ids (`target_prefix + word`, end
        token included), as `PromptedCausalLM.score()` takes them."""
        ids = tf.ragged.constant(
            [self._eager_ids(self.target_prefix + word) for word in label_words],
            dtype=tf.int32,
            ragged_rank=1,
        )
        target, truncated = self._targets(ids)
        if bool(tf.reduce_any(truncated)):
            raise DataError(
                f"A label word of {list(label_words)} is longer than "
                f"max_target_length={self.max_target_length} tokens; raise "
                "max_target_length."
            )
        return [[int(i) for i in row] for row in target.to_list()]
