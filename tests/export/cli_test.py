"""`keras-prompt export` on a local preset directory."""

import json
import os

import pytest

from tests.export.conftest import MAX_DECODE_LENGTH


@pytest.fixture(scope="module")
def preset_dir(export_setup):
    path = export_setup["root"] / "preset"
    model = export_setup["model"]
    model.backbone.save_to_preset(str(path))
    model.preprocessor.save_to_preset(str(path))
    return str(path)


def _main(argv):
    from keras_prompt.cli import main

    return main(argv)


def test_export_command_is_registered():
    from keras_prompt.cli import build_parser

    args = build_parser().parse_args(
        ["export", "--backbone", "b", "--output", "o", "--format", "onnx"]
    )
    assert args.format == "onnx" and args.graph == "both"


def test_savedmodel_bank(export_setup, preset_dir, tmp_path, capsys):
    files = export_setup["files"]
    status = _main(
        [
            "export",
            "--backbone", preset_dir,
            "--prompt", f"entail={files['rte']}",
            "--prompt", files["sst2"],  # named from its metadata: sst2
            "--output", str(tmp_path),
            "--model-name", "bank",
            "--max-decode-length", str(MAX_DECODE_LENGTH),
        ]
    )
    assert status == 0
    out = capsys.readouterr().out
    assert "tasks: 0=entail, 1=sst2" in out
    version = tmp_path / "bank" / "1"
    assert str(version) in out
    with open(version / "assets.extra" / "keras_prompt_export.json") as file:
        metadata = json.load(file)
    assert metadata["mode"] == "bank"
    assert metadata["task_names"] == ["entail", "sst2"]
    # The same version again is refused with a clean error.
    status = _main(
        ["export", "--backbone", preset_dir, "--prompt", files["rte"],
         "--output", str(tmp_path), "--model-name", "bank"]
    )
    assert status == 2
    assert "already exists" in capsys.readouterr().err


def test_onnx_generate_baked(export_setup, preset_dir, tmp_path, capsys):
    status = _main(
        [
            "export",
            "--backbone", preset_dir,
            "--prompt", export_setup["files"]["rte"],
            "--format", "onnx",
            "--graph", "generate",
            "--output", str(tmp_path),
            "--max-decode-length", str(MAX_DECODE_LENGTH),
        ]
    )
    assert status == 0
    assert os.listdir(tmp_path) == ["keras_prompt_generate.onnx"]


def test_foreign_prompt_is_refused(preset_dir, tmp_path, capsys):
    import keras_prompt

    from tests.conftest import make_tiny_backbone

    other = keras_prompt.PromptedT5Seq2SeqLM(
        make_tiny_backbone(tied=False, seed=9), prompt_length=4
    )
    foreign = other.save_prompt(str(tmp_path / "foreign.safetensors"), task="x")
    status = _main(
        ["export", "--backbone", preset_dir, "--prompt", foreign,
         "--output", str(tmp_path / "out")]
    )
    assert status == 2
    assert "fingerprint" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_argument_errors(export_setup, preset_dir, tmp_path, capsys):
    files = export_setup["files"]
    cases = [
        (["--mode", "runtime"], "--prompt-length"),
        (["--mode", "baked", "--prompt", files["rte"], "--prompt", files["sst2"]],
         "exactly one"),
        (["--prompt", f"a={files['rte']}", "--prompt", f"a={files['sst2']}"],
         "Duplicate"),
        (["--prompt", str(tmp_path / "missing.safetensors")], "no prompt file"),
    ]
    for extra, message in cases:
        status = _main(
            ["export", "--backbone", preset_dir, "--output", str(tmp_path)] + extra
        )
        assert status == 2, extra
        assert message in capsys.readouterr().err
