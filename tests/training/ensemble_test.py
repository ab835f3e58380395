"""`keras_prompt.ensemble()`: N prompts of one task in one batch, voting as
computed by hand from each prompt's own outputs."""

import collections
import importlib
import json

import numpy as np
import pytest

from keras_prompt import cli
from keras_prompt.prompts import PromptFileError
from keras_prompt.prompts import save_prompt_file
from keras_prompt.training import TrainingError
from keras_prompt.training.ensemble import majority_vote
from tests.training import ensemble_fixtures
from tests.training.ensemble_fixtures import BATCH_SIZE
from tests.training.ensemble_fixtures import NUM_PROMPTS
from tests.training.ensemble_fixtures import TEMPLATE
from tests.training.ensemble_fixtures import TEXTS
from tests.training.ensemble_fixtures import vote_kinds

ensemble_setup = ensemble_fixtures.ensemble_setup
ensemble_vote = ensemble_fixtures.ensemble_vote
reference = ensemble_fixtures.prompt_outputs


def hand_vote(votes, mean_scores):
    """The most voted label; a tie to the tied label of higher mean score;
    -1 without votes."""
    counts = collections.Counter(v for v in votes if v >= 0)
    if not counts:
        return -1
    most = max(counts.values())
    tied = [label for label, n in counts.items() if n == most]
    return max(tied, key=lambda label: mean_scores[label])


def test_majority_vote_by_hand():
    # 3 prompts x 5 examples.
    labels = np.array([[0, 1, -1, 2, 0],
                       [0, 2, -1, 1, 1],
                       [1, 1, -1, 0, -1]])
    scores = np.full((3, 5, 3), -5.0, np.float32)
    # Example 3 ties three ways; label 1 has the best mean although prompt 0
    # scores its own vote (2) highest.
    scores[:, 3] = [[-2.0, -1.5, -0.1], [-3.0, -1.0, -4.0], [-1.0, -2.0, -4.0]]
    # Example 4 ties 0 and 1: 1 has the better mean; label 2, not tied, has
    # the best mean of all and must not win.
    scores[:, 4] = [[-0.5, -2.0, -0.1], [-4.0, -1.0, -0.1], [-3.0, -1.0, -0.1]]
    expected = [0, 1, -1, 1, 1]
    np.testing.assert_array_equal(majority_vote(labels, 3, scores), expected)
    assert [hand_vote(labels[:, b], scores[:, b].mean(0)) for b in range(5)] \
        == expected
    np.testing.assert_array_equal(majority_vote(labels[:, :3], 3), [0, 1, -1])
    with pytest.raises(ValueError, match="tie on examples \\[3, 4\\]"):
        majority_vote(labels, 3)


def _ensemble(setup, **kwargs):
    import keras_prompt

    kwargs.setdefault("batch_size", BATCH_SIZE)
    kwargs.setdefault("max_input_length", 16)
    return keras_prompt.ensemble(setup["model"], setup["files"], setup["task"],
                                 return_predictions=True, **kwargs)


def _accuracy(predictions, gold):
    return pytest.approx(100.0 * np.mean(np.asarray(predictions) == gold))


def test_vote_runs_every_prompt_in_one_batch_and_equals_the_hand_vote(
        ensemble_setup, ensemble_vote, reference):
    setup = ensemble_setup
    result, calls = ensemble_vote["result"], ensemble_vote["calls"]

    rows = NUM_PROMPTS * BATCH_SIZE
    row_prompts = np.repeat(setup["prompts"], BATCH_SIZE, axis=0)
    batches = -(-len(TEXTS) // BATCH_SIZE)
    assert [c[0] for c in calls].count("generate") == batches
    for _, size, prompts in calls:
        assert size == rows
        np.testing.assert_array_equal(prompts, row_prompts)

    predictions = result["predictions"]
    np.testing.assert_array_equal(predictions["prompts"], reference["greedy"])
    mean = reference["scores"].mean(axis=0)
    expected = [hand_vote(reference["greedy"][:, b], mean[b])
                for b in range(len(TEXTS))]
    assert predictions["ensemble"] == expected
    kinds = [vote_kinds(votes) for votes in reference["greedy"].T]
    assert any(k[0] for k in kinds) and any(k[1] for k in kinds)
    # Scores were computed once for each batch holding a tie, and only then.
    tied_batches = {b // BATCH_SIZE for b, k in enumerate(kinds) if k[1]}
    assert [c[0] for c in calls].count("score") == len(tied_batches)

    gold = reference["gold"]
    assert result["accuracy"] == _accuracy(expected, gold)
    assert result["invalid"] == sum(e < 0 for e in expected)
    assert result["num_examples"] == len(TEXTS)
    assert (result["method"], result["mode"]) == ("vote", "greedy")
    assert result["prompts"] == setup["files"]
    for metrics, labels, source in zip(result["prompt_metrics"],
                                       reference["greedy"], setup["files"]):
        assert metrics["accuracy"] == _accuracy(labels, gold)
        assert metrics["invalid"] == int((labels < 0).sum())
        assert metrics["prompt"] == source


def test_mean_logprob_and_rank_classification_vote(ensemble_setup, reference):
    scores = reference["scores"]
    mean_logprob = _ensemble(ensemble_setup, method="mean-logprob")
    assert mean_logprob["predictions"]["ensemble"] == \
        np.argmax(scores.mean(axis=0), axis=1).tolist()
    assert mean_logprob["mode"] == "rank_classification"
    ranked = _ensemble(ensemble_setup, rank_classification=True)
    votes = np.argmax(scores, axis=2)
    np.testing.assert_array_equal(ranked["predictions"]["prompts"], votes)
    mean = scores.mean(axis=0)
    assert ranked["predictions"]["ensemble"] == [
        hand_vote(votes[:, b], mean[b]) for b in range(len(TEXTS))]


def test_one_prompt_gives_its_own_metrics(ensemble_setup, ensemble_vote,
                                          tmp_path):
    """An "ensemble" of one prompt (here an array) is that prompt: its
    metrics are those it has in the ensemble of three (from its own greedy
    outputs, as `evaluate()` computes them)."""
    import keras_prompt

    setup = ensemble_setup
    output = tmp_path / "ensemble.json"
    # Batches of as many rows as the ensembles above run: no new trace.
    rows = NUM_PROMPTS * BATCH_SIZE
    alone = keras_prompt.ensemble(setup["model"], setup["prompts"][:1],
                                  setup["task"], batch_size=rows,
                                  max_input_length=16, output=str(output))
    assert alone["prompts"] == ["<array 0>"]
    single = ensemble_vote["result"]["prompt_metrics"][0]
    for key in ("accuracy", "invalid", "num_examples"):
        assert alone[key] == single[key] == alone["prompt_metrics"][0][key]
    assert json.loads(output.read_text()) == alone


def test_refuses_prompts_that_cannot_vote_together(ensemble_setup, tmp_path):
    import keras_prompt

    setup = ensemble_setup
    model, files = setup["model"], setup["files"]
    mine = {"backbone_fingerprint": model.backbone_fingerprint(),
            "labels": setup["labels"]}

    def saved(name, prompt, **metadata):
        return save_prompt_file(str(tmp_path / name), prompt,
                                {**mine, **metadata})

    prompt = setup["prompts"][0]
    longer = saved("longer.safetensors", np.zeros((5, prompt.shape[1])))
    foreign = saved("foreign.safetensors", prompt,
                    backbone_fingerprint="0" * 64)
    relabelled = saved("relabelled.safetensors", prompt, labels=["yes", "no"])

    def refused(prompts, error=TrainingError, **kwargs):
        with pytest.raises(error) as info:
            keras_prompt.ensemble(model, prompts, setup["task"], **kwargs)
        return str(info.value)

    message = refused([files[0], longer], PromptFileError)
    assert "longer.safetensors'): prompt length 5" in message
    assert "prompt_length 4" in message
    message = refused([files[0], foreign], PromptFileError)
    assert "foreign.safetensors" in message and "fingerprint" in message
    message = refused([files[0], relabelled])
    assert "relabelled.safetensors' records the label words ['yes', 'no']" \
        in message
    assert "takes a list" in refused(files[0])
    assert "[prompt_length, hidden_dim] = [4, 16]; got (5, 16)" in \
        refused([np.zeros((5, 16))])
    with pytest.raises(TrainingError, match="pass a PromptedT5Seq2SeqLM"):
        keras_prompt.ensemble(model.backbone, [prompt], setup["task"])
    assert "at least one prompt" in refused([])
    assert "'vote'" in refused(files, method="majority")
    assert "use method='vote'" in refused(files, method="mean-logprob",
                                          rank_classification=False)


def test_cli_evaluate_ensemble(ensemble_setup, capsys, monkeypatch):
    """`--prompt` repeats; with `--ensemble` the files go to `ensemble()`
    (which the tests above check), the task's label words from the first
    file; without it several files are refused with the fix."""
    setup = ensemble_setup
    module = importlib.import_module("keras_prompt.training.ensemble")
    calls = []

    def recorded(backbone, prompts, task, **kwargs):
        calls.append((backbone, prompts, task.label_words, kwargs))
        return {"accuracy": 50.0}

    monkeypatch.setattr(module, "ensemble", recorded)
    args = ["evaluate", "--backbone", "t5_tiny_demo", "--validation-file",
            setup["data"], "--template", TEMPLATE, "--max-input-length", "16",
            "--batch-size", str(BATCH_SIZE), "--no-xla"]
    for path in setup["files"]:
        args += ["--prompt", path]
    assert cli.main(args) == 2
    error = capsys.readouterr().err
    assert "Got 3 --prompt files" in error and "--ensemble vote" in error
    assert cli.main(args + ["--ensemble", "mean-logprob"]) == 0
    assert json.loads(capsys.readouterr().out) == {"accuracy": 50.0}
    (backbone, prompts, labels, kwargs), = calls
    assert (backbone, prompts, labels) == (
        "t5_tiny_demo", setup["files"], setup["labels"])
    assert kwargs["method"] == "mean-logprob"
    assert kwargs["rank_classification"] is None
    assert (kwargs["batch_size"], kwargs["max_input_length"]) == (BATCH_SIZE, 16)
    assert kwargs["jit_compile"] is False
