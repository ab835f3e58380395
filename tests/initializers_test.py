import keras
import numpy as np
import pytest

from keras_prompt import initializers
from tests.conftest import make_tiny_preprocessor

EMBEDDINGS = np.random.default_rng(0).normal(size=(200, 8)).astype("float32")


def rows_to_ids(rows):
    """Which embedding row each prompt row was copied from."""
    ids = []
    for row in rows:
        matches = np.where((EMBEDDINGS == row).all(axis=1))[0]
        assert len(matches) == 1
        ids.append(int(matches[0]))
    return ids


def test_random_uniform_is_the_papers_range():
    init = initializers.get("random_uniform", seed=1)
    value = keras.ops.convert_to_numpy(init((100, 8)))
    assert value.min() >= -0.5 and value.max() <= 0.5
    assert abs(value.mean()) < 0.05


def test_sampled_vocab_copies_common_token_rows():
    init = initializers.SampledVocab(EMBEDDINGS, num_candidates=50, seed=3)
    ids = rows_to_ids(keras.ops.convert_to_numpy(init((20, 8))))
    assert all(3 <= i < 53 for i in ids)
    assert len(set(ids)) == 20  # without replacement


def test_sampled_vocab_is_seeded_and_skips_excluded_ids():
    first = initializers.SampledVocab(EMBEDDINGS, 10, excluded_ids=[3, 4], seed=5)
    second = initializers.SampledVocab(EMBEDDINGS, 10, excluded_ids=[3, 4], seed=5)
    a = keras.ops.convert_to_numpy(first((30, 8)))
    np.testing.assert_array_equal(a, keras.ops.convert_to_numpy(second((30, 8))))
    ids = rows_to_ids(a)  # 30 rows from 6 candidates: with replacement
    assert set(ids) <= {5, 6, 7, 8, 9, 10, 11, 12}


def test_class_labels_rows_are_label_means_then_sampled():
    init = initializers.ClassLabels(
        EMBEDDINGS, label_token_ids=[[10, 11], [12]], num_candidates=20, seed=0
    )
    value = keras.ops.convert_to_numpy(init((5, 8)))
    np.testing.assert_allclose(value[0], EMBEDDINGS[[10, 11]].mean(0), atol=1e-6)
    np.testing.assert_allclose(value[1], EMBEDDINGS[12], atol=1e-6)
    assert all(3 <= i < 23 for i in rows_to_ids(value[2:]))


def test_class_labels_with_more_labels_than_rows_truncates():
    init = initializers.ClassLabels(EMBEDDINGS, [[5], [6], [7]])
    value = keras.ops.convert_to_numpy(init((2, 8)))
    np.testing.assert_array_equal(value, EMBEDDINGS[[5, 6]])


def test_text_tiles_and_truncates():
    init = initializers.Text(EMBEDDINGS, [20, 21, 22])
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(init((7, 8))), EMBEDDINGS[[20, 21, 22, 20, 21, 22, 20]]
    )
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(init((2, 8))), EMBEDDINGS[[20, 21]]
    )


def test_from_array_and_shape_errors():
    array = np.arange(16, dtype="float32").reshape(2, 8)
    init = initializers.get(array)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(init((2, 8))), array)
    with pytest.raises(ValueError, match=r"\[prompt_length, hidden_dim\]"):
        init((3, 8))
    with pytest.raises(ValueError, match="hidden size"):
        initializers.SampledVocab(EMBEDDINGS)((2, 4))


def test_get_by_name_with_tokenizer():
    tokenizer = make_tiny_preprocessor().tokenizer
    embeddings = np.random.default_rng(1).normal(size=(128, 8)).astype("float32")
    init = initializers.get(
        "class_labels", embeddings=embeddings, tokenizer=tokenizer,
        labels=["positive"], seed=0,
    )
    value = keras.ops.convert_to_numpy(init((3, 8)))
    ids = np.asarray(tokenizer("positive"))
    np.testing.assert_allclose(value[0], embeddings[ids].mean(0), atol=1e-6)

    text = initializers.get(
        "text", embeddings=embeddings, tokenizer=tokenizer, text="the cat"
    )
    ids = np.asarray(tokenizer("the cat"))
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(text((len(ids), 8))), embeddings[ids]
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"identifier": "glorot"}, "Unknown prompt initializer"),
        ({"identifier": "sampled_vocab"}, "needs embeddings"),
        ({"identifier": "class_labels", "embeddings": EMBEDDINGS}, "label words"),
        ({"identifier": "text", "embeddings": EMBEDDINGS}, "init_text"),
        (
            {"identifier": "text", "embeddings": EMBEDDINGS, "text": "hi"},
            "needs a tokenizer",
        ),
    ],
)
def test_get_errors(kwargs, message):
    identifier = kwargs.pop("identifier")
    with pytest.raises(ValueError, match=message):
        initializers.get(identifier, **kwargs)


def test_out_of_vocabulary_label_ids_are_rejected():
    with pytest.raises(ValueError, match="outside the vocabulary"):
        initializers.ClassLabels(EMBEDDINGS, [[5, 999]])


def test_initializers_serialize():
    init = initializers.ClassLabels(EMBEDDINGS[:10], [[4]], num_candidates=5, seed=2)
    restored = keras.initializers.deserialize(keras.initializers.serialize(init))
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(restored((3, 8))),
        keras.ops.convert_to_numpy(init((3, 8))),
    )


def _prompt_file(directory, prompt, **metadata):
    from keras_prompt.prompts import save_prompt_file

    path = str(directory / "prompt.safetensors")
    return save_prompt_file(
        path, prompt, {"backbone_fingerprint": "f" * 64, **metadata}
    )


def test_from_file_starts_from_the_file_and_records_it(tmp_path):
    import hashlib

    prompt = EMBEDDINGS[:3]
    path = _prompt_file(tmp_path, prompt, task="mnli", training_steps=40)
    # A training output directory names its prompt.safetensors.
    init = initializers.get("from_file", path=str(tmp_path))
    assert isinstance(init, initializers.FromFile) and init.path == path
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(init((3, 8))), prompt)
    with open(path, "rb") as file:
        sha256 = hashlib.sha256(file.read()).hexdigest()
    assert init.source_metadata() == {
        "init_file": path, "init_file_sha256": sha256, "init_task": "mnli",
        "init_training_steps": 40}
    restored = keras.initializers.deserialize(keras.initializers.serialize(init))
    np.testing.assert_array_equal(restored.array, prompt)
    with pytest.raises(ValueError, match="needs the prompt file: pass `init_file"):
        initializers.get("from_file")


@pytest.mark.parametrize("fingerprint, length, hidden, message", [
    ("0" * 64, 3, 8, "backbone fingerprint ffffffffffff… does not match this "
     "backbone's 000000000000…"),
    ("f" * 64, 3, 16, "hidden size 8 does not match the backbone's hidden_dim "
     "16"),
    ("f" * 64, 5, 8, "prompt length 3 does not match the model's "
     "prompt_length 5. Build the model with `prompt_length=3`."),
])
def test_from_file_refuses_another_backbone_or_shape(
        tmp_path, fingerprint, length, hidden, message):
    path = _prompt_file(tmp_path, EMBEDDINGS[:3])
    init = initializers.FromFile(path)
    with pytest.raises(ValueError) as error:
        init.check(fingerprint=fingerprint, prompt_length=length,
                   hidden_dim=hidden)
    text = str(error.value)
    assert text.startswith(f"The initial prompt file '{path}': ")
    assert message in text
    if length == 3:  # A backbone mismatch says what to do instead.
        assert text.endswith("Start from a prompt file trained on this "
                             "backbone, or use another prompt initializer.")
