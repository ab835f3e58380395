"""The settings of a prompt-tuning run."""

import dataclasses

from keras_prompt.training.training_error import TrainingError

PROMPT_INITIALIZERS = ("class_labels", "sampled_vocab", "random_uniform", "text")
STRATEGIES = ("auto", "tpu", "multi_worker", "mirrored", "cpu")
DTYPES = ("float32", "bfloat16", "mixed_bfloat16")
# The longest prompt `validate()` accepts. Every prompt vector is one more
# encoder position in every example, and attention grows with the square of
# the encoder length; the paper's prompts are 1 to 150 vectors long.
MAX_PROMPT_LENGTH = 4096


@dataclasses.dataclass
class TrainConfig:
    """What `keras_prompt.train()` does, with the paper's defaults.

    Lester et al. (2021): prompt length 100, class-label initialization,
    Adafactor at a constant learning rate of 0.3, batch 32, 30,000 steps,
    the best prompt on the validation metric. `keras-prompt train` fills one
    from its flags; errors name the field.

    Args:
        prompt_length: prompt vectors, 1 to `MAX_PROMPT_LENGTH` (4096).
        prompt_initializer: `"class_labels"`, `"sampled_vocab"`,
            `"random_uniform"` or `"text"` (with `init_text`).
        init_text: text for the `"text"` initializer.
        learning_rate: Adafactor's constant learning rate.
        optimizer: an optimizer instance, or a zero-argument callable
            returning one (created in the strategy scope), replacing
            Adafactor.
        steps: training steps.
        batch_size: the global batch size (divisible by the replicas).
        max_input_length: encoder tokens (longer inputs are truncated and
            counted).
        max_target_length: decoder tokens; `None` = the longest label word
            plus `</s>`.
        shuffle_buffer: the shuffle buffer size.
        eval_every: steps between validations (and backups).
        eval_batch_size: validation batch size (`None` = `batch_size`).
        max_eval_examples: validate on at most this many examples.
        rank_classification: validate by scoring the label words instead of
            greedy decoding.
        early_stopping_patience: stop after this many validations without
            improvement (`None` = never).
        checkpoint_every: steps between prompt checkpoints.
        keep_checkpoints: checkpoint files kept.
        strategy: `"auto"` (TPU, then multi-worker from `TF_CONFIG`, then
            several GPUs, then one device), `"tpu"`, `"multi_worker"`,
            `"mirrored"`, `"cpu"` or a `tf.distribute.Strategy`.
        tpu: TPU name or address (default: `$TPU_NAME`).
        jit_compile: XLA-compile the training step.
        steps_per_execution: steps per compiled call (divides `eval_every`).
        dtype: `"float32"` or `"bfloat16"` (mixed precision; the prompt
            stays float32).
        seed: seeds the prompt initializer, the dropout layers and the data
            order, explicitly: no global random state is touched.
        tensorboard: write TensorBoard logs to `output_dir/logs`.
        verbose: Keras progress bar (`"auto"`, 0, 1 or 2).
        overwrite: let `train()` replace a finished run, or a run of other
            settings, in its output directory (deleting that run's files
            first). Without it such a directory is refused. An unfinished
            run of the same settings is resumed either way.

    Example:
    ```python
    config = keras_prompt.TrainConfig(prompt_length=20, steps=3000)
    keras_prompt.train("t5_small_multi", "rte", output_dir="runs/rte",
                       config=config)
    ```
    """

    prompt_length: int = 100
    prompt_initializer: str = "class_labels"
    init_text: str = None
    learning_rate: float = 0.3
    optimizer: object = None
    steps: int = 30_000
    batch_size: int = 32
    max_input_length: int = 256
    max_target_length: int = None
    shuffle_buffer: int = 10_000
    eval_every: int = 1000
    eval_batch_size: int = None
    max_eval_examples: int = None
    rank_classification: bool = False
    early_stopping_patience: int = None
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    strategy: object = "auto"
    tpu: str = None
    jit_compile: bool = True
    steps_per_execution: int = 1
    dtype: str = "float32"
    seed: int = 0
    tensorboard: bool = True
    verbose: object = "auto"
    overwrite: bool = False

    def replace(self, **changes):
        """A copy with `changes`; unknown names raise `TrainingError`."""
        fields = {field.name for field in dataclasses.fields(self)}
        unknown = sorted(set(changes) - fields)
        if unknown:
            raise TrainingError(
                f"Unknown training settings {unknown}; TrainConfig has "
                f"{sorted(fields)}."
            )
        return dataclasses.replace(self, **changes)

    def validate(self):
        """Checks every setting; raises `TrainingError` naming the first bad
        one, its value and the fix, and returns `self`.

        Nothing is loaded: `train()` calls this before it touches the
        backbone, the data or the output directory.
        """
        _check_int("prompt_length", self.prompt_length,
                   maximum=MAX_PROMPT_LENGTH,
                   why="each prompt vector adds an encoder position to every "
                   "example, and the paper's prompts are 1 to 150 vectors "
                   "long")
        for name in (
            "steps",
            "batch_size",
            "eval_every",
            "checkpoint_every",
            "keep_checkpoints",
            "steps_per_execution",
            "shuffle_buffer",
        ):
            _check_int(name, getattr(self, name))
        _check_int("max_input_length", self.max_input_length, minimum=2)
        for name in ("eval_batch_size", "max_eval_examples", "early_stopping_patience"):
            if getattr(self, name) is not None:
                _check_int(name, getattr(self, name))
        if self.max_target_length is not None:
            _check_int("max_target_length", self.max_target_length, minimum=2)
        if isinstance(self.learning_rate, bool) or not (
            isinstance(self.learning_rate, (int, float)) and self.learning_rate > 0
        ):
            raise TrainingError(
                f"learning_rate must be a positive number, got "
                f"{self.learning_rate!r}. Use a number > 0 (default: "
                f"{_default('learning_rate')}, the paper's constant rate)."
            )
        if not isinstance(self.overwrite, bool):
            # A truthy string must not delete a previous run's files.
            raise TrainingError(
                f"overwrite must be True or False, got {self.overwrite!r}."
            )
        if self.prompt_initializer not in PROMPT_INITIALIZERS:
            raise TrainingError(
                f"prompt_initializer must be one of {list(PROMPT_INITIALIZERS)}, "
                f"got {self.prompt_initializer!r}."
            )
        if self.prompt_initializer == "text" and not self.init_text:
            raise TrainingError(
                "prompt_initializer='text' needs init_text (the words to "
                "start the prompt from)."
            )
        if isinstance(self.strategy, str) and self.strategy not in STRATEGIES:
            raise TrainingError(
                f"strategy must be one of {list(STRATEGIES)} or a "
                f"tf.distribute.Strategy, got {self.strategy!r}."
            )
        if self.dtype not in DTYPES:
            raise TrainingError(
                f"dtype must be 'float32' or 'bfloat16', got {self.dtype!r}."
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise TrainingError(f"seed must be an integer, got {self.seed!r}.")
        interval = min(self.eval_every, self.steps)
        if interval % self.steps_per_execution:
            raise TrainingError(
                f"steps_per_execution={self.steps_per_execution} must divide "
                f"the validation interval min(eval_every, steps) = {interval}."
            )
        return self

    def to_json(self):
        """The settings as JSON-serializable values (as `metrics.json`
        records them)."""
        values = {
            field.name: getattr(self, field.name)
            for field in dataclasses.fields(self)
        }
        for name in ("optimizer", "strategy"):
            value = values[name]
            if value is not None and not isinstance(value, str):
                values[name] = type(value).__name__
        return values


def _default(name):
    return next(field.default for field in dataclasses.fields(TrainConfig)
                if field.name == name)


def _check_int(name, value, minimum=1, maximum=None, why=None):
    """Raises `TrainingError` unless `value` is an int in
    `[minimum, maximum]`; the message names the setting, the value and what
    to use instead."""
    if isinstance(value, bool) or not isinstance(value, int):
        valid = False
    else:
        valid = minimum <= value and (maximum is None or value <= maximum)
    if valid:
        return
    if maximum is None:
        expected = f"an integer >= {minimum}"
    else:
        expected = f"an integer from {minimum} to {maximum}"
    reason = f" ({why})" if why else ""
    default = _default(name)
    if default is None:
        fix = "Use a whole number in that range, or None (the default)."
    else:
        fix = f"Use a whole number in that range (default: {default})."
    raise TrainingError(
        f"{name} must be {expected}, got {value!r}{reason}. {fix}"
    )
