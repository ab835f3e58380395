"""Hand-made SuperGLUE MultiRC, ReCoRD and WSC examples in TFDS's structure
(nested `idx` dicts, list features as 1-D string tensors), what T5's own code
makes of them, and a source that serves them to a `Task`.

The expected strings and metric values were produced by running T5's real
code (google-research/text-to-text-transfer-transformer at e081111c:
`t5/data/preprocessors.py` `glue` with MultiRC's settings from
`glue_utils.get_glue_text_preprocessor`, `record`, `wsc_simple` with
`correct_referent_only=True` and `False`; `t5/data/postprocessors.py`
`multirc`, `record`, `wsc_simple`; `t5/evaluation/metrics.py`
`multirc_f1_over_all_answers`, `mean_group_metric(all_match)`,
`deduplicate_metric(squad)`) and the prompt-tuning code's
`remove_first_text_token` (google-research/prompt-tuning at 72285eea) on
exactly these examples, in a throwaway virtualenv on top of this project's
TensorFlow 2.21; the outputs were pasted here verbatim. In that run every
`remove_first_text_token` output was T5's string without its first word and
the space after it, which `taskless()` computes for the taskless tests.
"""

import tensorflow as tf

_PARAGRAPH = ("<b>Sent 1: </b>Ann met Bob in Rome.<br><b>Sent 2: </b>They ate "
              "pasta.<br>")
# Paragraph 0: question 0 has three answer options, question 1 two.
MULTIRC = [
    {"paragraph": _PARAGRAPH, "question": "Where did Ann meet Bob?",
     "answer": "In Rome", "label": 1,
     "idx": {"paragraph": 0, "question": 0, "answer": 0}},
    {"paragraph": _PARAGRAPH, "question": "Where did Ann meet Bob?",
     "answer": "Paris", "label": 0,
     "idx": {"paragraph": 0, "question": 0, "answer": 1}},
    {"paragraph": _PARAGRAPH, "question": "Where did Ann meet Bob?",
     "answer": "Italy's capital", "label": 1,
     "idx": {"paragraph": 0, "question": 0, "answer": 2}},
    {"paragraph": _PARAGRAPH, "question": "What did they eat?",
     "answer": "Pasta", "label": 1,
     "idx": {"paragraph": 0, "question": 1, "answer": 3}},
    {"paragraph": _PARAGRAPH, "question": "What did they eat?",
     "answer": "Fish", "label": 0,
     "idx": {"paragraph": 0, "question": 1, "answer": 4}},
]
_T5_MULTIRC_TAIL = "paragraph: Sent 1: Ann met Bob in Rome. Sent 2: They ate pasta. "
T5_MULTIRC_INPUTS = [
    "multirc question: Where did Ann meet Bob? answer: In Rome " + _T5_MULTIRC_TAIL,
    "multirc question: Where did Ann meet Bob? answer: Paris " + _T5_MULTIRC_TAIL,
    "multirc question: Where did Ann meet Bob? answer: Italy's capital "
    + _T5_MULTIRC_TAIL,
    "multirc question: What did they eat? answer: Pasta " + _T5_MULTIRC_TAIL,
    "multirc question: What did they eat? answer: Fish " + _T5_MULTIRC_TAIL,
]
T5_MULTIRC_TARGETS = ["True", "False", "True", "True", "False"]
# Greedy outputs scored by T5's postprocessor and metrics: question 0 is
# wrong (an invalid output and a missed True), question 1 right.
MULTIRC_PREDICTIONS = ["True", "banana", "False", "True", "False"]
T5_MULTIRC_METRICS = {"f1": 66.66666666666666, "exact_match": 50.0}

RECORD = [
    {"passage": "Ann Lee won the race in Rome.\n@highlight\nAnn is the "
                "champion\n@highlight\n\"It was hard,\" she said.\n@highlight"
                "\nBob Smith came second",
     "query": "@placeholder beat Bob Smith in the final.",
     "entities": ["Ann", "Ann Lee", "Bob Smith", "Rome"],
     "answers": ["Ann", "Ann Lee"],
     "idx": {"passage": 0, "query": 0}},
    {"passage": "The Eiffel Tower is in Paris!\n@highlight\nIt is tall?\n"
                "@highlight\nVisitors love it",
     "query": "Tourists visit the @placeholder every year.",
     "entities": ["Eiffel Tower", "Paris"], "answers": ["Eiffel Tower"],
     "idx": {"passage": 1, "query": 1}},
    # As in the test split: no answers.
    {"passage": "Nobody was here.", "query": "Who is @placeholder?",
     "entities": ["Nobody"], "answers": [],
     "idx": {"passage": 2, "query": 2}},
]
_T5_RECORD_0 = (
    "record query: @placeholder beat Bob Smith in the final. entities: Ann, "
    "Ann Lee, Bob Smith, Rome passage: Ann Lee won the race in Rome. Ann is "
    "the champion. \"It was hard,\" she said. Bob Smith came second")
_T5_RECORD_1 = (
    "record query: Tourists visit the @placeholder every year. entities: "
    "Eiffel Tower, Paris passage: The Eiffel Tower is in Paris! It is tall? "
    "Visitors love it")
_T5_RECORD_2 = ("record query: Who is @placeholder? entities: Nobody passage: "
                "Nobody was here.")
# T5 makes one example per answer (and one "<unk>" for none), in training and
# evaluation alike.
T5_RECORD_INPUTS = [_T5_RECORD_0, _T5_RECORD_0, _T5_RECORD_1, _T5_RECORD_2]
T5_RECORD_TARGETS = ["Ann", "Ann Lee", "Eiffel Tower", "<unk>"]
# One prediction per query; T5 scores the 3 answered copies deduplicated.
RECORD_PREDICTIONS = ["ann lee!", "the tower"]
T5_RECORD_METRICS = {"em": 50.0, "f1": 83.33333333333333}

WSC = [
    {"text": "Mitchell asked Tom if he could lend some money.",
     "span1_index": 2, "span2_index": 4, "span1_text": "Tom",
     "span2_text": "he", "label": 1, "idx": 0},
    {"text": "The trophy does not fit into the brown suitcase because it is "
             "too large .",
     "span1_index": 5, "span2_index": 10, "span1_text": "the brown suitcase",
     "span2_text": "it", "label": 0, "idx": 1},
    # The pronoun is the last word: T5 leaves a space after it.
    {"text": "Bob paid Sam's brother and thanked him", "span1_index": 2,
     "span2_index": 6, "span1_text": "Sam's brother", "span2_text": "him",
     "label": 1, "idx": 2},
    # Another standalone "X": T5 marks every " X " after blanking the pronoun.
    {"text": "Player X told Bob that he won .", "span1_index": 3,
     "span2_index": 5, "span1_text": "Bob", "span2_text": "he", "label": 0,
     "idx": 3},
    # T5's two special cases of wsc.fixed (span2_index points elsewhere).
    {"text": "The boy continued to whip the pony , and eventually the pony "
             "threw him over. John laughed out quite loud. \"Good for him,\" "
             "he said. ",
     "span1_index": 0, "span2_index": 22, "span1_text": "John",
     "span2_text": "him", "label": 0, "idx": 4},
    {"text": "When they had eventually calmed down a bit , and had gotten "
             "home, Mr. Farley put the magic pebble in an iron safe . Some "
             "day they might want to use it , but really for now, what more "
             "could they wish for?",
     "span1_index": 22, "span2_index": 29, "span1_text": "an iron safe",
     "span2_text": "it", "label": 1, "idx": 5},
]
T5_WSC_EVAL_INPUTS = [
    "wsc: Mitchell asked Tom if *he* could lend some money.",
    "wsc: The trophy does not fit into the brown suitcase because *it* is "
    "too large .",
    "wsc: Bob paid Sam's brother and thanked *him* ",
    "wsc: Player *he* told Bob that *he* won .",
    "wsc: The boy continued to whip the pony , and eventually the pony threw "
    "him over. John laughed out quite loud. \"Good for *him* ,\" he said.",
    "wsc: When they had eventually calmed down a bit , and had gotten home, "
    "Mr. Farley put the magic pebble in an iron safe . Some day they might "
    "want to use *it* , but really for now, what more could they wish for?",
]
T5_WSC_EVAL_TARGETS = ["Tom", "the brown suitcase", "Sam's brother", "Bob",
                       "John", "an iron safe"]
# Training keeps the correct referents only (label True): examples 0, 2, 5.
T5_WSC_TRAIN_INPUTS = [T5_WSC_EVAL_INPUTS[i] for i in (0, 2, 5)]
T5_WSC_TRAIN_TARGETS = ["Tom", "Sam's brother", "an iron safe"]
# (prediction, referent) -> T5's `wsc_simple` postprocessor.
T5_WSC_POSTPROCESS = [
    (("Tom", "Tom"), 1),
    (("the brown suitcase", "brown suitcase"), 1),
    (("The Suitcase", "the brown suitcase"), 1),
    (("trophy", "the brown suitcase"), 0),
    (("fuzzy bunny", "the bunny"), 1),
    (("Bob", "Bob's hat"), 0),
    (("Bob's hat", "Bob's hat"), 1),
    (("his dog", "the dog"), 1),
    (("", "Tom"), -1),
    (("the", "Tom"), -1),
    (("  Tom  ", "tom"), 1),
    (("Sam's", "Sam's brother"), 1),
    (("Mr. Farley", "Farley"), 1),
]


def taskless(text):
    """T5's input without the task name, as `remove_first_text_token` makes
    it on these examples."""
    return text.split(" ", 1)[1]


def _spec(value):
    if isinstance(value, dict):
        return {key: _spec(item) for key, item in value.items()}
    if isinstance(value, list):
        return tf.TensorSpec([None], tf.string)
    if isinstance(value, str):
        return tf.TensorSpec([], tf.string)
    return tf.TensorSpec([], tf.int32)


class HandMadeSource:
    """A task source serving rows as TFDS would: nested `idx` dicts of
    int32, sequences of text as 1-D string tensors, `label` as int64 (a
    `ClassLabel`); the same rows for every split unless given per split."""

    def __init__(self, rows):
        self.rows = rows if isinstance(rows, dict) else {None: rows}

    def _rows(self, split):
        return self.rows.get(split, self.rows.get(None))

    def num_examples(self, split, data_dir=None):
        return len(self._rows(split))

    def load(self, split, data_dir=None):
        rows = self._rows(split)
        spec = _spec(rows[0])
        if "label" in spec:
            spec["label"] = tf.TensorSpec([], tf.int64)
        return tf.data.Dataset.from_generator(lambda: iter(rows),
                                              output_signature=spec)


def task_on(name, rows, taskless=False):
    """The built-in task `name` reading `rows` instead of TFDS."""
    from keras_prompt.data import make_glue_task

    task = make_glue_task(name, taskless=taskless)
    task.source = HandMadeSource(rows)
    return task


def as_python(dataset):
    """A dataset's examples as dicts of Python values (bytes decoded)."""
    def convert(value):
        value = value.numpy() if hasattr(value, "numpy") else value
        if isinstance(value, bytes):
            return value.decode("utf-8")
        if hasattr(value, "tolist"):
            value = value.tolist()
        if isinstance(value, list):
            return [convert(v) for v in value]
        return value

    return [{key: convert(value) for key, value in example.items()}
            for example in dataset]
