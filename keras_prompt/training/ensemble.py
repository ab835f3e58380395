"""`keras_prompt.ensemble`: several prompts of one task voting (prompt
ensembling, Lester et al. 2021, §7)."""

import logging
import os

import numpy as np

from keras_prompt.training.training_error import TrainingError

logger = logging.getLogger(__name__)

METHODS = ("vote", "mean-logprob")


def prompt_votes(prompt_labels, num_labels):
    """Votes per label, `int64[B, num_labels]`, of the prompts' labels
    `int[N, B]` (a label -1, no label word, is no vote)."""
    prompt_labels = np.asarray(prompt_labels)
    votes = np.zeros((prompt_labels.shape[1], int(num_labels)), np.int64)
    for labels in prompt_labels:
        voted = np.flatnonzero(labels >= 0)
        votes[voted, labels[voted]] += 1
    return votes


def tied_examples(prompt_labels, num_labels):
    """`bool[B]`: the examples whose most voted labels tie."""
    votes = prompt_votes(prompt_labels, num_labels)
    most = votes.max(axis=1, keepdims=True)
    return ((votes == most).sum(axis=1) > 1) & (most[:, 0] > 0)


def majority_vote(prompt_labels, num_labels, scores=None):
    """The ensemble's label of each example by majority vote.

    The label with the most votes wins; a tie goes to the tied label with
    the highest mean (over all prompts) log-likelihood; an example without
    any vote (no prompt gave a label word) gets -1.

    Args:
        prompt_labels: int `[N, B]`, each prompt's label index per example
            (-1: no label word).
        num_labels: the number of label words `C`.
        scores: float `[N, B, C]`, each prompt's label-word log-likelihoods
            (rank-classification scores); needed only when a vote ties.

    Returns:
        int64 `[B]` label indices (-1: no vote).

    Example:
    ```python
    labels = np.array([[0, 1, -1], [0, 2, -1], [1, 1, -1]])  # 3 prompts
    majority_vote(labels, 3)  # [0, 1, -1]
    ```
    """
    votes = prompt_votes(prompt_labels, num_labels)
    most = votes.max(axis=1, keepdims=True)
    winners = np.argmax(votes, axis=1)
    ties = tied_examples(prompt_labels, num_labels)
    if ties.any():
        if scores is None:
            raise ValueError(
                f"Votes tie on examples {np.flatnonzero(ties).tolist()}: pass "
                "`scores` (the prompts' label-word log-likelihoods) to break "
                "the ties."
            )
        mean = np.mean(np.asarray(scores, np.float32), axis=0)
        tied_best = np.argmax(np.where(votes == most, mean, -np.inf), axis=1)
        winners = np.where(ties, tied_best, winners)
    return np.where(most[:, 0] > 0, winners, -1).astype(np.int64)


class _EnsembleRows:
    """The model as `TaskEvaluator` sees it for an ensemble: each batch has
    `N * B` rows (row `k * B + b`: prompt `k`, example `b`), and every
    `generate()` or `score()` call runs them with their prompts, in one
    call of the model."""

    def __init__(self, model, prompts):
        self._model = model
        self._prompts = prompts

    def _row_prompts(self, inputs):
        rows = int(np.shape(next(iter(inputs.values())))[0])
        return np.repeat(self._prompts, rows // len(self._prompts), axis=0)

    def generated_texts(self, inputs, *args, **kwargs):
        prompts = self._row_prompts(inputs)
        return self._model.generated_texts(
            inputs, *args, prompts=prompts, **kwargs
        )

    def score(self, inputs, choices):
        prompts = self._row_prompts(inputs)
        return self._model.score(inputs, choices, prompts=prompts)

    def __getattr__(self, name):
        return getattr(self._model, name)


def load_ensemble(backbone, prompts, preprocessor=None):
    """A model on `backbone` and the prompts of an ensemble, all checked.

    Every prompt must have one shape and, if it is a file, the backbone's
    fingerprint; files that record label words must record the same.

    Args:
        backbone: as in `keras_prompt.evaluate()`. With prompt arrays only,
            a `PromptedT5Seq2SeqLM` or `PromptedCausalLM` of their prompt
            length.
        prompts: list of prompt files (or training output directories) or
            `[prompt_length, hidden_dim]` arrays.
        preprocessor: tokenizer preprocessor for object backbones.

    Returns:
        `(model, prompts float32[N, P, H], sources)`; the sources name each
        prompt (its path, or `"<array i>"`).

    Raises:
        TrainingError: no prompts, prompts of different shapes or label
            words, arrays that no model fits.
        PromptFileError: a file is unreadable or for another backbone.
    """
    from keras_prompt.models.prompted_causal_lm import PromptedCausalLM
    from keras_prompt.models.prompted_t5_seq2seq_lm import PromptedT5Seq2SeqLM
    from keras_prompt.prompts.prompt_bank import PromptBank
    from keras_prompt.prompts.prompt_file import PromptFileError
    from keras_prompt.prompts.prompt_file import prompt_file_path
    from keras_prompt.training.evaluate import load_model_with_prompt

    if isinstance(prompts, (str, bytes, os.PathLike)) or (
        isinstance(prompts, np.ndarray) and prompts.ndim == 2
    ):
        raise TrainingError(
            "`prompts` is one prompt; an ensemble takes a list of them, e.g. "
            "['runs/rte_1', 'runs/rte_2', 'runs/rte_3'] (use "
            "`keras_prompt.evaluate()` for a single prompt)."
        )
    # Training output directories name their prompt.safetensors.
    prompts = [prompt_file_path(os.fsdecode(p))
               if isinstance(p, (str, bytes, os.PathLike)) else p
               for p in prompts]
    if not prompts:
        raise TrainingError(
            "An ensemble needs at least one prompt (usually 3 to 5 prompts "
            "trained for the task with different seeds); got none."
        )
    files = [p for p in prompts if isinstance(p, str)]
    if files:
        # The first file gives the prompt length of the model built here.
        model, _ = load_model_with_prompt(backbone, files[0], preprocessor)
    elif not isinstance(backbone, (PromptedT5Seq2SeqLM, PromptedCausalLM)):
        raise TrainingError(
            "Prompt arrays carry no backbone to build a model for: pass a "
            "PromptedT5Seq2SeqLM or PromptedCausalLM as `backbone`, or "
            "prompt files."
        )
    else:
        model = backbone
    # An ensemble is one bank task holding every prompt: the bank checks
    # shapes, values, fingerprints and that the files share label words.
    bank = PromptBank(model.prompt_length, model.hidden_dim,
                      model.backbone_fingerprint)
    try:
        bank.add("ensemble", prompts)
    except PromptFileError:
        raise
    except ValueError as error:
        raise TrainingError(f"Ensemble prompts: {error}") from None
    sources = [f"<array {i}>" if source == "<array>" else source
               for i, source in enumerate(bank.sources())]
    return model, bank.prompts(), sources


def ensemble(
    backbone,
    prompts,
    task,
    *,
    method="vote",
    split="validation",
    data_dir=None,
    preprocessor=None,
    batch_size=32,
    max_input_length=256,
    max_target_length=None,
    max_examples=None,
    rank_classification=None,
    jit_compile="auto",
    length_buckets="auto",
    return_predictions=False,
    output=None,
):
    """Evaluate a prompt ensemble: several prompts of one task, one model.

    Prompt ensembling (Lester et al. 2021, §7): `N` prompts trained for the
    same task (e.g. with different seeds) run on one frozen model, every
    batch of `B` examples as one batch of `N * B` rows (each example once
    with each prompt, through `prompts=`), and their answers are combined:

    - `method="vote"`: majority vote over each prompt's label. A prompt's
      label is its greedy output matched exactly (stripped) against the
      label words, as `keras_prompt.evaluate()` does (no label word: no
      vote), or with `rank_classification=True` its highest-scoring label
      word. A tied vote goes to the tied label with the highest mean over
      the prompts of its log-likelihood (the rank-classification score,
      computed in a second call on the same `N * B` rows, only for batches
      with a tie); an example without any vote counts as invalid.
    - `method="mean-logprob"`: the label word with the highest mean over
      the prompts of its log-likelihood.

    Each single prompt's metrics come from the same `N * B` outputs, with
    no further forward pass. All prompts must have one prompt length and
    (files) the backbone's fingerprint; files that record label words must
    record the same ones.

    Args:
        backbone: preset name/dir, HF checkpoint dir (T5 or a decoder-only
            family), a KerasHub backbone, or a `PromptedT5Seq2SeqLM` /
            `PromptedCausalLM` (its prompt is replaced by the first file's,
            as `evaluate()` does).
        prompts: list of prompt files (or training output directories) or
            `[prompt_length, hidden_dim]` arrays (arrays need a prompted
            model as `backbone`). One prompt is allowed and gives
            that prompt's own `evaluate()` metrics.
        task: a task name or `Task` with label words (a classification
            task).
        method: `"vote"` or `"mean-logprob"`.
        split: `"validation"`, `"test"` or a source split name.
        data_dir: TFDS data directory.
        preprocessor: tokenizer preprocessor for object backbones.
        batch_size: examples per batch (the model runs `N * batch_size`
            rows).
        max_input_length, max_target_length: token lengths (the target
            length defaults to the longest label word plus `</s>`, at
            least 2).
        max_examples: evaluate on at most this many examples.
        rank_classification: `vote` only: each prompt votes for its
            highest-scoring label word instead of its greedy output.
            `mean-logprob` always scores the label words (`False` is
            refused).
        jit_compile: compile with XLA: `"auto"`, True or False, as in
            `evaluate()` (for a model built here).
        length_buckets: the lengths batches are padded to, as in
            `evaluate()` (`"auto"`, a list, or `None`).
        return_predictions: also return each example's predictions.
        output: optional JSON file for the result (written atomically).

    Returns:
        dict with the ensemble's metrics in percent, `num_examples`,
        `invalid`, `task`, `split`, `mode` (`"greedy"` or
        `"rank_classification"`), `method`, `inputs_truncated`, `prompts`
        (their sources), and `prompt_metrics` (one dict of metrics per
        prompt, with its `prompt`). With `return_predictions`, also
        `predictions`: `{"ensemble": [B], "prompts": [N][B], "labels": [B],
        "label_words": [...]}` (label indices; -1 = no label word or no
        label).

    Example:

    ```python
    # Three (untrained, so still wrong) prompts of the built-in demo
    # backbone, offline; prompts trained with `keras_prompt.train()` on
    # different seeds are what an ensemble is for.
    paths = []
    for seed in (1, 2, 3):
        model = keras_prompt.PromptedT5Seq2SeqLM.from_preset(
            "t5_tiny_demo", prompt_length=8, seed=seed)
        paths.append(model.save_prompt(f"/tmp/mood_{seed}.safetensors"))
    result = keras_prompt.ensemble("t5_tiny_demo", paths, "demo_mood",
                                   batch_size=8, max_examples=32)
    result["accuracy"], [m["accuracy"] for m in result["prompt_metrics"]]
    ```
    """
    from keras_prompt.data import resolve_task
    from keras_prompt.data.length_buckets import resolve_length_buckets
    from keras_prompt.training.evaluate import prepare_evaluation
    from keras_prompt.training.task_evaluator import TaskEvaluator
    from keras_prompt.training.train import write_json_atomically

    if method not in METHODS:
        raise TrainingError(
            f"Unknown ensemble method {method!r}; use 'vote' (majority vote) "
            "or 'mean-logprob' (mean label log-likelihood)."
        )
    if method == "mean-logprob" and rank_classification is False:
        raise TrainingError(
            "method='mean-logprob' scores the label words (rank "
            "classification); rank_classification=False asks for greedy "
            "votes: use method='vote', or leave rank_classification unset."
        )
    resolve_length_buckets(length_buckets, max_input_length,
                           error=TrainingError)
    scoring = method == "mean-logprob" or bool(rank_classification)
    task = resolve_task(task)
    if getattr(task, "label_words", None) is None:
        raise TrainingError(
            f"Task '{task.name}' has free-form targets, not label words: an "
            "ensemble votes over label words. Evaluate its prompts one at a "
            "time with `keras_prompt.evaluate()`."
        )
    model, values, sources = load_ensemble(backbone, prompts, preprocessor)
    pipeline, examples, stats = prepare_evaluation(
        model, backbone, task, split=split, data_dir=data_dir,
        max_input_length=max_input_length,
        max_target_length=max_target_length, max_examples=max_examples,
        jit_compile=jit_compile, length_buckets=length_buckets)
    num_prompts, num_labels = len(values), len(task.label_words)
    evaluator = TaskEvaluator(
        _EnsembleRows(model, values), task, pipeline,
        batch_size=num_prompts * batch_size, rank_classification=scoring)

    ensemble_labels, prompt_labels, gold, indices = [], [], [], []
    for batch in pipeline.evaluation_dataset(
            examples, batch_size, num_examples=stats["num_examples"]):
        keep = batch["is_padding"].numpy() == 0
        inputs = {
            key: np.tile(batch[key].numpy(), (num_prompts, 1))
            for key in pipeline.model_input_keys
        }
        shape = (num_prompts, len(keep))
        scores = None
        if scoring:
            scores = evaluator.score(inputs).reshape(shape + (num_labels,))
            labels = np.argmax(scores, axis=-1)
        else:
            texts = evaluator.generate_texts(inputs)
            labels = np.array([evaluator.text_to_label(t) for t in texts])
            labels = labels.reshape(shape)
            if method == "vote" and tied_examples(labels, num_labels).any():
                scores = evaluator.score(inputs).reshape(
                    shape + (num_labels,))
        if method == "vote":
            chosen = majority_vote(labels, num_labels, scores)
        else:
            chosen = np.argmax(scores.mean(axis=0), axis=-1)
        ensemble_labels.append(chosen[keep])
        prompt_labels.append(labels[:, keep])
        gold.append(batch["label"].numpy()[keep])
        indices.append(batch["index"].numpy()[keep])
    # Length buckets batch the examples out of order.
    order = np.argsort(np.concatenate(indices), kind="stable")
    ensemble_labels = np.concatenate(ensemble_labels).astype(np.int64)[order]
    prompt_labels = np.concatenate(prompt_labels, axis=1).astype(
        np.int64)[:, order]
    gold = np.concatenate(gold).astype(np.int64)[order]

    extra = evaluator.extra_columns(examples) if task.extra_keys else {}

    def metrics(predictions):
        return evaluator.metrics({
            "predictions": predictions,
            "labels": gold,
            "texts": [task.label_words[p] if p >= 0 else ""
                      for p in predictions],
            **({"groups": extra["group"]} if "group" in extra else {}),
        })

    result = metrics(ensemble_labels)
    result.update({
        "task": task.name,
        "split": split,
        "mode": "rank_classification" if scoring else "greedy",
        "method": method,
        "inputs_truncated": stats["inputs_truncated"],
        "prompts": sources,
        "prompt_metrics": [
            {**metrics(labels), "prompt": source}
            for labels, source in zip(prompt_labels, sources)
        ],
    })
    if return_predictions:
        result["predictions"] = {
            "ensemble": ensemble_labels.tolist(),
            "prompts": prompt_labels.tolist(),
            "labels": gold.tolist(),
            "label_words": list(task.label_words),
        }
    logger.debug("Ensemble of %s on %s/%s: %s", sources, task.name, split,
                 {k: v for k, v in result.items() if k != "predictions"})
    if output:
        write_json_atomically(output, result)
    return result
