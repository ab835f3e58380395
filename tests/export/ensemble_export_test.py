"""Prompt ensembles in exports: a bank task holding several prompts; the
SavedModel's ensemble signatures (in a fresh process) and the ONNX client's
vote equal `keras_prompt.ensemble()` on the same examples.

One SavedModel, the ONNX generate graph and the LiteRT generate and forward
graphs are exported; the ONNX client's tie-breaking scores come from the
Keras model's logits in place of the export's forward graph (which equals
them within 1e-4, see `onnx_export_test.py`; the LiteRT test uses the real
forward graph).
"""

import json
import os
import sys

import numpy as np
import pytest

from tests.export.conftest import REPO_ROOT
from tests.export.conftest import run_runner
from tests.training import ensemble_fixtures
from tests.training.ensemble_fixtures import TASK
from tests.training.ensemble_fixtures import TEXTS
from tests.training.ensemble_fixtures import vote_kinds

sys.path.insert(0, os.path.join(REPO_ROOT, "export"))

ensemble_setup = ensemble_fixtures.ensemble_setup
ensemble_vote = ensemble_fixtures.ensemble_vote
prompt_outputs = ensemble_fixtures.prompt_outputs
MAX_DECODE_LENGTH = 8
# Prompt ids of the bank {mood: 3 prompts, other: 1}: the tasks' first
# prompts keep the task ids, mood's further prompts follow.
MOOD_PROMPT_IDS = [0, 2, 3]


@pytest.fixture(scope="module")
def exports(ensemble_setup):
    """The SavedModel and the ONNX generate graph of the bank, and the
    fresh-process runner's reply."""
    from keras_prompt.export import ExportPrompts
    from keras_prompt.export import export_onnx
    from keras_prompt.export import export_saved_model

    setup = ensemble_setup
    model, root = setup["model"], setup["root"]
    bank = {TASK: setup["files"], "other": setup["other"]}
    saved = export_saved_model(
        model, root / "serving", mode="bank", prompts=bank,
        max_decode_length=MAX_DECODE_LENGTH)
    onnx = export_onnx(model, root / "bank_generate.onnx", mode="bank",
                       prompts=bank, graph="generate",
                       max_decode_length=MAX_DECODE_LENGTH)
    encoder = model.preprocessor.generate_preprocess(list(TEXTS))
    reply = run_runner("ensemble_runner.py", {
        "output": str(root / "ensemble_reply"),
        "path": saved,
        "texts": list(TEXTS),
        "encoder": {key: np.asarray(encoder[key]).tolist()
                    for key in ("encoder_token_ids", "encoder_padding_mask")},
        "task": TASK,
        "task_id": "0",
        "bad_tasks": {"unlabelled": "other", "unknown": "nope",
                      "prompt_id": "2"},
        "prompt_ids": MOOD_PROMPT_IDS[1:],
    })
    return {"saved": saved, "onnx": onnx, "reply": reply,
            "bank": ExportPrompts.from_model(model, "bank", bank).array}


def test_bank_description_lists_each_tasks_prompt_ids(ensemble_setup, exports):
    setup = ensemble_setup
    with open(os.path.join(exports["saved"], "assets.extra",
                           "keras_prompt_export.json")) as file:
        description = json.load(file)
    assert description["task_names"] == [TASK, "other"]
    assert description["num_prompts"] == 4
    assert description["task_prompt_ids"] == {TASK: MOOD_PROMPT_IDS,
                                              "other": [1]}
    files = setup["files"]
    assert description["prompt_sources"] == [files[0], setup["other"],
                                             files[1], files[2]]
    labels = description["task_labels"]
    assert list(labels) == [TASK]
    assert labels[TASK]["words"] == setup["labels"]
    assert description["signatures"] == [
        "ensemble_ids", "ensemble_text", "generate_ids", "logits",
        "serving_default"]


def test_saved_model_ensemble_equals_keras(ensemble_setup, ensemble_vote,
                                           prompt_outputs, exports):
    reply = exports["reply"]
    predictions = ensemble_vote["result"]["predictions"]
    labels = ensemble_setup["labels"]
    text = reply["text"]
    assert text["label"] == predictions["ensemble"]
    assert np.asarray(text["prompt_labels"]).T.tolist() == \
        predictions["prompts"]
    assert text["outputs"] == [labels[i] if i >= 0 else ""
                               for i in predictions["ensemble"]]
    np.testing.assert_allclose(
        text["label_scores"], prompt_outputs["scores"].transpose(1, 0, 2),
        atol=1e-4, rtol=0)
    assert reply["ids"] == text and reply["by_task_id"] == text
    assert reply["empty_shapes"] == {
        "outputs": [0], "label": [0], "prompt_labels": [0, 3],
        "label_scores": [0, 3, len(labels)]}
    # TF Serving's warm-up requests of the ensemble signatures run.
    expected_shapes = {"outputs": [1], "label": [1], "prompt_labels": [1, 3],
                       "label_scores": [1, 3, len(labels)]}
    assert reply["warmup"] == {"ensemble_text": expected_shapes,
                               "ensemble_ids": expected_shapes}
    assert not reply["imported_keras_prompt"]
    assert not reply["imported_keras_hub"]


def test_each_prompt_alone_by_its_prompt_id(ensemble_setup, exports):
    """`task` "2" and "3" run the ensemble's second and third prompts."""
    model = ensemble_setup["model"]
    for prompt, texts in zip(ensemble_setup["prompts"][1:],
                             exports["reply"]["prompt_texts"]):
        assert texts == model.generate(
            list(TEXTS), max_length=MAX_DECODE_LENGTH,
            prompts=np.broadcast_to(prompt, (len(TEXTS),) + prompt.shape))


def test_ensemble_requests_for_tasks_that_cannot_vote_are_refused(exports):
    errors = exports["reply"]["errors"]
    assert errors["unlabelled"].startswith("InvalidArgumentError")
    assert "this task has none" in errors["unlabelled"]
    assert "Tasks with label words: \\'mood\\'" in errors["unlabelled"]
    assert "Unknown task name" in errors["unknown"]
    # An ensemble takes a task; "2" is a further prompt of `mood`.
    assert "ids must be in [0, 2)" in errors["prompt_id"]


def test_onnx_client_vote_equals_keras(ensemble_setup, ensemble_vote,
                                       prompt_outputs, exports):
    from onnx_client import OnnxPromptClient

    model = ensemble_setup["model"]
    predictions = ensemble_vote["result"]["predictions"]
    client = OnnxPromptClient(exports["onnx"])
    assert client.task_prompt_ids == {TASK: MOOD_PROMPT_IDS, "other": [1]}
    with pytest.raises(ValueError, match="pass `forward_model=`"):
        client.ensemble(list(TEXTS), TASK)
    forward_tasks = []

    def forward(feed):
        """The forward graph's answer, by the Keras model."""
        forward_tasks.append(feed["task"])
        inputs = {key: value for key, value in feed.items() if key != "task"}
        logits = model.forward(inputs, prompts=exports["bank"][feed["task"]])
        return np.asarray(logits), np.zeros(len(feed["task"]), np.int32)

    client.run_forward = forward
    result = client.ensemble(list(TEXTS), TASK)
    assert result["label"].tolist() == predictions["ensemble"]
    assert result["prompt_labels"].T.tolist() == predictions["prompts"]
    assert result["outputs"] == exports["reply"]["text"]["outputs"]
    # Only the tied texts were scored, each with the task's prompts.
    num_tied = sum(vote_kinds(votes)[1]
                   for votes in np.asarray(predictions["prompts"]).T)
    num_labels = len(ensemble_setup["labels"])
    (tasks,) = forward_tasks
    np.testing.assert_array_equal(
        tasks, np.repeat(np.repeat(MOOD_PROMPT_IDS, num_tied), num_labels))
    assert client.ensemble(list(TEXTS), 0)["outputs"] == result["outputs"]
    # The scores the client takes from logits are `model.score()`'s.
    scores = client.label_scores(list(TEXTS), [2] * len(TEXTS),
                                 client.task_labels[TASK]["token_ids"])
    np.testing.assert_allclose(scores, prompt_outputs["scores"][1], atol=1e-4,
                               rtol=0)
    with pytest.raises(ValueError, match="no label words"):
        client.ensemble(list(TEXTS), "other")
    with pytest.raises(ValueError, match="is a prompt id"):
        client.ensemble(list(TEXTS), 2)
    with pytest.raises(ValueError, match="is a 'generate' graph"):
        OnnxPromptClient(exports["onnx"], forward_model=exports["onnx"])


def test_litert_client_vote_equals_keras(ensemble_setup, ensemble_vote,
                                         exports):
    """The LiteRT client's vote with real fixed-shape graphs (batch 5, so
    the client runs the N x B rows in several calls; the forward graph
    breaks the ties)."""
    from litert_client import LiteRTPromptClient

    from keras_prompt.export import export_tflite

    setup = ensemble_setup
    model, root = setup["model"], setup["root"]
    bank = {TASK: setup["files"], "other": setup["other"]}
    paths = {
        graph: export_tflite(model, root / f"bank_{graph}.tflite", mode="bank",
                             prompts=bank, graph=graph, batch_size=5,
                             max_decode_length=MAX_DECODE_LENGTH)
        for graph in ("generate", "forward")
    }
    client = LiteRTPromptClient(paths["generate"],
                                forward_model=paths["forward"])
    result = client.ensemble(list(TEXTS), TASK)
    predictions = ensemble_vote["result"]["predictions"]
    assert result["label"].tolist() == predictions["ensemble"]
    assert result["prompt_labels"].T.tolist() == predictions["prompts"]
    assert result["outputs"] == exports["reply"]["text"]["outputs"]
