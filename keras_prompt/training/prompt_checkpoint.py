"""Prompt-only checkpoint files every N steps."""

import contextlib
import glob
import logging
import os
import re

import keras

logger = logging.getLogger(__name__)

_CHECKPOINT_NAME = re.compile(r"prompt-step(\d+)\.safetensors$")


@contextlib.contextmanager
def reporting_write_errors(path, description):
    """Re-raises an `OSError` from writing `path` with a message naming it.

    A full disk or permissions lost part way through a run cannot be checked
    before it starts. Every file of a run is replaced atomically, so what is
    already on disk stays whole; the error only has to say which file could
    not be written and what to do. The `errno` is kept, so callers can still
    tell `ENOSPC` from `EACCES`.

    Args:
        path: the file being written.
        description: what the file is, e.g. `"the prompt checkpoint"`.

    Example:

    ```python
    with reporting_write_errors("out/metrics.json", "the metrics"):
        write_file_atomically("out/metrics.json", data)
    ```
    """
    try:
        yield
    except OSError as error:
        message = (
            f"Could not write {description} '{path}': "
            f"{error.strerror or error}. The files written before are intact "
            "(each is replaced atomically); free space or fix the "
            "permissions, then run the same training again to resume from "
            "its last backup."
        )
        if error.errno is None:
            raise OSError(message) from error
        raise OSError(error.errno, message) from error


def _checkpoint_step(path):
    """The step of a `prompt-step{step:08d}.safetensors` path, or `None`."""
    match = _CHECKPOINT_NAME.search(os.path.basename(path))
    return int(match.group(1)) if match else None


class PromptCheckpoint(keras.callbacks.Callback):
    """Saves the prompt (only the prompt, a few KB; with a reparameterization
    the folded prompt, as `model.save_prompt` writes it) every
    `every_n_steps` steps to `directory/prompt-step{step:08d}.safetensors`,
    keeping the newest `keep` files. Files are written atomically (temporary
    file + rename), so a crash never leaves a half-written checkpoint.

    When training starts, checkpoints of steps after the starting step are
    deleted: they belong to a run that was rolled back to an earlier backup
    (or to an older, longer run), and keeping them would make the rotation
    delete this run's newer files instead of theirs.

    Args:
        directory: the checkpoint directory.
        every_n_steps: save period in optimizer steps.
        keep: how many checkpoints to keep (`None` = all).
        save_kwargs: extra arguments for `model.save_prompt` (task, labels).

    Example:

    ```python
    model.fit(ds, steps_per_epoch=100, epochs=3,
              callbacks=[PromptCheckpoint("out/checkpoints", 50)])
    ```
    """

    def __init__(self, directory, every_n_steps, keep=3, save_kwargs=None):
        super().__init__()
        if int(every_n_steps) <= 0:
            raise ValueError(
                f"every_n_steps must be positive, got {every_n_steps}.")
        self.directory = directory
        self.every_n_steps = int(every_n_steps)
        self.keep = keep
        self.save_kwargs = dict(save_kwargs or {})
        self._last_saved = None

    def path_for(self, step):
        return os.path.join(self.directory, f"prompt-step{step:08d}.safetensors")

    def checkpoint_paths(self):
        """The checkpoint files in `directory`, oldest step first."""
        paths = glob.glob(os.path.join(self.directory, "prompt-step*.safetensors"))
        steps = {path: _checkpoint_step(path) for path in paths}
        return sorted((p for p in paths if steps[p] is not None), key=steps.get)

    def _start(self):
        step = int(self.model.optimizer.iterations.numpy())
        self._last_saved = step - step % self.every_n_steps
        for path in self.checkpoint_paths():
            if _checkpoint_step(path) > step:
                logger.info("Deleting the checkpoint %s: it is past step %d, "
                            "where this training starts.", path, step)
                os.remove(path)

    def on_train_begin(self, logs=None):
        # The starting step is read once every callback's `on_train_begin`
        # ran: a `BackupAndRestore` after this one in the list restores the
        # step counter there.
        self._last_saved = None

    def on_train_batch_begin(self, batch, logs=None):
        if self._last_saved is None:
            self._start()

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        # With steps_per_execution > 1 several steps pass per call.
        if step // self.every_n_steps > self._last_saved // self.every_n_steps:
            self._save(step)

    def on_train_end(self, logs=None):
        if self._last_saved is None:  # A resumed run with no steps left.
            self._start()
        step = int(self.model.optimizer.iterations.numpy())
        if step != self._last_saved:
            self._save(step)

    def _save(self, step):
        path = self.path_for(step)
        with reporting_write_errors(path, "the prompt checkpoint"):
            os.makedirs(self.directory, exist_ok=True)
            self.model.save_prompt(path, training_steps=step,
                                   **self.save_kwargs)
        self._last_saved = step
        if self.keep:
            for old in self.checkpoint_paths()[: -self.keep]:
                os.remove(old)
