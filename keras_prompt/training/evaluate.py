"""`keras_prompt.evaluate`: task metrics of a prompt."""

import logging
import os

from keras_prompt.data import resolve_task
from keras_prompt.training.model_builder import build_pipeline
from keras_prompt.training.train import write_json_atomically
from keras_prompt.training.training_error import TrainingError

logger = logging.getLogger(__name__)


def load_model_with_prompt(backbone, prompt=None, preprocessor=None):
    """A prompted model on `backbone` holding the prompt file `prompt`.

    Args:
        backbone: preset name/dir, HF checkpoint dir, KerasHub backbone or
            a prompted model (used as is when `prompt` is `None`).
        prompt: path of a prompt file; its length comes from the file. The
            file is checked against the backbone's fingerprint.
        preprocessor: tokenizer preprocessor for object backbones.

    Returns:
        `(model, metadata)`; `metadata` is `{}` without a prompt file.
    """
    from keras_prompt.models.soft_prompt_mixin import SoftPromptMixin
    from keras_prompt.prompts.prompt_file import prompt_file_path
    from keras_prompt.prompts.prompt_file import read_prompt_file
    from keras_prompt.training.model_builder import build_prompted_model

    if prompt is None:
        if isinstance(backbone, SoftPromptMixin):
            return backbone, {}
        raise TrainingError(
            "Pass the prompt file to evaluate (prompt=DIR/prompt.safetensors)."
        )
    prompt = prompt_file_path(prompt)
    values, metadata = read_prompt_file(prompt)
    if isinstance(backbone, SoftPromptMixin) and \
            backbone.prompt_length == values.shape[0]:
        model = backbone
    else:
        model = build_prompted_model(
            backbone, preprocessor, prompt_length=values.shape[0],
            prompt_initializer="random_uniform")
    model.load_prompt(prompt)
    return model, metadata


def prepare_evaluation(model, backbone, task, *, split, data_dir,
                       max_input_length, max_target_length, max_examples,
                       jit_compile, length_buckets="auto"):
    """Compiles `model` if it was built here (not the caller's `backbone`
    object, which keeps its compile settings) and returns the pipeline
    (batching by `length_buckets`, `"auto"` from the split's own input
    lengths), the examples of `task`'s `split` and their stats (one
    tokenizing pass)."""
    if model is not backbone:
        model.compile(jit_compile=jit_compile)
    if model.preprocessor is None:
        raise TrainingError("The backbone has no tokenizer; use a preset "
                            "with one or pass preprocessor=.")
    pipeline = build_pipeline(model, task, max_input_length, max_target_length)
    examples = task.load(split, data_dir=data_dir)
    if max_examples:
        examples = examples.take(int(max_examples))
    stats = pipeline.stats(examples)
    pipeline.use_length_buckets(length_buckets, examples)
    return pipeline, examples, stats


def evaluate(
    backbone,
    prompt,
    task,
    *,
    split="validation",
    data_dir=None,
    preprocessor=None,
    batch_size=32,
    max_input_length=256,
    max_target_length=None,
    max_examples=None,
    rank_classification=False,
    jit_compile="auto",
    length_buckets="auto",
    output=None,
):
    """Evaluate a prompt on a task split.

    Greedy decoding with exact match against the label words (the paper's
    metric; free-form tasks such as ReCoRD and WSC score the decoded text
    against their reference answers), or rank classification
    (`rank_classification=True`, label-word tasks: the label word with the
    highest log-likelihood wins, through `model.score()`).

    Args:
        backbone: preset name/dir, HF checkpoint dir, `T5Backbone`, or a
            `PromptedT5Seq2SeqLM` (then `prompt` may be `None` to evaluate
            the model's own prompt).
        prompt: a prompt file (or a training output directory), or `None`.
        task: a task name or `Task` (e.g. `keras_prompt.data.file_task(...)`).
        split: `"validation"`, `"test"` or a source split name.
        data_dir: TFDS data directory.
        preprocessor: tokenizer preprocessor for object backbones.
        batch_size: evaluation batch size.
        max_input_length, max_target_length: token lengths (the target
            length defaults to the longest label word plus `</s>`, or for
            free-form tasks to their targets' `max_target_length`).
        max_examples: evaluate on at most this many examples.
        rank_classification: score label words instead of decoding.
        length_buckets: the lengths evaluation batches are padded to:
            `"auto"` (the default; at most 4 lengths chosen from the split's
            input lengths, see `TrainConfig.length_buckets`), a list of
            lengths, or `None` (every batch padded to `max_input_length`).
            The metrics do not depend on it: each example's outputs are
            those it gets padded to the maximum, in the examples' order.
        jit_compile: compile with XLA: `"auto"` (on GPUs and TPUs; on CPUs
            only the decoding loop), True or False (for a model built here;
            a prompted model passed in keeps its own setting).
        output: optional JSON file for the metrics (written atomically).

    Returns:
        dict of metrics in percent plus `num_examples`, `invalid`, `task`,
        `split`, `mode`.

    Example:

    ```python
    metrics = keras_prompt.evaluate("t5_small_multi", "runs/rte", "rte",
                                    data_dir="~/tfds")
    ```
    """
    from keras_prompt.data.length_buckets import resolve_length_buckets
    from keras_prompt.training.task_evaluator import check_evaluation_mode

    task = resolve_task(task)
    # Before the model loads: a free-form task cannot be rank-classified,
    # and the buckets must fit max_input_length.
    check_evaluation_mode(task, rank_classification)
    resolve_length_buckets(length_buckets, max_input_length,
                           error=TrainingError)
    model, metadata = load_model_with_prompt(backbone, prompt, preprocessor)
    pipeline, examples, stats = prepare_evaluation(
        model, backbone, task, split=split, data_dir=data_dir,
        max_input_length=max_input_length,
        max_target_length=max_target_length, max_examples=max_examples,
        jit_compile=jit_compile, length_buckets=length_buckets)
    from keras_prompt.training.task_evaluator import TaskEvaluator

    evaluator = TaskEvaluator(model, task, pipeline, batch_size=batch_size,
                              rank_classification=rank_classification)
    metrics = evaluator.evaluate(examples, stats["num_examples"])
    metrics.update({
        "task": task.name,
        "split": split,
        "mode": "rank_classification" if rank_classification else "greedy",
        "inputs_truncated": stats["inputs_truncated"],
        "prompt": os.fspath(prompt) if prompt is not None else None,
    })
    logger.debug("Evaluation of %s on %s/%s: %s", metrics["prompt"], task.name,
                split, metrics)
    if output:
        write_json_atomically(output, metrics)
    return metrics
