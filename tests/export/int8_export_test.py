"""Opt-in int8 exports (`quantize="int8"`) to ONNX and LiteRT, of a T5 and of
a decoder-only model: the graphs hold int8 weight matmuls (the decoding
loop's and the tied LM head's included), are smaller than the float32 ones,
keep their inputs, outputs and `invalid_inputs`, and answer close to them.

The T5 is the original layout (ReLU, tied head) with hidden size 32: the
LiteRT converter leaves weights of fewer than 1,024 values in float32, so
the fixtures' hidden size 16 would keep most of them float."""

import json
import os
import stat

import numpy as np
import pytest

from tests.conftest import make_tiny_backbone
from tests.conftest import make_token_batch
from tests.export.conftest import BATCH_TASK_IDS
from tests.export.conftest import MAX_DECODE_LENGTH
from tests.export.conftest import PROMPT_LENGTH
from tests.export.conftest import TASKS
from tests.export.runners import bad_inputs

HIDDEN_DIM = 32
ENCODER_LENGTH = 7
DECODER_LENGTH = 5
# Rows of the closeness checks (the batch of 4 of the LiteRT graphs, 4 times).
ROWS = 16
# Measured on this model (3 batches of 16 rows): the int8 logits (standard
# deviation ~0.96) are at most 0.15 from the Keras model's (float32) in ONNX
# Runtime and 0.11 in LiteRT, on average 0.023 and 0.014; about 2.7x margin.
# float32 exports are within 1e-4, so the lower bound shows int8 at work.
MAX_LOGIT_DIFF = 0.4
MEAN_LOGIT_DIFF = 0.06
MIN_LOGIT_DIFF = 1e-3
# Greedy ids equal to the float32 graph's on 16 of 16 rows in 5 of the 6
# batches measured (15 in the other).
MIN_EQUAL_ROWS = 14
FORMATS = ("onnx", "tflite")
GRAPHS = ("forward", "generate")


@pytest.fixture(scope="module")
def t5():
    import keras_prompt

    backbone = make_tiny_backbone(
        tied=True, hidden_dim=HIDDEN_DIM, intermediate_dim=2 * HIDDEN_DIM
    )
    model = keras_prompt.PromptedT5Seq2SeqLM(
        backbone, prompt_length=PROMPT_LENGTH, seed=0
    )
    bank = np.random.default_rng(5).uniform(
        -0.5, 0.5, (len(TASKS), PROMPT_LENGTH, HIDDEN_DIM)
    ).astype(np.float32)
    return model, {task: bank[i] for i, task in enumerate(TASKS)}


@pytest.fixture(scope="module")
def t5_files(t5, tmp_path_factory):
    """Bank exports in both formats: int8 of both graphs, float32 of the
    generate graph (the float32 forward graph equals the Keras model's
    forward pass, see `onnx_export_test` and `tflite_export_test`)."""
    from keras_prompt.export import export_onnx
    from keras_prompt.export import export_tflite

    model, prompts = t5
    out = tmp_path_factory.mktemp("int8")
    files = {}
    for quantize in (None, "int8"):
        for graph in GRAPHS if quantize else ("generate",):
            name = f"{graph}_{quantize or 'float32'}"
            files["onnx", graph, quantize] = export_onnx(
                model, out / f"{name}.onnx", mode="bank", prompts=prompts,
                graph=graph, max_decode_length=MAX_DECODE_LENGTH,
                quantize=quantize,
            )
            files["tflite", graph, quantize] = export_tflite(
                model, out / f"{name}.tflite", mode="bank", prompts=prompts,
                graph=graph, batch_size=len(BATCH_TASK_IDS),
                encoder_sequence_length=ENCODER_LENGTH,
                decoder_sequence_length=DECODER_LENGTH,
                max_decode_length=MAX_DECODE_LENGTH, quantize=quantize,
            )
    return files


def _runner(path):
    """`feed -> {output: array}` of an ONNX or LiteRT graph."""
    if str(path).endswith(".onnx"):
        import onnxruntime

        session = onnxruntime.InferenceSession(
            str(path), providers=["CPUExecutionProvider"]
        )
        names = [output.name for output in session.get_outputs()]
        return lambda feed: dict(zip(names, session.run(names, feed)))
    from keras_prompt.export.tflite_export import load_interpreter

    runner = load_interpreter(model_path=str(path)).get_signature_runner()
    return lambda feed: runner(**feed)


def _feed(graph, rows, seed=0):
    batch = make_token_batch(
        batch_size=rows, encoder_length=ENCODER_LENGTH,
        decoder_length=DECODER_LENGTH, seed=seed,
    )
    keys = ["encoder_token_ids", "encoder_padding_mask"]
    if graph == "forward":
        keys += ["decoder_token_ids", "decoder_padding_mask"]
    feed = {key: np.asarray(batch[key], np.int32) for key in keys}
    feed["task"] = np.resize(np.array(BATCH_TASK_IDS, np.int32), rows)
    return feed


def _run_rows(run, feed, output, batch):
    """`output` of `feed` run `batch` rows at a time (LiteRT's fixed
    batch)."""
    rows = len(feed["task"])
    return np.concatenate([
        run({k: v[start : start + batch] for k, v in feed.items()})[output]
        for start in range(0, rows, batch)
    ])


def _constant_weight_matmuls(graph, outer=frozenset()):
    """(float MatMul/Gemm nodes whose weight is an initializer or computed
    from initializers alone, MatMulInteger nodes) of `graph` and its
    subgraphs."""
    constants = set(outer) | {i.name for i in graph.initializer}
    float_count = integer_count = 0
    for node in graph.node:
        subgraphs = [a.g for a in node.attribute if a.g.node]
        if not subgraphs and all(n in constants for n in node.input if n):
            constants.update(node.output)
        if node.op_type in ("MatMul", "Gemm") and node.input[1] in constants:
            float_count += 1
        integer_count += node.op_type == "MatMulInteger"
        for subgraph in subgraphs:
            inner = _constant_weight_matmuls(subgraph, frozenset(constants))
            float_count += inner[0]
            integer_count += inner[1]
    return float_count, integer_count


def _loop_body(graph):
    (loop,) = [node for node in graph.node if node.op_type == "Loop"]
    return next(a.g for a in loop.attribute if a.name == "body")


def _initializer_bytes(model):
    from onnx import numpy_helper

    return sum(numpy_helper.to_array(i).nbytes for i in model.graph.initializer)


@pytest.mark.parametrize("graph", GRAPHS)
def test_onnx_int8_replaces_every_weight_matmul(t5_files, graph):
    import onnx

    float_model = onnx.load(t5_files["onnx", "generate", None])
    int8_model = onnx.load(t5_files["onnx", graph, "int8"])
    # 2 + 2 layers: 12 in the encoder, 4 (+ 1 head) in the decoder's
    # attention and feed-forward, 4 in the cross-attention (its keys and
    # values are computed once, before the decoding loop).
    assert _constant_weight_matmuls(float_model.graph) == (33, 0)
    assert _constant_weight_matmuls(int8_model.graph) == (0, 33)
    if graph == "generate":
        # Inside the decoding loop: self-attention (4) + cross-attention
        # query and output (2) + feed-forward (2) per layer, and the tied
        # head (`x @ transpose(embedding)`, a transpose of the outer graph's
        # embedding in the float32 loop).
        for model, expected in ((float_model, (17, 0)), (int8_model, (0, 17))):
            outer = frozenset(i.name for i in model.graph.initializer)
            body = _loop_body(model.graph)
            assert _constant_weight_matmuls(body, outer) == expected
        # The weights: int8 but the embedding (read by `Gather` in float32).
        assert _initializer_bytes(int8_model) < 0.5 * _initializer_bytes(
            float_model
        )
        assert os.path.getsize(t5_files["onnx", graph, "int8"]) < (
            os.path.getsize(t5_files["onnx", graph, None])
        )


def _tflite_weights(path):
    """Per op name, the element types of the constant weights (input 1) of
    its `FULLY_CONNECTED` / `BATCH_MATMUL` ops, over all subgraphs; and the
    custom ops."""
    from tensorflow.lite.python import schema_py_generated as schema

    with open(path, "rb") as file:
        model = schema.ModelT.InitFromObj(
            schema.Model.GetRootAsModel(bytearray(file.read()), 0)
        )
    names = {
        code: name for name, code in vars(schema.BuiltinOperator).items()
        if not name.startswith("_")
    }
    types = {
        code: name for name, code in vars(schema.TensorType).items()
        if not name.startswith("_")
    }
    weights = {"FULLY_CONNECTED": [], "BATCH_MATMUL": [], "WHILE": []}
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            code = model.operatorCodes[op.opcodeIndex]
            name = names[max(code.builtinCode, code.deprecatedBuiltinCode)]
            if name not in weights:
                continue
            tensor = subgraph.tensors[op.inputs[1]] if name != "WHILE" else None
            constant = tensor is not None and bool(
                model.buffers[tensor.buffer].data is not None
                and len(model.buffers[tensor.buffer].data)
            )
            weights[name].append(types[tensor.type] if constant else None)
    custom = [c.customCode for c in model.operatorCodes if c.customCode]
    return weights, custom


@pytest.mark.parametrize("graph", GRAPHS)
def test_tflite_int8_has_int8_weights_and_builtin_ops_only(t5_files, graph):
    float_weights, _ = _tflite_weights(t5_files["tflite", "generate", None])
    weights, custom = _tflite_weights(t5_files["tflite", graph, "int8"])
    assert custom == []
    assert float_weights["FULLY_CONNECTED"] == ["FLOAT32"] * 33
    assert weights["FULLY_CONNECTED"] == ["INT8"] * 33
    # The attention's batch matmuls multiply activations (no weights).
    assert set(weights["BATCH_MATMUL"]) == {None}
    assert len(weights["WHILE"]) == (graph == "generate")
    if graph == "generate":
        assert os.path.getsize(t5_files["tflite", graph, "int8"]) < 0.6 * (
            os.path.getsize(t5_files["tflite", graph, None])
        )


def _description(path):
    import onnx

    from keras_prompt.export.onnx_export import METADATA_KEY

    if str(path).endswith(".onnx"):
        props = {p.key: p.value for p in onnx.load(path).metadata_props}
        return json.loads(props[METADATA_KEY])
    with open(path + ".json") as file:
        return json.load(file)


def _signature(path):
    """Names, element types and shapes of a graph's inputs and outputs."""
    if str(path).endswith(".onnx"):
        import onnxruntime

        session = onnxruntime.InferenceSession(
            path, providers=["CPUExecutionProvider"]
        )
        # Dynamic dimensions by position (their generated names differ).
        return [
            [
                (v.name, v.type, [d if isinstance(d, int) else None
                                  for d in v.shape])
                for v in values
            ]
            for values in (session.get_inputs(), session.get_outputs())
        ]
    from keras_prompt.export.tflite_export import load_interpreter

    runner = load_interpreter(model_path=path).get_signature_runner()
    return [
        sorted((n, str(d["dtype"]), list(d["shape"])) for n, d in v.items())
        for v in (runner.get_input_details(), runner.get_output_details())
    ]


@pytest.mark.parametrize("export_format", FORMATS)
def test_int8_keeps_inputs_outputs_and_records_quantization(
    t5_files, export_format
):
    files = {q: t5_files[export_format, "generate", q] for q in (None, "int8")}
    assert _signature(files["int8"]) == _signature(files[None])
    descriptions = {q: _description(path) for q, path in files.items()}
    assert descriptions[None]["quantization"] is None
    assert descriptions["int8"]["quantization"] == "int8"
    descriptions["int8"]["quantization"] = None
    assert descriptions["int8"] == descriptions[None]
    forward = _description(t5_files[export_format, "forward", "int8"])
    assert forward["quantization"] == "int8"
    assert forward["outputs"] == ["logits", "invalid_inputs"]


def test_int8_files_follow_the_umask_and_leave_no_temporary_files(t5_files):
    umask = os.umask(0)
    os.umask(umask)
    directory = os.path.dirname(t5_files["onnx", "generate", "int8"])
    expected = []
    for (export_format, graph, quantize), path in t5_files.items():
        assert os.path.dirname(path) == directory
        names = [os.path.basename(path)]
        if export_format == "tflite":
            names.append(names[0] + ".json")
        for name in names:
            mode = os.stat(os.path.join(directory, name)).st_mode
            assert stat.S_IMODE(mode) == 0o666 & ~umask, name
        expected += names
    assert sorted(os.listdir(directory)) == sorted(expected)


@pytest.mark.parametrize("export_format", FORMATS)
def test_int8_answers_close_to_float32(t5, t5_files, export_format):
    model, prompts = t5
    bank = np.stack(list(prompts.values()))
    batch = 4 if export_format == "tflite" else ROWS
    feed = _feed("forward", ROWS)
    expected = np.asarray(model.forward(
        {k: v for k, v in feed.items() if k != "task"},
        prompts=bank[feed["task"]],
    ))
    run = _runner(t5_files[export_format, "forward", "int8"])
    logits = _run_rows(run, feed, "logits", batch)
    difference = np.abs(logits - expected)
    assert MIN_LOGIT_DIFF < difference.max() <= MAX_LOGIT_DIFF, (
        difference.max()
    )
    assert difference.mean() <= MEAN_LOGIT_DIFF, difference.mean()
    feed = _feed("generate", ROWS, seed=1)
    ids = {
        q: _run_rows(
            _runner(t5_files[export_format, "generate", q]), feed,
            "token_ids", batch,
        )
        for q in (None, "int8")
    }
    equal_rows = int((ids["int8"] == ids[None]).all(axis=1).sum())
    assert equal_rows >= MIN_EQUAL_ROWS, (equal_rows, ids)


@pytest.mark.parametrize("export_format", FORMATS)
@pytest.mark.parametrize("graph", GRAPHS)
def test_int8_flags_bad_rows(t5, t5_files, export_format, graph):
    """Each bad input gets exactly its `invalid_inputs` flags and its
    defined answer (pad ids, NaN logits). The other rows are unchanged in
    LiteRT (activations quantized per row); in ONNX Runtime the activations
    of a batch share a scale, so they may move by a quantization step."""
    model, _ = t5
    output = "logits" if graph == "forward" else "token_ids"
    run = _runner(t5_files[export_format, graph, "int8"])
    feed = _feed(graph, len(BATCH_TASK_IDS))
    good = run(feed)[output]
    cases = bad_inputs.cases(
        feed, model.backbone.vocabulary_size, len(TASKS),
        fixed_batch=export_format == "tflite",
    )
    assert len(cases) >= 5
    for name, (broken, expected, _, _) in cases.items():
        outputs = run(broken)
        assert outputs["invalid_inputs"].tolist() == expected, name
        for row, flags in enumerate(expected):
            got = outputs[output][row]
            if flags and graph == "forward":
                assert np.isnan(got).all(), (name, row)
            elif flags:
                assert not got.any(), (name, row)
            elif export_format == "tflite" or graph == "generate":
                np.testing.assert_array_equal(got, good[row], err_msg=name)
            else:
                np.testing.assert_allclose(
                    got, good[row], atol=MAX_LOGIT_DIFF, err_msg=name
                )


def test_bad_quantize_values_are_refused_before_export(t5, tmp_path):
    from keras_prompt.export import export_onnx
    from keras_prompt.export import export_tflite

    model, prompts = t5
    for value in ("INT8", "int4", "float16", True, 8):
        for export in (export_onnx, export_tflite):
            with pytest.raises(ValueError) as info:
                export(
                    model, tmp_path / "refused", mode="bank", prompts=prompts,
                    quantize=value,
                )
            message = str(info.value)
            assert "`quantize`" in message and repr(value) in message
            assert "None" in message and "'int8'" in message
    assert os.listdir(tmp_path) == []


def test_decoder_only_int8_onnx_and_litert_generate(tmp_path):
    """GPT-2 (the fixture: hidden 64, tied head; tf2onnx writes its
    projections as `Gemm` of reshaped kernels): every weight matmul of both
    int8 exports is int8, and the greedy continuations of a mixed-task
    batch equal the Keras model's."""
    import onnx

    from keras_prompt.export import export_onnx
    from keras_prompt.export import export_tflite
    from tests.export.causal_onnx_tflite_test import NEW_TOKENS
    from tests.export.causal_onnx_tflite_test import NUM_TASKS
    from tests.export.causal_onnx_tflite_test import TASKS as CAUSAL_TASKS
    from tests.export.causal_onnx_tflite_test import _bank_generate
    from tests.export.causal_onnx_tflite_test import _batch
    from tests.export.causal_onnx_tflite_test import _model
    from tests.export.causal_onnx_tflite_test import keras_continuations

    model = _model("gpt2")
    bank = np.random.default_rng(1).uniform(
        -0.5, 0.5, (NUM_TASKS, model.prompt_length, model.hidden_dim)
    ).astype(np.float32)
    batch = _batch(model.backbone.vocabulary_size)
    feed = {**batch, "task": np.array(CAUSAL_TASKS, np.int32)}
    expected = keras_continuations(model, batch, bank[list(CAUSAL_TASKS)])
    onnx_path = export_onnx(
        model, tmp_path / "bank_generate.onnx", quantize="int8",
        **_bank_generate(bank),
    )
    proto = onnx.load(onnx_path)
    float_count, integer_count = _constant_weight_matmuls(proto.graph)
    assert float_count == 0 and integer_count >= 2 * 4 * 2 + 1
    outer = frozenset(i.name for i in proto.graph.initializer)
    body = _constant_weight_matmuls(_loop_body(proto.graph), outer)
    assert body[0] == 0 and body[1] >= 2 * 4 + 1
    outputs = _runner(onnx_path)(feed)
    np.testing.assert_array_equal(outputs["new_token_ids"], expected)
    assert not outputs["invalid_inputs"].any()

    tflite_path = export_tflite(
        model, tmp_path / "bank_generate.tflite", quantize="int8",
        batch_size=len(CAUSAL_TASKS),
        sequence_length=batch["token_ids"].shape[1], **_bank_generate(bank),
    )
    weights, custom = _tflite_weights(tflite_path)
    assert custom == [] and len(weights["WHILE"]) == 1
    assert set(weights["FULLY_CONNECTED"]) == {"INT8"}
    outputs = _runner(tflite_path)(feed)
    np.testing.assert_array_equal(outputs["new_token_ids"], expected)
    with open(tflite_path + ".json") as file:
        assert json.load(file)["quantization"] == "int8"
    assert NEW_TOKENS == expected.shape[1]
