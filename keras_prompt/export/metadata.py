"""The JSON description stored with every export (SavedModel, ONNX, TFLite).

Clients read it to map task names to ids, to know the sequence lengths and
the special token ids; it also records the versions that produced the
export (the server's tensorflow-text must match for SavedModels).

A bank export also lists each task's prompt ids (`task_prompt_ids`: a task
with several prompts is an ensemble; ids below `len(task_names)` are the
tasks' first prompts, equal to their task ids) and, for tasks whose prompts
record label words, what an ensemble vote needs (`task_labels`: the words,
their target token ids with `</s>`, and `max_target_length`); the clients in
`export/` vote with them.
"""

import json

from keras_prompt.export.export_prompts import end_token_id

METADATA_FILENAME = "keras_prompt_export.json"
FORMAT_NAME = "keras_prompt.export"
FORMAT_VERSION = "1"


def is_causal(model):
    """Whether `model` is a `PromptedCausalLM` (a decoder-only export)."""
    from keras_prompt.models.prompted_causal_lm import PromptedCausalLM

    return isinstance(model, PromptedCausalLM)


def tokenizer_of(model):
    """The model's SentencePiece tokenizer, or `None` without a preprocessor."""
    preprocessor = getattr(model, "preprocessor", None)
    return getattr(preprocessor, "tokenizer", None)


def text_rule(model):
    """What clients need to turn ids into text by the one rule of
    `keras_prompt.models.t5_detokenizer.T5Detokenizer`: drop ids outside
    `[0, num_text_ids)` and the `strip_token_ids`, end at `end_token_id`,
    then SentencePiece-decode with the sentinel-aware model. A decoder-only
    model's rule is `keras_prompt.models.causal_texts`: its continuation's
    ids up to the first `end_token_id`, without the `strip_token_ids` (the
    tokenizer's special tokens) and ids from `num_text_ids` on."""
    if is_causal(model):
        tokenizer = tokenizer_of(model)
        if tokenizer is None:
            return {
                "end_token_id": end_token_id(model),
                "pad_token_id": int(model.pad_id()),
                "num_text_ids": int(model.backbone.vocabulary_size),
            }
        return {
            "start_token_id": int(tokenizer.start_token_id),
            "end_token_id": int(tokenizer.end_token_id),
            "pad_token_id": int(model.pad_id()),
            "strip_token_ids": sorted(
                int(i) for i in tokenizer.special_token_ids
            ),
            "num_text_ids": int(tokenizer.vocabulary_size()),
        }
    if tokenizer_of(model) is None:
        return {
            "end_token_id": end_token_id(model),
            "pad_token_id": 0,
            "strip_token_ids": [0, end_token_id(model)],
            "num_text_ids": int(model.backbone.vocabulary_size),
        }
    return model.detokenizer.metadata()


def encoder_sequence_length(model, default=512):
    """The encoder length an export packs text to: the preprocessor's.

    `keras-prompt export` builds the model's preprocessor with the length
    the prompt files were trained with (see
    `keras_prompt.cli.export_command.trained_sequence_lengths`), so this is
    that length unless `--encoder-sequence-length` overrides it.

    Args:
        model: a `keras_prompt.PromptedT5Seq2SeqLM`.
        default: the length without a preprocessor.
    """
    preprocessor = getattr(model, "preprocessor", None)
    length = getattr(preprocessor, "encoder_sequence_length", None)
    return int(length) if length else int(default)


def export_metadata(model, resolved, export_format, **extra):
    """A JSON-serializable dict describing an export."""
    import tensorflow as tf

    from keras_prompt.version import __version__

    try:
        import tensorflow_text

        tf_text_version = tensorflow_text.__version__
    except ImportError:  # pragma: no cover - tf-text is a dependency
        tf_text_version = None
    try:
        fingerprint = model.backbone_fingerprint()
    except Exception:  # pragma: no cover - defensive
        fingerprint = None
    metadata = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "export_format": export_format,
        "mode": resolved.mode,
        "task_names": resolved.task_names,
        "prompt_sources": resolved.sources,
        "prompt_length": resolved.prompt_length,
        "hidden_dim": resolved.hidden_dim,
        "vocabulary_size": int(model.backbone.vocabulary_size),
        **text_rule(model),
        "backbone_fingerprint": fingerprint,
        "keras_prompt_version": __version__,
        "tensorflow_version": tf.__version__,
        "tensorflow_text_version": tf_text_version,
        # "int8": dynamically quantized weight matmuls (ONNX and LiteRT
        # only, opt-in); `None`: float32 throughout.
        "quantization": None,
    }
    if is_causal(model):
        metadata["model_type"] = "causal_lm"
        metadata["padding_convention"] = (
            "Inputs are right-padded (padding_mask ones, then zeros). "
            "new_token_ids holds each row's continuation after its last "
            "given token; a row ends at its first end token (kept) and "
            "every later position is pad_token_id (also every position of "
            "a row an ONNX or LiteRT graph flags in invalid_inputs)."
        )
    else:
        metadata["model_type"] = "seq2seq_lm"
        metadata["encoder_sequence_length"] = encoder_sequence_length(model)
        metadata["decoder_start_token_id"] = 0
        metadata["padding_convention"] = (
            "token_ids[:, 0] is the decoder start token (0); each row ends "
            "at its first </s> (kept) and every later position is 0 (pad)."
        )
    if resolved.mode == "bank":
        metadata["num_prompts"] = len(resolved.sources)
        metadata["task_prompt_ids"] = resolved.task_prompt_ids
        metadata["task_labels"] = resolved.label_targets(model)
    metadata.update(extra)
    return metadata


def dumps(metadata):
    return json.dumps(metadata, indent=2, sort_keys=True)
