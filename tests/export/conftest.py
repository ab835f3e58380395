"""Shared fixtures for the exporter tests.

One tiny prompted T5 (untied head, gated GELU: the T5 1.1 layout the paper
uses) with a bank of three prompt files, and Keras reference outputs for a
mixed-task batch, built once per session. The backbone's LM-head column of
`</s>` is set to a slightly scaled copy of a token the random model likes to
generate, so that some rows stop early and the stop/padding convention is
exercised.
"""

import contextlib
import json
import os
import subprocess
import sys
import types

import numpy as np
import pytest

from tests.conftest import make_tiny_backbone
from tests.conftest import make_tiny_preprocessor
from tests.conftest import make_token_batch

PROMPT_LENGTH = 4
HIDDEN_DIM = 16
ENCODER_SEQUENCE_LENGTH = 16
MAX_DECODE_LENGTH = 8
TASKS = ("rte", "sst2", "copy")
# A mixed-task batch: task of each example.
BATCH_TASKS = ("sst2", "rte", "copy", "rte")
BATCH_TASK_IDS = tuple(TASKS.index(task) for task in BATCH_TASKS)
TEXTS = (
    "the cat likes the movie today",
    "a dog sees green apples",
    "",
    "my friend paints the old house at night",
)
RUNNERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "runners")
REPO_ROOT = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
)


def token_batch():
    """Encoder/decoder ids with ragged padding (batch 4, S=7, T=5)."""
    return make_token_batch(batch_size=4, encoder_length=7, decoder_length=5)


def generate_inputs(batch):
    return {
        "encoder_token_ids": batch["encoder_token_ids"],
        "encoder_padding_mask": batch["encoder_padding_mask"],
    }


@contextlib.contextmanager
def without_preprocessor(model):
    """Lets `model.generate` take token dicts (KerasHub needs
    `preprocessor=None` for that)."""
    preprocessor = model.preprocessor
    model.preprocessor = None
    try:
        yield model
    finally:
        model.preprocessor = preprocessor


def keras_generate_ids(
    model, encoder_inputs, prompts, max_length=MAX_DECODE_LENGTH
):
    batch = encoder_inputs["encoder_token_ids"].shape[0]
    decoder_mask = np.zeros((batch, max_length), "int32")
    decoder_mask[:, 0] = 1
    inputs = {
        **encoder_inputs,
        "decoder_token_ids": np.zeros((batch, max_length), "int32"),
        "decoder_padding_mask": decoder_mask,
    }
    with without_preprocessor(model):
        out = model.generate(inputs, stop_token_ids=(1,), prompts=prompts)
    return np.asarray(out["decoder_token_ids"])


def assert_ids_match(exported, reference, end_token_id=1):
    """Exported ids equal the reference up to and including each row's first
    `</s>`; after it the export holds 0 (pad)."""
    exported = np.asarray(exported)
    reference = np.asarray(reference)
    assert exported.shape == reference.shape, (exported.shape, reference.shape)
    for row, (got, want) in enumerate(zip(exported, reference)):
        stops = np.flatnonzero(want[1:] == end_token_id)
        end = stops[0] + 2 if len(stops) else len(want)
        np.testing.assert_array_equal(
            got[:end], want[:end], err_msg=f"row {row}"
        )
        np.testing.assert_array_equal(
            got[end:], np.zeros_like(got[end:]), err_msg=f"row {row} after </s>"
        )


def assert_bad_rows_answered(reply, graph):
    """A plain graph's answers to `runners/bad_inputs.py`'s cases: each row
    gets exactly its expected `invalid_inputs` flags; a flagged row's token
    ids are all 0 (its logits all NaN); every other row is what the good
    batch gave it."""
    good = np.asarray(reply["out"])
    assert reply["bad_inputs"], "no bad-input cases ran"
    for name, case in reply["bad_inputs"].items():
        assert case["invalid_inputs"] == case["expected"], name
        out = np.asarray(case["out"])
        for row, flags in enumerate(case["expected"]):
            if flags and graph == "forward":
                assert np.isnan(out[row]).all(), f"{name}: row {row}"
            elif flags:
                assert not out[row].any(), f"{name}: row {row}"
            elif graph == "forward":
                np.testing.assert_allclose(
                    out[row], good[row], atol=1e-5, rtol=0, err_msg=name
                )
            else:
                np.testing.assert_array_equal(out[row], good[row], err_msg=name)


def saved_graph_ops(version_dir):
    """The op types of a SavedModel's graph and functions, and its
    signature names."""
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(version_dir, "saved_model.pb"), "rb") as file:
        saved_model.ParseFromString(file.read())
    graph = saved_model.meta_graphs[0].graph_def
    ops = {node.op for node in graph.node}
    for function in graph.library.function:
        ops.update(node.op for node in function.node_def)
    signatures = saved_model.meta_graphs[0].signature_def
    return ops, sorted(name for name in signatures if not name.startswith("__"))


def run_runner(script, request, timeout=300):
    """Runs `tests/export/runners/<script>` in a fresh interpreter with a
    JSON request; returns its JSON reply. The runners import neither
    keras_prompt nor keras_hub (and report what they imported)."""
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env["PYTHONPATH"] = (
        ""  # no repo on the path: keras_prompt is not importable
    )
    request_path = request["output"] + ".request.json"
    with open(request_path, "w") as file:
        json.dump(request, file)
    result = subprocess.run(
        [sys.executable, os.path.join(RUNNERS, script), request_path],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=os.path.dirname(request_path),
        env=env,
    )
    if result.returncode != 0:
        raise AssertionError(
            f"{script} failed ({result.returncode}):\n{result.stderr[-4000:]}"
        )
    with open(request["output"] + ".json") as file:
        reply = json.load(file)
    assert not reply["imported_keras_prompt"], "runner imported keras_prompt"
    assert not reply["imported_keras_hub"], "runner imported keras_hub"
    return reply


@contextlib.contextmanager
def serve_saved_model(path, model_name="keras_prompt"):
    """In-process stand-ins of TF Serving's gRPC PredictionService and REST
    API running the SavedModel at `path`; yields their addresses."""
    import json as json_lib
    import threading
    from concurrent import futures
    from http.server import BaseHTTPRequestHandler
    from http.server import ThreadingHTTPServer

    import grpc
    import tensorflow as tf
    import tensorflow_text  # noqa: F401
    from tensorflow_serving.apis import predict_pb2
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    loaded = tf.saved_model.load(path)

    def run(signature_name, inputs):
        signature = loaded.signatures[signature_name or "serving_default"]
        return {k: v.numpy() for k, v in signature(**inputs).items()}

    class Servicer(prediction_service_pb2_grpc.PredictionServiceServicer):
        def Predict(self, request, context):
            inputs = {
                k: tf.constant(tf.make_ndarray(v))
                for k, v in request.inputs.items()
            }
            try:
                outputs = run(request.model_spec.signature_name, inputs)
            except tf.errors.InvalidArgumentError as error:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, error.message)
            response = predict_pb2.PredictResponse()
            for name, value in outputs.items():
                response.outputs[name].CopyFrom(tf.make_tensor_proto(value))
            return response

    grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        Servicer(), grpc_server
    )
    grpc_port = grpc_server.add_insecure_port("localhost:0")
    grpc_server.start()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server API
            assert self.path == f"/v1/models/{model_name}:predict", self.path
            body = json_lib.loads(
                self.rfile.read(int(self.headers["Content-Length"]))
            )
            inputs = {k: tf.constant(v) for k, v in body["inputs"].items()}
            try:
                outputs = run(body.get("signature_name"), inputs)
                value = next(iter(outputs.values()))
                if value.dtype == object:
                    value = [v.decode("utf-8") for v in value.tolist()]
                else:
                    value = value.tolist()
                status, reply = 200, {"outputs": value}
            except tf.errors.InvalidArgumentError as error:
                status, reply = 400, {"error": error.message}
            data = json_lib.dumps(reply).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    http_server = ThreadingHTTPServer(("localhost", 0), Handler)
    thread = threading.Thread(target=http_server.serve_forever, daemon=True)
    thread.start()
    try:
        yield {
            "grpc": f"localhost:{grpc_port}",
            "rest": f"localhost:{http_server.server_port}",
        }
    finally:
        http_server.shutdown()
        grpc_server.stop(None)


def _greedy_ids(model, encoder_inputs, prompts, max_length):
    """Greedy decoder ids as `keras_generate_ids` gives them (start token 0,
    each row padded with 0 after its first `</s>`), from `max_length - 1`
    forward passes: far cheaper than compiling `model.generate` for a
    one-off use."""
    batch = encoder_inputs["encoder_token_ids"].shape[0]
    ids = np.zeros((batch, 1), "int32")
    for _ in range(max_length - 1):
        logits = model.forward(
            {
                **encoder_inputs,
                "decoder_token_ids": ids,
                "decoder_padding_mask": np.ones_like(ids),
            },
            prompts=prompts,
        )
        next_ids = np.argmax(np.asarray(logits)[:, -1], axis=-1)
        ids = np.concatenate([ids, next_ids[:, None].astype("int32")], axis=1)
    ended = np.cumsum(ids[:, 1:] == 1, axis=1) - (ids[:, 1:] == 1) > 0
    ids[:, 1:][ended] = 0
    return ids


def _calibrate_end_token(model, prompts, encoder_batches):
    """Points the `</s>` head column at a frequently generated token."""
    embedding = model.backbone.token_embedding
    generated = []
    for batch in encoder_batches:
        ids = _greedy_ids(model, batch, prompts, MAX_DECODE_LENGTH)
        generated.append(ids[:, 2:].ravel())
    counts = np.bincount(
        np.concatenate(generated), minlength=embedding.input_dim
    )
    counts[:3] = 0
    token = int(np.argmax(counts))
    head = np.array(embedding.reverse_embeddings.numpy())
    head[:, 1] = head[:, token] * 1.01
    embedding.reverse_embeddings.assign(head)
    return token


@pytest.fixture(scope="session")
def foreign_prompt_file(tmp_path_factory):
    """A prompt file trained on a different backbone (other weights)."""
    import keras_prompt

    other = keras_prompt.PromptedT5Seq2SeqLM(
        make_tiny_backbone(tied=False, seed=7), prompt_length=PROMPT_LENGTH
    )
    path = tmp_path_factory.mktemp("foreign") / "foreign.safetensors"
    return other.save_prompt(str(path), task="foreign")


@pytest.fixture(scope="session")
def export_setup(tmp_path_factory):
    """The model, its bank of prompt files and Keras reference outputs."""
    import keras_prompt

    root = tmp_path_factory.mktemp("export")
    backbone = make_tiny_backbone(tied=False)
    preprocessor = make_tiny_preprocessor(
        encoder_sequence_length=ENCODER_SEQUENCE_LENGTH,
        decoder_sequence_length=MAX_DECODE_LENGTH,
    )
    model = keras_prompt.PromptedT5Seq2SeqLM(
        backbone, preprocessor=preprocessor, prompt_length=PROMPT_LENGTH, seed=0
    )
    rng = np.random.default_rng(123)
    bank = rng.uniform(-0.5, 0.5, (len(TASKS), PROMPT_LENGTH, HIDDEN_DIM))
    bank = bank.astype("float32")
    batch_prompts = bank[list(BATCH_TASK_IDS)]
    batch = token_batch()
    text_inputs = preprocessor.generate_preprocess(list(TEXTS))
    text_inputs = {
        key: np.asarray(text_inputs[key])
        for key in ("encoder_token_ids", "encoder_padding_mask")
    }
    _calibrate_end_token(
        model, batch_prompts, [generate_inputs(batch), text_inputs]
    )

    files = {}
    for index, task in enumerate(TASKS):
        model.set_prompt(bank[index])
        files[task] = model.save_prompt(
            str(root / f"{task}.safetensors"), task=task
        )
    model.set_prompt(bank[0])

    baked_prompts = np.broadcast_to(bank[0], batch_prompts.shape)
    reference = {
        "baked_logits": np.asarray(model.forward(batch, prompts=baked_prompts)),
        "baked_ids": keras_generate_ids(
            model, generate_inputs(batch), baked_prompts
        ),
        "baked_texts": list(
            model.generate(
                list(TEXTS), max_length=MAX_DECODE_LENGTH, prompts=baked_prompts
            )
        ),
        "logits": np.asarray(model.forward(batch, prompts=batch_prompts)),
        "ids": keras_generate_ids(model, generate_inputs(batch), batch_prompts),
        "text_ids": keras_generate_ids(model, text_inputs, batch_prompts),
        "texts": list(
            model.generate(
                list(TEXTS), max_length=MAX_DECODE_LENGTH, prompts=batch_prompts
            )
        ),
    }
    return {
        "root": root,
        "model": model,
        "bank": bank,
        "batch_prompts": batch_prompts,
        "files": files,
        "batch": batch,
        "text_inputs": text_inputs,
        "reference": reference,
    }


@pytest.fixture(scope="session")
def shared_exports(export_setup):
    """Exports of the session's model that several test files read, built
    on first use and then reused by every file of the worker (the same
    arguments write the same files; no test changes them):

    - `saved_model_bank()`: the bank SavedModel (all signatures) at
      `<root>/serving/keras_prompt/1`;
    - `onnx(mode, graph)`: the ONNX graph at `<root>/onnx/<mode>_<graph>.onnx`.
    """
    from keras_prompt.export import export_onnx
    from keras_prompt.export import export_saved_model

    setup = export_setup
    cache = {}
    prompts = {"bank": setup["files"], "runtime": None,
               "baked": setup["files"]["rte"]}

    def saved_model_bank():
        if "saved_model_bank" not in cache:
            cache["saved_model_bank"] = export_saved_model(
                setup["model"],
                setup["root"] / "serving",
                mode="bank",
                prompts=setup["files"],
                max_decode_length=MAX_DECODE_LENGTH,
            )
        return cache["saved_model_bank"]

    def onnx(mode, graph):
        key = ("onnx", mode, graph)
        if key not in cache:
            cache[key] = export_onnx(
                setup["model"],
                str(setup["root"] / "onnx" / f"{mode}_{graph}.onnx"),
                mode=mode,
                prompts=prompts[mode],
                graph=graph,
                max_decode_length=MAX_DECODE_LENGTH,
            )
        return cache[key]

    return types.SimpleNamespace(saved_model_bank=saved_model_bank, onnx=onnx)
