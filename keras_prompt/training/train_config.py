"""The settings of a prompt-tuning run."""

import dataclasses
import os

from keras_prompt.training.training_error import TrainingError

PROMPT_INITIALIZERS = (
    "class_labels",
    "sampled_vocab",
    "random_uniform",
    "text",
    "from_file",
)
REPARAMETERIZATIONS = ("residual",)
# The paper's prompt length, used unless a prompt file gives the length.
DEFAULT_PROMPT_LENGTH = 100
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
        prompt_length: prompt vectors, 1 to `MAX_PROMPT_LENGTH` (4096);
            `None` (the default) means 100, the paper's, or the length of
            the `init_file` / `resume_from` prompt (which a set
            `prompt_length` must equal).
        prompt_initializer: `"class_labels"`, `"sampled_vocab"`,
            `"random_uniform"`, `"text"` (with `init_text`) or `"from_file"`
            (with `init_file`).
        init_text: text for the `"text"` initializer.
        init_file: a prompt file (or a training output directory) for the
            `"from_file"` initializer: transfer (SPoT, Vu et al. 2022), the
            prompt of another task starts this task's prompt. It must have
            been trained on this backbone, with this hidden size.
        resume_from: a prompt file (or a training output directory) to
            continue training in a new run: the prompt starts equal to the
            file's (also with a reparameterization), takes its length, and
            the task's label words must equal the file's; it replaces
            `prompt_initializer`. The optimizer starts afresh (a prompt file
            holds no optimizer state) and steps count from 0; the saved
            prompts record the file and its steps (`init_file`,
            `init_training_steps`). Not the resumption of a preempted run,
            which rerunning the same call does from the run's own backup.
        reparameterization: `None` (plain prompt tuning) or `"residual"`
            (Residual Prompt Tuning, Razdaibiedina et al. 2023: the prompt
            goes through a shared residual MLP while training; the files
            hold the folded prompt).
        bottleneck_size: the residual MLP's width (`None` = 800, the
            official code's default).
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
        length_buckets: the lengths training and validation batches are
            padded to. `"auto"` (the default): at most 4 bucket lengths,
            multiples of 8, chosen from the training split's input lengths
            to pad least, and `max_input_length` last (see
            `keras_prompt.data.length_buckets.choose_length_buckets`); a
            list of increasing lengths (`max_input_length` is appended if
            missing); or `None` / 0: every batch padded to
            `max_input_length`, as before buckets (a run started before
            buckets existed resumes with `None`). Each batch holds one
            bucket's examples and has that bucket's static shape (one
            compiled step per bucket); each example's loss and outputs are
            those it gets padded to the maximum.
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
        jit_compile: XLA-compile the training step: `"auto"` (the
            default) compiles on GPUs and TPUs and not on CPUs, where
            TensorFlow's oneDNN kernels train as fast with less memory
            (`keras_prompt.utils.cpu_defaults`), or True/False.
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

    prompt_length: int = None
    prompt_initializer: str = "class_labels"
    init_text: str = None
    init_file: str = None
    resume_from: str = None
    reparameterization: str = None
    bottleneck_size: int = None
    learning_rate: float = 0.3
    optimizer: object = None
    steps: int = 30_000
    batch_size: int = 32
    max_input_length: int = 256
    max_target_length: int = None
    length_buckets: object = "auto"
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
    jit_compile: object = "auto"
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
        if self.prompt_length is not None:
            _check_int("prompt_length", self.prompt_length,
                       maximum=MAX_PROMPT_LENGTH,
                       why="each prompt vector adds an encoder position to "
                       "every example, and the paper's prompts are 1 to 150 "
                       "vectors long")
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
        from keras_prompt.data.length_buckets import resolve_length_buckets

        resolve_length_buckets(self.length_buckets, self.max_input_length,
                               error=TrainingError)
        if isinstance(self.learning_rate, bool) or not (
            isinstance(self.learning_rate, (int, float)) and self.learning_rate > 0
        ):
            raise TrainingError(
                f"learning_rate must be a positive number, got "
                f"{self.learning_rate!r}. Use a number > 0 (default: "
                f"{_default('learning_rate')}, the paper's constant rate)."
            )
        if self.jit_compile != "auto" and not isinstance(self.jit_compile, bool):
            raise TrainingError(
                f"jit_compile must be True, False or 'auto', got "
                f"{self.jit_compile!r}. Use 'auto' (the default: XLA unless a "
                "large backbone runs on CPU), True or False."
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
        self._check_prompt_files()
        if self.reparameterization is not None and (
            self.reparameterization not in REPARAMETERIZATIONS
        ):
            raise TrainingError(
                f"reparameterization must be None (plain prompt tuning) or "
                f"one of {list(REPARAMETERIZATIONS)}, got "
                f"{self.reparameterization!r}."
            )
        if self.bottleneck_size is not None:
            if self.reparameterization is None:
                raise TrainingError(
                    f"bottleneck_size={self.bottleneck_size!r} is a setting "
                    "of the residual reparameterization: also pass "
                    "reparameterization='residual' (--reparameterization "
                    "residual), or leave bottleneck_size out."
                )
            _check_int("bottleneck_size", self.bottleneck_size)
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

    def _check_prompt_files(self):
        from_file = self.prompt_initializer == "from_file"
        for name in ("init_file", "resume_from"):
            value = getattr(self, name)
            if value is not None and not (
                isinstance(value, (str, os.PathLike)) and os.fspath(value)
            ):
                raise TrainingError(
                    f"{name} must be the path of a prompt file or of a "
                    f"training output directory, got {value!r}."
                )
        if from_file and self.init_file is None:
            raise TrainingError(
                "prompt_initializer='from_file' needs init_file (the prompt "
                "file to start from; keras-prompt train --prompt-init FILE)."
            )
        if self.init_file is not None and not from_file:
            raise TrainingError(
                f"init_file={os.fspath(self.init_file)!r} is read by "
                "prompt_initializer='from_file' only, but prompt_initializer "
                f"is {self.prompt_initializer!r}: pass "
                "prompt_initializer='from_file' too, or leave init_file out."
            )
        if self.resume_from is not None and from_file:
            raise TrainingError(
                "resume_from and prompt_initializer='from_file' both give "
                "the initial prompt: pass resume_from (--resume-from) to "
                "continue a prompt on its task, or init_file (--prompt-init "
                "FILE) to start another task from it, not both."
            )

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
        for name in ("init_file", "resume_from"):
            if values[name] is not None:
                values[name] = os.fspath(values[name])
        return values


def resolve_initial_prompt(config, label_words):
    """Reads the prompt file a run starts from and settles the prompt length.

    Runs in `train()`'s preflight, before the backbone is loaded: an
    unreadable file, a length other than a set `prompt_length`, or (for
    `resume_from`) other label words than the task's are refused here. The
    backbone's fingerprint and hidden size are checked when the model is
    built on the file, still before training starts.

    Args:
        config: a validated `TrainConfig`.
        label_words: the task's label words.

    Returns:
        `(config, initial_prompt)`: `config` with `prompt_length` set (the
        file's, or 100 without a file), and `None` or `(setting, source)`:
        `"init_file"` or `"resume_from"` and the file's
        `keras_prompt.initializers.FromFile`.
    """
    setting = "resume_from" if config.resume_from is not None else "init_file"
    path = getattr(config, setting)
    if path is None:
        length = config.prompt_length or DEFAULT_PROMPT_LENGTH
        return config.replace(prompt_length=length), None
    from keras_prompt.initializers import FromFile
    from keras_prompt.prompts.prompt_file import PromptFileError

    try:
        source = FromFile(path)
    except PromptFileError as error:
        raise TrainingError(
            f"{setting}={os.fspath(path)!r} cannot be used: {error} Pass a "
            "prompt file written by keras-prompt (or a training output "
            "directory holding prompt.safetensors)."
        ) from None
    length = source.array.shape[0]
    if config.prompt_length not in (None, length):
        raise TrainingError(
            f"prompt_length={config.prompt_length} differs from the {length} "
            f"vectors of {setting} '{source.path}'. Leave prompt_length unset "
            "(keras-prompt train: no --prompt-length) to take the file's "
            f"length, or pass prompt_length={length}."
        )
    recorded = source.metadata.get("labels")
    if setting == "resume_from" and recorded and list(recorded) != list(
        label_words or ()
    ):
        raise TrainingError(
            f"resume_from '{source.path}' is a prompt for the label words "
            f"{list(recorded)}, but this task's are {label_words}: "
            "resume_from continues training a prompt on its own task. To "
            "start another task from it (transfer), pass "
            "prompt_initializer='from_file' and init_file instead "
            "(keras-prompt train --prompt-init FILE)."
        )
    return config.replace(prompt_length=length), (setting, source)


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
