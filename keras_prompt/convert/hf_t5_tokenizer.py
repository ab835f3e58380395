"""T5 SentencePiece vocabularies from Hugging Face checkpoints.

A T5 `spiece.model` does not contain the 100 span-corruption sentinels
(`<extra_id_0>` ... `<extra_id_99>`): Google's `seqio.SentencePieceVocabulary`
and Hugging Face's `T5Tokenizer` both add them *after* the SentencePiece
pieces, in reverse order, so that `<extra_id_0>` gets the last id
(`num_pieces + extra_ids - 1`) and `<extra_id_99>` the first
(`num_pieces`). To make KerasHub's in-graph `T5Tokenizer` (tf-text
SentencePiece) produce the same ids, we add them to the model proto exactly
as seqio does: `USER_DEFINED` pieces named `"▁<extra_id_N>"` with score 0.

Consequence (same as seqio, and as Hugging Face whenever the sentinel is at
the start of the text or follows a space): `"The <extra_id_0> fox"` encodes
the sentinel as one id. A sentinel glued to the previous word
(`"fox<extra_id_1>"`) is *not* recognised by seqio/SentencePiece, while
Hugging Face's tokenizer splits it out; write sentinels after a space.
"""

import json
import os

from sentencepiece import sentencepiece_model_pb2

from keras_prompt.convert.errors import HFCheckpointError

SENTINEL_TEMPLATE = "<extra_id_{}>"
# seqio's piece name: the leading "▁" is SentencePiece's whitespace marker.
_SENTINEL_PIECE_TEMPLATE = "\u2581<extra_id_{}>"
_DEFAULT_EXTRA_IDS = 100


def _parse_model_proto(proto, source):
    model = sentencepiece_model_pb2.ModelProto()
    try:
        model.ParseFromString(proto)
    except Exception as error:  # protobuf raises DecodeError subclasses.
        raise HFCheckpointError(
            f"'{source}' is not a valid SentencePiece model: {error}"
        ) from error
    if not model.pieces:
        raise HFCheckpointError(f"'{source}' is not a valid SentencePiece model.")
    return model


def count_extra_ids(checkpoint_dir, num_pieces, vocabulary_size):
    """How many `<extra_id_N>` sentinels the checkpoint's tokenizer defines.

    Reads `extra_ids` from `tokenizer_config.json` when present (Hugging
    Face's `T5Tokenizer` writes it); otherwise counts `<extra_id_N>` entries
    in its special-token lists; otherwise assumes T5's 100 when the model's
    vocabulary has room for them, else 0.

    Args:
        checkpoint_dir: Hugging Face checkpoint directory.
        num_pieces: number of pieces in `spiece.model`.
        vocabulary_size: the model's `vocab_size`.

    Returns:
        int, the number of sentinels.

    Example:
    ```python
    count_extra_ids("t5-small/", num_pieces=32000, vocabulary_size=32128)
    # -> 100
    ```
    """
    config_path = os.path.join(checkpoint_dir, "tokenizer_config.json")
    if os.path.isfile(config_path):
        try:
            with open(config_path, encoding="utf-8") as file:
                tokenizer_config = json.load(file)
        except (OSError, ValueError) as error:
            raise HFCheckpointError(
                f"'{config_path}' is not valid JSON: {error}"
            ) from error
        if isinstance(tokenizer_config.get("extra_ids"), int):
            return tokenizer_config["extra_ids"]
        names = set()
        for key in ("additional_special_tokens", "extra_special_tokens"):
            tokens = tokenizer_config.get(key)
            if isinstance(tokens, list):
                for token in tokens:
                    if isinstance(token, dict):
                        token = token.get("content")
                    if isinstance(token, str) and token.startswith("<extra_id_"):
                        names.add(token)
        if names:
            return len(names)
    if vocabulary_size >= num_pieces + _DEFAULT_EXTRA_IDS:
        return _DEFAULT_EXTRA_IDS
    return 0


def add_sentinel_pieces(proto, extra_ids, source="spiece.model"):
    """Returns `proto` with `extra_ids` T5 sentinels appended (seqio layout).

    Pieces `"▁<extra_id_{extra_ids-1}>"` ... `"▁<extra_id_0>"` are appended
    as `USER_DEFINED` pieces, so `<extra_id_i>` gets id
    `num_pieces + extra_ids - 1 - i`, as in Hugging Face's `T5Tokenizer`.
    A model that already has sentinel pieces is returned unchanged.

    Args:
        proto: serialized SentencePiece `ModelProto` (bytes).
        extra_ids: number of sentinels to add (0 returns `proto`).
        source: name used in error messages.

    Returns:
        Serialized `ModelProto` bytes.

    Example:
    ```python
    with open("spiece.model", "rb") as file:
        proto = add_sentinel_pieces(file.read(), 100)
    tokenizer = keras_hub.models.T5Tokenizer(proto=proto)
    ```
    """
    if extra_ids <= 0:
        return proto
    model = _parse_model_proto(proto, source)
    existing = {piece.piece for piece in model.pieces}
    if (
        SENTINEL_TEMPLATE.format(0) in existing
        or _SENTINEL_PIECE_TEMPLATE.format(0) in existing
    ):
        return proto
    for index in reversed(range(extra_ids)):
        piece = model.pieces.add()
        piece.piece = _SENTINEL_PIECE_TEMPLATE.format(index)
        piece.score = 0.0
        piece.type = sentencepiece_model_pb2.ModelProto.SentencePiece.USER_DEFINED
    return model.SerializeToString()


def load_hf_t5_sentencepiece(checkpoint_dir, vocabulary_size, add_sentinels=True):
    """Reads a checkpoint's `spiece.model`, sentinels added, as bytes.

    Args:
        checkpoint_dir: Hugging Face T5 checkpoint directory.
        vocabulary_size: the model's `vocab_size` (the embedding rows); the
            tokenizer's ids must all be below it.
        add_sentinels: add the `<extra_id_N>` sentinels (see module doc).

    Returns:
        Serialized SentencePiece `ModelProto` bytes for
        `keras_hub.models.T5Tokenizer(proto=...)`.

    Example:
    ```python
    proto = load_hf_t5_sentencepiece("t5-small/", vocabulary_size=32128)
    ```
    """
    path = os.path.join(checkpoint_dir, "spiece.model")
    if not os.path.isfile(path):
        raise HFCheckpointError(
            f"No SentencePiece model 'spiece.model' in '{checkpoint_dir}': "
            "a Hugging Face T5 checkpoint needs it for the tokenizer "
            "(checkpoints with only tokenizer.json are not supported)."
        )
    with open(path, "rb") as file:
        proto = file.read()
    model = _parse_model_proto(proto, path)
    num_pieces = len(model.pieces)
    for piece_id, name in ((0, "<pad>"), (1, "</s>")):
        if model.pieces[piece_id].piece != name:
            raise HFCheckpointError(
                f"'{path}': piece {piece_id} is "
                f"{model.pieces[piece_id].piece!r}, but T5 needs {name!r} "
                f"there."
            )
    extra_ids = 0
    if add_sentinels:
        extra_ids = count_extra_ids(checkpoint_dir, num_pieces, vocabulary_size)
        proto = add_sentinel_pieces(proto, extra_ids, source=path)
    total = len(_parse_model_proto(proto, path).pieces) if extra_ids else num_pieces
    if total > vocabulary_size:
        raise HFCheckpointError(
            f"'{path}' has {num_pieces} pieces + {total - num_pieces} "
            f"sentinels = {total} ids, more than the model's vocab_size "
            f"{vocabulary_size} in config.json."
        )
    return proto
