"""Read a prepared TensorFlow Datasets dataset, offline."""

import logging
import os

from keras_prompt.data.data_error import DataError

logger = logging.getLogger(__name__)


def _default_data_dir():
    return os.environ.get(
        "TFDS_DATA_DIR", os.path.join(os.path.expanduser("~"), "tensorflow_datasets")
    )


class TFDSSource:
    """A TFDS dataset such as `"glue/mrpc"` read from a local `data_dir`.

    Nothing is downloaded: the dataset must have been prepared once (e.g. with
    `tfds build glue/mrpc --data_dir DIR` on a machine with network access).
    When it is not, `load` raises `DataError` saying where it looked and how
    to prepare it.

    Args:
        name: the TFDS name with config, e.g. `"super_glue/rte"`.
        text_features: the feature names the formatter needs.
        extra_features: further features to keep as they are (nested
            dicts and sequences too), e.g. `["idx", "answers"]` for the
            task's targets and groups.
        has_label: whether the dataset has a class `label` feature (loaded
            as int32); SuperGLUE ReCoRD has none.

    Example:

    ```python
    source = TFDSSource("glue/mrpc", ["sentence1", "sentence2"])
    ds = source.load("validation", data_dir="~/tensorflow_datasets")
    ```
    """

    def __init__(self, name, text_features=(), extra_features=(),
                 has_label=True):
        self.name = name
        self.text_features = list(text_features)
        self.extra_features = list(extra_features)
        self.has_label = bool(has_label)

    def describe(self, split):
        return f"TFDS '{self.name}' split '{split}'"

    def _builder(self, data_dir):
        import tensorflow_datasets as tfds

        data_dir = os.path.expanduser(data_dir) if data_dir else None
        where = data_dir or _default_data_dir()
        how = (
            f"Prepare it once with network access: `tfds build {self.name} "
            f"--data_dir {where}` (or `tfds.builder('{self.name}', "
            f"data_dir='{where}').download_and_prepare()`), then pass "
            "data_dir; or train on your own CSV/JSONL files (a file task)."
        )
        try:
            builder = tfds.builder(self.name, data_dir=data_dir, try_gcs=False)
        except Exception as e:  # DatasetNotFoundError and friends.
            raise DataError(
                f"TFDS dataset '{self.name}' is not available in '{where}': "
                f"{e}. {how}"
            ) from e
        if not builder.is_prepared():
            raise DataError(
                f"TFDS dataset '{self.name}' is not prepared in '{where}' "
                f"(no files under '{builder.data_dir}'). Nothing is downloaded "
                f"at training time. {how}"
            )
        return builder

    def num_examples(self, split, data_dir=None):
        """The number of examples of `split` as recorded by TFDS."""
        builder = self._builder(data_dir)
        return self._check_split(builder, split, data_dir).num_examples

    def _check_split(self, builder, split, data_dir):
        splits = builder.info.splits
        if split not in splits:
            raise DataError(
                f"TFDS dataset '{self.name}' in '{data_dir or _default_data_dir()}'"
                f" has no split '{split}'; it has {sorted(splits.keys())}."
            )
        info = splits[split]
        if info.num_examples == 0:
            raise DataError(
                f"The '{split}' split of TFDS dataset '{self.name}' is empty."
            )
        return info

    def load(self, split, data_dir=None):
        """Return a `tf.data.Dataset` of feature dicts with an int32
        `label` (when the dataset has a label feature)."""
        import tensorflow as tf
        import tensorflow_datasets as tfds

        builder = self._builder(data_dir)
        self._check_split(builder, split, data_dir)
        features = builder.info.features
        keep = self.text_features + [
            f for f in self.extra_features if f not in self.text_features]
        if self.has_label:
            keep.append("label")
        missing = [f for f in keep if f not in features]
        if missing:
            raise DataError(
                f"TFDS dataset '{self.name}' has no feature(s) {missing}; it "
                f"has {sorted(features.keys())}. Is it the right dataset?"
            )
        ds = tfds.load(
            self.name,
            split=split,
            data_dir=os.path.expanduser(data_dir) if data_dir else None,
            download=False,
            shuffle_files=False,
            try_gcs=False,
        )
        has_label = self.has_label

        def select(example):
            out = {k: example[k] for k in keep}
            if has_label:
                out["label"] = tf.cast(out["label"], tf.int32)
            return out

        return ds.map(select, num_parallel_calls=tf.data.AUTOTUNE)

    def get_config(self):
        config = {"name": self.name, "text_features": self.text_features}
        # Only when set, so that the configs of the classification tasks
        # (part of a training run's identity) stay as they were.
        if self.extra_features:
            config["extra_features"] = self.extra_features
        if not self.has_label:
            config["has_label"] = False
        return config
