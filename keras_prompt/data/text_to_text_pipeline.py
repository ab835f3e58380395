"""Tokenize, pack and batch text-to-text examples in `tf.data`."""

import logging

import tensorflow as tf

from keras_prompt.data.data_error import DataError

logger = logging.getLogger(__name__)

_GRAPH_SEED = 20210418  # any fixed non-zero value


class TextToTextPipeline:
    """Turns `{"inputs", "targets", "label"}` examples into model batches.

    Other keys of the examples (a free-form task's `references`, a grouped
    task's `group`) are left out; the evaluator reads them itself.

    Tokenization runs inside `tf.data` with the backbone's SentencePiece
    tokenizer. Packing follows KerasHub's `T5Seq2SeqLMPreprocessor`: the
    encoder input is `tokens + </s>` padded to `max_input_length`; the decoder
    input is `<pad> + tokens + </s>` shifted so that `decoder_token_ids` starts
    with the pad id, `y` is the target shifted left by one and
    `sample_weight` is its mask. Too-long sequences are truncated (the `</s>`
    is kept) and counted; `stats()` reports the counts.

    Every batch has a fully static shape (`drop_remainder=True`), so the same
    pipeline runs under XLA and on TPUs. Evaluation batches pad the last
    batch with dummy rows marked by `is_padding`.

    Args:
        tokenizer: a `keras_hub.models.T5Tokenizer` (e.g.
            `model.preprocessor.tokenizer`).
        max_input_length: encoder length in tokens, `</s>` included.
        max_target_length: decoder length in tokens.
        num_parallel_calls: parallelism of the tokenization map.

    Example:

    ```python
    pipeline = TextToTextPipeline(model.preprocessor.tokenizer, 128, 8)
    examples = task.load("train")
    ds = pipeline.training_dataset(examples, batch_size=32, seed=0)
    x, y, sample_weight = next(iter(ds))
    pipeline.stats(examples)  # {"num_examples": ..., "inputs_truncated": ...}
    ```
    """

    def __init__(self, tokenizer, max_input_length=256, max_target_length=16,
                 num_parallel_calls=tf.data.AUTOTUNE):
        if int(max_input_length) < 2 or int(max_target_length) < 2:
            raise DataError(
                "max_input_length and max_target_length must be at least 2 "
                "(one token plus </s>); got "
                f"{max_input_length} and {max_target_length}."
            )
        self.tokenizer = tokenizer
        self.max_input_length = int(max_input_length)
        self.max_target_length = int(max_target_length)
        self.num_parallel_calls = num_parallel_calls
        self.pad_id = int(tokenizer.pad_token_id)
        self.end_id = int(tokenizer.end_token_id)
        self._tokenized = {}
        # KerasHub tokenizers return Python lists in eager mode; tracing
        # keeps tensors.
        self._tokenize_graph = tf.function(
            lambda texts: tf.cast(self.tokenizer(texts), tf.int32))

    def _pack(self, ids, length, start):
        """Truncate ragged `ids` to fit `length` with specials; pad; mask."""
        batch = ids.nrows()
        room = length - 1 - (1 if start else 0)
        truncated = ids.row_lengths() > room
        ids = ids[:, :room]
        end = tf.fill([batch, 1], self.end_id)
        parts = [ids, tf.RaggedTensor.from_tensor(end)]
        if start:
            parts.insert(0, tf.RaggedTensor.from_tensor(
                tf.fill([batch, 1], self.pad_id)))
        packed = tf.concat(parts, axis=1)
        mask = tf.ones_like(packed)
        token_ids = packed.to_tensor(
            default_value=self.pad_id, shape=[None, length])
        mask = mask.to_tensor(default_value=0, shape=[None, length])
        return token_ids, mask, truncated

    def _tokenize_batch(self, batch):
        inputs = tf.cast(self.tokenizer(batch["inputs"]), tf.int32)
        targets = tf.cast(self.tokenizer(batch["targets"]), tf.int32)
        enc_ids, enc_mask, in_trunc = self._pack(
            inputs, self.max_input_length, start=False)
        dec_full, dec_full_mask, tgt_trunc = self._pack(
            targets, self.max_target_length + 1, start=True)
        return {
            "encoder_token_ids": enc_ids,
            "encoder_padding_mask": enc_mask,
            "decoder_token_ids": dec_full[:, :-1],
            "decoder_padding_mask": dec_full_mask[:, :-1],
            "target_ids": dec_full[:, 1:],
            "target_mask": tf.cast(dec_full_mask[:, 1:], tf.float32),
            "label": tf.cast(batch["label"], tf.int32),
            "input_truncated": tf.cast(in_trunc, tf.int32),
            "target_truncated": tf.cast(tgt_trunc, tf.int32),
        }

    def tokenize(self, examples, cache=True):
        """Tokenized, packed, unbatched (and by default cached) examples."""
        key = id(examples)
        if cache and key in self._tokenized:
            return self._tokenized[key][1]
        # Only what the model needs: a free-form task's examples also carry
        # reference answers of varying number, which would not batch.
        ds = examples.map(
            lambda ex: {k: ex[k] for k in ("inputs", "targets", "label")}
        ).batch(256).map(
            self._tokenize_batch, num_parallel_calls=self.num_parallel_calls
        ).unbatch()
        if cache:
            ds = ds.cache()
            # Keep `examples` alive so that `id()` stays unique.
            self._tokenized[key] = (examples, ds)
        return ds

    def stats(self, examples):
        """Count examples and truncations (one pass; fills the cache).

        Returns:
            dict with `num_examples`, `inputs_truncated`, `targets_truncated`,
            `unlabeled` (examples whose label is -1), `max_input_length` and
            `max_target_length`.
        """
        tokenized = self.tokenize(examples)
        init = tf.zeros([4], tf.int64)

        def add(state, ex):
            return state + tf.cast(tf.stack([
                1, ex["input_truncated"], ex["target_truncated"],
                tf.cast(ex["label"] < 0, tf.int32)]), tf.int64)

        counts = tokenized.reduce(init, add).numpy().tolist()
        return {
            "num_examples": int(counts[0]),
            "inputs_truncated": int(counts[1]),
            "targets_truncated": int(counts[2]),
            "unlabeled": int(counts[3]),
            "max_input_length": self.max_input_length,
            "max_target_length": self.max_target_length,
        }

    @staticmethod
    def _model_batch(ex):
        x = {
            "encoder_token_ids": ex["encoder_token_ids"],
            "encoder_padding_mask": ex["encoder_padding_mask"],
            "decoder_token_ids": ex["decoder_token_ids"],
            "decoder_padding_mask": ex["decoder_padding_mask"],
        }
        return x, ex["target_ids"], ex["target_mask"]

    def training_dataset(self, examples, batch_size, seed=0, shuffle=True,
                         shuffle_buffer=10_000, repeat=True, skip_batches=0):
        """Batches `(x, y, sample_weight)` for `model.fit`.

        Args:
            examples: dataset of `{"inputs", "targets", "label"}`.
            batch_size: the global batch size (split across replicas by the
                distribution strategy).
            seed: shuffle seed; the same seed gives the same batch order in
                every process (needed by multi-worker training).
            shuffle: whether to shuffle (reshuffled each epoch).
            shuffle_buffer: the shuffle buffer size.
            repeat: repeat forever (training counts steps, not epochs).
            skip_batches: batches to skip, to resume a run exactly.
        """
        if int(batch_size) <= 0:
            raise DataError(f"The batch size must be positive, got {batch_size}.")
        if shuffle:
            # Fill the tokenization cache first: the per-epoch datasets below
            # live inside `flat_map`, where the SentencePiece op cannot
            # create its resource, so they must read the cache.
            self.stats(examples)
        ds = self.tokenize(examples).filter(lambda ex: ex["label"] >= 0)
        if shuffle:
            # Epoch `e` is shuffled with seed `(seed, e)`, statelessly: the
            # stream is the same however many iterators are created (Keras
            # creates extra ones under distribution strategies) and in every
            # worker process, so resumed and multi-worker runs see exactly
            # the batches of an uninterrupted single-process run.
            base, seed = ds, int(seed or 0)
            epochs = tf.data.Dataset.range(2**62 if repeat else 1)

            def shuffled_epoch(epoch):
                # The graph-level seed of this traced function only: the
                # order must not depend on the process's global seed.
                tf.compat.v1.set_random_seed(_GRAPH_SEED)
                return base.shuffle(
                    shuffle_buffer, seed=seed * 1_000_003 + epoch,
                    reshuffle_each_iteration=False)

            ds = epochs.flat_map(shuffled_epoch)
        elif repeat:
            ds = ds.repeat()
        ds = ds.batch(int(batch_size), drop_remainder=True)
        ds = ds.map(self._model_batch)
        if skip_batches:
            ds = ds.skip(int(skip_batches))
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA
        )
        options.deterministic = True
        return ds.with_options(options).prefetch(tf.data.AUTOTUNE)

    # The model inputs of an evaluation batch (what `generate()` and
    # `score()` take).
    model_input_keys = ("encoder_token_ids", "encoder_padding_mask")

    def prompt_file_fields(self):
        """What a prompt trained on these batches records of them: the
        sequence lengths (and a decoder-only format's text parts), as
        `save_prompt`'s keyword arguments."""
        return {
            "encoder_sequence_length": self.max_input_length,
            "decoder_sequence_length": self.max_target_length,
        }

    def _evaluation_inputs(self, ex):
        return {key: ex[key] for key in self.model_input_keys}

    def _dummy_inputs(self):
        """The model inputs of a row that fills the last evaluation batch:
        one token, the rest padding."""
        return {
            "encoder_token_ids": tf.fill([self.max_input_length], self.end_id),
            "encoder_padding_mask": tf.one_hot(
                0, self.max_input_length, dtype=tf.int32),
        }

    def evaluation_dataset(self, examples, batch_size, num_examples=None):
        """Static-shape batches of every example, last batch padded.

        Each batch is a dict with the model inputs (`model_input_keys`),
        `label` and `is_padding` (1 for the dummy rows that fill the last
        batch).
        """
        if int(batch_size) <= 0:
            raise DataError(f"The batch size must be positive, got {batch_size}.")
        if num_examples is None:
            num_examples = self.stats(examples)["num_examples"]
        ds = self.tokenize(examples).map(
            lambda ex: {
                **self._evaluation_inputs(ex),
                "label": ex["label"],
                "is_padding": tf.constant(0, tf.int32),
            })
        pad = (-num_examples) % int(batch_size)
        if pad:
            dummy = {
                **self._dummy_inputs(),
                "label": tf.constant(-1, tf.int32),
                "is_padding": tf.constant(1, tf.int32),
            }
            ds = ds.concatenate(
                tf.data.Dataset.from_tensors(dummy).repeat(pad))
        return ds.batch(int(batch_size), drop_remainder=True).prefetch(
            tf.data.AUTOTUNE)

    def encode_texts(self, texts, length=None):
        """Tokenize and pack a list of strings to `[N, length]` ids/mask."""
        ids = self._tokenize_graph(tf.constant(list(texts), tf.string))
        token_ids, mask, _ = self._pack(
            ids, length or self.max_input_length, start=False)
        return token_ids, mask

    def label_token_ids(self, label_words):
        """Each label word's target token ids (end token included), as the
        model scores them in rank classification."""
        _, _, targets, target_mask = self.encode_label_words(label_words)
        return [
            [int(t) for t, keep in zip(row, keep_row) if keep]
            for row, keep_row in zip(targets.numpy(), target_mask.numpy())
        ]

    def encode_label_words(self, label_words):
        """Decoder inputs/targets for each label word (rank classification).

        Returns:
            `(decoder_token_ids, decoder_padding_mask, target_ids,
            target_mask)`, each `[num_labels, max_target_length]`.
        """
        ids = self._tokenize_graph(tf.constant(list(label_words), tf.string))
        full, full_mask, truncated = self._pack(
            ids, self.max_target_length + 1, start=True)
        if bool(tf.reduce_any(truncated)):
            raise DataError(
                f"A label word of {list(label_words)} is longer than "
                f"max_target_length={self.max_target_length} tokens; raise "
                "max_target_length."
            )
        return (full[:, :-1], full_mask[:, :-1], full[:, 1:],
                tf.cast(full_mask[:, 1:], tf.float32))
