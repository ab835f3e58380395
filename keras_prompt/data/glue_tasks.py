"""Built-in GLUE and SuperGLUE tasks with T5's formatting.

Feature names are those of the TFDS `glue/*` and `super_glue/*` datasets and
the formats follow T5's `preprocessors.glue`: the benchmark name, then
`"<feature>: <value>"` for the features sorted by name (WiC uses T5's explicit
order `sentence1, sentence2, word`). The label words are the TFDS class names,
which T5 uses as targets.

| task  | TFDS              | input                                        | labels |
|-------|-------------------|----------------------------------------------|--------|
| boolq | super_glue/boolq  | boolq passage: … question: …                 | False, True |
| cb    | super_glue/cb     | cb hypothesis: … premise: …                  | entailment, contradiction, neutral |
| copa  | super_glue/copa   | copa choice1: … choice2: … premise: … question: … | choice1, choice2 |
| rte   | super_glue/rte    | rte hypothesis: … premise: …                 | entailment, not_entailment |
| wic   | super_glue/wic    | wic sentence1: … sentence2: … word: …        | False, True |
| sst2  | glue/sst2         | sst2 sentence: …                             | negative, positive |
| mrpc  | glue/mrpc         | mrpc sentence1: … sentence2: …               | not_equivalent, equivalent |
| qqp   | glue/qqp          | qqp question1: … question2: …                | not_duplicate, duplicate |
| mnli  | glue/mnli         | mnli hypothesis: … premise: …                | entailment, neutral, contradiction |
| qnli  | glue/qnli         | qnli question: … sentence: …                 | entailment, not_entailment |

`glue_rte` (glue/rte, `"rte sentence1: … sentence2: …"`) is also registered.
"""

from keras_prompt.data.glue_formatter import GlueFormatter
from keras_prompt.data.task import Task
from keras_prompt.data.task_registry import _TASKS
from keras_prompt.data.task_registry import register_task
from keras_prompt.data.tfds_source import TFDSSource

# name: (tfds name, features, sort, labels, metrics, validation split, desc)
GLUE_TASKS = {
    "boolq": ("super_glue/boolq", ["question", "passage"], True,
              ["False", "True"], ("accuracy",), "validation",
              "SuperGLUE BoolQ: yes/no questions about a passage"),
    "cb": ("super_glue/cb", ["premise", "hypothesis"], True,
           ["entailment", "contradiction", "neutral"],
           ("macro_f1", "accuracy"), "validation",
           "SuperGLUE CommitmentBank: 3-way entailment"),
    "copa": ("super_glue/copa", ["premise", "choice1", "choice2", "question"],
             True, ["choice1", "choice2"], ("accuracy",), "validation",
             "SuperGLUE COPA: choice of plausible alternatives"),
    "rte": ("super_glue/rte", ["premise", "hypothesis"], True,
            ["entailment", "not_entailment"], ("accuracy",), "validation",
            "SuperGLUE RTE: recognizing textual entailment"),
    "wic": ("super_glue/wic", ["sentence1", "sentence2", "word"], False,
            ["False", "True"], ("accuracy",), "validation",
            "SuperGLUE WiC: is a word used in the same sense?"),
    "sst2": ("glue/sst2", ["sentence"], True, ["negative", "positive"],
             ("accuracy",), "validation", "GLUE SST-2: sentiment"),
    "mrpc": ("glue/mrpc", ["sentence1", "sentence2"], True,
             ["not_equivalent", "equivalent"], ("f1", "accuracy"),
             "validation", "GLUE MRPC: paraphrase detection"),
    "qqp": ("glue/qqp", ["question1", "question2"], True,
            ["not_duplicate", "duplicate"], ("f1", "accuracy"), "validation",
            "GLUE QQP: duplicate questions"),
    "mnli": ("glue/mnli", ["premise", "hypothesis"], True,
             ["entailment", "neutral", "contradiction"], ("accuracy",),
             "validation_matched", "GLUE MNLI: 3-way entailment (matched dev)"),
    "qnli": ("glue/qnli", ["question", "sentence"], True,
             ["entailment", "not_entailment"], ("accuracy",), "validation",
             "GLUE QNLI: does the sentence answer the question?"),
    "glue_rte": ("glue/rte", ["sentence1", "sentence2"], True,
                 ["entailment", "not_entailment"], ("accuracy",), "validation",
                 "GLUE RTE: recognizing textual entailment"),
}


def make_glue_task(name):
    """Build the built-in task `name` (one of `GLUE_TASKS`).

    Example:

    ```python
    task = make_glue_task("mrpc")
    task.metrics  # ("f1", "accuracy")
    ```
    """
    tfds_name, features, sort, labels, metrics, validation, desc = (
        GLUE_TASKS[name]
    )
    benchmark = "rte" if name == "glue_rte" else name
    return Task(
        name,
        TFDSSource(tfds_name, features),
        GlueFormatter(benchmark, features, sort_features=sort),
        label_words=labels,
        metrics=metrics,
        splits={"train": "train", "validation": validation,
                "test": validation.replace("validation", "test")},
        description=desc,
    )


for _name in GLUE_TASKS:
    if _name not in _TASKS:
        register_task(_name, lambda _name=_name: make_glue_task(_name))
