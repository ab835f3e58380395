"""ONNX export: forward and generate graphs in all three modes, checked with
onnxruntime in a process without TensorFlow, plus the ONNX Runtime client."""

import os

import numpy as np
import pytest

from tests.export.conftest import BATCH_TASK_IDS
from tests.export.conftest import BATCH_TASKS
from tests.export.conftest import MAX_DECODE_LENGTH
from tests.export.conftest import REPO_ROOT
from tests.export.conftest import TEXTS
from tests.export.conftest import assert_bad_rows_answered
from tests.export.conftest import assert_ids_match
from tests.export.conftest import run_runner

MODES = ("bank", "runtime", "baked")
GRAPHS = ("forward", "generate")


@pytest.fixture(scope="module")
def onnx_models(export_setup, shared_exports):
    setup = export_setup
    paths = {
        f"{mode}_{graph}": shared_exports.onnx(mode, graph)
        for mode in MODES
        for graph in GRAPHS
    }
    request = {
        "output": str(setup["root"] / "onnx_reply"),
        "client_dir": os.path.join(REPO_ROOT, "export"),
        "models": {
            key: {
                "path": path,
                "mode": key.split("_")[0],
                "graph": key.split("_")[1],
            }
            for key, path in paths.items()
        },
        "batch": {key: value.tolist() for key, value in setup["batch"].items()},
        "task_ids": list(BATCH_TASK_IDS),
        "tasks": list(BATCH_TASKS),
        "prompts": setup["batch_prompts"].tolist(),
        "text_prompts": setup["batch_prompts"].tolist(),
        "texts": list(TEXTS),
        "vocabulary_size": setup["model"].backbone.vocabulary_size,
        "num_tasks": len(setup["files"]),
    }
    return paths, run_runner("onnx_runner.py", request)


def test_files_written_with_expected_io(onnx_models):
    paths, reply = onnx_models
    for key, path in paths.items():
        assert os.path.isfile(path)
        mode, graph = key.split("_")
        expected = ["encoder_token_ids", "encoder_padding_mask"]
        if graph == "forward":
            expected += ["decoder_token_ids", "decoder_padding_mask"]
        expected += {"bank": ["task"], "runtime": ["prompts"], "baked": []}[
            mode
        ]
        assert reply[key]["inputs"] == expected
        assert sorted(reply[key]["outputs"]) == sorted(
            ["logits" if graph == "forward" else "token_ids", "invalid_inputs"]
        )
        assert reply[key]["good_invalid_inputs"] == [0, 0, 0, 0]
    # Only the six models: no temporary files left behind.
    directory = os.path.dirname(paths["bank_forward"])
    assert sorted(os.listdir(directory)) == sorted(
        f"{key}.onnx" for key in paths
    )


def test_runner_used_no_tensorflow(onnx_models):
    assert onnx_models[1]["imported_tensorflow"] is False


@pytest.mark.parametrize("mode", MODES)
def test_matches_keras(export_setup, onnx_models, mode):
    reply = onnx_models[1]
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


@pytest.mark.parametrize("mode", ("bank", "runtime"))
def test_mixed_task_batch_equals_each_example_alone(onnx_models, mode):
    reply = onnx_models[1]
    forward, generate = reply[f"{mode}_forward"], reply[f"{mode}_generate"]
    np.testing.assert_allclose(
        forward["alone"], forward["out"], atol=1e-5, rtol=0
    )
    assert generate["alone"] == generate["out"]


@pytest.mark.parametrize("mode", MODES)
def test_client_text_equals_model_generate(export_setup, onnx_models, mode):
    reference = export_setup["reference"]
    reply = onnx_models[1][f"{mode}_generate"]
    expected = reference["baked_texts" if mode == "baked" else "texts"]
    assert reply["client_texts"] == expected
    if mode != "baked":
        assert_ids_match(reply["client_ids"], reference["text_ids"])


def test_client_task_ids_and_errors(onnx_models):
    reply = onnx_models[1]["bank_generate"]
    assert reply["client_id_texts"] == reply["client_texts"]
    errors = reply["client_errors"]
    assert (
        errors["unknown"].startswith("ValueError")
        and "no_such_task" in errors["unknown"]
    )
    assert (
        errors["out_of_range"].startswith("ValueError")
        and "7" in errors["out_of_range"]
    )


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("graph", GRAPHS)
def test_bad_rows_get_a_defined_answer(onnx_models, mode, graph):
    assert_bad_rows_answered(onnx_models[1][f"{mode}_{graph}"], graph)


def test_client_refuses_nan_prompt_naming_the_row(onnx_models):
    message = onnx_models[1]["runtime_generate"]["client_nan_prompt_error"]
    assert message.startswith("ValueError") and "rows [2]" in message, message


def test_runtime_prompt_of_wrong_shape_is_rejected(onnx_models):
    for graph in GRAPHS:
        assert (
            onnx_models[1][f"runtime_{graph}"]["wrong_shape_error"] is not None
        )


def test_empty_batch(export_setup, onnx_models):
    vocabulary = export_setup["model"].backbone.vocabulary_size
    for mode in MODES:
        assert onnx_models[1][f"{mode}_forward"]["empty_shape"] == [
            0,
            5,
            vocabulary,
        ]
        assert onnx_models[1][f"{mode}_generate"]["empty_shape"] == [
            0,
            MAX_DECODE_LENGTH,
        ]


def test_dangling_input_and_unsupported_op_are_export_errors(tmp_path):
    import tensorflow as tf
    import tf2onnx

    from keras_prompt.export import ExportError
    from keras_prompt.export.onnx_export import validate_onnx

    captured = tf.Variable([1.0, 2.0]).read_value()  # an eager tensor
    spec = [tf.TensorSpec([None, 2], tf.float32, name="x")]

    @tf.function(input_signature=spec)
    def dangling(x):
        return {"y": x * captured}

    @tf.function(input_signature=spec)
    def unsupported(x):
        return {"y": tf.math.igamma(x, x)}

    for name, function, match in (
        ("dangling", dangling, "dangling"),
        ("unsupported", unsupported, "Igamma"),
    ):
        path = str(tmp_path / f"{name}.onnx")
        tf2onnx.convert.from_function(
            function, input_signature=spec, output_path=path
        )
        with pytest.raises(ExportError, match=match):
            validate_onnx(
                path, ["x"], ["y"], {"x": np.ones((1, 2), np.float32)}
            )


def test_decoding_loop_carries_only_what_changes(onnx_models):
    """The ONNX `Loop` of a generate graph carries the step index, the
    tokens, the stop positions and the self-attention caches; weights and
    the encoder's keys and values are read from the outer scope."""
    import onnx

    from keras_prompt.export.onnx_subgraphs import all_nodes

    paths = onnx_models[0]
    graph = onnx.load(paths["baked_generate"]).graph

    (loop,) = [node for node in all_nodes(graph) if node.op_type == "Loop"]
    layers = 2
    assert len(loop.input) - 2 == 3 + 2 * layers, [i for i in loop.input]


def test_exact_gelu_and_where_convert_through_the_handlers(tmp_path):
    """Keras's exact GELU is `tf.nn.gelu`, written with `Erfc`; keras-prompt's
    handler turns it into `1 - Erf`, and `tf.where` into ONNX `Where`."""
    import onnxruntime
    import tensorflow as tf
    import tf2onnx

    from keras_prompt.export.onnx_op_handlers import CUSTOM_OP_HANDLERS

    spec = [tf.TensorSpec([None], tf.float32, name="x")]

    @tf.function(input_signature=spec)
    def gelu(x):
        return {"y": tf.nn.gelu(x, approximate=False), "z": tf.math.erfc(x),
                "w": tf.where(x > 0, x, -2 * x)}

    path = str(tmp_path / "gelu.onnx")
    tf2onnx.convert.from_function(gelu, input_signature=spec, output_path=path,
                                  custom_op_handlers=CUSTOM_OP_HANDLERS)
    x = np.linspace(-6, 6, 101).astype(np.float32)
    session = onnxruntime.InferenceSession(path)
    y, z, w = session.run(["y", "z", "w"], {"x": x})
    np.testing.assert_allclose(y, tf.nn.gelu(x, approximate=False), atol=1e-6)
    np.testing.assert_allclose(z, tf.math.erfc(x), atol=1e-6)
    np.testing.assert_array_equal(w, np.where(x > 0, x, -2 * x))
    import onnx

    ops = {node.op_type for node in onnx.load(path).graph.node}
    assert "Where" in ops and "Erfc" not in ops


def test_invalid_conversion_is_refused_and_leaves_nothing(
    export_setup, tmp_path, monkeypatch
):
    """tf2onnx "succeeds" with an op ONNX does not know (as it does for
    XlaDynamicUpdateSlice): the export must fail and write nothing."""
    import onnx
    import tf2onnx

    from keras_prompt.export import ExportError
    from keras_prompt.export import export_onnx

    def fake_from_function(
        function, input_signature=None, opset=None, **kwargs
    ):
        inputs = [
            onnx.helper.make_tensor_value_info(
                spec.name, onnx.TensorProto.INT32, [None, None]
            )
            for spec in input_signature
        ]
        output = onnx.helper.make_tensor_value_info(
            "logits", onnx.TensorProto.FLOAT, [None, None]
        )
        node = onnx.helper.make_node(
            "XlaDynamicUpdateSlice", [inputs[0].name], ["logits"]
        )
        graph = onnx.helper.make_graph([node], "bad", inputs, [output])
        model = onnx.helper.make_model(
            graph, opset_imports=[onnx.helper.make_opsetid("", opset)]
        )
        return model, None

    monkeypatch.setattr(tf2onnx.convert, "from_function", fake_from_function)
    with pytest.raises(ExportError, match="XlaDynamicUpdateSlice"):
        export_onnx(
            export_setup["model"], str(tmp_path / "m.onnx"), mode="baked"
        )
    assert os.listdir(tmp_path) == []
