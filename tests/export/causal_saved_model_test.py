"""SavedModel export of decoder-only models (`PromptedCausalLM`): the
tokenizer in the graph, every prompt mode, parity with Keras in a fresh
process that imports only TensorFlow and tensorflow-text, the mixed-task
contract and the refused requests."""

import json
import os

import keras_hub
import numpy as np
import pytest
import tensorflow as tf

from keras_prompt import PromptedCausalLM
from keras_prompt.data import CausalTextToTextPipeline
from keras_prompt.export import export_saved_model
from keras_prompt.export import metadata as metadata_lib
from tests.export.causal_onnx_tflite_test import NEW_TOKENS
from tests.export.causal_onnx_tflite_test import keras_continuations
from tests.export.conftest import run_runner
from tests.export.conftest import saved_graph_ops

FIXTURES = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    "models",
    "fixtures",
)
PROMPT_LENGTH = 4
MAX_INPUT_LENGTH = 12
TEXTS = ("hello world", "the cat sat on a mat and more", "a dog")
TASKS = ("dog", "cat", "cat")
# family -> the mode its export is tested in (one export per family).
MODES = {"gpt2": "bank", "llama": "runtime", "gemma": "baked"}
# Llama 3's tokenizer is a byte-level BPE as GPT-2's: its export is tested
# on ids only (tracing a BPE tokenizer takes seconds).
TEXT_FAMILIES = ("gpt2", "gemma")


def _model(family):
    task = keras_hub.models.CausalLM.from_preset(os.path.join(FIXTURES, family))
    model = PromptedCausalLM(
        task.backbone, task.preprocessor, prompt_length=PROMPT_LENGTH,
        prompt_initializer="sampled_vocab", seed=3,
    )
    model.compile(jit_compile=False)
    return model


def _bank(model):
    """Two task prompts different enough to change the continuations."""
    rng = np.random.default_rng(0)
    shape = (PROMPT_LENGTH, model.hidden_dim)
    return {name: 3.0 * rng.standard_normal(shape).astype("float32")
            for name in ("cat", "dog")}


@pytest.fixture(scope="module", params=sorted(MODES))
def export(request, tmp_path_factory):
    family = request.param
    mode = MODES[family]
    model = _model(family)
    bank = _bank(model)
    tasks = list(TASKS)
    prompts = np.stack([bank[name] for name in tasks])
    if mode == "bank":
        exported = bank
    elif mode == "baked":
        exported = bank["cat"]
        prompts = np.stack([bank["cat"]] * len(tasks))
    else:
        exported = None
    out = tmp_path_factory.mktemp(f"causal_{family}")
    path = export_saved_model(
        model, out, mode=mode, prompts=exported, max_new_tokens=NEW_TOKENS,
        max_input_length=MAX_INPUT_LENGTH,
        text_signature=family in TEXT_FAMILIES,
    )
    pipeline = CausalTextToTextPipeline(
        model.preprocessor.tokenizer, MAX_INPUT_LENGTH, NEW_TOKENS)
    room_ids, room_mask = pipeline.encode_texts(TEXTS)
    token_ids = np.asarray(room_ids)[:, :MAX_INPUT_LENGTH]
    padding_mask = np.asarray(room_mask)[:, :MAX_INPUT_LENGTH]
    request = {
        "path": path,
        "mode": mode,
        "texts": list(TEXTS),
        "tasks": tasks,
        "prompts": prompts.tolist(),
        "token_ids": token_ids.tolist(),
        "padding_mask": padding_mask.tolist(),
        "vocabulary_size": int(model.backbone.vocabulary_size),
        "output": str(out / "reply"),
    }
    limit = model.family.max_sequence_length
    if limit:
        request["too_long_columns"] = limit - PROMPT_LENGTH - NEW_TOKENS + 1
    return {
        "family": family,
        "mode": mode,
        "model": model,
        "path": path,
        "prompts": prompts,
        "token_ids": token_ids,
        "padding_mask": padding_mask,
        "room": (np.asarray(room_ids), np.asarray(room_mask)),
        "reply": run_runner("causal_savedmodel_runner.py", request),
    }


def test_signatures_equal_the_keras_model_in_a_fresh_process(export):
    model, reply = export["model"], export["reply"]
    if export["family"] in TEXT_FAMILIES:
        assert reply["signatures"] == [
            "generate_ids", "logits", "serving_default"]
        ids, mask = export["room"]
        expected_texts = model.generated_texts(
            {"token_ids": ids, "padding_mask": mask}, NEW_TOKENS,
            prompts=export["prompts"])
        assert reply["outputs"] == expected_texts
    else:
        assert reply["signatures"] == ["generate_ids", "logits"]
    expected_ids = keras_continuations(
        model,
        {"token_ids": export["token_ids"],
         "padding_mask": export["padding_mask"]},
        export["prompts"])
    np.testing.assert_array_equal(reply["token_ids"], expected_ids)
    logits = np.asarray(model.forward(
        {"token_ids": export["token_ids"],
         "padding_mask": export["padding_mask"]},
        prompts=export["prompts"]))
    valid = export["padding_mask"].astype(bool)
    np.testing.assert_allclose(
        np.asarray(reply["logits"])[valid], logits[valid], atol=1e-4, rtol=0)


def test_each_row_equals_the_row_alone(export):
    reply = export["reply"]
    valid = export["padding_mask"].astype(bool)
    for row, alone in enumerate(reply["alone"]):
        if "outputs" in reply:
            assert alone["outputs"] == reply["outputs"][row], row
        assert alone["token_ids"] == reply["token_ids"][row], row
        np.testing.assert_allclose(
            np.asarray(alone["logits"])[valid[row]],
            np.asarray(reply["logits"][row])[valid[row]],
            atol=1e-5, rtol=0, err_msg=f"row {row}")
    if export["mode"] != "baked":
        # The rows' prompts differ and matter: with the first two swapped,
        # row 0's logits change (so rows do not agree by accident).
        swapped = export["model"].forward(
            {"token_ids": export["token_ids"][:1],
             "padding_mask": export["padding_mask"][:1]},
            prompts=export["prompts"][1:2])
        assert np.abs(
            np.asarray(swapped)[0][valid[0]]
            - np.asarray(reply["logits"][0])[valid[0]]).max() > 1e-2


def test_bad_requests_are_refused_naming_the_input(export):
    errors = export["reply"]["errors"]
    assert "`padding_mask` rows must be ones" in errors["left_padded"]
    assert "`token_ids` holds token ids outside" in errors["out_of_range"]
    if export["mode"] == "bank":
        assert "Unknown task name" in errors["unknown_task"]
    if export["family"] == "gpt2":
        assert "need" in errors["too_long"] and "positions" in errors["too_long"]


def test_export_description_and_no_xla_ops(export):
    path = export["path"]
    with open(os.path.join(
            path, "assets.extra", metadata_lib.METADATA_FILENAME)) as file:
        description = json.load(file)
    tokenizer = export["model"].preprocessor.tokenizer
    assert description["model_type"] == "causal_lm"
    assert description["max_new_tokens"] == NEW_TOKENS
    if export["family"] in TEXT_FAMILIES:
        assert description["max_input_length"] == MAX_INPUT_LENGTH
        assert description["separator"] == "\nAnswer:"
    else:
        assert "separator" not in description
    assert description["end_token_id"] == tokenizer.end_token_id
    assert description["strip_token_ids"] == sorted(tokenizer.special_token_ids)
    if export["mode"] == "bank":
        assert description["task_names"] == ["cat", "dog"]
    # TF Serving runs no on-demand XLA: the cache writes are scatters.
    ops, _ = saved_graph_ops(path)
    assert "TensorScatterUpdate" in ops
    assert not [op for op in ops if op.startswith("Xla")]


def test_texts_never_fail_on_a_token_id():
    model = _model("gpt2")
    tokenizer = model.preprocessor.tokenizer
    hello = [int(i) for i in np.asarray(tokenizer("hello"))]
    special = sorted(tokenizer.special_token_ids)[0]
    ids = np.array([[special] + hello + [-1, 10**6, tokenizer.vocabulary_size()]])
    assert model.detokenize(ids) == ["hello"]


def test_export_time_refusals(tmp_path):
    model = _model("gpt2")
    limit = model.family.max_sequence_length
    with pytest.raises(ValueError, match="need .* positions.*Use max_input_length <="):
        export_saved_model(
            model, tmp_path, mode="runtime", max_new_tokens=NEW_TOKENS,
            max_input_length=limit)
    with pytest.raises(ValueError, match="max_new_tokens` must be >= 1"):
        export_saved_model(model, tmp_path, mode="runtime", max_new_tokens=0)
    assert not os.listdir(tmp_path)
