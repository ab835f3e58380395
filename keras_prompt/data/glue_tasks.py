"""Built-in GLUE and SuperGLUE tasks with T5's formatting.

Feature names are those of the TFDS `glue/*` and `super_glue/*` datasets and
the formats follow T5's preprocessors: `preprocessors.glue` (the benchmark
name, then `"<feature>: <value>"` for the features sorted by name; WiC and
MultiRC use T5's explicit orders), `preprocessors.record` and
`preprocessors.wsc_simple`. The label words are the TFDS class names, which
T5 uses as targets; ReCoRD and WSC have free-form targets (an entity, a
referent). Metrics are T5's, the first one the main metric.

| task    | TFDS                 | input                                             | targets | metrics |
|---------|----------------------|---------------------------------------------------|---------|---------|
| boolq   | super_glue/boolq     | boolq passage: … question: …                      | False, True | accuracy |
| cb      | super_glue/cb        | cb hypothesis: … premise: …                       | entailment, contradiction, neutral | macro_f1, accuracy |
| copa    | super_glue/copa      | copa choice1: … choice2: … premise: … question: … | choice1, choice2 | accuracy |
| multirc | super_glue/multirc   | multirc question: … answer: … paragraph: …        | False, True | f1a, exact_match |
| record  | super_glue/record    | record query: … entities: …, … passage: …         | an entity | squad_f1, squad_exact_match |
| rte     | super_glue/rte       | rte hypothesis: … premise: …                      | entailment, not_entailment | accuracy |
| wic     | super_glue/wic       | wic sentence1: … sentence2: … word: …             | False, True | accuracy |
| wsc     | super_glue/wsc.fixed | wsc: … *pronoun* …                                | the referent | accuracy |
| sst2    | glue/sst2            | sst2 sentence: …                                  | negative, positive | accuracy |
| mrpc    | glue/mrpc            | mrpc sentence1: … sentence2: …                    | not_equivalent, equivalent | f1, accuracy |
| qqp     | glue/qqp             | qqp question1: … question2: …                     | not_duplicate, duplicate | f1, accuracy |
| mnli    | glue/mnli            | mnli hypothesis: … premise: …                     | entailment, neutral, contradiction | accuracy |
| qnli    | glue/qnli            | qnli question: … sentence: …                      | entailment, not_entailment | accuracy |

`glue_rte` (glue/rte, `"rte sentence1: … sentence2: …"`) is also registered,
and every task has a `taskless_<name>` twin whose input lacks the first word
(the task name), as the prompt-tuning paper's taskless tasks.

MultiRC (T5: HTML removed from the paragraph): F1a is binary F1 over all
answer options, exact match the share of questions (paragraph and question
id) whose answers are all labelled correctly; F1a is the main metric, the
first of SuperGLUE's "F1a/EM" pair and of T5's metrics. ReCoRD: one training
example per answer, one evaluation example per query scored by its best
answer; token F1 is the main metric (SuperGLUE reports "F1/EM", F1 first).
WSC trains on correct referents only and counts a prediction as naming the
candidate by T5's `wsc_simple` postprocessor; accuracy compares that with
the label.
"""

from keras_prompt.data.data_error import DataError
from keras_prompt.data.glue_formatter import GlueFormatter
from keras_prompt.data.record_formatter import RecordFormatter
from keras_prompt.data.record_targets import RecordTargets
from keras_prompt.data.task import Task
from keras_prompt.data.task_registry import _TASKS
from keras_prompt.data.task_registry import register_task
from keras_prompt.data.taskless_formatter import TasklessFormatter
from keras_prompt.data.tfds_source import TFDSSource
from keras_prompt.data.wsc_formatter import WscFormatter
from keras_prompt.data.wsc_targets import WscTargets

# name: (tfds name, features, sort, labels, metrics, validation split, desc);
# labels are `None` for free-form targets (see `_FREE_FORM`).
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
    "multirc": ("super_glue/multirc", ["question", "answer", "paragraph"],
                False, ["False", "True"], ("f1a", "exact_match"), "validation",
                "SuperGLUE MultiRC: is an answer to a question about a "
                "paragraph true?"),
    "record": ("super_glue/record", ["query", "entities", "passage"], False,
               None, ("squad_f1", "squad_exact_match"), "validation",
               "SuperGLUE ReCoRD: the entity that fills a cloze query"),
    "rte": ("super_glue/rte", ["premise", "hypothesis"], True,
            ["entailment", "not_entailment"], ("accuracy",), "validation",
            "SuperGLUE RTE: recognizing textual entailment"),
    "wic": ("super_glue/wic", ["sentence1", "sentence2", "word"], False,
            ["False", "True"], ("accuracy",), "validation",
            "SuperGLUE WiC: is a word used in the same sense?"),
    "wsc": ("super_glue/wsc.fixed", ["text", "span2_index", "span2_text"],
            False, None, ("accuracy",), "validation",
            "SuperGLUE WSC: the referent of a pronoun (T5's wsc_simple)"),
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


# What the tasks beyond T5's `glue` preprocessor need besides their entry in
# `GLUE_TASKS`: formatter, targets and groups.
_FREE_FORM = {
    "record": {"formatter": RecordFormatter, "targets": RecordTargets,
               "has_label": False, "group_by": ("idx/passage", "idx/query")},
    "wsc": {"formatter": WscFormatter, "targets": WscTargets},
}
_GROUPED = {
    # The answer options of one question. T5 groups by the question id
    # alone; with the paragraph id too a group stays one question even
    # where question ids repeat across paragraphs.
    "multirc": {"group_by": ("idx/paragraph", "idx/question")},
}

TASKLESS_PREFIX = "taskless_"


def make_glue_task(name, taskless=False):
    """Build the built-in task `name` (one of `GLUE_TASKS`).

    Args:
        name: the task, e.g. `"rte"`.
        taskless: drop the task name from the front of every input (the
            paper's taskless tasks, e.g. `"hypothesis: … premise: …"`); the
            task is then named `"taskless_<name>"`.

    Example:

    ```python
    task = make_glue_task("mrpc")
    task.metrics  # ("f1", "accuracy")
    make_glue_task("rte", taskless=True).name  # "taskless_rte"
    ```
    """
    if name not in GLUE_TASKS:
        raise DataError(
            f"Unknown GLUE/SuperGLUE task '{name}'; the built-in ones are "
            f"{', '.join(sorted(GLUE_TASKS))} (pass taskless=True for the "
            "taskless variant)."
        )
    tfds_name, features, sort, labels, metrics, validation, desc = (
        GLUE_TASKS[name]
    )
    special = _FREE_FORM.get(name) or _GROUPED.get(name) or {}
    targets = special["targets"]() if "targets" in special else None
    if "formatter" in special:
        formatter = special["formatter"]()
    else:
        benchmark = "rte" if name == "glue_rte" else name
        formatter = GlueFormatter(benchmark, features, sort_features=sort)
    # The source also keeps what the targets and the group ids read.
    group_by = special.get("group_by")
    extra_features = [c for c in (targets.columns if targets else [])
                      if c != "label"]
    extra_features += sorted({path.split("/")[0] for path in group_by or ()})
    if taskless:
        formatter = TasklessFormatter(formatter)
        name, desc = TASKLESS_PREFIX + name, desc + " (taskless input)"
    return Task(
        name,
        TFDSSource(tfds_name, features, extra_features=extra_features,
                   has_label=special.get("has_label", True)),
        formatter,
        label_words=labels,
        metrics=metrics,
        splits={"train": "train", "validation": validation,
                "test": validation.replace("validation", "test")},
        description=desc,
        targets=targets,
        group_by=group_by,
    )


for _name in GLUE_TASKS:
    if _name not in _TASKS:
        register_task(_name, lambda _name=_name: make_glue_task(_name))
    if TASKLESS_PREFIX + _name not in _TASKS:
        register_task(TASKLESS_PREFIX + _name,
                      lambda _name=_name: make_glue_task(_name, taskless=True))
