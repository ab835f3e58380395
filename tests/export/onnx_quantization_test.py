"""`keras_prompt.export.onnx_quantization` on small hand-built ONNX graphs:
weights computed from initializers (a transposed tied head read inside a
`Loop`, `Gemm` with a bias) become initializers with the same outputs, the
quantizer then reaches every weight matmul, node order is repaired, and the
quantizer's logging stays at DEBUG."""

import logging

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto
from onnx import helper
from onnx import numpy_helper

from keras_prompt.export import onnx_quantization
from keras_prompt.export.onnx_quantization import float_weight_matmuls
from keras_prompt.export.onnx_quantization import fold_weight_matmuls
from keras_prompt.export.onnx_quantization import quantize_onnx_model
from keras_prompt.export.onnx_quantization import sort_topologically
from keras_prompt.export.onnx_subgraphs import all_nodes

HIDDEN = 8
VOCABULARY = 40
STEPS = 3


def _float_input(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _tied_head_model():
    """`x @ W` then a `Loop` of `STEPS` iterations each adding
    `h @ Transpose(E)` (E: `[VOCABULARY, HIDDEN]`, a tied embedding read
    from the outer scope) and `g = Gemm(h, Reshape(G), bias, transB=1)`,
    so every weight of the loop is computed from an initializer."""
    rng = np.random.default_rng(0)
    embedding = rng.standard_normal((VOCABULARY, HIDDEN)).astype(np.float32)
    weight = rng.standard_normal((HIDDEN, HIDDEN)).astype(np.float32)
    gemm = rng.standard_normal((HIDDEN * HIDDEN,)).astype(np.float32)
    bias = rng.standard_normal((HIDDEN,)).astype(np.float32)
    initializers = [
        numpy_helper.from_array(embedding, "embedding"),
        numpy_helper.from_array(weight, "weight"),
        numpy_helper.from_array(gemm, "gemm_flat"),
        numpy_helper.from_array(bias, "bias"),
        numpy_helper.from_array(np.array([HIDDEN, HIDDEN]), "gemm_shape"),
        numpy_helper.from_array(np.array(STEPS), "steps"),
        numpy_helper.from_array(np.array(True), "true"),
        numpy_helper.from_array(
            np.zeros((2, VOCABULARY), np.float32), "logits_start"
        ),
    ]
    body = helper.make_graph(
        [
            helper.make_node("Transpose", ["embedding"], ["head"], perm=[1, 0]),
            helper.make_node("MatMul", ["h", "head"], ["step_logits"]),
            helper.make_node("Reshape", ["gemm_flat", "gemm_shape"], ["g_w"]),
            helper.make_node(
                "Gemm", ["h", "g_w", "bias"], ["g"], transB=1, beta=0.5,
                name="gemm",
            ),
            helper.make_node("ReduceSum", ["g"], ["g_sum"], keepdims=1),
            helper.make_node("Add", ["step_logits", "g_sum"], ["shifted"]),
            helper.make_node("Add", ["acc_in", "shifted"], ["acc_out"]),
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            _float_input("acc_in", [2, VOCABULARY]),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            _float_input("acc_out", [2, VOCABULARY]),
        ],
    )
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "weight"], ["h"], name="first"),
            helper.make_node(
                "Loop", ["steps", "true", "logits_start"], ["logits"],
                body=body,
            ),
        ],
        "tied",
        [_float_input("x", [2, HIDDEN])],
        [_float_input("logits", [2, VOCABULARY])],
        initializer=initializers,
    )
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)]
    )


def _run(model, x):
    session = onnxruntime.InferenceSession(
        model.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    return session.run(None, {"x": x})[0]


def test_fold_makes_computed_weights_initializers_with_equal_outputs():
    model = _tied_head_model()
    x = np.random.default_rng(1).standard_normal((2, HIDDEN)).astype(np.float32)
    expected = _run(model, x)
    # All three weights are constants, but only the first is an initializer.
    assert float_weight_matmuls(model) == ["first", "step_logits", "gemm"]
    initializers = {i.name for i in model.graph.initializer}
    body = model.graph.node[1].attribute[0].g
    assert not initializers.intersection(
        node.input[1] for node in body.node
        if node.op_type in ("MatMul", "Gemm")
    )

    assert fold_weight_matmuls(model) == 2
    onnx.checker.check_model(model, full_check=True)
    initializers = {i.name for i in model.graph.initializer}
    assert [
        (node.name or node.output[0], node.input[1] in initializers)
        for node in model.graph.node[1].attribute[0].g.node
        if node.op_type == "MatMul"
    ] == [("step_logits", True), ("gemm/matmul", True)]
    ops = [node.op_type for node in all_nodes(model.graph)]
    # The transpose, the reshape and the Gemm are gone; the bias is an Add.
    assert "Transpose" not in ops and "Reshape" not in ops
    assert "Gemm" not in ops and ops.count("Add") == 3
    np.testing.assert_allclose(_run(model, x), expected, rtol=1e-6, atol=1e-5)
    # A second pass finds nothing left to fold.
    assert fold_weight_matmuls(model) == 0


def test_quantize_reaches_every_weight_matmul(tmp_path):
    model = _tied_head_model()
    x = np.random.default_rng(1).standard_normal((2, HIDDEN)).astype(np.float32)
    expected = _run(model, x)
    path = str(tmp_path / "int8.onnx")
    quantize_onnx_model(model, path)
    quantized = onnx.load(path)
    onnx.checker.check_model(quantized, full_check=True)
    ops = [node.op_type for node in all_nodes(quantized.graph)]
    assert ops.count("MatMulInteger") == 3 and "MatMul" not in ops
    assert float_weight_matmuls(quantized) == []
    # int8 weights and activations: close, not equal.
    got = _run(quantized, x)
    assert not np.array_equal(got, expected)
    np.testing.assert_allclose(got, expected, atol=0.1 * np.abs(expected).max())


def test_a_weight_matmul_left_float_is_an_export_error(tmp_path, monkeypatch):
    from keras_prompt.export import ExportError

    monkeypatch.setattr(
        onnx_quantization, "fold_weight_matmuls", lambda model: 0
    )
    with pytest.raises(
        ExportError, match=r"2 weight matmuls .* stayed float32 .*"
        r"\(step_logits, gemm\)\. Export it without `quantize`"
    ):
        quantize_onnx_model(_tied_head_model(), str(tmp_path / "m.onnx"))


def test_sort_topologically_orders_reads_of_a_loop_body():
    model = _tied_head_model()
    graph = model.graph
    # The loop first, before the matmul computing the `h` its body reads.
    nodes = [graph.node[1], graph.node[0]]
    copies = [onnx.NodeProto() for _ in nodes]
    for copy, node in zip(copies, nodes):
        copy.CopyFrom(node)
    graph.ClearField("node")
    graph.node.extend(copies)
    with pytest.raises(onnx.checker.ValidationError, match="topologically"):
        onnx.checker.check_model(model)
    sort_topologically(graph)
    assert [node.op_type for node in graph.node] == ["MatMul", "Loop"]
    onnx.checker.check_model(model, full_check=True)


def test_quantizer_logs_go_to_debug_and_leave_logging_as_it_was(
    tmp_path, caplog, capsys, monkeypatch
):
    """onnxruntime's quantizer warns through the root logger on every
    model; it reaches keras-prompt's logger at DEBUG only, and a process
    without logging handlers gets none (no `logging.basicConfig`)."""
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    quantize_onnx_model(_tied_head_model(), str(tmp_path / "quiet.onnx"))
    assert root.handlers == [] and root.filters == []
    assert capsys.readouterr().err == ""
    monkeypatch.undo()

    with caplog.at_level(logging.DEBUG, logger=onnx_quantization.__name__):
        quantize_onnx_model(_tied_head_model(), str(tmp_path / "debug.onnx"))
    ours = [
        record for record in caplog.records
        if record.name == onnx_quantization.__name__
    ]
    assert any("pre-processing" in record.getMessage() for record in ours)
    assert {record.levelno for record in ours} == {logging.DEBUG}
    assert not any("onnxruntime" in r.pathname for r in caplog.records)
