"""Tokenize, pack and batch text-to-text examples in `tf.data`."""

import logging

import tensorflow as tf

from keras_prompt.data.data_error import DataError
from keras_prompt.data.length_buckets import bucket_counts
from keras_prompt.data.length_buckets import choose_length_buckets
from keras_prompt.data.length_buckets import resolve_length_buckets

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

    Length buckets (`use_length_buckets`): instead of padding every encoder
    input to `max_input_length`, each example is padded to the smallest of
    a few bucket lengths that holds it, and every batch holds examples of
    one bucket only: a batch costs its bucket's length, and each bucket is
    one static shape `[batch, bucket]` (one compiled step per bucket under
    XLA and on TPUs). The targets keep `max_target_length`. Padding
    positions are masked, so each example's outputs and loss are those it
    gets padded to the maximum.

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
    # Batches padded to a few lengths chosen from the examples' lengths:
    pipeline.use_length_buckets("auto", examples)  # e.g. (16, 24, 40, 128)
    x, y, sample_weight = next(iter(
        pipeline.training_dataset(examples, batch_size=32, seed=0)))
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
        # The input-length histogram of each tokenized dataset (filled by
        # `stats()`, keyed like `_tokenized`).
        self._length_histograms = {}
        self.length_buckets = None
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
        init = (tf.zeros([4], tf.int64),
                tf.zeros([self.max_input_length + 1], tf.int64))

        def add(state, ex):
            counts, histogram = state
            counts += tf.cast(tf.stack([
                1, ex["input_truncated"], ex["target_truncated"],
                tf.cast(ex["label"] < 0, tf.int32)]), tf.int64)
            histogram = tf.tensor_scatter_nd_add(
                histogram, [[self._input_length(ex)]],
                tf.ones([1], tf.int64))
            return counts, histogram

        counts, histogram = tokenized.reduce(init, add)
        counts = counts.numpy().tolist()
        self._length_histograms[id(examples)] = histogram.numpy()
        return {
            "num_examples": int(counts[0]),
            "inputs_truncated": int(counts[1]),
            "targets_truncated": int(counts[2]),
            "unlabeled": int(counts[3]),
            "max_input_length": self.max_input_length,
            "max_target_length": self.max_target_length,
        }

    # The tokenized (and evaluation) features whose length is the input's,
    # cut to the bucket.
    _bucketed_keys = ("encoder_token_ids", "encoder_padding_mask")

    def _input_length(self, ex):
        """An example's input tokens (`</s>` included): what buckets hold."""
        return tf.reduce_sum(ex["encoder_padding_mask"])

    def _bucket_width(self, bucket):
        """The length of the bucketed features of a bucket's batches."""
        return bucket

    @property
    def label_length(self):
        """The positions of `y` in a training batch padded to the maximum:
        a loss normalised by them does not depend on the bucket
        (`keras_prompt.training.TokenCrossentropy`)."""
        return self.max_target_length

    def length_histogram(self, examples):
        """`histogram[n]`: how many of `examples` have `n` input tokens
        (`n` from 0 to `max_input_length`), from the `stats()` pass."""
        if id(examples) not in self._length_histograms:
            self.stats(examples)
        return self._length_histograms[id(examples)]

    def use_length_buckets(self, length_buckets, examples=None):
        """Sets the buckets the training and evaluation batches use.

        Args:
            length_buckets: `"auto"` (chosen from the input lengths of
                `examples` by `choose_length_buckets` in
                `keras_prompt.data.length_buckets`: at most 4 multiples of
                8 holding examples, with the fewest padded tokens, and
                `max_input_length` last), a list of increasing lengths
                (`max_input_length` is appended if missing), or `None` / 0
                (pad every input to `max_input_length`, no buckets).
            examples: the examples the buckets are for (usually the
                training split); needed by `"auto"`. With them, the buckets
                and the padding they save are logged at INFO.

        Returns:
            the buckets (tuple of ints), or `None`.
        """
        buckets = resolve_length_buckets(length_buckets,
                                         self.max_input_length)
        if buckets == "auto":
            if examples is None:
                raise DataError(
                    "length_buckets='auto' chooses the buckets from the "
                    "input lengths of examples: pass them "
                    "(use_length_buckets('auto', examples)), or give the "
                    "lengths, e.g. [64, 128, 256].")
            buckets = choose_length_buckets(self.length_histogram(examples),
                                            self.max_input_length)
        self.length_buckets = buckets
        if buckets is not None and examples is not None:
            histogram = self.length_histogram(examples)
            widths = [self._bucket_width(b) for b in buckets]
            counts = bucket_counts(histogram, buckets)
            with_buckets = sum(c * w for c, w in zip(counts, widths))
            without = sum(counts) * self._bucket_width(self.max_input_length)
            logger.info(
                "Length buckets %s (%s; examples per bucket %s): %d padded "
                "positions per pass over the %d examples instead of %d with "
                "padding to max_input_length=%d (%.1f%% fewer).",
                list(buckets), "auto" if length_buckets == "auto"
                else "given", counts, with_buckets, sum(counts), without,
                self.max_input_length,
                100.0 * (1 - with_buckets / max(without, 1)))
        return buckets

    def _bucket_of(self, ex):
        """The index of the smallest bucket holding `ex`, int64."""
        bounds = tf.constant(self.length_buckets, tf.int32)
        return tf.reduce_sum(tf.cast(
            bounds < tf.cast(self._input_length(ex), tf.int32), tf.int64))

    def _cut_to(self, batch, width):
        """`batch` with its bucketed features cut to `width` positions."""
        return {key: value[:, :width] if key in self._bucketed_keys else value
                for key, value in batch.items()}

    def _bucketed_batches(self, ds, batch_size):
        """Batches of examples of one bucket each, in stream order.

        A batch is formed as soon as its bucket has `batch_size` examples,
        so the buckets interleave as they come in the (shuffled) stream;
        over a repeated stream a bucket's batch may straddle an epoch's
        end, as unbucketed batches do. Only a finite stream drops each
        bucket's last partial batch.
        """
        widths = tf.constant(
            [self._bucket_width(b) for b in self.length_buckets], tf.int32)

        def batches(bucket, window):
            width = tf.gather(widths, bucket)
            return window.batch(batch_size, drop_remainder=True).map(
                lambda batch: self._cut_to(batch, width))

        return ds.group_by_window(self._bucket_of, batches,
                                  window_size=batch_size)

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

        With `length_buckets` set (`use_length_buckets`), every batch holds
        examples of one bucket, cut to that bucket's length (the shape is
        `[batch_size, bucket]`, static per batch); the batch order still
        depends on the seed only. A bucket's batch is formed when the
        bucket has `batch_size` examples of the shuffled stream, across
        epochs, so every example is used once per epoch as without buckets,
        up to the at most `batch_size - 1` examples per bucket still
        waiting; a finite stream (`repeat=False`) drops them.
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
        if self.length_buckets:
            ds = self._bucketed_batches(ds, int(batch_size))
        else:
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
        `label`, `index` (the example's position in `examples`; -1 for a
        dummy row) and `is_padding` (1 for the dummy rows that fill a last
        batch).

        Without length buckets the batches hold the examples in their
        order, and only the last batch is padded. With them, each bucket's
        examples come in their order in batches of that bucket's length,
        the shortest bucket first, and each bucket's last batch is padded:
        sort the outputs by `index` to restore the examples' order
        (`TaskEvaluator` does).

        Args:
            examples: dataset of `{"inputs", "targets", "label"}`.
            batch_size: rows per batch.
            num_examples: the number of examples, if known (saves a pass;
                with buckets the counts come from the `stats()` pass).
        """
        if int(batch_size) <= 0:
            raise DataError(f"The batch size must be positive, got {batch_size}.")
        batch_size = int(batch_size)
        rows = self.tokenize(examples).enumerate()
        dummy = {
            **self._dummy_inputs(),
            "label": tf.constant(-1, tf.int32),
            "index": tf.constant(-1, tf.int64),
            "is_padding": tf.constant(1, tf.int32),
        }

        def batches(count, bucket=None):
            part = rows
            if bucket is not None:
                index = self.length_buckets.index(bucket)
                part = part.filter(
                    lambda i, ex: tf.equal(self._bucket_of(ex), index))
            part = part.map(lambda i, ex: {
                **self._evaluation_inputs(ex),
                "label": ex["label"],
                "index": i,
                "is_padding": tf.constant(0, tf.int32),
            })
            pad = (-count) % batch_size
            if pad:
                part = part.concatenate(
                    tf.data.Dataset.from_tensors(dummy).repeat(pad))
            part = part.batch(batch_size, drop_remainder=True)
            if bucket is None:
                return part
            width = self._bucket_width(bucket)
            return part.map(lambda batch: self._cut_to(batch, width))

        parts = []
        if self.length_buckets:
            counts = bucket_counts(self.length_histogram(examples),
                                   self.length_buckets)
            parts = [batches(count, bucket) for bucket, count
                     in zip(self.length_buckets, counts) if count]
        if not parts:
            if num_examples is None:
                num_examples = self.stats(examples)["num_examples"]
            parts = [batches(num_examples)]
        ds = parts[0]
        for part in parts[1:]:
            ds = ds.concatenate(part)
        return ds.prefetch(tf.data.AUTOTUNE)

    def encode_texts(self, texts, length=None):
        """Tokenize and pack a list of strings to `[N, length]` ids/mask."""
        ids = self._tokenize_graph(tf.constant(list(texts), tf.string))
        token_ids, mask, _ = self._pack(
            ids, length or self.max_input_length, start=False)
        return token_ids, mask

    def label_token_ids(self, label_words):
        """Each label word's target token ids (end token included), as the
        model scores them in rank classification: packed as training packs
        targets, so a word longer than `max_target_length` is refused."""
        ids = self._tokenize_graph(tf.constant(list(label_words), tf.string))
        targets, target_mask, truncated = self._pack(
            ids, self.max_target_length, start=False)
        if bool(tf.reduce_any(truncated)):
            raise DataError(
                f"A label word of {list(label_words)} is longer than "
                f"max_target_length={self.max_target_length} tokens; raise "
                "max_target_length."
            )
        return [
            [int(t) for t, keep in zip(row, keep_row) if keep]
            for row, keep_row in zip(targets.numpy(), target_mask.numpy())
        ]
