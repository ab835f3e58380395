"""A real TFDS dataset, prepared offline in a temp data_dir, read through the
same code path as a user's `glue/mrpc`."""

import numpy as np
import pytest
import tensorflow_datasets as tfds
from tensorflow_datasets.text import glue

from keras_prompt.data import DataError
from keras_prompt.data import get_task

ROWS = {
    "train": [("The cat sat.", "A cat was sitting.", 1),
              ("Dogs bark.", "It rains today.", 0),
              ("He left early.", "He went away early.", 1)],
    "validation": [("A red ball.", "A ball that is red.", 1),
                   ("The sun rose.", "Stocks fell.", 0)],
}


class LocalMrpc(glue.Glue, skip_registration=True):
    """TFDS's own GLUE builder (same name, config, version and features),
    generating from local rows instead of downloading."""

    name = "glue"

    def _split_generators(self, dl_manager):
        return {split: self._generate_examples(rows)
                for split, rows in ROWS.items()}

    def _generate_examples(self, rows):
        for i, (s1, s2, label) in enumerate(rows):
            yield i, {"sentence1": s1, "sentence2": s2, "label": label,
                      "idx": i}


# TFDS locates a builder's code from its top-level package; `tests` is
# ambiguous in this environment, so present the class as a script's.
LocalMrpc.__module__ = "__main__"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("tfds"))
    builder = LocalMrpc(config="mrpc", data_dir=directory)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(try_download_gcs=False))
    return directory


def test_glue_mrpc_reads_through_the_user_path(data_dir):
    task = get_task("mrpc")
    assert task.num_examples("validation", data_dir) == 2
    examples = [{k: v.numpy() for k, v in ex.items()}
                for ex in task.load("validation", data_dir=data_dir)]
    got = sorted((e["inputs"].decode(), e["targets"].decode(), e["label"])
                 for e in examples)
    want = sorted((f"mrpc sentence1: {a} sentence2: {b}",
                   ["not_equivalent", "equivalent"][label], label)
                  for a, b, label in ROWS["validation"])
    assert got == want
    assert len(list(task.load("train", data_dir=data_dir))) == 3
    # Metrics of the task: F1 first.
    metrics = task.compute_metrics(np.array([1, 0]), np.array([1, 1]))
    assert metrics["f1"] == pytest.approx(100 * 2 / 3)


def test_unprepared_dataset_is_a_clear_error(data_dir, tmp_path):
    with pytest.raises(DataError) as e:
        get_task("rte").load("train", data_dir=data_dir)
    message = str(e.value)
    assert "super_glue/rte" in message and "not prepared" in message
    assert "tfds build super_glue/rte" in message and data_dir in message
    with pytest.raises(DataError, match="no split 'test_matched'"):
        get_task("mrpc").load("test_matched", data_dir=data_dir)
