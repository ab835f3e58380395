"""Named prompts of one backbone, picked per example by task."""

import os
import re

import numpy as np

from keras_prompt.prompts.prompt_file import check_prompt_compatible
from keras_prompt.prompts.prompt_file import read_prompt_file

TASK_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


def check_task_name(name):
    """Raises `ValueError` unless `name` can name a task in a bank (integer
    strings are task ids in exported banks)."""
    if not isinstance(name, str) or not TASK_NAME_PATTERN.match(name):
        raise ValueError(
            f"Invalid task name {name!r}: task names start with a letter or "
            "underscore and contain only letters, digits, '_', '-' and '.' "
            "(integer strings are reserved for task ids)."
        )
    return name


def resolve_prompt(prompt, *, prompt_length, hidden_dim, fingerprint, label):
    """A prompt file or array, validated for one backbone.

    Args:
        prompt: a prompt file path (read and checked against the backbone's
            fingerprint, prompt length and hidden size) or a
            `[prompt_length, hidden_dim]` array of finite values.
        prompt_length, hidden_dim: the model's shape.
        fingerprint: `fn() -> str`, the backbone's fingerprint (called only
            for files).
        label: how errors name the prompt.

    Returns:
        `(float32 array, source)`; the source is the path or `"<array>"`.
    """
    expected = (int(prompt_length), int(hidden_dim))
    if isinstance(prompt, (str, bytes, os.PathLike)):
        path = os.fsdecode(prompt)
        values, metadata = read_prompt_file(path)
        check_prompt_compatible(
            metadata,
            values,
            fingerprint=fingerprint() if fingerprint else None,
            prompt_length=expected[0],
            hidden_dim=expected[1],
            source=f"{label} ('{path}')",
        )
        return np.array(values, np.float32), path
    values = np.array(prompt, np.float32)
    if values.shape != expected:
        raise ValueError(
            f"{label}: a prompt array must have shape [prompt_length, "
            f"hidden_dim] = {list(expected)}; got {values.shape}."
        )
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{label}: the prompt array has NaN or infinite values.")
    return values, "<array>"


class PromptBank:
    """An ordered set of task prompts for one backbone (mixed-task batches).

    Every prompt has the model's `[prompt_length, hidden_dim]` shape; a
    prompt file is checked against the backbone's fingerprint before it is
    accepted, so a prompt trained on another backbone is refused. Task ids
    are the insertion order, as in an exported bank.

    Args:
        prompt_length: the model's prompt length.
        hidden_dim: the backbone's hidden size.
        fingerprint: `fn() -> str`, the backbone's fingerprint (called only
            when a prompt file is added).

    Example:
    ```python
    model.prompt_bank.add("rte", "runs/rte/prompt.safetensors")
    model.prompt_bank.add("sst2", sst2_prompt_array)
    model.generate(["rte hypothesis: ...", "sst2 sentence: ..."],
                   tasks=["rte", "sst2"])
    ```
    """

    def __init__(self, prompt_length, hidden_dim, fingerprint=None):
        self.prompt_length = int(prompt_length)
        self.hidden_dim = int(hidden_dim)
        self._fingerprint = fingerprint
        self._prompts = {}
        self._sources = {}

    @property
    def names(self):
        """Task names in id order."""
        return list(self._prompts)

    def __len__(self):
        return len(self._prompts)

    def __contains__(self, task):
        return task in self._prompts

    def source(self, task):
        """Where `task`'s prompt came from (a file path or `"<array>"`)."""
        return self._sources[task]

    def add(self, task, prompt):
        """Adds (or replaces) `task`'s prompt.

        Args:
            task: the task name.
            prompt: a prompt file path (validated against the backbone), or
                a `[prompt_length, hidden_dim]` array of finite values.

        Returns:
            The task's id.
        """
        check_task_name(task)
        values, source = resolve_prompt(
            prompt,
            prompt_length=self.prompt_length,
            hidden_dim=self.hidden_dim,
            fingerprint=self._fingerprint,
            label=f"task {task!r}",
        )
        self._prompts[task] = values
        self._sources[task] = source
        return self.names.index(task)

    def remove(self, task):
        """Removes `task` (later tasks' ids move down by one)."""
        self._check_known([task])
        del self._prompts[task]
        del self._sources[task]

    def prompts(self):
        """All prompts, `float32[num_tasks, prompt_length, hidden_dim]`."""
        if not self._prompts:
            return np.zeros((0, self.prompt_length, self.hidden_dim), "float32")
        return np.stack(list(self._prompts.values()))

    def _check_known(self, tasks):
        unknown = [task for task in tasks if task not in self._prompts]
        if unknown:
            raise ValueError(
                f"Unknown tasks {unknown}: the prompt bank holds "
                f"{self.names or 'no tasks'}. Add them with "
                "`model.prompt_bank.add(task, prompt_file)`."
            )

    def task_ids(self, tasks):
        """int32 ids of `tasks` (names, or integer ids in range)."""
        names = self.names
        ids = []
        for task in tasks:
            if isinstance(task, (int, np.integer)) and not isinstance(
                task, bool
            ):
                if not 0 <= int(task) < len(names):
                    raise ValueError(
                        f"Task id {int(task)} is out of range: the prompt bank "
                        f"holds {len(names)} tasks {names}."
                    )
                ids.append(int(task))
            else:
                self._check_known([task])
                ids.append(names.index(task))
        return np.asarray(ids, np.int32)

    def select(self, tasks):
        """Each example's prompt, `float32[len(tasks), prompt_length,
        hidden_dim]`."""
        return self.prompts()[self.task_ids(tasks)]
