"""Fixtures for the converter tests: the two tiny Hugging Face T5 checkpoints
in `fixtures/` (see `fixtures/NOTE.md`), converted once per session."""

import os
import shutil

import numpy as np
import pytest

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
VARIANTS = ("t5", "t5v11")
PROMPT_LENGTH = 5


def checkpoint_dir(variant):
    return os.path.join(FIXTURES, variant)


def load_example(variant):
    """The PEFT reference case of one checkpoint, as a dict of arrays."""
    example = os.path.join(FIXTURES, variant, "example")
    batch = np.load(os.path.join(example, "batch.npz"))
    data = {key: batch[key] for key in batch.files}
    data["prompt"] = np.load(os.path.join(example, "prompt.npy"))
    data["encoder_output"] = np.load(
        os.path.join(example, "peft_encoder_output.npy")
    )
    data["logits"] = np.load(os.path.join(example, "peft_logits.npy"))
    greedy = os.path.join(example, "peft_greedy_ids.npy")
    if os.path.exists(greedy):
        data["greedy_ids"] = np.load(greedy)
    return data


def copy_checkpoint(variant, destination):
    """A writable copy of a fixture checkpoint (for corrupting it)."""
    shutil.copytree(
        checkpoint_dir(variant),
        destination,
        ignore=shutil.ignore_patterns("example"),
    )
    return str(destination)


_CONVERTED = {}


@pytest.fixture(scope="session")
def converted():
    """`converted(variant) -> (backbone, preprocessor)`, cached per session."""
    from keras_prompt.convert import load_hf_t5

    def get(variant):
        if variant not in _CONVERTED:
            _CONVERTED[variant] = load_hf_t5(
                checkpoint_dir(variant),
                encoder_sequence_length=16,
                decoder_sequence_length=9,
            )
        return _CONVERTED[variant]

    return get
