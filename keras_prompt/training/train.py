"""`keras_prompt.train`: prompt tuning as a product."""

import importlib.util
import logging
import math
import os
import sys
import time

import keras

from keras_prompt.data import DataError
from keras_prompt.data import resolve_task
from keras_prompt.training.model_builder import build_pipeline
from keras_prompt.training.model_builder import build_prompted_model
from keras_prompt.training.model_builder import dtype_policy_name
from keras_prompt.training.prompt_backup_and_restore import (
    PromptBackupAndRestore,
)
from keras_prompt.training.prompt_checkpoint import PromptCheckpoint
from keras_prompt.training.prompt_checkpoint import reporting_write_errors
from keras_prompt.training.run_directory import METRICS_FILE
from keras_prompt.training.run_directory import PROMPT_FILE
from keras_prompt.training.run_directory import check_output_dir
from keras_prompt.training.run_directory import check_source_outside_run
from keras_prompt.training.run_directory import check_run_ownership
from keras_prompt.training.run_directory import claim_output_dir
from keras_prompt.training.run_directory import run_identity
from keras_prompt.training.run_directory import write_json_atomically
from keras_prompt.training.seeding import seed_random_layers
from keras_prompt.training.strategy import is_chief
from keras_prompt.training.strategy import resolve_strategy
from keras_prompt.training.strategy import strategy_name
from keras_prompt.training.task_evaluator import TaskEvaluator
from keras_prompt.training.task_evaluator import check_evaluation_mode
from keras_prompt.training.train_config import TrainConfig
from keras_prompt.training.train_config import resolve_initial_prompt
from keras_prompt.training.token_crossentropy import TokenCrossentropy
from keras_prompt.training.training_error import TrainingError
from keras_prompt.training.validation_callback import ValidationCallback
from keras_prompt.training.xla_replica_step import (
    install_xla_replica_train_step,
)
from keras_prompt.utils.cpu_defaults import resolve_jit_compile
from keras_prompt.utils.cpu_defaults import warn_if_onednn_off

logger = logging.getLogger(__name__)

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
            "must be full (static shapes). Lower batch_size or add data."
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
            "and were truncated; raise max_input_length to keep them whole.",
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
    task,
    *,
    output_dir,
    config=None,
    data_dir=None,
    preprocessor=None,
    callbacks=None,
    **settings,
):
    """Train a soft prompt on a frozen T5 and write the best one.

    The run is described by a `TrainConfig` (the paper's defaults: prompt
    length 100, class-label initialization, Adafactor at a constant 0.3,
    batch 32, 30,000 steps, the best prompt on the validation metric);
    keyword `settings` override its fields (`steps=3000`). The settings and
    the output directory are checked before anything is loaded.

    Training runs under a `tf.distribute` strategy (TPU, then multi-worker
    from `TF_CONFIG`, then several GPUs, then one device by default); the
    model and optimizer are built in its scope and the global batch is
    split across replicas. Each step is XLA-compiled by default. Every
    `eval_every` steps the task metric is computed on the validation split
    and the prompt is saved to `output_dir/prompt.safetensors` if it is the
    best so far. A prompt-only checkpoint is written every
    `checkpoint_every` steps to `output_dir/checkpoints/`, and a backup of
    the prompt, optimizer and dropout-seed state lets a preempted run resume
    where it stopped when the same call is repeated. TensorBoard logs go to
    `output_dir/logs`.

    Batches are padded to a few length buckets chosen from the training
    split's input lengths (`length_buckets="auto"`, see `TrainConfig`), one
    static shape per bucket, in an order that depends on the seed only; each
    example's loss is the one it has padded to `max_input_length`.

    A run owns its output directory. It records what identifies it (the
    backbone, the task and the settings; see `run_identity`) in
    `output_dir/run_config.json` when it starts. It is finished once
    `output_dir/metrics.json` exists: that file is written last, after the
    best prompt, and the backup is deleted only then. Calling `train()` again
    on the same directory resumes an unfinished run of the same identity
    (also with `overwrite=True`); a finished run, a run of other settings or
    run files without `run_config.json` are refused with a `TrainingError`,
    unless `config.overwrite` is set: then that run's files
    (`run_config.json`, `prompt.safetensors`, `metrics.json`,
    `checkpoints/`, `backup/`, `logs/`) are deleted before the first write,
    and other files are left alone. So the files of a directory always come
    from one run. A write that fails part way (a full disk) raises an
    `OSError` naming the file; the files already there stay whole, and the
    same call resumes the run.

    A run can start from a prompt file: `prompt_initializer="from_file"`
    with `init_file` transfers a prompt trained on another task (SPoT),
    `resume_from` continues a prompt on its own task in a new run (see
    `TrainConfig`). Either way the prompt starts equal to the file's, the
    file must fit the backbone (fingerprint, hidden size) and the prompt
    length, it is refused before training starts otherwise, and
    `run_config.json` (`initial_prompt`) and the saved prompts (`init_file`,
    `init_file_sha256`, `init_task`, `init_training_steps`) record it. With
    `reparameterization="residual"` the prompt and a residual MLP train
    together; every file written holds the folded prompt, and the backup
    also holds the MLP, so a preempted run resumes exactly.

    Randomness is seeded explicitly from `config.seed` (the prompt
    initializer, the dropout layers' seed generators, the data order); no
    global random state is set, so `train()` can run many times in one
    process, next to any tokenizer pipeline, with the same result each time.

    Args:
        backbone: a KerasHub preset name, preset directory or Hugging Face
            checkpoint directory (T5, or a decoder-only GPT-2, Gemma, Llama,
            Mistral or Qwen: then the model is a `PromptedCausalLM` and the
            data the `CausalTextToTextPipeline` format), or a KerasHub
            backbone or prompted model.
        task: a registered task name (`"rte"`, `"mrpc"`, ...; see
            `keras_prompt.data.list_tasks()`) or a `Task` (e.g.
            `keras_prompt.data.file_task(...)` over CSV/TSV/JSONL files).
        output_dir: where `run_config.json`, `prompt.safetensors`,
            `metrics.json`, `checkpoints/`, `backup/` and `logs/` go.
        config: a `TrainConfig` (default: `TrainConfig()`).
        data_dir: the TFDS data directory for built-in tasks (no download
            happens; see `keras_prompt.data.TFDSSource`).
        preprocessor: the backbone's preprocessor when `backbone` is an
            object without one.
        callbacks: extra Keras callbacks for `fit`.
        **settings: `TrainConfig` fields overriding `config`.

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
    # === Preflight: settings, output directory, ownership; nothing loaded ===
    config = (config or TrainConfig()).replace(**settings).validate()
    if not output_dir:
        raise TrainingError("Pass an output directory (output_dir=...).")
    output_dir = os.fspath(output_dir)
    check_output_dir(output_dir)
    policy = dtype_policy_name(config.dtype)
    steps_per_epoch = min(config.eval_every, config.steps)
    task = resolve_task(task)
    check_evaluation_mode(task, config.rank_classification)
    if config.prompt_initializer == "class_labels" and not task.has_fixed_labels:
        # The paper's class-label init needs a label set; free-form targets
        # (ReCoRD, WSC) start from sampled vocabulary, its next best.
        logger.info("Task '%s' has no fixed label words: the prompt starts "
                    "from sampled vocabulary instead of class labels.",
                    task.name)
        config = config.replace(prompt_initializer="sampled_vocab")
    config, initial_prompt = resolve_initial_prompt(config, task.label_words)
    init_file = initial_values = None
    if initial_prompt is not None:
        setting, source = initial_prompt
        init_file, initial_values = source.path, source.array
        check_source_outside_run(output_dir, init_file, setting)
        logger.info("The prompt starts from %s (%s).", init_file, setting)
    identity = run_identity(backbone, task, config, initial_prompt)
    ownership = check_run_ownership(output_dir, identity, config.overwrite)

    # === Data (errors about files surface here) ===
    # Read and validate files before TensorFlow starts (errors come early);
    # the strategy must exist before any TF op (multi-worker collectives).
    if hasattr(task.source, "read"):
        for split in ("train", "validation"):
            if split in getattr(task.source, "files", {split: None}):
                task.source.read(task.source_split(split))

    # === Strategy, model, optimizer ===
    strategy = resolve_strategy(config.strategy, tpu=config.tpu)
    train_examples = task.load("train", data_dir=data_dir)
    has_validation = not (hasattr(task.source, "files")
                          and "validation" not in task.source.files)
    val_examples = (task.load("validation", data_dir=data_dir)
                    if has_validation else None)
    if val_examples is not None and config.max_eval_examples:
        val_examples = val_examples.take(config.max_eval_examples)
    replicas = strategy.num_replicas_in_sync
    batch_size = config.batch_size
    if batch_size % replicas:
        raise TrainingError(
            f"batch_size={batch_size} is not divisible by the {replicas} "
            f"replicas of the {strategy_name(strategy)} strategy; use a "
            f"multiple of {replicas}."
        )
    chief = is_chief(strategy)
    on_tpu = strategy_name(strategy) == "tpu"
    with strategy.scope():
        model = build_prompted_model(
            backbone, preprocessor, prompt_length=config.prompt_length,
            prompt_initializer="from_file" if init_file
            else config.prompt_initializer,
            labels=task.label_words, init_text=config.init_text,
            init_file=init_file,
            reparameterization=config.reparameterization,
            bottleneck_size=config.bottleneck_size,
            seed=config.seed, dtype=policy, prompt=initial_values)
        seed_random_layers(model, config.seed)
        if model.preprocessor is None:
            raise TrainingError(
                "The backbone has no tokenizer (preprocessor); use a preset "
                "or checkpoint directory that includes one, or pass "
                "preprocessor=."
            )
        pipeline = build_pipeline(model, task, config.max_input_length,
                                  config.max_target_length)
        optimizer = config.optimizer
        if optimizer is None:
            from keras_prompt.optimizers import Adafactor

            optimizer = Adafactor(learning_rate=config.learning_rate)
        elif callable(optimizer) and not isinstance(
                optimizer, keras.optimizers.Optimizer):
            optimizer = optimizer()
        # Mean over all target positions of the global batch padded to the
        # maximum: the same loss (and gradient) whatever the number of
        # replicas and the length bucket.
        loss = TokenCrossentropy(pipeline.label_length)
        jit_compile = resolve_jit_compile(config.jit_compile)
        replica_xla = jit_compile and replicas > 1 and not on_tpu
        model.compile(
            optimizer=optimizer, loss=loss,
            weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(
                name="token_accuracy")],
            jit_compile=jit_compile and replicas == 1 and not on_tpu,
            steps_per_execution=config.steps_per_execution)
    # What really runs: Keras turns XLA off under TensorFlow op determinism
    # (`compile()` warns); TPUs always compile; several replicas compile per
    # replica.
    xla = bool(on_tpu or replica_xla or model.jit_compile)
    if not on_tpu:
        warn_if_onednn_off()

    # === Pipelines ===
    train_stats = pipeline.stats(train_examples)
    _check_split(train_stats, "train", task, batch_size)
    _log_truncation("train", train_stats)
    # From the training split's input lengths (its `stats()` pass); the
    # validation batches use the same buckets.
    length_buckets = pipeline.use_length_buckets(config.length_buckets,
                                                 train_examples)
    val_stats = None
    if val_examples is not None:
        val_stats = pipeline.stats(val_examples)
        _check_split(val_stats, "validation", task, None)
        _log_truncation("validation", val_stats)

    # The first write, as late as possible: a run that fails before it
    # leaves the previous run's files untouched.
    if chief:
        claim_output_dir(output_dir, identity, ownership)
    backup_dir = os.path.join(output_dir, "backup")
    # Only a resumed run has a backup of its own (non-chief workers must not
    # read one the chief is deleting).
    saved = (PromptBackupAndRestore.read_state(backup_dir)
             if ownership == "resume" else None)
    start_step = int(saved["step"]) if saved else 0
    if start_step:
        logger.info("Resuming from the backup at step %d in %s.", start_step,
                    backup_dir)
    train_ds = pipeline.training_dataset(
        train_examples, batch_size, seed=config.seed,
        shuffle_buffer=config.shuffle_buffer, skip_batches=start_step)
    _build_for_fit(model, strategy, train_ds)
    if replica_xla:
        install_xla_replica_train_step(model)
    if strategy_name(strategy) == "multi_worker":
        _fix_multi_worker_logs(model)

    # === Callbacks ===
    save_kwargs = {
        "task": task.name,
        "labels": task.label_words,
        **pipeline.prompt_file_fields(),
    }
    prompt_path = os.path.join(output_dir, PROMPT_FILE)
    extra_callbacks = list(callbacks or [])
    callbacks = []
    validation = None
    if val_examples is not None:
        evaluator = TaskEvaluator(
            model, task, pipeline,
            batch_size=config.eval_batch_size or batch_size,
            rank_classification=config.rank_classification)
        validation = ValidationCallback(
            evaluator, val_examples, val_stats["num_examples"],
            best_path=prompt_path if chief else None, save_kwargs=save_kwargs,
            patience=config.early_stopping_patience)
        callbacks.append(validation)
    if chief:
        callbacks.append(PromptCheckpoint(
            os.path.join(output_dir, "checkpoints"), config.checkpoint_every,
            keep=config.keep_checkpoints, save_kwargs=save_kwargs))
    # Deleted once metrics.json is written, not when `fit` ends: a run that
    # fails writing its last files still resumes.
    backup = PromptBackupAndRestore(
        backup_dir, stateful_callbacks=[validation] if validation else [],
        write=chief, delete_checkpoint=False)
    callbacks.append(backup)
    if config.tensorboard and chief and \
            importlib.util.find_spec("tensorboard") is None:
        logger.warning("The `tensorboard` package is not installed; no "
                       "TensorBoard logs (pip install tensorboard).")
    elif config.tensorboard and chief:
        callbacks.append(keras.callbacks.TensorBoard(
            os.path.join(output_dir, "logs"),
            update_freq=max(1, steps_per_epoch // 10)))

    callbacks.extend(extra_callbacks)
    epochs = math.ceil(config.steps / steps_per_epoch)
    verbose = config.verbose
    if verbose == "auto":
        verbose = 1 if sys.stdout.isatty() else 2
    logger.info(
        "Training a %d x %d prompt on task '%s' for %d steps (global batch %d "
        "on %d replica(s), strategy %s, dtype %s, XLA %s).",
        config.prompt_length, model.hidden_dim, task.name, config.steps,
        batch_size, replicas, strategy_name(strategy), policy,
        "on" if xla else "off")
    # `keras.Model.fit`, not KerasHub's: the batches are already tokenized,
    # so the preprocessor must not be mapped over them again.
    # The pipeline shuffles (statelessly, by seed); Keras must not.
    history = keras.Model.fit(
        model, train_ds, epochs=epochs, steps_per_epoch=steps_per_epoch,
        callbacks=callbacks, verbose=verbose, shuffle=False)
    final_step = int(model.optimizer.iterations.numpy())
    final_prompt = model.get_prompt()

    # === Outputs ===
    if validation is None and chief:
        with reporting_write_errors(prompt_path, "the prompt"):
            model.save_prompt(prompt_path, training_steps=final_step,
                              **save_kwargs)
    settings = config.to_json()
    settings.update({
        "max_target_length": pipeline.max_target_length,
        "length_buckets": list(length_buckets) if length_buckets else None,
        "strategy": strategy_name(strategy),
        "num_replicas": replicas,
        "jit_compile": xla,
        "dtype": policy,
    })
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
        "config": settings,
        "resumed_from_step": start_step,
        "elapsed_seconds": round(time.time() - started, 3),
        "prompt_path": prompt_path,
    }
    metrics_path = os.path.join(output_dir, METRICS_FILE)
    if chief:
        # Last: its presence marks the run finished.
        with reporting_write_errors(metrics_path, "the metrics"):
            write_json_atomically(metrics_path, metrics)
        backup.delete_backup()
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
