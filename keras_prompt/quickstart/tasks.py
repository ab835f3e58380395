"""Held-out tasks of the demo backbone, registered like any other task.

Their input formats and label words are not in the pretraining mixture
(`keras_prompt.quickstart.mixture`): the label words occur there only as
ordinary text, never as the target of a task. The inputs are sentences of
the same synthetic world, so the backbone knows the words and what they mean.

| task | input | labels |
| --- | --- | --- |
| `demo_animal` | `does it mention an animal? sentence: <story>` | `yes` (the noun is an animal) / `no` (one of the 5 other categories) |
| `demo_mood` | `message: <review> how does the writer feel?` | `happy` (positive adjectives) / `sad` (negative adjectives) |
| `demo_review` | `review of the <noun> : <review> . is it kind ?` | `true` (positive adjectives) / `false` (negative adjectives) |

`demo_review` is the related *source* task of prompt transfer (SPoT) into
`demo_mood`: the same judgement of a review's adjectives, in another
phrasing, with other label words, over reviews of food and clothing only.

Splits are generated deterministically (NumPy `Generator` seeded by task and
split): train 2,000, validation 200, test 500 examples, balanced classes.

Prompt design candidates (`PROMPT_DESIGNS`) are the hand-written text
prompts scored by `keras-prompt quickstart` and `examples/paper_claims.py`.
"""

import numpy as np

from keras_prompt.quickstart import world

SPLIT_SIZES = {"train": 2000, "validation": 200, "test": 500}
_SPLIT_SEEDS = {"train": 0, "validation": 1, "test": 2}


def _animal_example(rng, label):
    if label == 0:
        noun = world.choice(rng, world.CATEGORIES["animal"])
    else:
        others = [c for c in world.CATEGORIES if c != "animal"]
        noun = world.choice(rng, world.CATEGORIES[world.choice(rng, others)])
    return {"sentence": world.story(rng, noun)[0]}


def _mood_example(rng, label):
    return {"message": world.review(rng, positive=label == 0)[0]}


def _review_example(rng, label):
    noun = world.choice(rng, world.CATEGORIES[world.choice(rng, ["food", "clothing"])])
    return {"noun": noun,
            "review": world.review(rng, positive=label == 0, noun=noun)[0]}


TASKS = {
    "demo_animal": {
        "template": "does it mention an animal? sentence: {sentence}",
        "labels": ["yes", "no"],
        "example": _animal_example,
        "task_id": 11,
        "description": "held-out demo task: does the sentence mention an animal? (yes/no)",
    },
    "demo_mood": {
        "template": "message: {message} how does the writer feel?",
        "labels": ["happy", "sad"],
        "example": _mood_example,
        "task_id": 12,
        "description": "held-out demo task: is the writer of the message happy or sad?",
    },
    "demo_review": {
        "template": "review of the {noun} : {review} . is it kind ?",
        "labels": ["true", "false"],
        "example": _review_example,
        "task_id": 13,
        "description": "demo source task for prompt transfer into demo_mood: is the review kind? (true/false)",
    },
}

# Hand-written text prompts for prompt design: (template, label words).
# The first is the task's own format. They are scored on the task's label
# words (see `keras_prompt.quickstart.baselines.prompt_design`).
PROMPT_DESIGNS = {
    "demo_animal": [
        "does it mention an animal? sentence: {sentence}",
        "{sentence} . question: does the sentence mention an animal? answer yes or no",
        "sentence: {sentence} . is there an animal in the sentence ? yes or no ?",
        "topic: {sentence}",
        "{sentence} . is it an animal ?",
        "does the sentence talk about a living creature ? {sentence}",
    ],
    "demo_mood": [
        "message: {message} how does the writer feel?",
        "{message} . question: is the writer happy or sad?",
        "sentiment review: {message}",
        "{message} . how does the writer feel ? happy or sad ?",
        "read the message and tell me the mood of the writer : {message}",
        "the writer wrote : {message} . the writer feels",
    ],
}


def generate_split(name, split):
    """`(fields, label)` pairs of a held-out task's split, deterministically."""
    spec = TASKS[name]
    size = SPLIT_SIZES[split]
    rng = np.random.default_rng([spec["task_id"], _SPLIT_SEEDS[split]])
    labels = np.arange(size) % len(spec["labels"])
    rng.shuffle(labels)
    return [(spec["example"](rng, int(label)), int(label)) for label in labels]


def format_input(name, fields, template=None):
    return (template or TASKS[name]["template"]).format(**fields)


def split_texts(name, split, template=None):
    """`(input texts, label indices)` of a split."""
    pairs = generate_split(name, split)
    texts = [format_input(name, fields, template) for fields, _ in pairs]
    return texts, np.array([label for _, label in pairs])


class GeneratedSource:
    """A task source over `generate_split` (no files, no downloads)."""

    def __init__(self, name):
        self.name = name

    def num_examples(self, split, data_dir=None):
        return SPLIT_SIZES[split]

    def load(self, split, data_dir=None):
        import tensorflow as tf

        pairs = generate_split(self.name, split)
        columns = {key: [fields[key] for fields, _ in pairs] for key in pairs[0][0]}
        columns["label"] = np.array([label for _, label in pairs], np.int64)
        return tf.data.Dataset.from_tensor_slices(columns)


def make_task(name, template=None):
    """The `keras_prompt.data.Task` of a held-out task, in its own format or
    with another input `template` (a prompt-design candidate)."""
    from keras_prompt.data.task import Task
    from keras_prompt.data.template_formatter import TemplateFormatter

    spec = TASKS[name]
    formatter = TemplateFormatter(template or spec["template"])
    return Task(name, GeneratedSource(name), formatter,
                label_words=spec["labels"], description=spec["description"])


def register_tasks():
    """Register the demo tasks (idempotent, no TF import)."""
    from keras_prompt.data.task_registry import register_task

    for name in TASKS:
        register_task(name, lambda name=name: make_task(name), overwrite=True)
