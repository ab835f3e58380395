"""LiteRT/TFLite export: fixed-shape forward and decode graphs with builtin
ops only, checked in a fresh process against the Keras model."""

import json
import os

import numpy as np
import pytest

from tests.export.conftest import BATCH_TASK_IDS
from tests.export.conftest import MAX_DECODE_LENGTH
from tests.export.conftest import assert_bad_rows_answered
from tests.export.conftest import assert_ids_match
from tests.export.conftest import run_runner

MODES = ("bank", "runtime", "baked")
GRAPHS = ("forward", "generate")
ENCODER_LENGTH = 7
DECODER_LENGTH = 5


@pytest.fixture(scope="module")
def tflite_models(export_setup):
    from keras_prompt.export import export_tflite

    setup = export_setup
    out = setup["root"] / "tflite"
    prompts = {
        "bank": setup["files"],
        "runtime": None,
        "baked": setup["files"]["rte"],
    }
    entries = {}
    for mode in MODES:
        for graph in GRAPHS:
            for batch_size in (4, 1) if mode == "bank" else (4,):
                key = f"{mode}{'1' if batch_size == 1 else ''}_{graph}"
                path = export_tflite(
                    setup["model"],
                    str(out / f"{key}.tflite"),
                    mode=mode,
                    prompts=prompts[mode],
                    graph=graph,
                    batch_size=batch_size,
                    encoder_sequence_length=ENCODER_LENGTH,
                    decoder_sequence_length=DECODER_LENGTH,
                    max_decode_length=MAX_DECODE_LENGTH,
                )
                entries[key] = {
                    "path": path,
                    "mode": mode,
                    "graph": graph,
                    "batch_size": batch_size,
                }
    request = {
        "output": str(setup["root"] / "tflite_reply"),
        "models": entries,
        "batch": {key: value.tolist() for key, value in setup["batch"].items()},
        "task_ids": list(BATCH_TASK_IDS),
        "prompts": setup["batch_prompts"].tolist(),
        "vocabulary_size": setup["model"].backbone.vocabulary_size,
        "num_tasks": len(setup["files"]),
    }
    return entries, run_runner("tflite_runner.py", request)


def test_fixed_shapes_and_metadata(tflite_models):
    entries, reply = tflite_models
    shapes = reply["bank_forward"]["shapes"]
    assert shapes["encoder_token_ids"] == [4, ENCODER_LENGTH]
    assert shapes["decoder_token_ids"] == [4, DECODER_LENGTH]
    assert shapes["task"] == [4]
    assert reply["runtime_generate"]["shapes"]["prompts"] == [4, 4, 16]
    assert reply["baked_generate"]["inputs"] == [
        "encoder_padding_mask",
        "encoder_token_ids",
    ]
    with open(entries["bank_generate"]["path"] + ".json") as file:
        metadata = json.load(file)
    assert metadata["task_names"] == ["rte", "sst2", "copy"]
    assert metadata["max_decode_length"] == MAX_DECODE_LENGTH


def _operator_codes(path):
    """(custom op names, builtin op codes) of a .tflite flatbuffer."""
    from tensorflow.lite.python import schema_py_generated as schema

    with open(path, "rb") as file:
        content = bytearray(file.read())
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(content, 0))
    custom = [
        code.customCode for code in model.operatorCodes if code.customCode
    ]
    builtin = {
        max(code.builtinCode, code.deprecatedBuiltinCode)
        for code in model.operatorCodes
    }
    return custom, builtin


def test_builtin_ops_only(tflite_models):
    from tensorflow.lite.python import schema_py_generated as schema

    for key, entry in tflite_models[0].items():
        custom, builtin = _operator_codes(entry["path"])
        assert custom == [], f"{key} needs custom/flex ops {custom}"
        if entry["graph"] == "generate":
            assert schema.BuiltinOperator.WHILE in builtin


@pytest.mark.parametrize("mode", MODES)
def test_matches_keras(export_setup, tflite_models, mode):
    reply = tflite_models[1]
    reference = export_setup["reference"]
    prefix = "baked_" if mode == "baked" else ""
    np.testing.assert_allclose(
        reply[f"{mode}_forward"]["out"],
        reference[prefix + "logits"],
        atol=1e-4,
        rtol=0,
    )
    assert_ids_match(
        reply[f"{mode}_generate"]["out"], reference[prefix + "ids"]
    )


@pytest.mark.parametrize("graph", GRAPHS)
def test_mixed_task_batch_equals_each_example_alone(tflite_models, graph):
    reply = tflite_models[1]
    batched = np.asarray(reply[f"bank_{graph}"]["out"])
    alone = np.asarray(reply[f"bank1_{graph}"]["alone"])
    if graph == "forward":
        np.testing.assert_allclose(alone, batched, atol=1e-5, rtol=0)
    else:
        np.testing.assert_array_equal(alone, batched)
    permuted = np.asarray(reply[f"bank_{graph}"]["permuted"])
    order = reply[f"bank_{graph}"]["permuted_order"]
    np.testing.assert_allclose(permuted, batched[order], atol=1e-5, rtol=0)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("graph", GRAPHS)
def test_bad_rows_get_a_defined_answer(tflite_models, mode, graph):
    assert_bad_rows_answered(tflite_models[1][f"{mode}_{graph}"], graph)


def test_fixed_shapes_need_lengths(export_setup):
    import keras_prompt
    from keras_prompt.export import export_tflite

    model = export_setup["model"]
    bare = keras_prompt.PromptedT5Seq2SeqLM(model.backbone, prompt_length=4)
    with pytest.raises(ValueError, match="encoder_sequence_length"):
        export_tflite(bare, "unused.tflite", mode="baked")
    assert not os.path.exists("unused.tflite")


def test_runtime_prompt_of_wrong_shape_is_rejected(tflite_models):
    for graph in GRAPHS:
        assert tflite_models[1][f"runtime_{graph}"]["wrong_shape_error"]
