"""SavedModel export: layout, signatures, parity with Keras in a fresh
process (TensorFlow + tensorflow-text only), mixed-task batches, bad input,
TF Serving requests, atomic writes."""

import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import make_tiny_backbone
from tests.conftest import make_tiny_preprocessor
from tests.export.conftest import BATCH_TASK_IDS
from tests.export.conftest import BATCH_TASKS
from tests.export.conftest import MAX_DECODE_LENGTH
from tests.export.conftest import PROMPT_LENGTH
from tests.export.conftest import REPO_ROOT
from tests.export.conftest import TEXTS
from tests.export.conftest import assert_ids_match
from tests.export.conftest import generate_inputs
from tests.export.conftest import keras_generate_ids
from tests.export.conftest import serve_saved_model
from tests.export.conftest import run_runner
from tests.export.conftest import saved_graph_ops

sys.path.insert(0, os.path.join(REPO_ROOT, "export"))


@pytest.fixture(scope="module")
def tied_setup(export_setup):
    """A tied-embedding (original T5) model, exported baked."""
    import keras_prompt

    setup = export_setup
    backbone = make_tiny_backbone(tied=True, seed=3)
    preprocessor = make_tiny_preprocessor(
        encoder_sequence_length=16,
        decoder_sequence_length=MAX_DECODE_LENGTH,
        proto=setup["model"].preprocessor.tokenizer.proto,
    )
    model = keras_prompt.PromptedT5Seq2SeqLM(
        backbone, preprocessor=preprocessor, prompt_length=PROMPT_LENGTH, seed=5
    )
    prompts = np.broadcast_to(model.get_prompt(), setup["batch_prompts"].shape)
    batch = setup["batch"]
    reference = {
        "logits": np.asarray(model.forward(batch, prompts=prompts)),
        "ids": keras_generate_ids(model, generate_inputs(batch), prompts),
    }
    return model, reference


@pytest.fixture(scope="module")
def saved_models(export_setup, shared_exports, tied_setup):
    from keras_prompt.export import export_saved_model
    from tf_serving_client import make_predict_request

    setup = export_setup
    model, files = setup["model"], setup["files"]
    out = setup["root"] / "serving"
    paths = {
        "bank": shared_exports.saved_model_bank(),
        "runtime": export_saved_model(
            model,
            out,
            mode="runtime",
            model_name="runtime",
            max_decode_length=MAX_DECODE_LENGTH,
        ),
        "baked": export_saved_model(
            model,
            out,
            mode="baked",
            prompts=files["rte"],
            model_name="baked",
            version=3,
            max_decode_length=MAX_DECODE_LENGTH,
        ),
        "tied_baked": export_saved_model(
            tied_setup[0],
            out,
            mode="baked",
            model_name="tied",
            max_decode_length=MAX_DECODE_LENGTH,
        ),
    }
    predict_path = str(setup["root"] / "predict_request.pb")
    with open(predict_path, "wb") as file:
        file.write(
            make_predict_request(
                "keras_prompt", list(TEXTS), tasks=list(BATCH_TASKS)
            ).SerializeToString()
        )
    request = {
        "output": str(setup["root"] / "savedmodel_reply"),
        "models": {
            key: {"path": path, "mode": "baked" if "baked" in key else key}
            for key, path in paths.items()
        },
        "batch": {key: value.tolist() for key, value in setup["batch"].items()},
        "texts": list(TEXTS),
        "tasks": list(BATCH_TASKS),
        "task_ids_as_strings": [str(i) for i in BATCH_TASK_IDS],
        "vocabulary_size": model.backbone.vocabulary_size,
        "num_tasks": len(files),
        "prompts": setup["batch_prompts"].tolist(),
        "bad_tasks": {
            "unknown": ["rte", "no_such_task", "copy", "rte"],
            "out_of_range": ["rte", "sst2", "7", "rte"],
            "negative": ["-1", "sst2", "copy", "rte"],
        },
        "predict_request": predict_path,
    }
    return paths, run_runner("savedmodel_runner.py", request)


def test_tf_serving_layout(export_setup, saved_models):
    paths, reply = saved_models
    root = export_setup["root"] / "serving"
    assert paths["bank"] == str(root / "keras_prompt" / "1")
    assert paths["baked"] == str(root / "baked" / "3")
    for path in paths.values():
        assert os.path.isfile(os.path.join(path, "saved_model.pb"))
        assert os.path.isfile(
            os.path.join(path, "assets.extra", "keras_prompt_export.json")
        )
        # Nothing but integer version directories next to it.
        assert os.listdir(os.path.dirname(path)) == [os.path.basename(path)]
    assert reply["bank"]["signatures"] == [
        "generate_ids",
        "logits",
        "serving_default",
    ]


@pytest.mark.parametrize("mode", ["bank", "runtime", "baked"])
def test_warmup_requests_replay_on_every_signature(saved_models, mode):
    """`assets.extra/tf_serving_warmup_requests` holds one PredictionLog per
    signature (parsed with TF Serving's own protos) that runs."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401
    from tensorflow_serving.apis import prediction_log_pb2

    path = saved_models[0][mode]
    records = tf.data.TFRecordDataset(
        os.path.join(path, "assets.extra", "tf_serving_warmup_requests"))
    loaded = tf.saved_model.load(path)
    replayed = []
    for record in records:
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        request = log.predict_log.request
        inputs = {name: tf.constant(tf.make_ndarray(proto))
                  for name, proto in request.inputs.items()}
        outputs = loaded.signatures[request.model_spec.signature_name](**inputs)
        assert all(value.shape[0] == 1 for value in outputs.values())
        replayed.append(request.model_spec.signature_name)
    assert sorted(replayed) == sorted(loaded.signatures)


def test_bank_matches_keras(export_setup, saved_models):
    reply = saved_models[1]["bank"]
    reference = export_setup["reference"]
    np.testing.assert_allclose(
        reply["logits"], reference["logits"], atol=1e-5, rtol=0
    )
    assert_ids_match(reply["ids"], reference["ids"])
    assert reply["texts"] == reference["texts"]
    # The calibrated `</s>` makes some (not all) rows stop early.
    stopped = [1 in row[1:] for row in reply["ids"]]
    assert any(stopped)


def test_mixed_task_batch_equals_each_example_alone(export_setup, saved_models):
    reply = saved_models[1]["bank"]
    np.testing.assert_allclose(
        reply["alone_logits"], reply["logits"], atol=1e-5, rtol=0
    )
    assert reply["alone_ids"] == reply["ids"]
    assert reply["alone_texts"] == reply["texts"]


def test_mixed_task_contract_in_keras(export_setup):
    setup = export_setup
    model, batch, prompts = (
        setup["model"],
        setup["batch"],
        setup["batch_prompts"],
    )
    batched = np.asarray(model.forward(batch, prompts=prompts))
    for row in range(len(prompts)):
        alone = {key: value[row : row + 1] for key, value in batch.items()}
        logits = np.asarray(model.forward(alone, prompts=prompts[row : row + 1]))
        np.testing.assert_allclose(logits[0], batched[row], atol=1e-5, rtol=0)
    # Generated ids too (a row alone stops at its own </s>, leaving 0s).
    encoder = generate_inputs(batch)
    alone_ids = np.concatenate(
        [
            keras_generate_ids(
                model,
                {key: value[row : row + 1] for key, value in encoder.items()},
                prompts[row : row + 1],
            )
            for row in range(len(prompts))
        ]
    )
    assert_ids_match(alone_ids, setup["reference"]["ids"])


def test_runtime_and_baked_match_keras(export_setup, saved_models):
    setup = export_setup
    reply = saved_models[1]
    reference = setup["reference"]
    runtime = reply["runtime"]
    np.testing.assert_allclose(
        runtime["logits"], reference["logits"], atol=1e-5, rtol=0
    )
    assert_ids_match(runtime["ids"], reference["ids"])
    assert runtime["texts"] == reference["texts"]
    assert runtime["alone_ids"] == runtime["ids"]

    baked = reply["baked"]
    np.testing.assert_allclose(
        baked["logits"], reference["baked_logits"], atol=1e-5, rtol=0
    )
    assert_ids_match(baked["ids"], reference["baked_ids"])
    assert baked["texts"] == reference["baked_texts"]


def test_tied_head_matches_keras(tied_setup, saved_models):
    reference = tied_setup[1]
    reply = saved_models[1]["tied_baked"]
    np.testing.assert_allclose(
        reply["logits"], reference["logits"], atol=1e-5, rtol=0
    )
    assert_ids_match(reply["ids"], reference["ids"])


def test_task_by_integer_id(export_setup, saved_models):
    reply = saved_models[1]["bank"]
    assert reply["id_string_texts"] == reply["texts"]


@pytest.mark.parametrize(
    "case,named",
    [("unknown", "no_such_task"), ("out_of_range", "7"), ("negative", "-1")],
)
def test_bad_task_is_invalid_argument_naming_it(saved_models, case, named):
    errors = saved_models[1]["bank"]["errors"][case]
    for signature, message in errors.items():
        assert message is not None, f"{signature} accepted task {named!r}"
        assert message.startswith("InvalidArgumentError"), message
        assert named in message, message
        assert "Unknown task name or out-of-range task id" in message


@pytest.mark.parametrize("mode", ("bank", "runtime", "baked"))
def test_bad_inputs_are_invalid_argument_naming_them(saved_models, mode):
    cases = saved_models[1][mode]["bad_inputs"]
    assert len(cases) >= 7, sorted(cases)
    for name, case in cases.items():
        message = case["error"]
        assert message is not None, f"{name} was accepted"
        assert message.startswith("InvalidArgumentError"), (name, message)
        assert f"`{case['input']}`" in message, (name, message)
        assert case["value"] in message, (name, message)


def test_task_count_must_match_the_batch(saved_models):
    message = saved_models[1]["bank"]["no_task_rows_error"]
    assert message.startswith("InvalidArgumentError"), message
    assert "`task` must have one task per example" in message
    assert "got 0 rows for 4 examples" in message, message


def test_empty_string_and_empty_batch(export_setup, saved_models):
    reply = saved_models[1]
    # TEXTS[2] is the empty string: a defined output, same as Keras.
    assert reply["bank"]["texts"][2] == export_setup["reference"]["texts"][2]
    vocabulary = export_setup["model"].backbone.vocabulary_size
    for key in ("bank", "runtime", "baked"):
        empty = reply[key]["empty"]
        assert empty["texts"] == [0]
        assert empty["ids"] == [0, MAX_DECODE_LENGTH]
        assert empty["logits"] == [0, 5, vocabulary]


def test_runtime_prompt_of_wrong_shape_is_rejected(saved_models):
    runtime = saved_models[1]["runtime"]
    assert runtime["wrong_shape_error"] is not None
    assert runtime["batch_mismatch_error"] is not None
    assert "one [prompt_length, hidden_dim] prompt per example" in (
        runtime["batch_mismatch_error"]
    )


def test_predict_request_through_serving_default(export_setup, saved_models):
    reply = saved_models[1]
    assert reply["predict_request_texts"] == export_setup["reference"]["texts"]


def test_saved_model_cli_describes_export(saved_models):
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    if not os.path.exists(cli):
        pytest.skip("saved_model_cli is not installed next to python")
    result = subprocess.run(
        [cli, "show", "--dir", saved_models[0]["bank"], "--all"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    for name in (
        "serving_default",
        "generate_ids",
        "logits",
        "task",
        "outputs",
    ):
        assert name in result.stdout


def test_refuses_prompt_from_another_backbone(
    export_setup, foreign_prompt_file, tmp_path
):
    import keras_prompt
    from keras_prompt.export import export_saved_model

    foreign = foreign_prompt_file
    files = {**export_setup["files"], "foreign": foreign}
    with pytest.raises(keras_prompt.PromptFileError, match="fingerprint"):
        export_saved_model(
            export_setup["model"], tmp_path, mode="bank", prompts=files
        )
    with pytest.raises(keras_prompt.PromptFileError, match="fingerprint"):
        export_saved_model(
            export_setup["model"], tmp_path, mode="baked", prompts=foreign
        )
    assert not (tmp_path / "keras_prompt").exists() or not os.listdir(
        tmp_path / "keras_prompt"
    )


def test_bad_arguments(export_setup, tmp_path):
    from keras_prompt.export import export_saved_model

    model, files = export_setup["model"], export_setup["files"]
    with pytest.raises(ValueError, match="mode"):
        export_saved_model(model, tmp_path, mode="nope")
    with pytest.raises(ValueError, match="dict"):
        export_saved_model(model, tmp_path, mode="bank", prompts=files["rte"])
    with pytest.raises(ValueError, match="task name"):
        export_saved_model(
            model, tmp_path, mode="bank", prompts={"3": files["rte"]}
        )
    with pytest.raises(ValueError, match="runtime"):
        export_saved_model(
            model, tmp_path, mode="runtime", prompts=files["rte"]
        )


def test_export_is_atomic(export_setup, tmp_path, monkeypatch):
    import tensorflow as tf

    from keras_prompt.export import ExportError
    from keras_prompt.export import export_saved_model

    model = export_setup["model"]

    def broken_save(obj, export_dir, signatures=None, **kwargs):
        with open(os.path.join(export_dir, "saved_model.pb"), "wb") as file:
            file.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(tf.saved_model, "save", broken_save)
    with pytest.raises(ExportError, match="disk full"):
        export_saved_model(model, tmp_path, mode="baked", version=2)
    # No version directory and no temporary leftovers.
    assert os.listdir(tmp_path / "keras_prompt") == []

    monkeypatch.undo()
    (tmp_path / "keras_prompt" / "2").mkdir()
    with pytest.raises(FileExistsError, match="new version"):
        export_saved_model(model, tmp_path, mode="baked", version=2)


# --------------------------------------------------------------------------- #
# The deployment kit's TF Serving client, against in-process stand-ins of TF
# Serving's gRPC PredictionService and REST API that run the exported bank.
# --------------------------------------------------------------------------- #


@pytest.fixture(scope="module")
def fake_tf_serving(saved_models):
    with serve_saved_model(saved_models[0]["bank"]) as endpoints:
        yield endpoints


@pytest.mark.parametrize("protocol", ["grpc", "rest"])
def test_tf_serving_client_text(export_setup, fake_tf_serving, protocol):
    from tf_serving_client import TFServingClient

    client = TFServingClient(
        fake_tf_serving[protocol], "keras_prompt", protocol=protocol
    )
    texts = client.generate(list(TEXTS), tasks=list(BATCH_TASKS))
    assert texts == export_setup["reference"]["texts"]


@pytest.mark.parametrize("protocol", ["grpc", "rest"])
def test_tf_serving_client_ids_and_errors(
    export_setup, fake_tf_serving, protocol
):
    import grpc

    from tf_serving_client import TFServingClient

    client = TFServingClient(
        fake_tf_serving[protocol], "keras_prompt", protocol=protocol
    )
    batch = export_setup["batch"]
    ids = client.generate_ids(
        batch["encoder_token_ids"],
        batch["encoder_padding_mask"],
        tasks=list(BATCH_TASKS),
    )
    assert_ids_match(ids, export_setup["reference"]["ids"])
    expected = grpc.RpcError if protocol == "grpc" else RuntimeError
    with pytest.raises(expected) as info:
        client.generate(list(TEXTS), tasks=["rte", "nope", "rte", "rte"])
    text = str(info.value.details()) if protocol == "grpc" else str(info.value)
    assert "nope" in text and "Unknown task name" in text
    if protocol == "grpc":
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_models_config_parses():
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    with open(os.path.join(REPO_ROOT, "export", "models.config")) as file:
        config = text_format.Parse(
            file.read(), model_server_config_pb2.ModelServerConfig()
        )
    assert [c.name for c in config.model_config_list.config] == ["keras_prompt"]


def test_text_signature_needs_tf_text_ops_and_can_be_left_out(
    export_setup, saved_models, tmp_path
):
    from keras_prompt.export import export_saved_model

    ops, signatures = saved_graph_ops(saved_models[0]["bank"])
    assert {"SentencepieceOp", "SentencepieceTokenizeOp"} <= ops
    assert not any(op.startswith("Xla") for op in ops)
    path = export_saved_model(
        export_setup["model"], tmp_path, mode="baked", text_signature=False
    )
    ops, signatures = saved_graph_ops(path)
    assert not any("Sentencepiece" in op for op in ops)
    assert signatures == ["generate_ids", "logits"]
