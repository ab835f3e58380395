"""What a deployment gets: exported files and directories readable under the
process umask (a TF Serving process running as another user reads them), and
exports at the sequence lengths the prompts were trained with."""

import json
import os
import stat

import pytest

from tests.export.conftest import MAX_DECODE_LENGTH
from tests.export.conftest import PROMPT_LENGTH

METADATA = os.path.join("assets.extra", "keras_prompt_export.json")


@pytest.fixture(params=[0o022, 0o027], ids=lambda m: f"umask{m:03o}")
def umask(request):
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


def _modes(root):
    """`{relative path: permission bits}` of `root` and everything in it."""
    modes = {".": stat.S_IMODE(os.stat(root).st_mode)}
    for current, directories, files in os.walk(root):
        for name in directories + files:
            path = os.path.join(current, name)
            modes[os.path.relpath(path, root)] = stat.S_IMODE(
                os.stat(path).st_mode
            )
    return modes


def _assert_modes_follow(root, umask):
    for name, mode in _modes(root).items():
        is_dir = os.path.isdir(os.path.join(root, name))
        expected = (0o777 if is_dir else 0o666) & ~umask
        assert mode == expected, (name, oct(mode), oct(expected))


def test_saved_model_follows_the_umask(export_setup, tmp_path, umask):
    from keras_prompt.export import export_saved_model

    version_dir = export_saved_model(
        export_setup["model"],
        tmp_path / "serving",
        mode="baked",
        prompts=export_setup["files"]["rte"],
        max_decode_length=MAX_DECODE_LENGTH,
        text_signature=False,
    )
    modes = _modes(version_dir)
    assert {"saved_model.pb", "variables", METADATA} <= set(modes)
    _assert_modes_follow(version_dir, umask)
    # The model directory TF Serving lists, and only the version in it.
    model_dir = os.path.dirname(version_dir)
    assert stat.S_IMODE(os.stat(model_dir).st_mode) == 0o777 & ~umask
    assert os.listdir(model_dir) == ["1"]


def test_onnx_and_tflite_files_follow_the_umask(export_setup, tmp_path, umask):
    from keras_prompt.export import export_onnx
    from keras_prompt.export import export_tflite

    model, prompt = export_setup["model"], export_setup["files"]["rte"]
    out = tmp_path / "deploy"  # created by the export
    export_onnx(model, out / "m.onnx", mode="baked", prompts=prompt)
    export_tflite(
        model,
        out / "m.tflite",
        mode="baked",
        prompts=prompt,
        encoder_sequence_length=7,
        decoder_sequence_length=5,
    )
    assert sorted(os.listdir(out)) == ["m.onnx", "m.tflite", "m.tflite.json"]
    _assert_modes_follow(out, umask)


# --------------------------------------------------------------------------- #
# `keras-prompt export` defaults to the prompts' training lengths.
# --------------------------------------------------------------------------- #


@pytest.fixture(scope="module")
def preset_dir(export_setup):
    """The shared backbone as a preset directory; its preprocessor has
    KerasHub's default lengths (its config does not keep them)."""
    path = export_setup["root"] / "length_preset"
    model = export_setup["model"]
    model.backbone.save_to_preset(str(path))
    model.preprocessor.save_to_preset(str(path))
    return str(path)


@pytest.fixture(scope="module")
def preset_lengths(preset_dir):
    import keras_hub

    preprocessor = keras_hub.models.T5Seq2SeqLMPreprocessor.from_preset(
        preset_dir
    )
    lengths = (
        preprocessor.encoder_sequence_length,
        preprocessor.decoder_sequence_length,
    )
    assert lengths[0] > 64 and lengths[1] > 8
    return lengths


@pytest.fixture(scope="module")
def prompt_trained_at_64(export_setup):
    """A prompt file saved from a model whose preprocessor packs encoder
    inputs to 64 tokens and decoder inputs to 8."""
    import keras_hub

    import keras_prompt

    shared = export_setup["model"]
    preprocessor = keras_hub.models.T5Seq2SeqLMPreprocessor(
        tokenizer=shared.preprocessor.tokenizer,
        encoder_sequence_length=64,
        decoder_sequence_length=8,
    )
    model = keras_prompt.PromptedT5Seq2SeqLM(
        shared.backbone, preprocessor, prompt_length=PROMPT_LENGTH
    )
    model.set_prompt(shared.get_prompt())
    path = model.save_prompt(
        str(export_setup["root"] / "trained_at_64.safetensors"), task="rte"
    )
    _, metadata = keras_prompt.read_prompt_file(path)
    assert metadata["encoder_sequence_length"] == 64
    assert metadata["decoder_sequence_length"] == 8
    return path


@pytest.fixture(scope="module")
def prompt_of_release_0_1_0(export_setup):
    """A prompt file as keras-prompt 0.1.0 wrote it: no sequence lengths."""
    import keras_prompt

    prompt, metadata = keras_prompt.read_prompt_file(
        export_setup["files"]["rte"]
    )
    for key in ("encoder_sequence_length", "decoder_sequence_length"):
        metadata.pop(key)
    for key in ("format", "format_version", "library_version"):
        metadata.pop(key)
    metadata["library_version"] = "0.1.0"
    return keras_prompt.save_prompt_file(
        str(export_setup["root"] / "release_0_1_0.safetensors"),
        prompt,
        metadata,
    )


def _export(argv):
    from keras_prompt.cli import main

    assert main(["export"] + argv) == 0


def test_saved_model_defaults_to_the_training_length(
    preset_dir, prompt_trained_at_64, tmp_path
):
    _export(
        [
            "--backbone",
            preset_dir,
            "--prompt",
            prompt_trained_at_64,
            "--output",
            str(tmp_path),
            "--max-decode-length",
            str(MAX_DECODE_LENGTH),
        ]
    )
    with open(tmp_path / "keras_prompt" / "1" / METADATA) as file:
        assert json.load(file)["encoder_sequence_length"] == 64


def test_tflite_graph_has_the_training_lengths_unless_given(
    preset_dir, prompt_trained_at_64, tmp_path
):
    from keras_prompt.export.tflite_export import load_interpreter

    _export(
        [
            "--backbone",
            preset_dir,
            "--prompt",
            prompt_trained_at_64,
            "--format",
            "tflite",
            "--graph",
            "forward",
            "--encoder-sequence-length",
            "32",
            "--output",
            str(tmp_path),
        ]
    )
    path = str(tmp_path / "keras_prompt_forward.tflite")
    with open(path + ".json") as file:
        metadata = json.load(file)
    # The explicit encoder length wins; the decoder length is the prompt's.
    assert metadata["encoder_sequence_length"] == 32
    assert metadata["decoder_sequence_length"] == 8
    runner = load_interpreter(model_path=path).get_signature_runner()
    shapes = {
        name: [int(size) for size in detail["shape"]]
        for name, detail in runner.get_input_details().items()
    }
    assert shapes["encoder_token_ids"] == [1, 32]
    assert shapes["decoder_token_ids"] == [1, 8]


def test_prompt_of_release_0_1_0_exports_at_the_preprocessor_length(
    preset_dir, preset_lengths, prompt_of_release_0_1_0, tmp_path
):
    _export(
        [
            "--backbone",
            preset_dir,
            "--prompt",
            prompt_of_release_0_1_0,
            "--no-text-signature",
            "--output",
            str(tmp_path),
            "--max-decode-length",
            str(MAX_DECODE_LENGTH),
        ]
    )
    with open(tmp_path / "keras_prompt" / "1" / METADATA) as file:
        assert json.load(file)["encoder_sequence_length"] == preset_lengths[0]


def test_bank_takes_the_longest_recorded_lengths():
    from keras_prompt.cli.export_command import trained_sequence_lengths

    short = {"encoder_sequence_length": 64, "decoder_sequence_length": 8}
    long = {"encoder_sequence_length": 128, "decoder_sequence_length": 4}
    assert trained_sequence_lengths([short, long]) == {
        "encoder_sequence_length": 128,
        "decoder_sequence_length": 8,
    }
    # One file without lengths (0.1.0): the preprocessor's apply, as before.
    assert trained_sequence_lengths([short, {}]) == {
        "encoder_sequence_length": None,
        "decoder_sequence_length": None,
    }
    assert trained_sequence_lengths([]) == {
        "encoder_sequence_length": None,
        "decoder_sequence_length": None,
    }
