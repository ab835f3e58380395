"""Preemption-safe backups of the prompt and optimizer state."""

import json
import logging
import os

import keras
import numpy as np

from keras_prompt.training.prompt_checkpoint import reporting_write_errors
from keras_prompt.training.training_error import TrainingError

logger = logging.getLogger(__name__)

BACKUP_FILE = "backup.safetensors"


def _write_atomically(path, data):
    from keras_prompt.prompts.prompt_file import write_file_atomically

    return write_file_atomically(path, data)


class PromptBackupAndRestore(keras.callbacks.BackupAndRestore):
    """`keras.callbacks.BackupAndRestore` for prompt tuning.

    At each epoch end it backs up only what changes in prompt tuning: the
    trainable variables (the prompt, and with a residual reparameterization
    its MLP, which no prompt file holds), every optimizer variable (step
    counter and Adafactor moments), the dropout seed states, the epoch/step
    reached, and the state of the given callbacks (best validation metric,
    early-stopping counter).
    The frozen backbone is never copied, so a backup of a T5-XXL prompt run is
    a few megabytes. The backup is a single safetensors file replaced
    atomically, so a process killed at any moment leaves either the previous
    or the new backup, never a partial one.

    When `fit()` starts and a backup exists, the state is restored and
    training resumes at the saved epoch (the caller must skip the batches
    already seen; `keras_prompt.training.train` does).

    Args:
        backup_dir: directory of the backup file.
        stateful_callbacks: callbacks with `get_state()`/`set_state()` whose
            state is saved with the backup.
        write: whether this process writes backups (only the chief does in
            multi-worker training; every worker restores).
        delete_checkpoint: delete the backup when training finishes. Pass
            `False` to keep it until the run's last file is written and
            call `delete_backup()` then (`keras_prompt.training.train` does,
            so a run that fails writing its metrics still resumes).

    Example:

    ```python
    backup = PromptBackupAndRestore("out/backup")
    model.fit(ds, epochs=10, steps_per_epoch=100, callbacks=[backup])
    ```
    """

    def __init__(self, backup_dir, stateful_callbacks=(), write=True,
                 delete_checkpoint=True):
        super().__init__(backup_dir, save_freq="epoch",
                         delete_checkpoint=delete_checkpoint)
        self.path = os.path.join(backup_dir, BACKUP_FILE)
        self.stateful_callbacks = list(stateful_callbacks)
        self.write = write
        self.restored_step = None

    @staticmethod
    def read_state(backup_dir):
        """The saved `{"epoch", "step", ...}` metadata, or `None`."""
        path = os.path.join(backup_dir, BACKUP_FILE)
        if not os.path.exists(path):
            return None
        from safetensors import safe_open

        with safe_open(path, framework="numpy") as f:
            metadata = f.metadata() or {}
        return json.loads(metadata.get("state", "{}"))

    def _variables(self):
        model = self.model
        seeds = [v for v in model.non_trainable_variables
                 if "seed_generator" in v.path]
        return (
            [("trainable", v) for v in model.trainable_variables]
            + [("optimizer", v) for v in model.optimizer.variables]
            + [("seed", v) for v in seeds]
        )

    def _load_model(self):
        if not os.path.exists(self.path):
            return
        if not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        from safetensors.numpy import load_file

        tensors = load_file(self.path)
        state = self.read_state(self.backup_dir)
        variables = self._variables()
        paths = state.get("paths", [])
        if len(paths) != len(variables):
            raise TrainingError(
                f"The backup '{self.path}' holds {len(paths)} variables but "
                f"this run has {len(variables)}: it was written by a "
                "different configuration. Delete it (or use another output_dir) "
                "to start afresh."
            )
        for i, (kind, variable) in enumerate(variables):
            value = tensors[f"{kind}/{i}"]
            if value.size == 1 and len(variable.shape) == 0:
                value = value.reshape(())
            if tuple(value.shape) != tuple(variable.shape):
                raise TrainingError(
                    f"The backup '{self.path}' has shape {value.shape} for "
                    f"'{paths[i]}' but this run's '{variable.path}' is "
                    f"{tuple(variable.shape)}. Delete the backup or use the "
                    "original settings."
                )
            variable.assign(value)
        for callback, callback_state in zip(
                self.stateful_callbacks, state.get("callbacks", [])):
            callback.set_state(callback_state)
        self.model._initial_epoch = int(state["epoch"])
        self._current_epoch = int(state["epoch"])
        self.restored_step = int(state["step"])
        logger.info("Restored the training state of step %d (epoch %d) from "
                    "%s.", self.restored_step, self._current_epoch, self.path)

    def _save_model(self):
        if not self.write:
            return
        from safetensors.numpy import save

        variables = self._variables()
        tensors = {
            f"{kind}/{i}": np.array(keras.ops.convert_to_numpy(v), order="C")
            for i, (kind, v) in enumerate(variables)
        }
        state = {
            "epoch": self._current_epoch,
            "step": int(self.model.optimizer.iterations.numpy()),
            "paths": [v.path for _, v in variables],
            "callbacks": [c.get_state() for c in self.stateful_callbacks],
        }
        data = save(tensors, metadata={"state": json.dumps(state)})
        with reporting_write_errors(self.path, "the training backup"):
            _write_atomically(self.path, data)
        logger.debug("Backed up the training state at step %d to %s.",
                    state["step"], self.path)

    def delete_backup(self):
        """Deletes the backup (and its directory, once empty) if this process
        writes backups."""
        if self.write and os.path.exists(self.path):
            os.remove(self.path)
            try:
                os.rmdir(self.backup_dir)
            except OSError:
                pass  # Not empty: files other than ours stay.

    def on_train_end(self, logs=None):
        if self.delete_checkpoint:
            self.delete_backup()
