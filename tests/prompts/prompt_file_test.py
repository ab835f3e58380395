import json
import os
import struct
import subprocess
import sys
import tracemalloc

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


def _write_raw_prompt_file(path, model, metadata_changes=(), tensors=None):
    """A prompt file written by hand (not by `save_prompt_file`), with the
    given metadata entries replaced (`None` removes one)."""
    metadata = {
        "format": "keras_prompt.prompt",
        "format_version": "1",
        "library_version": "0.1.0",
        "task": "rte",
        "labels": '["yes", "no"]',
        "training_steps": "12",
        "prompt_length": "4",
        "hidden_dim": "16",
        "backbone_fingerprint": model.backbone_fingerprint(),
    }
    metadata.update(dict(metadata_changes))
    metadata = {k: v for k, v in metadata.items() if v is not None}
    if tensors is None:
        tensors = {"prompt": np.ones((4, 16), "float32")}
    safetensors.numpy.save_file(tensors, str(path), metadata=metadata)
    return str(path)


def test_refuses_extra_tensors_without_reading_them(model, tmp_path):
    # 8 MiB of optimizer state next to the prompt: it must be named in the
    # error, and never read.
    path = _write_raw_prompt_file(
        tmp_path / "p.safetensors",
        model,
        tensors={
            "prompt": np.ones((4, 16), "float32"),
            "optimizer_state": np.ones((2048, 1024), "float32"),
            "step": np.zeros((1,), "int64"),
        },
    )
    tracemalloc.start()
    try:
        with pytest.raises(PromptFileError) as error:
            read_prompt_file(path)
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    message = str(error.value)
    assert f"'{path}' holds tensors besides 'prompt'" in message
    assert "'optimizer_state' (F32 [2048, 1024])" in message
    assert "'step' (I64 [1])" in message
    assert "save the prompt alone with" in message
    assert "save_prompt_file" in message
    assert peak_bytes < 1024 * 1024
    with pytest.raises(PromptFileError, match="holds tensors besides"):
        model.load_prompt(path)


def test_refuses_a_prompt_of_the_wrong_dtype_or_rank(model, tmp_path):
    half = _write_raw_prompt_file(
        tmp_path / "half.safetensors",
        model,
        tensors={"prompt": np.ones((4, 16), "float16")},
    )
    with pytest.raises(PromptFileError) as error:
        read_prompt_file(half)
    assert str(error.value) == (
        f"'{half}': tensor 'prompt' is F16 [4, 16]; a prompt must be F32 "
        "(float32) [prompt_length, hidden_dim]. Save it with "
        "`keras_prompt.prompts.save_prompt_file`, which writes that."
    )
    flat = _write_raw_prompt_file(
        tmp_path / "flat.safetensors",
        model,
        tensors={"prompt": np.ones((64,), "float32")},
    )
    with pytest.raises(PromptFileError, match=r"'prompt' is F32 \[64\]"):
        read_prompt_file(flat)


@pytest.mark.parametrize(
    "stored, shown",
    [
        ("5", "5"),
        ("yes", '"yes"'),  # Not JSON: the stored text is quoted.
        ('"yes"', '"yes"'),
        ("[1, 2]", "[1, 2]"),
        ('{"yes": 0}', '{"yes": 0}'),
        ('["yes", null]', '["yes", null]'),
    ],
)
def test_refuses_labels_that_are_not_a_list_of_strings(
    model, tmp_path, stored, shown
):
    path = _write_raw_prompt_file(
        tmp_path / "p.safetensors", model, {"labels": stored}
    )
    with pytest.raises(PromptFileError) as error:
        read_prompt_file(path)
    assert str(error.value) == (
        f"'{path}': metadata 'labels' is {shown}; it must be a JSON list of "
        'strings such as ["yes", "no"]. Save the prompt again with '
        "`keras_prompt.prompts.save_prompt_file` and a corrected value."
    )
    with pytest.raises(PromptFileError, match="metadata 'labels'"):
        model.load_prompt(path)


@pytest.mark.parametrize(
    "key, stored, shown, minimum",
    [
        ("training_steps", "-1", "-1", 0),
        ("training_steps", "abc", '"abc"', 0),
        ("training_steps", "12.5", '"12.5"', 0),
        ("training_steps", "+12", '"+12"', 0),
        ("prompt_length", "0", "0", 1),
        ("hidden_dim", "sixteen", '"sixteen"', 1),
        ("encoder_sequence_length", "0", "0", 1),
        ("decoder_sequence_length", "-8", "-8", 1),
        ("decoder_sequence_length", "true", '"true"', 1),
    ],
)
def test_refuses_bad_integer_metadata(
    model, tmp_path, key, stored, shown, minimum
):
    path = _write_raw_prompt_file(
        tmp_path / "p.safetensors", model, {key: stored}
    )
    with pytest.raises(PromptFileError) as error:
        read_prompt_file(path)
    assert str(error.value) == (
        f"'{path}': metadata '{key}' is {shown}; it must be an integer >= "
        f"{minimum}. Save the prompt again with "
        "`keras_prompt.prompts.save_prompt_file` and a corrected value."
    )


def test_decodes_the_sequence_lengths(model, tmp_path):
    path = _write_raw_prompt_file(
        tmp_path / "p.safetensors",
        model,
        {"encoder_sequence_length": "256", "decoder_sequence_length": "8"},
    )
    _, metadata = read_prompt_file(path)
    assert metadata["encoder_sequence_length"] == 256
    assert metadata["decoder_sequence_length"] == 8
    assert metadata["training_steps"] == 12
    assert metadata["labels"] == ["yes", "no"]


def test_release_0_1_0_file_without_sequence_lengths_loads(model, tmp_path):
    # Exactly the metadata entries that keras-prompt 0.1.0 writes.
    path = _write_raw_prompt_file(
        tmp_path / "p.safetensors", model, {"initializer": "random_uniform"}
    )
    prompt, metadata = read_prompt_file(path)
    np.testing.assert_array_equal(prompt, np.ones((4, 16), "float32"))
    assert metadata == {
        "format": "keras_prompt.prompt",
        "format_version": "1",
        "library_version": "0.1.0",
        "task": "rte",
        "labels": ["yes", "no"],
        "initializer": "random_uniform",
        "training_steps": 12,
        "prompt_length": 4,
        "hidden_dim": 16,
        "backbone_fingerprint": model.backbone_fingerprint(),
    }
    other = PromptedT5Seq2SeqLM(model.backbone, prompt_length=4)
    assert other.load_prompt(path)["labels"] == ["yes", "no"]
    np.testing.assert_array_equal(other.get_prompt(), prompt)


def test_check_prompt_metadata_takes_decoded_values():
    fix = "Fix it."
    # `None` means "not recorded" (save_prompt_file skips it); numpy
    # integers are integers.
    prompt_file.check_prompt_metadata(
        {"labels": None, "training_steps": None, "hidden_dim": np.int64(16)},
        "'x'",
        fix,
    )
    prompt_file.check_prompt_metadata(
        {"labels": ("yes", "no"), "training_steps": 0, "prompt_length": 1},
        "'x'",
        fix,
    )
    with pytest.raises(PromptFileError) as error:
        prompt_file.check_prompt_metadata({"training_steps": True}, "'x'", fix)
    assert str(error.value) == (
        "'x': metadata 'training_steps' is true; it must be an integer >= 0. "
        "Fix it."
    )
    with pytest.raises(PromptFileError) as error:
        prompt_file.check_prompt_metadata({"labels": {"yes"}}, "'x'", fix)
    assert str(error.value).startswith(
        "'x': metadata 'labels' is {'yes'}; it must be a JSON list"
    )


@pytest.mark.parametrize(
    "key,value,shown",
    [("labels", "yes", '"yes"'), ("labels", [1, 2], "[1, 2]"),
     ("training_steps", "abc", '"abc"'), ("training_steps", -3, "-3")],
)
def test_save_refuses_bad_metadata_and_writes_nothing(tmp_path, key, value, shown):
    path = tmp_path / "bad.safetensors"
    metadata = {"backbone_fingerprint": "f" * 64, key: value}
    with pytest.raises(PromptFileError) as info:
        save_prompt_file(path, np.zeros((2, 4), "float32"), metadata)
    message = str(info.value)
    assert str(path) in message and f"'{key}' is {shown}" in message, message
    assert not path.exists() and not list(tmp_path.iterdir())
