"""MultiRC, ReCoRD and WSC format their examples exactly as T5 does, make
T5's training and evaluation examples, and every built-in task has a
taskless twin. Expected strings: see `tests/data/superglue_examples.py`."""

import json

import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from tensorflow_datasets.text import super_glue

from keras_prompt.data import GLUE_TASKS
from keras_prompt.data import DataError
from keras_prompt.data import TextToTextPipeline
from keras_prompt.data import get_task
from keras_prompt.data import list_tasks
from keras_prompt.data import make_glue_task
from tests.conftest import make_tiny_preprocessor
from tests.data import superglue_examples as ex


def _column(examples, key):
    return [e[key] for e in examples]


def test_multirc_inputs_targets_and_groups_equal_t5():
    for taskless in (False, True):
        task = ex.task_on("multirc", ex.MULTIRC, taskless=taskless)
        got = ex.as_python(task.load("validation"))
        want = ex.T5_MULTIRC_INPUTS
        if taskless:
            want = [ex.taskless(t) for t in want]
            assert want[0].startswith("question: Where did Ann meet Bob?")
        assert _column(got, "inputs") == want
        assert _column(got, "targets") == ex.T5_MULTIRC_TARGETS
        assert _column(got, "label") == [1, 0, 1, 1, 0]
        assert _column(got, "group") == ["0/0"] * 3 + ["0/1"] * 2
    assert task.name == "taskless_multirc"
    assert task.metrics == ("f1a", "exact_match")
    assert task.label_words == ["False", "True"]


def test_record_training_has_one_example_per_answer_as_t5():
    for taskless in (False, True):
        task = ex.task_on("record", ex.RECORD, taskless=taskless)
        train = ex.as_python(task.load("train"))
        want = ex.T5_RECORD_INPUTS
        if taskless:
            want = [ex.taskless(t) for t in want]
            assert want[0].startswith("query: @placeholder beat")
        assert _column(train, "inputs") == want
        assert _column(train, "targets") == ex.T5_RECORD_TARGETS
        # The query without answers is unlabelled: training leaves it out.
        assert _column(train, "label") == [0, 0, 0, -1]
        assert _column(train, "group") == ["0/0", "0/0", "1/1", "2/2"]
        assert _column(train, "references") == [
            ["Ann", "Ann Lee"], ["Ann", "Ann Lee"], ["Eiffel Tower"], []]


def test_record_evaluation_has_one_example_per_query():
    task = ex.task_on("record", ex.RECORD)
    got = ex.as_python(task.load("validation"))
    # T5's evaluation copies, deduplicated by query as its metric does.
    assert _column(got, "inputs") == [ex.T5_RECORD_INPUTS[i] for i in (0, 2, 3)]
    assert _column(got, "targets") == ["Ann", "Eiffel Tower", "<unk>"]
    assert _column(got, "references") == [["Ann", "Ann Lee"],
                                          ["Eiffel Tower"], []]
    assert _column(got, "label") == [0, 0, -1]
    # `training=` overrides the split's default.
    assert len(list(task.load("validation", training=True))) == 4
    assert task.label_words is None and not task.has_fixed_labels
    assert task.main_metric == "squad_f1"


def test_wsc_marks_the_pronoun_and_trains_on_correct_referents_as_t5():
    for taskless in (False, True):
        task = ex.task_on("wsc", ex.WSC, taskless=taskless)
        evaluation = ex.as_python(task.load("validation"))
        train = ex.as_python(task.load("train"))
        want_eval, want_train = ex.T5_WSC_EVAL_INPUTS, ex.T5_WSC_TRAIN_INPUTS
        if taskless:
            want_eval = [ex.taskless(t) for t in want_eval]
            want_train = [ex.taskless(t) for t in want_train]
            assert want_eval[0] == "Mitchell asked Tom if *he* could lend some money."
        assert _column(evaluation, "inputs") == want_eval
        assert _column(evaluation, "targets") == ex.T5_WSC_EVAL_TARGETS
        assert _column(evaluation, "label") == [1, 0, 1, 0, 0, 1]
        assert _column(evaluation, "references") == [
            [t] for t in ex.T5_WSC_EVAL_TARGETS]
        assert _column(train, "inputs") == want_train
        assert _column(train, "targets") == ex.T5_WSC_TRAIN_TARGETS


def test_wsc_pronoun_at_the_start_and_a_wrong_index():
    # T5 refuses index 0; we mark the first word.
    rows = [{"text": "He said that Bob left .", "span1_index": 3,
             "span2_index": 0, "span1_text": "Bob", "span2_text": "He",
             "label": 1, "idx": 0}]
    task = ex.task_on("wsc", rows)
    assert ex.as_python(task.load("validation"))[0]["inputs"] == \
        "wsc: *He* said that Bob left ."
    rows[0]["span2_index"] = 2
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match="span2_index.*He said that Bob left"):
        list(ex.task_on("wsc", rows).load("validation"))


def test_every_builtin_task_has_a_taskless_twin():
    assert len(GLUE_TASKS) == 14
    names = set(list_tasks())
    for name in GLUE_TASKS:
        assert name in names and f"taskless_{name}" in names
    rte = get_task("taskless_rte")
    example = {"premise": tf.constant("P."), "hypothesis": tf.constant("H.")}
    assert rte.formatter(example).numpy().decode() == "hypothesis: H. premise: P."
    assert rte.name == "taskless_rte" and rte.label_words == [
        "entailment", "not_entailment"]
    glue_rte = make_glue_task("glue_rte", taskless=True)
    assert glue_rte.name == "taskless_glue_rte"
    assert glue_rte.formatter({"sentence1": tf.constant("A."),
                               "sentence2": tf.constant("B.")}
                              ).numpy().decode() == "sentence1: A. sentence2: B."
    # The run identity records the wrapped formatter.
    config = get_task("taskless_mrpc").formatter.get_config()
    assert config["formatter"] == "GlueFormatter"
    assert config["formatter_config"]["benchmark_name"] == "mrpc"
    with pytest.raises(DataError, match="Unknown GLUE/SuperGLUE task 'wnli'"):
        make_glue_task("wnli")


def test_free_form_examples_tokenize_and_batch(sentencepiece_proto):
    """References of varying number do not get in the way of the pipeline."""
    tokenizer = make_tiny_preprocessor(16, 4, proto=sentencepiece_proto).tokenizer
    task = ex.task_on("record", ex.RECORD)
    pipeline = TextToTextPipeline(tokenizer, 16, 4)
    train = task.load("train")
    assert pipeline.stats(train)["unlabeled"] == 1
    batches = list(pipeline.training_dataset(train, batch_size=3,
                                             shuffle=False, repeat=False))
    assert len(batches) == 1 and batches[0][1].shape == (3, 4)
    evaluation = list(pipeline.evaluation_dataset(task.load("validation"), 2))
    assert [b["is_padding"].numpy().tolist() for b in evaluation] == [
        [0, 0], [0, 1]]


def test_task_checks_its_kind_of_targets():
    from keras_prompt.data import RecordTargets
    from keras_prompt.data import Task

    source, formatter = ex.HandMadeSource(ex.RECORD), make_glue_task(
        "record").formatter
    with pytest.raises(DataError, match="needs its label words"):
        Task("t", source, formatter)
    with pytest.raises(DataError, match="both label_words"):
        Task("t", source, formatter, label_words=["a", "b"],
             targets=RecordTargets())
    with pytest.raises(DataError, match="'squad_f1' compares predicted texts"):
        Task("t", source, formatter, label_words=["a", "b"],
             metrics=["squad_f1"])


# --- The real TFDS path: TFDS's own SuperGLUE builder on local files. ---

def _multirc_rows():
    questions = {}
    for row in ex.MULTIRC:
        question = questions.setdefault(row["idx"]["question"], {
            "question": row["question"], "idx": row["idx"]["question"],
            "answers": []})
        question["answers"].append({"text": row["answer"],
                                    "idx": row["idx"]["answer"],
                                    "label": row["label"]})
    return [{"idx": 0, "passage": {"text": ex.MULTIRC[0]["paragraph"],
                                   "questions": list(questions.values())}}]


def _record_rows():
    rows = []
    for row in ex.RECORD:
        text = row["passage"]
        # ReCoRD marks entities by inclusive character offsets.
        entities = [{"start": text.find(e), "end": text.find(e) + len(e) - 1}
                    for e in row["entities"] if e in text]
        qa = {"query": row["query"], "idx": row["idx"]["query"],
              "answers": [{"text": a} for a in row["answers"]]}
        rows.append({"idx": row["idx"]["passage"],
                     "passage": {"text": text, "entities": entities},
                     "qas": [qa]})
    return rows


def _wsc_rows():
    return [{"text": r["text"], "idx": r["idx"], "label": bool(r["label"]),
             "target": {k: r[k] for k in ("span1_index", "span2_index",
                                          "span1_text", "span2_text")}}
            for r in ex.WSC]


class LocalSuperGlue(super_glue.SuperGlue, skip_registration=True):
    """TFDS's own SuperGLUE builder (same name, configs, features and
    example generation) over local SuperGLUE-format JSONL files."""

    name = "super_glue"
    jsonl_dir = None

    def _split_generators(self, dl_manager):
        path = f"{self.jsonl_dir}/{self.builder_config.name}.jsonl"
        return {split: self._generate_examples(path, split)
                for split in ("train", "validation")}


LocalSuperGlue.__module__ = "__main__"  # as in tfds_source_test.py


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tfds")
    LocalSuperGlue.jsonl_dir = str(directory)
    for config, rows in (("multirc", _multirc_rows()),
                         ("record", _record_rows()),
                         ("wsc.fixed", _wsc_rows())):
        (directory / f"{config}.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in rows))
        LocalSuperGlue(config=config, data_dir=str(directory)).download_and_prepare(
            download_config=tfds.download.DownloadConfig(try_download_gcs=False))
    return str(directory)


def test_tfds_superglue_reads_through_the_user_path(data_dir):
    multirc = ex.as_python(get_task("multirc").load("validation", data_dir))
    assert sorted(_column(multirc, "inputs")) == sorted(ex.T5_MULTIRC_INPUTS)
    assert sorted(_column(multirc, "group")) == ["0/0"] * 3 + ["0/1"] * 2
    record = ex.as_python(get_task("record").load("train", data_dir))
    # TFDS sorts a query's answers and the passage's entities.
    assert sorted(zip(_column(record, "inputs"), _column(record, "targets"))) \
        == sorted(zip(ex.T5_RECORD_INPUTS, ex.T5_RECORD_TARGETS))
    wsc = ex.as_python(get_task("taskless_wsc").load("validation", data_dir))
    assert sorted(_column(wsc, "inputs")) == sorted(
        ex.taskless(t) for t in ex.T5_WSC_EVAL_INPUTS)
    assert len(list(get_task("wsc").load("train", data_dir))) == 3
