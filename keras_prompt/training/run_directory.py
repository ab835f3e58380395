"""A training run's output directory: what identifies the run, whether a
new `train()` call may start, resume or replace it, and writing into it."""

import glob
import json
import logging
import os
import shutil
import tempfile

from keras_prompt.training.prompt_checkpoint import reporting_write_errors
from keras_prompt.training.training_error import TrainingError

logger = logging.getLogger(__name__)

PROMPT_FILE = "prompt.safetensors"
METRICS_FILE = "metrics.json"
RUN_CONFIG_FILE = "run_config.json"
# Everything a run writes into its output directory; `overwrite=True`
# deletes exactly these, and nothing else the directory holds.
RUN_FILES = (METRICS_FILE, RUN_CONFIG_FILE, PROMPT_FILE)
RUN_DIRECTORIES = ("checkpoints", "backup", "logs")
# Settings that change how a run is watched or which machine runs it, not
# what it trains: a resumed run may change them (a preempted TPU run often
# comes back on a TPU with another address).
UNTRACKED_SETTINGS = ("verbose", "overwrite", "tpu")
# Settings added after runs were recorded without them, with the value that
# does what those runs did: an unfinished run recorded before a setting
# existed resumes when that value is passed.
LATER_SETTINGS = {"length_buckets": None}


def write_json_atomically(path, data):
    """Write `data` as indented JSON, atomically."""
    from keras_prompt.prompts.prompt_file import write_file_atomically

    text = json.dumps(data, indent=2, sort_keys=True, default=float) + "\n"
    return write_file_atomically(path, text.encode("utf-8"))


def check_output_dir(output_dir):
    """Raises `TrainingError` unless a run can write into `output_dir`.

    Runs before anything is loaded and creates nothing: it finds the nearest
    existing directory on the path and creates (then deletes) a file in it,
    which is what the run itself will need. Trying is the only test that
    also holds for root, whom `os.access` and permission bits do not stop
    but a read-only file system does.

    Args:
        output_dir: the run's output directory (created later if missing).
    """
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise TrainingError(
            f"output_dir '{output_dir}' is an existing file, not a directory. "
            "Pass the path of a directory (it is created if missing)."
        )

    def not_writable(attempt, error):
        return TrainingError(
            f"output_dir '{output_dir}' is not writable: {attempt} failed "
            f"({error.strerror or error}). Fix the permissions or pass "
            "another output_dir."
        )

    # The nearest directory on the path that exists. `os.path.exists` would
    # also say False for a directory we may not look into, and climb past it.
    existing = os.path.abspath(output_dir)
    while True:
        try:
            os.stat(existing)
            break
        except (FileNotFoundError, NotADirectoryError):
            existing = os.path.dirname(existing)
        except OSError as error:
            raise not_writable(f"looking up '{existing}'", error) from error
    if not os.path.isdir(existing):
        raise TrainingError(
            f"output_dir '{output_dir}' cannot be created: '{existing}' is a "
            "file, not a directory. Pass a path whose parents are directories."
        )
    try:
        handle, probe = tempfile.mkstemp(dir=existing,
                                         prefix=".keras-prompt-write-test-")
        os.close(handle)
        os.remove(probe)
    except OSError as error:
        raise not_writable(f"creating a file in '{existing}'", error) \
            from error


def _config_of(component):
    """A task component's `get_config()`, or its class name."""
    get_config = getattr(component, "get_config", None)
    return get_config() if callable(get_config) else type(component).__name__


def run_identity(backbone, task, config, initial_prompt=None):
    """What makes two `train()` calls the same run, as JSON values.

    The backbone (its name or path as given; the fingerprint of an object's
    weights), the task (name, labels, metrics, data source and formatter),
    every setting except `UNTRACKED_SETTINGS`, and the prompt file the run
    starts from, if any (`initial_prompt`: the setting that named it, its
    absolute path, SHA-256, task and training steps). `train()` writes it to
    `output_dir/run_config.json` when a run starts and resumes a run only
    when the identities are equal.

    Args:
        backbone: what `train()` was given as its backbone.
        task: the resolved `Task`.
        config: the validated `TrainConfig`.
        initial_prompt: optional `(setting, source)`: `"init_file"` or
            `"resume_from"` and its `keras_prompt.initializers.FromFile`.
    """
    if isinstance(backbone, (str, os.PathLike)):
        backbone_identity = os.fspath(backbone)
    else:
        from keras_prompt.prompts.prompt_file import backbone_fingerprint

        # A `PromptedT5Seq2SeqLM` wraps the backbone whose weights count.
        weights = getattr(backbone, "backbone", backbone)
        backbone_identity = {"class": type(weights).__name__,
                             "fingerprint": backbone_fingerprint(weights)}
    settings = {name: value for name, value in config.to_json().items()
                if name not in UNTRACKED_SETTINGS}
    identity = {
        "backbone": backbone_identity,
        "task": {
            "name": task.name,
            "label_words": task.label_words,
            "metrics": task.metrics,
            "splits": task.splits,
            "source": _config_of(task.source),
            "formatter": _config_of(task.formatter),
        },
        "config": settings,
    }
    if initial_prompt is not None:
        setting, source = initial_prompt
        identity["initial_prompt"] = {"setting": setting,
                                      **source.source_metadata()}
    # As it reads back from the file (tuples become lists, and so on).
    return json.loads(json.dumps(identity, sort_keys=True, default=repr))


def check_source_outside_run(output_dir, path, setting):
    """Raises `TrainingError` if the prompt file a run starts from is one of
    the files a run in `output_dir` writes or deletes (`prompt.safetensors`,
    `checkpoints/`, `backup/`, `logs/`): a run started from a prompt file is
    a new run, in a directory of its own.

    Args:
        output_dir: the new run's output directory.
        path: the prompt file (`init_file` or `resume_from`).
        setting: the setting that names it, for the message.
    """
    run_dir = os.path.realpath(output_dir)
    source = os.path.realpath(path)
    owned = [os.path.join(run_dir, PROMPT_FILE)] + [
        os.path.join(run_dir, name) + os.sep for name in RUN_DIRECTORIES]
    if any(source == name or source.startswith(name) for name in owned):
        raise TrainingError(
            f"{setting} '{path}' is a file of the run in output_dir "
            f"'{output_dir}', which this run would replace: a run started "
            "from a prompt file is a new run. Pass another output_dir (or "
            "copy the prompt file elsewhere first)."
        )


def _flatten(value, prefix=""):
    if isinstance(value, dict) and value:
        flat = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: value}


def _differences(stored, identity, limit=3):
    """`"config.steps (6 there, 12 here)"` for the first `limit` keys that
    differ."""
    absent = object()
    there, here = _flatten(stored), _flatten(identity)
    keys = sorted(k for k in set(there) | set(here)
                  if there.get(k, absent) != here.get(k, absent))

    def show(flat, key):
        if key not in flat:
            return "absent"
        text = repr(flat[key])
        return text if len(text) <= 40 else text[:37] + "..."

    described = [f"{k} ({show(there, k)} there, {show(here, k)} here)"
                 for k in keys[:limit]]
    if len(keys) > limit:
        described.append(f"and {len(keys) - limit} more")
    return ", ".join(described)


def _run_files(output_dir):
    """The names of the run files and directories `output_dir` holds."""
    return [name for name in RUN_FILES + RUN_DIRECTORIES
            if os.path.lexists(os.path.join(output_dir, name))]


def check_run_ownership(output_dir, identity, overwrite):
    """Decides what a run does with what `output_dir` already holds.

    A run owns its output directory: it starts in a directory without run
    files, resumes its own unfinished run (same `run_identity`: from the
    backup, or from step 0 when none was written yet) and otherwise refuses,
    unless `overwrite` lets it replace the run there. A run is finished once
    `metrics.json` exists: it is written last, after the best prompt.
    A run recorded before a setting of `LATER_SETTINGS` existed is compared
    as if it had that setting's listed value (`length_buckets=None`: a run
    started before length buckets resumes with `length_buckets=None`).
    Reads only; `claim_output_dir` acts on the decision.

    Args:
        output_dir: the run's output directory.
        identity: this run's `run_identity`.
        overwrite: whether a finished or different run may be replaced.

    Returns:
        `"new"`, `"resume"` or `"replace"`.
    """
    present = _run_files(output_dir)
    if not present:
        return "new"
    run_config_path = os.path.join(output_dir, RUN_CONFIG_FILE)
    try:
        with open(run_config_path) as file:
            stored = json.load(file)
    except (OSError, ValueError):
        stored = None
    if not isinstance(stored, dict):
        stored = None
    older = []
    if stored is not None and isinstance(stored.get("config"), dict):
        older = [name for name in LATER_SETTINGS
                 if name not in stored["config"]]
        stored["config"].update({name: LATER_SETTINGS[name]
                                 for name in older})
    finished = METRICS_FILE in present
    if stored == identity and not finished:
        return "resume"
    if overwrite:
        return "replace"
    fix = ("Pass overwrite=True (keras-prompt train --overwrite) to delete "
           "its files and start this run, or choose another output_dir.")
    if stored is None:
        listed = ", ".join(name + ("/" if name in RUN_DIRECTORIES else "")
                           for name in present)
        raise TrainingError(
            f"output_dir '{output_dir}' holds files of a training run "
            f"({listed}) without a readable {RUN_CONFIG_FILE}, so it is not "
            f"known to be this run and cannot be resumed. {fix}"
        )
    state = "finished" if finished else "unfinished"
    if stored != identity:
        older = [name for name in older
                 if identity["config"].get(name) != LATER_SETTINGS[name]]
        if older and not finished:
            settings = ", ".join(f"{name}={LATER_SETTINGS[name]!r}"
                                 for name in older)
            fix = (f"It was recorded before {', '.join(older)} existed and "
                   f"ran with {settings}: pass that to resume it. " + fix)
        raise TrainingError(
            f"output_dir '{output_dir}' holds another, {state} training run: "
            f"its {RUN_CONFIG_FILE} differs in "
            f"{_differences(stored, identity)}. {fix}"
        )
    raise TrainingError(
        f"output_dir '{output_dir}' holds a finished run of these settings "
        f"({METRICS_FILE} is written when a run ends); its best prompt is "
        f"'{os.path.join(output_dir, PROMPT_FILE)}'. {fix}"
    )


def claim_output_dir(output_dir, identity, decision):
    """Makes `output_dir` this run's, as `check_run_ownership` decided.

    For `"replace"` the previous run's files are deleted first: its
    `metrics.json` and `run_config.json` before the rest, so that a
    directory left half-deleted is never taken for a finished or a
    resumable run. Then this run's `run_config.json` is written (a resumed
    run keeps its own).

    Args:
        output_dir: the run's output directory.
        identity: this run's `run_identity`.
        decision: what `check_run_ownership` returned.
    """
    os.makedirs(output_dir, exist_ok=True)
    if decision == "resume":
        return
    if decision == "replace":
        # Also the temporary files of writes that were killed.
        leftovers = [os.path.join(output_dir, name) for name in RUN_FILES]
        for name in RUN_FILES:
            leftovers += glob.glob(os.path.join(output_dir, f".{name}.*.tmp"))
        leftovers += [os.path.join(output_dir, name)
                      for name in RUN_DIRECTORIES]
        for path in leftovers:
            try:
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path)
                elif os.path.lexists(path):
                    os.remove(path)
            except OSError as error:
                raise TrainingError(
                    f"Could not delete '{path}' of the previous run in "
                    f"output_dir '{output_dir}' (overwrite=True): "
                    f"{error.strerror or error}. Fix the permissions or "
                    "delete it yourself."
                ) from error
        logger.info("Deleted the previous run's files in %s (overwrite=True).",
                    output_dir)
    path = os.path.join(output_dir, RUN_CONFIG_FILE)
    with reporting_write_errors(path, "the run configuration"):
        write_json_atomically(path, identity)
