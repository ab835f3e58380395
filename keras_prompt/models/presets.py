"""Resolves a preset argument (KerasHub preset, preset directory, built-in
keras-prompt preset, or Hugging Face T5 checkpoint) to a backbone and
preprocessor."""

import logging
import os

import keras_hub

# Registers `keras_prompt>gelu_tanh`, the activation of converted T5 1.1
# presets, before any preset is deserialized.
from keras_prompt.convert import activations  # noqa: F401

logger = logging.getLogger(__name__)

BUILTIN_PRESETS_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "presets"
)


def builtin_preset_path(name):
    """Directory of a preset shipped inside keras-prompt, or `None`."""
    path = os.path.join(BUILTIN_PRESETS_DIR, name)
    return path if os.path.isfile(os.path.join(path, "config.json")) else None


def load_backbone_and_preprocessor(
    preset,
    load_weights=True,
    encoder_sequence_length=None,
    decoder_sequence_length=None,
):
    """Loads `(T5Backbone, T5Seq2SeqLMPreprocessor or None)` from `preset`.

    Args:
        preset: a KerasHub preset name or handle, a local preset directory,
            a keras-prompt built-in preset name, or a local Hugging Face T5
            checkpoint directory (`config.json` + safetensors +
            `spiece.model`).
        load_weights: whether to load weights (KerasHub presets only).
        encoder_sequence_length, decoder_sequence_length: optional lengths
            for the preprocessor.
    """
    preset = os.fspath(preset)
    lengths = {
        key: value
        for key, value in (
            ("encoder_sequence_length", encoder_sequence_length),
            ("decoder_sequence_length", decoder_sequence_length),
        )
        if value is not None
    }
    if os.path.isdir(preset):
        from keras_prompt.convert import is_hf_t5_checkpoint, load_hf_t5

        if is_hf_t5_checkpoint(preset):
            logger.info("Converting Hugging Face T5 checkpoint %s", preset)
            return load_hf_t5(preset, **lengths)
    else:
        preset = builtin_preset_path(preset) or preset
    backbone = keras_hub.models.T5Backbone.from_preset(
        preset, load_weights=load_weights
    )
    try:
        preprocessor = keras_hub.models.T5Seq2SeqLMPreprocessor.from_preset(
            preset, **lengths
        )
    except (FileNotFoundError, ValueError) as error:
        logger.warning(
            "Preset %s has no usable tokenizer (%s); string inputs will not "
            "work.",
            preset,
            error,
        )
        preprocessor = None
    return backbone, preprocessor
