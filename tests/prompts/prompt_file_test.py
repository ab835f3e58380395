import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest
import safetensors.numpy

from keras_prompt import PromptedT5Seq2SeqLM
from keras_prompt.prompts import prompt_file
from keras_prompt.prompts.prompt_file import PromptFileError
from keras_prompt.prompts.prompt_file import read_prompt_file
from keras_prompt.prompts.prompt_file import save_prompt_file
from tests.conftest import make_tiny_backbone


@pytest.fixture(scope="module")
def model():
    return PromptedT5Seq2SeqLM(
        make_tiny_backbone(seed=0), prompt_length=4, labels=["yes", "no"]
    )


def test_round_trip_is_exact_and_keeps_metadata(model, tmp_path):
    path = str(tmp_path / "task.safetensors")
    model.set_prompt(np.random.default_rng(0).normal(size=(4, 16)))
    written = model.save_prompt(path, task="boolq", training_steps=12)

    assert written == path
    prompt, metadata = read_prompt_file(path)
    np.testing.assert_array_equal(prompt, model.get_prompt())
    assert metadata["task"] == "boolq"
    assert metadata["labels"] == ["yes", "no"]
    assert metadata["training_steps"] == 12
    assert metadata["prompt_length"] == 4 and metadata["hidden_dim"] == 16
    assert metadata["initializer"] == "random_uniform"
    assert metadata["backbone_fingerprint"] == model.backbone_fingerprint()
    assert metadata["format_version"] == "1"
    assert "library_version" in metadata

    other = PromptedT5Seq2SeqLM(model.backbone, prompt_length=4)
    assert other.load_prompt(path)["task"] == "boolq"
    np.testing.assert_array_equal(other.get_prompt(), model.get_prompt())


def test_file_loads_in_a_fresh_process(model, tmp_path):
    path = str(tmp_path / "fresh.safetensors")
    model.save_prompt(path, task="rte")
    code = (
        "import sys, numpy as np\n"
        "from keras_prompt.prompts import read_prompt_file\n"
        "prompt, meta = read_prompt_file(sys.argv[1])\n"
        "np.save(sys.argv[2], prompt)\n"
        "print(meta['task'])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, path, str(tmp_path / "p.npy")],
        capture_output=True,
        text=True,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
        check=True,
    )
    assert result.stdout.strip().endswith("rte")
    np.testing.assert_array_equal(np.load(tmp_path / "p.npy"), model.get_prompt())


def test_fingerprint_tracks_embeddings_and_architecture(model):
    same = make_tiny_backbone(seed=0)
    other_weights = make_tiny_backbone(seed=1)
    other_arch = make_tiny_backbone(seed=0, tied=False)
    fingerprint = model.backbone_fingerprint()
    assert prompt_file.backbone_fingerprint(same) == fingerprint
    assert prompt_file.backbone_fingerprint(other_weights) != fingerprint
    assert prompt_file.backbone_fingerprint(other_arch) != fingerprint


def test_refuses_another_backbone(model, tmp_path):
    path = str(tmp_path / "p.safetensors")
    model.save_prompt(path)
    other = PromptedT5Seq2SeqLM(make_tiny_backbone(seed=1), prompt_length=4)
    with pytest.raises(PromptFileError, match="fingerprint"):
        other.load_prompt(path)


def test_refuses_other_hidden_size_or_length(model, tmp_path):
    path = str(tmp_path / "p.safetensors")
    model.save_prompt(path)
    wider = PromptedT5Seq2SeqLM(
        make_tiny_backbone(hidden_dim=32, num_heads=2), prompt_length=4
    )
    with pytest.raises(PromptFileError, match="hidden size 16 .* hidden_dim 32"):
        wider.load_prompt(path)
    longer = PromptedT5Seq2SeqLM(model.backbone, prompt_length=6)
    with pytest.raises(PromptFileError, match="prompt_length=4"):
        longer.load_prompt(path)


def test_refuses_non_finite_values(model, tmp_path):
    path = str(tmp_path / "nan.safetensors")
    metadata = {
        "format": "keras_prompt.prompt",
        "format_version": "1",
        "prompt_length": "4",
        "hidden_dim": "16",
        "backbone_fingerprint": model.backbone_fingerprint(),
    }
    prompt = np.zeros((4, 16), "float32")
    prompt[2, 3] = np.inf
    safetensors.numpy.save_file({"prompt": prompt}, path, metadata=metadata)
    with pytest.raises(PromptFileError, match="NaN or infinite"):
        model.load_prompt(path)
    with pytest.raises(PromptFileError, match="NaN or infinite"):
        save_prompt_file(path, prompt, metadata)


def test_refuses_truncated_file(model, tmp_path):
    path = str(tmp_path / "p.safetensors")
    model.save_prompt(path)
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) - 40])
    with pytest.raises(PromptFileError, match="truncated or foreign"):
        model.load_prompt(path)


def test_refuses_foreign_files(model, tmp_path):
    text = tmp_path / "notes.safetensors"
    text.write_text("hello, this is not a tensor file")
    with pytest.raises(PromptFileError, match="truncated or foreign"):
        model.load_prompt(str(text))

    other = str(tmp_path / "weights.safetensors")
    safetensors.numpy.save_file({"kernel": np.zeros((4, 16), "float32")}, other)
    with pytest.raises(PromptFileError, match="not a keras-prompt prompt"):
        model.load_prompt(other)

    with pytest.raises(PromptFileError, match="No prompt file"):
        model.load_prompt(str(tmp_path / "missing.safetensors"))


def test_refuses_mismatched_metadata_shape(model, tmp_path):
    path = str(tmp_path / "p.safetensors")
    metadata = {
        "format": "keras_prompt.prompt",
        "format_version": "1",
        "prompt_length": "5",
        "hidden_dim": "16",
        "backbone_fingerprint": model.backbone_fingerprint(),
    }
    safetensors.numpy.save_file(
        {"prompt": np.zeros((4, 16), "float32")}, path, metadata=metadata
    )
    with pytest.raises(PromptFileError, match="corrupt"):
        read_prompt_file(path)


def test_header_is_plain_json_with_no_code(model, tmp_path):
    """The file is safetensors: an 8-byte length, a JSON header, raw floats."""
    path = str(tmp_path / "p.safetensors")
    model.save_prompt(path)
    data = open(path, "rb").read()
    (header_length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_length])
    assert header["prompt"]["dtype"] == "F32"
    assert header["prompt"]["shape"] == [4, 16]
    assert len(data) == 8 + header_length + 4 * 16 * 4


def test_failed_write_leaves_previous_file_intact(model, tmp_path, monkeypatch):
    path = str(tmp_path / "p.safetensors")
    model.set_prompt(np.ones((4, 16)))
    model.save_prompt(path, task="first")
    before = open(path, "rb").read()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(prompt_file.os, "fsync", crash)
    model.set_prompt(np.zeros((4, 16)))
    with pytest.raises(OSError, match="disk full"):
        model.save_prompt(path, task="second")

    assert open(path, "rb").read() == before
    assert os.listdir(tmp_path) == ["p.safetensors"]
    assert read_prompt_file(path)[1]["task"] == "first"
