"""The one rule that turns generated T5 token ids into text."""

import numpy as np
from sentencepiece import sentencepiece_model_pb2

from keras_prompt.convert.hf_t5_tokenizer import add_sentinel_pieces

# T5 vocabularies reserve 100 sentinels after the SentencePiece pieces.
T5_EXTRA_IDS = 100


class T5Detokenizer:
    """Generated ids -> text, the same in every keras-prompt path.

    A T5 model's vocabulary is larger than its SentencePiece model: after
    the pieces come T5's 100 sentinels (`<extra_id_0>` is the last of them,
    `<extra_id_99>` the first; SentencePiece does not know them) and, in
    Google's checkpoints, padding rows up to a multiple of 128. A model can
    emit any of those ids, and SentencePiece fails the whole batch on them.
    The rule, applied by `PromptedT5Seq2SeqLM.generate()`, `evaluate()`,
    training validation, the SavedModel's `serving_default` and the ONNX,
    LiteRT and TF Serving clients alike:

    1. a row ends at its first stop token (`</s>`); later positions are
       padding;
    2. the tokenizer's special ids (`<pad>`, `</s>`, `<unk>`) are dropped;
    3. sentinels render as T5 renders them, `<extra_id_N>` (with
       SentencePiece's word-boundary space before it, as in seqio);
    4. any other id without a piece (padding rows, negative ids) renders as
       nothing.

    Sentinels are rendered by a copy of the SentencePiece model with them
    appended as user-defined pieces (`detokenizer_proto`); so steps 2-4
    come down to "drop ids outside `[0, num_text_ids)` and the special
    ids", which every client does in a few lines.

    Args:
        tokenizer: a `keras_hub.models.T5Tokenizer`.
        vocabulary_size: the backbone's vocabulary size (embedding rows).

    Example:
    ```python
    detokenizer = T5Detokenizer(model.preprocessor.tokenizer,
                                model.backbone.vocabulary_size)
    detokenizer.decode([[0, 37, 32099, 1, 0]])  # ['... <extra_id_0>']
    ```
    """

    def __init__(self, tokenizer, vocabulary_size):
        self.tokenizer_proto = tokenizer.proto
        model = sentencepiece_model_pb2.ModelProto()
        model.ParseFromString(tokenizer.proto)
        num_pieces = len(model.pieces)
        has_sentinels = any("<extra_id_0>" in p.piece for p in model.pieces)
        extra_ids = 0
        if not has_sentinels and vocabulary_size >= num_pieces + T5_EXTRA_IDS:
            extra_ids = T5_EXTRA_IDS
        self.detokenizer_proto = add_sentinel_pieces(tokenizer.proto, extra_ids)
        self.num_text_ids = min(num_pieces + extra_ids, int(vocabulary_size))
        self.end_token_id = int(tokenizer.end_token_id)
        self.pad_token_id = int(tokenizer.pad_token_id)
        self.strip_token_ids = sorted(
            {int(i) for i in tokenizer.special_token_ids}
            | {self.pad_token_id, self.end_token_id}
        )
        self._graph_detokenizer = None

    def metadata(self):
        """What a client needs to apply the rule (stored with exports)."""
        return {
            "end_token_id": self.end_token_id,
            "pad_token_id": self.pad_token_id,
            "strip_token_ids": self.strip_token_ids,
            "num_text_ids": self.num_text_ids,
        }

    def text_mask(self, token_ids, padding_mask=None):
        """Bool mask of the ids that render, as TensorFlow ops.

        Args:
            token_ids: int `[batch, length]`.
            padding_mask: optional bool `[batch, length]`, false at
                positions that are not part of the output.
        """
        import tensorflow as tf

        token_ids = tf.cast(token_ids, tf.int32)
        is_end = tf.cast(tf.equal(token_ids, self.end_token_id), tf.int32)
        keep = tf.equal(tf.cumsum(is_end, axis=1, exclusive=True), 0)
        keep = tf.logical_and(keep, token_ids >= 0)
        keep = tf.logical_and(keep, token_ids < self.num_text_ids)
        for token_id in self.strip_token_ids:
            keep = tf.logical_and(keep, tf.not_equal(token_ids, token_id))
        if padding_mask is not None:
            keep = tf.logical_and(keep, tf.cast(padding_mask, tf.bool))
        return keep

    def graph_detokenizer(self):
        """The tensorflow-text SentencePiece op over `detokenizer_proto`
        (a trackable resource, for SavedModels)."""
        if self._graph_detokenizer is None:
            import tensorflow_text

            # Its own name: the op's resource is kernel-owned and named after
            # the op, so two SentencePiece models under the default name
            # would share one resource in a loaded SavedModel.
            self._graph_detokenizer = tensorflow_text.SentencepieceTokenizer(
                model=self.detokenizer_proto, name="keras_prompt_detokenizer"
            )
        return self._graph_detokenizer

    def detokenize(self, token_ids, padding_mask=None):
        """String tensor `[batch]` of the rule, as TensorFlow ops."""
        import tensorflow as tf

        token_ids = tf.cast(token_ids, tf.int32)
        keep = self.text_mask(token_ids, padding_mask)
        return self.graph_detokenizer().detokenize(
            tf.ragged.boolean_mask(token_ids, keep)
        )

    def decode(self, token_ids, padding_mask=None):
        """List of Python strings, one per row of `token_ids`."""
        import tensorflow as tf

        token_ids = np.asarray(token_ids, "int32")
        if token_ids.ndim != 2:
            raise ValueError(
                "`token_ids` must be a [batch, length] matrix; got shape "
                f"{token_ids.shape}."
            )
        texts = self.detokenize(
            tf.constant(token_ids),
            None if padding_mask is None else tf.constant(padding_mask),
        )
        return [text.decode("utf-8") for text in texts.numpy().tolist()]
