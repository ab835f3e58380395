"""`keras-prompt export`: one end-to-end run on a local preset directory;
the other cases reuse the in-memory model instead of reloading the preset."""

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


@pytest.fixture
def loaded_from_memory(export_setup, monkeypatch):
    """`from_preset` returns a model on the shared in-memory backbone."""
    import keras_prompt

    shared = export_setup["model"]
    calls = []

    def from_preset(
        preset,
        encoder_sequence_length=None,
        decoder_sequence_length=None,
        prompt_length=None,
        **kwargs,
    ):
        calls.append(preset)
        return keras_prompt.PromptedT5Seq2SeqLM(
            shared.backbone,
            preprocessor=shared.preprocessor,
            prompt_length=prompt_length,
        )

    monkeypatch.setattr(
        keras_prompt.PromptedT5Seq2SeqLM,
        "from_preset",
        staticmethod(from_preset),
    )
    return calls


def _main(argv):
    from keras_prompt.cli import main

    return main(argv)


def test_export_command_is_registered():
    from keras_prompt.cli import build_parser

    args = build_parser().parse_args(
        ["export", "--backbone", "b", "--output", "o", "--format", "onnx"]
    )
    assert args.format == "onnx" and args.graph == "both"


def test_savedmodel_bank_from_preset_dir(
    export_setup, preset_dir, tmp_path, capsys
):
    files = export_setup["files"]
    status = _main(
        [
            "export",
            "--backbone",
            preset_dir,
            "--prompt",
            f"entail={files['rte']}",
            "--prompt",
            files["sst2"],  # named from its metadata: sst2
            "--prompt",
            f"entail={files['rte']}",  # a second prompt: an ensemble
            "--output",
            str(tmp_path),
            "--model-name",
            "bank",
            "--max-decode-length",
            str(MAX_DECODE_LENGTH),
        ]
    )
    assert status == 0
    captured = capsys.readouterr()
    out = captured.out
    assert "tasks: 0=entail (2 prompts: an ensemble), 1=sst2" in out
    version = tmp_path / "bank" / "1"
    assert str(version) in out
    with open(version / "assets.extra" / "keras_prompt_export.json") as file:
        metadata = json.load(file)
    assert metadata["mode"] == "bank"
    assert metadata["task_names"] == ["entail", "sst2"]
    assert metadata["task_prompt_ids"] == {"entail": [0, 2], "sst2": [1]}
    # These files record no label words, so there is nothing to vote on:
    # the ensemble signatures are left out, and the log says why.
    assert "ensemble_text" not in metadata["signatures"]
    assert "hold several prompts but no label words" in captured.err
    # The same version again is refused with a clean error (before loading).
    status = _main(
        [
            "export",
            "--backbone",
            preset_dir,
            "--prompt",
            files["rte"],
            "--output",
            str(tmp_path),
            "--model-name",
            "bank",
        ]
    )
    assert status == 2
    assert "already exists" in capsys.readouterr().err


def _export_onnx_generate(export_setup, output, *extra):
    """`keras-prompt export` of the rte prompt, baked, as an ONNX generate
    graph into `output`; returns the exit status."""
    return _main(
        [
            "export",
            "--backbone",
            "tiny",
            "--prompt",
            export_setup["files"]["rte"],
            "--format",
            "onnx",
            "--graph",
            "generate",
            *extra,
            "--output",
            str(output),
            "--max-decode-length",
            str(MAX_DECODE_LENGTH),
        ]
    )


def test_onnx_generate_baked(export_setup, loaded_from_memory, tmp_path):
    status = _export_onnx_generate(export_setup, tmp_path)
    assert status == 0
    assert loaded_from_memory == ["tiny"]
    assert os.listdir(tmp_path) == ["keras_prompt_generate.onnx"]


def test_tflite_runtime(loaded_from_memory, tmp_path):
    status = _main(
        [
            "export",
            "--backbone",
            "tiny",
            "--mode",
            "runtime",
            "--prompt-length",
            "4",
            "--format",
            "tflite",
            "--graph",
            "forward",
            "--batch-size",
            "2",
            "--output",
            str(tmp_path),
        ]
    )
    assert status == 0
    assert sorted(os.listdir(tmp_path)) == [
        "keras_prompt_forward.tflite",
        "keras_prompt_forward.tflite.json",
    ]


def test_foreign_prompt_is_refused(
    loaded_from_memory, foreign_prompt_file, tmp_path, capsys
):
    status = _main(
        [
            "export",
            "--backbone",
            "tiny",
            "--prompt",
            foreign_prompt_file,
            "--output",
            str(tmp_path / "out"),
        ]
    )
    assert status == 2
    assert "fingerprint" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() or not os.listdir(
        tmp_path / "out" / "keras_prompt"
    )


def test_argument_errors(export_setup, tmp_path, capsys):
    files = export_setup["files"]
    cases = [
        (["--mode", "runtime"], "--prompt-length"),
        (
            [
                "--mode",
                "baked",
                "--prompt",
                files["rte"],
                "--prompt",
                files["sst2"],
            ],
            "exactly one",
        ),
        (["--prompt", str(tmp_path / "missing.safetensors")], "no prompt file"),
    ]
    for extra, message in cases:
        status = _main(
            ["export", "--backbone", "unused", "--output", str(tmp_path)]
            + extra
        )
        assert status == 2, extra
        assert message in capsys.readouterr().err


def test_onnx_int8_generate(export_setup, loaded_from_memory, tmp_path):
    import onnx

    from keras_prompt.cli import build_parser
    from keras_prompt.export.onnx_export import METADATA_KEY

    args = build_parser().parse_args(
        ["export", "--backbone", "b", "--output", "o", "--format", "onnx"]
    )
    assert args.quantize == "none"
    status = _export_onnx_generate(export_setup, tmp_path, "--quantize", "int8")
    assert status == 0
    model = onnx.load(tmp_path / "keras_prompt_generate.onnx")
    props = {prop.key: prop.value for prop in model.metadata_props}
    assert json.loads(props[METADATA_KEY])["quantization"] == "int8"
    (loop,) = [node for node in model.graph.node if node.op_type == "Loop"]
    body = next(a.g for a in loop.attribute if a.name == "body")
    assert "MatMulInteger" in {node.op_type for node in body.node}


def test_int8_savedmodel_is_refused(tmp_path, capsys):
    status = _main(
        [
            "export",
            "--backbone",
            "unused",
            "--quantize",
            "int8",
            "--output",
            str(tmp_path),
        ]
    )
    assert status == 2
    error = capsys.readouterr().err
    assert "--quantize int8 applies to --format onnx and tflite" in error
    assert "SavedModels (TF Serving) stay float32" in error
    assert os.listdir(tmp_path) == []
