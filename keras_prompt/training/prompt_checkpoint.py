"""Prompt-only checkpoint files every N steps."""

import glob
import logging
import os

import keras

logger = logging.getLogger(__name__)


class PromptCheckpoint(keras.callbacks.Callback):
    """Saves the prompt (only the prompt, a few KB) every `every_n_steps`
    steps to `directory/prompt-step{step:08d}.safetensors`, keeping the
    newest `keep` files. Files are written atomically (temporary file +
    rename), so a crash never leaves a half-written checkpoint.

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

    def on_train_begin(self, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        self._last_saved = step - step % self.every_n_steps

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        # With steps_per_execution > 1 several steps pass per call.
        if step // self.every_n_steps > self._last_saved // self.every_n_steps:
            self._save(step)

    def on_train_end(self, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        if step != self._last_saved:
            self._save(step)

    def _save(self, step):
        os.makedirs(self.directory, exist_ok=True)
        self.model.save_prompt(self.path_for(step), training_steps=step,
                               **self.save_kwargs)
        self._last_saved = step
        if self.keep:
            files = sorted(glob.glob(
                os.path.join(self.directory, "prompt-step*.safetensors")))
            for old in files[: -self.keep]:
                os.remove(old)
