"""`keras_prompt.train`: prompt tuning as a product."""

import importlib.util
import json
import logging
import math
import os
import sys
import time

import keras

from keras_prompt.data import DataError
from keras_prompt.data import TextToTextPipeline
from keras_prompt.data import resolve_task
from keras_prompt.training.model_builder import build_prompted_model
from keras_prompt.training.model_builder import dtype_policy_name
from keras_prompt.training.prompt_backup_and_restore import (
    PromptBackupAndRestore,
)
from keras_prompt.training.prompt_checkpoint import PromptCheckpoint
from keras_prompt.training.strategy import is_chief
from keras_prompt.training.strategy import resolve_strategy
from keras_prompt.training.strategy import strategy_name
from keras_prompt.training.task_evaluator import TaskEvaluator
from keras_prompt.training.training_error import TrainingError
from keras_prompt.training.validation_callback import ValidationCallback
from keras_prompt.training.xla_replica_step import (
    install_xla_replica_train_step,
)

logger = logging.getLogger(__name__)

PROMPT_FILE = "prompt.safetensors"
METRICS_FILE = "metrics.json"

# The paper's defaults (Lester et al., 2021).
PAPER_DEFAULTS = {
    "prompt_length": 100,
    "learning_rate": 0.3,
    "batch_size": 32,
    "steps": 30_000,
    "prompt_initializer": "class_labels",
}


def _positive_int(name, value, flag):
    if value is None or isinstance(value, bool) or int(value) != value \
            or int(value) <= 0:
        raise TrainingError(
            f"{name} must be a positive integer, got {value!r}; pass "
            f"{flag} N with N >= 1."
        )
    return int(value)


def write_json_atomically(path, data):
    """Write `data` as indented JSON, atomically."""
    from keras_prompt.prompts.prompt_file import write_file_atomically

    text = json.dumps(data, indent=2, sort_keys=True, default=float) + "\n"
    return write_file_atomically(path, text.encode("utf-8"))


def max_label_length(tokenizer, label_words):
    """Tokens of the longest label word plus `</s>`."""
    import numpy as np

    return max(len(np.asarray(tokenizer(w))) for w in label_words) + 1


def _check_split(stats, split, task, batch_size):
    labelled = stats["num_examples"] - stats["unlabeled"]
    if stats["num_examples"] == 0:
        raise DataError(f"The {split} split of task '{task.name}' is empty.")
    if labelled == 0:
        raise DataError(
            f"The {split} split of task '{task.name}' has no labelled examples."
        )
    if batch_size and labelled < batch_size:
        raise DataError(
            f"The {split} split of task '{task.name}' has {labelled} labelled "
            f"examples, fewer than the batch size {batch_size}; every batch "
            "must be full (static shapes). Lower --batch-size or add data."
        )


def _log_truncation(split, stats):
    n = stats["num_examples"]
    logger.info(
        "%s: %d examples; %d inputs truncated to max_input_length=%d, %d "
        "targets truncated to max_target_length=%d.", split, n,
        stats["inputs_truncated"], stats["max_input_length"],
        stats["targets_truncated"], stats["max_target_length"])
    if stats["inputs_truncated"]:
        logger.warning(
            "%d of %d %s inputs (%.1f%%) are longer than max_input_length=%d "
            "and were truncated; raise --max-input-length to keep them whole.",
            stats["inputs_truncated"], n, split,
            100.0 * stats["inputs_truncated"] / max(n, 1),
            stats["max_input_length"])


def _build_for_fit(model, strategy, dataset):
    """Build the model, optimizer and metrics in the strategy scope.

    Keras builds them itself from a distributed batch, which fails under
    `MultiWorkerMirroredStrategy` (it reduces nested per-replica values) and
    consumes an iterator; we build from one local batch instead.
    """
    batch = next(iter(dataset.take(1)))
    with strategy.scope():
        model._symbolic_build(data_batch=batch)
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None


def _fix_multi_worker_logs(model):
    """Keras reduces multi-worker step logs with `reduce("MEAN", axis=0)`,
    which fails on scalars; give each log value a leading axis of 1."""
    import tensorflow as tf

    step = model.train_step

    def train_step(data):
        return {k: tf.reshape(v, [1]) for k, v in step(data).items()}

    model.train_step = train_step


def train(
    backbone,
    task=None,
    *,
    output_dir,
    train_file=None,
    validation_file=None,
    template=None,
    label_column="label",
    labels=None,
    metric="accuracy",
    file_format=None,
    data_dir=None,
    preprocessor=None,
    prompt_length=100,
    prompt_initializer="class_labels",
    init_text=None,
    learning_rate=0.3,
    optimizer=None,
    steps=30_000,
    batch_size=32,
    max_input_length=256,
    max_target_length=None,
    eval_every=1000,
    eval_batch_size=None,
    max_eval_examples=None,
    rank_classification=False,
    checkpoint_every=1000,
    keep_checkpoints=3,
    early_stopping_patience=None,
    strategy="auto",
    tpu=None,
    jit_compile=True,
    steps_per_execution=1,
    dtype="float32",
    seed=0,
    shuffle_buffer=10_000,
    tensorboard=True,
    callbacks=None,
    verbose="auto",
):
    """Train a soft prompt on a frozen T5 and write the best one.

    Defaults follow the paper: prompt length 100, class-label initialization,
    Adafactor at a constant learning rate of 0.3, batch 32, 30,000 steps,
    early stopping/best prompt on the validation metric.

    Training runs under a `tf.distribute` strategy (`"auto"`: TPU, then
    multi-worker from `TF_CONFIG`, then several GPUs, then one device); the
    model and optimizer are built in its scope and the global `batch_size`
    is split across replicas. Each step is XLA-compiled by default. Every
    `eval_every` steps the task metric is computed on the validation split
    and the prompt is saved to `output_dir/prompt.safetensors` if it is the
    best so far. A prompt-only checkpoint is written every `checkpoint_every`
    steps to `output_dir/checkpoints/`, and a backup of the prompt and
    optimizer state lets a preempted run resume where it stopped when the
    same call is repeated. TensorBoard logs go to `output_dir/logs`.

    Args:
        backbone: a KerasHub preset name, preset directory or Hugging Face T5
            checkpoint directory, or a `keras_hub.models.T5Backbone` or
            `PromptedT5Seq2SeqLM`.
        task: a registered task name (`"rte"`, `"mrpc"`, ...; see
            `keras_prompt.data.list_tasks()`) or a `Task`. Or leave it `None`
            and pass `train_file`, `validation_file`, `template`,
            `label_column` and `labels` (CSV/TSV/JSONL).
        output_dir: where `prompt.safetensors`, `metrics.json`,
            `checkpoints/`, `backup/` and `logs/` go.
        train_file, validation_file, template, label_column, labels, metric,
            file_format: a task over your files (see
            `keras_prompt.data.file_task`).
        data_dir: the TFDS data directory for built-in tasks (no download
            happens; see `keras_prompt.data.TFDSSource`).
        preprocessor: the `T5Seq2SeqLMPreprocessor` when `backbone` is an
            object without one.
        prompt_length: number of prompt vectors.
        prompt_initializer: `"class_labels"`, `"sampled_vocab"`,
            `"random_uniform"` or `"text"` (with `init_text`).
        init_text: text for the `"text"` initializer.
        learning_rate: Adafactor's constant learning rate.
        optimizer: an optimizer instance (or a zero-argument callable
            returning one, created in the strategy scope) replacing Adafactor.
        steps: training steps.
        batch_size: the global batch size (divisible by the replica count).
        max_input_length: encoder tokens (longer inputs are truncated and
            counted).
        max_target_length: decoder tokens; defaults to the longest label word
            plus `</s>`.
        eval_every: steps between validations (and backups).
        eval_batch_size: validation batch size (default `batch_size`).
        max_eval_examples: validate on at most this many examples.
        rank_classification: validate by scoring label words instead of
            greedy decoding.
        checkpoint_every: steps between prompt checkpoints.
        keep_checkpoints: checkpoint files kept.
        early_stopping_patience: stop after this many validations without
            improvement (`None` = never).
        strategy: `"auto"`, `"tpu"`, `"multi_worker"`, `"mirrored"`, `"cpu"`
            or a `tf.distribute.Strategy`.
        tpu: TPU name/address (else `TPU_NAME`).
        jit_compile: XLA-compile the training step.
        steps_per_execution: steps per compiled call (must divide
            `eval_every`).
        dtype: `"float32"` or `"bfloat16"` (mixed precision; the prompt stays
            float32).
        seed: seeds the prompt initializer, dropout and data order.
        shuffle_buffer: the shuffle buffer size.
        tensorboard: write TensorBoard logs.
        callbacks: extra Keras callbacks for `fit`.
        verbose: Keras progress bar mode (`"auto"`, 0, 1 or 2).

    Returns:
        A dict with `model` (holding the best prompt), `metrics` (what
        `metrics.json` holds), `prompt_path`, `metrics_path` and
        `final_prompt` (the prompt after the last step).

    Example:

    ```python
    result = keras_prompt.train(
        "t5_small_multi", "rte", output_dir="runs/rte", data_dir="~/tfds",
        prompt_length=20, steps=3000, batch_size=32)
    print(result["metrics"]["best"])
    ```
    """
    started = time.time()
    # === Validate arguments before anything heavy ===
    prompt_length = _positive_int("The prompt length", prompt_length,
                                  "--prompt-length")
    batch_size = _positive_int("The batch size", batch_size, "--batch-size")
    steps = _positive_int("The number of steps", steps, "--steps")
    eval_every = _positive_int("eval_every", eval_every, "--eval-every")
    checkpoint_every = _positive_int("checkpoint_every", checkpoint_every,
                                     "--checkpoint-every")
    steps_per_execution = _positive_int(
        "steps_per_execution", steps_per_execution, "--steps-per-execution")
    eval_batch_size = _positive_int(
        "The evaluation batch size", eval_batch_size or batch_size,
        "--eval-batch-size")
    if early_stopping_patience is not None:
        early_stopping_patience = _positive_int(
            "early_stopping_patience", early_stopping_patience,
            "--early-stopping-patience")
    steps_per_epoch = min(eval_every, steps)
    if steps_per_epoch % steps_per_execution:
        raise TrainingError(
            f"steps_per_execution={steps_per_execution} must divide the "
            f"validation interval ({steps_per_epoch} steps); change "
            "--steps-per-execution or --eval-every."
        )
    if not output_dir:
        raise TrainingError("Pass an output directory (--output DIR).")
    policy = dtype_policy_name(dtype)

    # === Task and data (errors about files surface here) ===
    task = resolve_task(task, train_file=train_file,
                        validation_file=validation_file, template=template,
                        label_column=label_column, labels=labels,
                        metric=metric, file_format=file_format)
    # Read and validate files before TensorFlow starts (errors come early);
    # the strategy must exist before any TF op (multi-worker collectives).
    if hasattr(task.source, "read"):
        for split in ("train", "validation"):
            if split in getattr(task.source, "files", {split: None}):
                task.source.read(task.source_split(split))

    # === Strategy, model, optimizer ===
    strategy = resolve_strategy(strategy, tpu=tpu)
    train_examples = task.load("train", data_dir=data_dir)
    has_validation = not (hasattr(task.source, "files")
                          and "validation" not in task.source.files)
    val_examples = (task.load("validation", data_dir=data_dir)
                    if has_validation else None)
    if val_examples is not None and max_eval_examples:
        val_examples = val_examples.take(int(max_eval_examples))
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        raise TrainingError(
            f"The global batch size {batch_size} is not divisible by the "
            f"{replicas} replicas of the {strategy_name(strategy)} strategy; "
            f"use a multiple of {replicas}."
        )
    chief = is_chief(strategy)
    on_tpu = strategy_name(strategy) == "tpu"
    keras.utils.set_random_seed(seed)
    with strategy.scope():
        model = build_prompted_model(
            backbone, preprocessor, prompt_length=prompt_length,
            prompt_initializer=prompt_initializer, labels=task.label_words,
            init_text=init_text, seed=seed, dtype=policy)
        if optimizer is None:
            from keras_prompt.optimizers import Adafactor

            opt = Adafactor(learning_rate=learning_rate)
        else:
            opt = optimizer() if callable(optimizer) and not isinstance(
                optimizer, keras.optimizers.Optimizer) else optimizer
        # Mean over all target positions of the global batch: the same loss
        # (and gradient) whatever the number of replicas.
        loss = keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, reduction="sum_over_batch_size")
        replica_xla = bool(jit_compile) and replicas > 1 and not on_tpu
        model.compile(
            optimizer=opt, loss=loss,
            weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(
                name="token_accuracy")],
            jit_compile=bool(jit_compile) and replicas == 1 and not on_tpu,
            steps_per_execution=steps_per_execution)
    if model.preprocessor is None:
        raise TrainingError(
            "The backbone has no tokenizer (preprocessor); use a preset or "
            "checkpoint directory that includes one, or pass preprocessor=."
        )
    tokenizer = model.preprocessor.tokenizer

    # === Pipelines ===
    if max_target_length is None:
        max_target_length = max(2, max_label_length(tokenizer, task.label_words))
    pipeline = TextToTextPipeline(tokenizer, max_input_length,
                                  max_target_length)
    train_stats = pipeline.stats(train_examples)
    _check_split(train_stats, "train", task, batch_size)
    _log_truncation("train", train_stats)
    val_stats = None
    if val_examples is not None:
        val_stats = pipeline.stats(val_examples)
        _check_split(val_stats, "validation", task, None)
        _log_truncation("validation", val_stats)

    os.makedirs(output_dir, exist_ok=True) if chief else None
    backup_dir = os.path.join(output_dir, "backup")
    saved = PromptBackupAndRestore.read_state(backup_dir)
    start_step = int(saved["step"]) if saved else 0
    if start_step:
        logger.info("Resuming from the backup at step %d in %s.", start_step,
                    backup_dir)
    train_ds = pipeline.training_dataset(
        train_examples, batch_size, seed=seed, shuffle_buffer=shuffle_buffer,
        skip_batches=start_step)
    _build_for_fit(model, strategy, train_ds)
    if replica_xla:
        install_xla_replica_train_step(model)
    if strategy_name(strategy) == "multi_worker":
        _fix_multi_worker_logs(model)

    # === Callbacks ===
    save_kwargs = {"task": task.name, "labels": task.label_words}
    prompt_path = os.path.join(output_dir, PROMPT_FILE)
    extra_callbacks = list(callbacks or [])
    callbacks = []
    validation = None
    if val_examples is not None:
        evaluator = TaskEvaluator(
            model, task, pipeline, batch_size=eval_batch_size,
            rank_classification=rank_classification)
        validation = ValidationCallback(
            evaluator, val_examples, val_stats["num_examples"],
            best_path=prompt_path if chief else None, save_kwargs=save_kwargs,
            patience=early_stopping_patience)
        callbacks.append(validation)
    if chief:
        callbacks.append(PromptCheckpoint(
            os.path.join(output_dir, "checkpoints"), checkpoint_every,
            keep=keep_checkpoints, save_kwargs=save_kwargs))
    backup = PromptBackupAndRestore(
        backup_dir, stateful_callbacks=[validation] if validation else [],
        write=chief)
    callbacks.append(backup)
    if tensorboard and chief and importlib.util.find_spec("tensorboard") is None:
        logger.warning("The `tensorboard` package is not installed; no "
                       "TensorBoard logs (pip install tensorboard).")
    elif tensorboard and chief:
        callbacks.append(keras.callbacks.TensorBoard(
            os.path.join(output_dir, "logs"),
            update_freq=max(1, steps_per_epoch // 10)))

    callbacks.extend(extra_callbacks)
    epochs = math.ceil(steps / steps_per_epoch)
    if verbose == "auto":
        verbose = 1 if sys.stdout.isatty() else 2
    logger.info(
        "Training a %d x %d prompt on task '%s' for %d steps (global batch %d "
        "on %d replica(s), strategy %s, dtype %s, XLA %s).", prompt_length,
        model.hidden_dim, task.name, steps, batch_size, replicas,
        strategy_name(strategy), policy, bool(jit_compile))
    # `keras.Model.fit`, not KerasHub's: the batches are already tokenized,
    # so the preprocessor must not be mapped over them again.
    history = keras.Model.fit(
        model, train_ds, epochs=epochs, steps_per_epoch=steps_per_epoch,
        callbacks=callbacks, verbose=verbose)
    final_step = int(model.optimizer.iterations.numpy())
    final_prompt = model.get_prompt()

    # === Outputs ===
    if validation is None and chief:
        model.save_prompt(prompt_path, training_steps=final_step,
                          **save_kwargs)
    metrics = {
        "task": task.name,
        "labels": task.label_words,
        "metric": task.main_metric,
        "steps": final_step,
        "stopped_early": bool(validation and validation.stopped_early),
        "best": validation.best_metrics if validation else None,
        "validation": validation.history if validation else [],
        "train_loss": [float(v) for v in history.history.get("loss", [])],
        "truncation": {"train": train_stats, "validation": val_stats},
        "config": {
            "prompt_length": prompt_length,
            "prompt_initializer": prompt_initializer,
            "learning_rate": learning_rate,
            "batch_size": batch_size,
            "max_input_length": pipeline.max_input_length,
            "max_target_length": pipeline.max_target_length,
            "eval_every": eval_every,
            "rank_classification": bool(rank_classification),
            "strategy": strategy_name(strategy),
            "num_replicas": replicas,
            "jit_compile": bool(jit_compile),
            "steps_per_execution": steps_per_execution,
            "dtype": policy,
            "seed": seed,
        },
        "resumed_from_step": start_step,
        "elapsed_seconds": round(time.time() - started, 3),
        "prompt_path": prompt_path,
    }
    metrics_path = os.path.join(output_dir, METRICS_FILE)
    if chief:
        write_json_atomically(metrics_path, metrics)
        if os.path.exists(prompt_path):
            model.load_prompt(prompt_path)
        logger.info("Wrote %s and %s.", prompt_path, metrics_path)
    elif validation is not None and validation.best_step is not None:
        logger.info("Non-chief worker: files are written by the chief.")
    return {
        "model": model,
        "metrics": metrics,
        "prompt_path": prompt_path,
        "metrics_path": metrics_path,
        "final_prompt": final_prompt,
    }
