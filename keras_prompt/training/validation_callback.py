"""Evaluate the task metric during training; keep the best prompt; stop
early."""

import logging
import math

import keras

from keras_prompt.training.prompt_checkpoint import reporting_write_errors

logger = logging.getLogger(__name__)


class ValidationCallback(keras.callbacks.Callback):
    """Computes the task's metrics at each epoch end (every `eval_every`
    steps), adds them to the logs as `val_<metric>` (so the progress bar and
    TensorBoard show them), saves the prompt to `best_path` whenever the main
    metric improves, and stops training after `patience` evaluations without
    improvement.

    Its state (best value/step, patience counter, history) is saved by
    `PromptBackupAndRestore`, so a resumed run decides exactly like an
    uninterrupted one.

    Args:
        evaluator: a `TaskEvaluator`.
        examples: the validation examples.
        num_examples: their number (from the pipeline stats).
        best_path: where to save the best prompt (`None` = do not save, e.g.
            on non-chief workers).
        save_kwargs: extra arguments for `model.save_prompt` (task, labels).
        patience: evaluations without improvement before stopping; `None`
            disables early stopping.
        min_delta: the smallest change that counts as an improvement.

    Example:

    ```python
    callback = ValidationCallback(evaluator, task.load("validation"), 872,
                                  best_path="out/prompt.safetensors")
    model.fit(ds, epochs=10, steps_per_epoch=100, callbacks=[callback])
    ```
    """

    def __init__(self, evaluator, examples, num_examples, best_path=None,
                 save_kwargs=None, patience=None, min_delta=0.0):
        super().__init__()
        self.evaluator = evaluator
        self.examples = examples
        self.num_examples = num_examples
        self.best_path = best_path
        self.save_kwargs = dict(save_kwargs or {})
        self.patience = patience
        self.min_delta = float(min_delta)
        self.metric = evaluator.task.main_metric
        self.best = -math.inf
        self.best_step = None
        self.best_metrics = None
        self.wait = 0
        self.history = []
        self.stopped_early = False

    def _step(self):
        return int(self.model.optimizer.iterations.numpy())

    def on_epoch_end(self, epoch, logs=None):
        step = self._step()
        metrics = self.evaluator.evaluate(self.examples, self.num_examples)
        entry = {"step": step, **metrics}
        if logs is not None and "loss" in logs:
            entry["train_loss"] = float(logs["loss"])
        self.history.append(entry)
        if logs is not None:
            for name in self.evaluator.task.metrics:
                logs[f"val_{name}"] = metrics[name]
        value = metrics[self.metric]
        logger.info("Step %d: validation %s", step, {
            k: round(v, 4) if isinstance(v, float) else v
            for k, v in metrics.items()})
        if value > self.best + self.min_delta or self.best_step is None:
            self.best = value
            self.best_step = step
            self.best_metrics = dict(entry)
            self.wait = 0
            if self.best_path:
                with reporting_write_errors(self.best_path, "the best prompt"):
                    self.model.save_prompt(self.best_path, training_steps=step,
                                           **self.save_kwargs)
        else:
            self.wait += 1
            if self.patience is not None and self.wait >= self.patience:
                logger.info(
                    "Early stopping at step %d: validation %s has not improved "
                    "for %d evaluations (best %.4f at step %d).", step,
                    self.metric, self.wait, self.best, self.best_step)
                self.stopped_early = True
                self.model.stop_training = True

    def get_state(self):
        return {
            "best": self.best if self.best_step is not None else None,
            "best_step": self.best_step,
            "best_metrics": self.best_metrics,
            "wait": self.wait,
            "history": self.history,
            "stopped_early": self.stopped_early,
        }

    def set_state(self, state):
        self.best = -math.inf if state.get("best") is None else state["best"]
        self.best_step = state.get("best_step")
        self.best_metrics = state.get("best_metrics")
        self.wait = int(state.get("wait", 0))
        self.history = list(state.get("history", []))
        self.stopped_early = bool(state.get("stopped_early", False))
