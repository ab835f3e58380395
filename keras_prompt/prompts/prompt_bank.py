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
        `(float32 array, source, metadata)`; the source is the path or
        `"<array>"`, the metadata the file's (`{}` for an array).
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
        return np.array(values, np.float32), path, metadata
    values = np.array(prompt, np.float32)
    if values.shape != expected:
        raise ValueError(
            f"{label}: a prompt array must have shape [prompt_length, "
            f"hidden_dim] = {list(expected)}; got {values.shape}."
        )
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{label}: the prompt array has NaN or infinite values.")
    return values, "<array>", {}


def _is_one_prompt(value):
    return isinstance(value, (str, bytes, os.PathLike)) or (
        isinstance(value, np.ndarray) and value.ndim == 2
    )


def _prompt_list(prompt):
    """`prompt` as a list of prompts: a list or tuple of prompt files or
    `[P, H]` arrays is several prompts (an ensemble), anything else one
    (a nested list of numbers is one array)."""
    if isinstance(prompt, (list, tuple)) and prompt and all(
        _is_one_prompt(value) for value in prompt
    ):
        return list(prompt)
    return [prompt]


def _check_labels(labels, task):
    labels = [labels] if isinstance(labels, str) else list(labels)
    words = all(isinstance(word, str) and word for word in labels)
    if not labels or not words or len(set(labels)) != len(labels):
        raise ValueError(
            f"task {task!r}: `labels` must be distinct non-empty label words, "
            f"e.g. ['entailment', 'not_entailment']; got {labels!r}."
        )
    return labels


class PromptBank:
    """An ordered set of task prompts for one backbone (mixed-task batches,
    prompt ensembles).

    Every prompt has the model's `[prompt_length, hidden_dim]` shape; a
    prompt file is checked against the backbone's fingerprint before it is
    accepted, so a prompt trained on another backbone is refused. Task ids
    are the insertion order, as in an exported bank.

    A task may hold several prompts (a prompt ensemble, Lester et al. 2021
    §7: `add("rte", [file_a, file_b, file_c])`). Every prompt has a prompt
    id, its row in `prompts()`: ids `0 .. len(bank) - 1` are the tasks'
    first prompts, so a task's id is also its first prompt's id and a bank
    of one prompt per task has prompt ids equal to task ids; the tasks'
    further prompts follow, task by task (`prompt_ids(task)`). Selecting a
    task by name (`select`, `model.generate(tasks=...)`) gives its first
    prompt; `keras_prompt.ensemble()` and the exports' ensemble signatures
    run all of them.

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
    model.prompt_bank.add("boolq", ["boolq_a.safetensors",
                                    "boolq_b.safetensors"])
    model.prompt_bank.prompt_ids("boolq")  # [2, 3]
    ```
    """

    def __init__(self, prompt_length, hidden_dim, fingerprint=None):
        self.prompt_length = int(prompt_length)
        self.hidden_dim = int(hidden_dim)
        self._fingerprint = fingerprint
        # task -> {"prompts": [array], "sources": [str], "labels": list|None}
        self._tasks = {}

    @property
    def names(self):
        """Task names in id order."""
        return list(self._tasks)

    @property
    def num_prompts(self):
        """Prompts in the bank (more than `len(bank)` with ensembles)."""
        return sum(len(entry["prompts"]) for entry in self._tasks.values())

    def __len__(self):
        return len(self._tasks)

    def __contains__(self, task):
        return task in self._tasks

    def source(self, task):
        """Where `task`'s (first) prompt came from (a file path or
        `"<array>"`)."""
        self._check_known([task])
        return self._tasks[task]["sources"][0]

    def sources(self):
        """Where each prompt came from, in prompt-id order."""
        return [
            self._tasks[task]["sources"][index] for task, index in self._rows()
        ]

    def labels(self, task):
        """`task`'s label words (from `add(labels=)` or its prompt files'
        metadata), or `None`."""
        self._check_known([task])
        labels = self._tasks[task]["labels"]
        return None if labels is None else list(labels)

    def add(self, task, prompt, labels=None):
        """Adds (or replaces) `task`'s prompts.

        Args:
            task: the task name.
            prompt: a prompt file path (validated against the backbone), a
                `[prompt_length, hidden_dim]` array of finite values, or a
                list of those (several prompts for the task: an ensemble).
            labels: optional label words of the task; by default those its
                prompt files record (`save_prompt(labels=...)`), which must
                then agree.

        Returns:
            The task's id.
        """
        check_task_name(task)
        if isinstance(prompt, (list, tuple)) and not len(prompt):
            raise ValueError(
                f"task {task!r}: got an empty list of prompts; give a prompt "
                "file or array, or a list of them (an ensemble)."
            )
        prompts = _prompt_list(prompt)
        entry = {"prompts": [], "sources": [], "labels": None}
        recorded = []
        for number, value in enumerate(prompts):
            name = f"task {task!r}"
            if len(prompts) > 1:
                name += f", prompt {number + 1} of {len(prompts)}"
            values, source, metadata = resolve_prompt(
                value,
                prompt_length=self.prompt_length,
                hidden_dim=self.hidden_dim,
                fingerprint=self._fingerprint,
                label=name,
            )
            entry["prompts"].append(values)
            entry["sources"].append(source)
            if metadata.get("labels"):
                recorded.append((source, list(metadata["labels"])))
        if labels is not None:
            entry["labels"] = _check_labels(labels, task)
        elif recorded:
            first_source, first = recorded[0]
            for source, words in recorded[1:]:
                if words != first:
                    raise ValueError(
                        f"task {task!r}: '{source}' records the label words "
                        f"{words} but '{first_source}' records {first}; the "
                        "prompts of one task must share their label words (or "
                        "pass `labels=` to choose them)."
                    )
            entry["labels"] = first
        self._tasks[task] = entry
        return self.names.index(task)

    def remove(self, task):
        """Removes `task` and its prompts (later tasks' ids move down by
        one)."""
        self._check_known([task])
        del self._tasks[task]

    def _rows(self):
        """`(task, index within the task)` of each prompt id."""
        firsts = [(task, 0) for task in self._tasks]
        others = [
            (task, index)
            for task, entry in self._tasks.items()
            for index in range(1, len(entry["prompts"]))
        ]
        return firsts + others

    def prompt_ids(self, task):
        """The prompt ids of `task`'s prompts, its first (= its task id)
        first."""
        self._check_known([task])
        return [
            row
            for row, (name, _) in enumerate(self._rows())
            if name == task
        ]

    def prompts(self):
        """All prompts in prompt-id order, `float32[num_prompts,
        prompt_length, hidden_dim]`."""
        if not self._tasks:
            return np.zeros((0, self.prompt_length, self.hidden_dim), "float32")
        return np.stack(
            [self._tasks[task]["prompts"][index] for task, index in self._rows()]
        )

    def _check_known(self, tasks):
        unknown = [task for task in tasks if task not in self._tasks]
        if unknown:
            raise ValueError(
                f"Unknown tasks {unknown}: the prompt bank holds "
                f"{self.names or 'no tasks'}. Add them with "
                "`model.prompt_bank.add(task, prompt_file)`."
            )

    def task_ids(self, tasks):
        """int32 prompt ids of `tasks`: a name gives its task id (its first
        prompt); an integer is a prompt id in range (a task id for tasks'
        first prompts)."""
        names = self.names
        num_prompts = self.num_prompts
        ids = []
        for task in tasks:
            if isinstance(task, (int, np.integer)) and not isinstance(
                task, bool
            ):
                if not 0 <= int(task) < num_prompts:
                    holds = f"{len(names)} tasks {names}"
                    if num_prompts != len(names):
                        holds += f" in {num_prompts} prompts"
                    raise ValueError(
                        f"Task id {int(task)} is out of range: the prompt bank "
                        f"holds {holds}."
                    )
                ids.append(int(task))
            else:
                self._check_known([task])
                ids.append(names.index(task))
        return np.asarray(ids, np.int32)

    def select(self, tasks):
        """Each example's prompt, `float32[len(tasks), prompt_length,
        hidden_dim]` (a task's first prompt for a name)."""
        return self.prompts()[self.task_ids(tasks)]
