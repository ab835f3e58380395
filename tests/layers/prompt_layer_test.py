import keras
import numpy as np
import pytest

from keras_prompt import PromptLayer


def test_prepends_prompt_and_extends_mask():
    layer = PromptLayer(prompt_length=3, hidden_dim=4)
    embeddings = np.random.default_rng(0).random((2, 5, 4)).astype("float32")
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], "int32")

    prompted, prompted_mask = layer(embeddings, mask)

    prompt = layer.prompt.numpy()
    assert prompted.shape == (2, 8, 4)
    np.testing.assert_array_equal(prompted[:, :3], np.stack([prompt, prompt]))
    np.testing.assert_array_equal(prompted[:, 3:], embeddings)
    np.testing.assert_array_equal(
        prompted_mask,
        [[1, 1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1, 1, 1]],
    )
    assert prompted_mask.dtype == "int32"


def test_bool_mask_keeps_dtype():
    layer = PromptLayer(prompt_length=2, hidden_dim=4)
    _, mask = layer(np.zeros((1, 3, 4), "float32"), np.array([[True, True, False]]))
    assert mask.dtype == "bool"
    np.testing.assert_array_equal(mask, [[True, True, True, True, False]])


def test_default_initializer_is_uniform_half():
    layer = PromptLayer(prompt_length=50, hidden_dim=40)
    layer.build()
    prompt = layer.prompt.numpy()
    assert prompt.min() >= -0.5 and prompt.max() <= 0.5
    assert prompt.std() > 0.2  # uniform on [-0.5, 0.5] has std 0.289


def test_per_example_prompt_overrides_weight():
    layer = PromptLayer(prompt_length=2, hidden_dim=3)
    embeddings = np.zeros((2, 1, 3), "float32")
    prompts = np.arange(12, dtype="float32").reshape(2, 2, 3)

    prompted, _ = layer(embeddings, np.ones((2, 1), "int32"), prompt=prompts)

    np.testing.assert_array_equal(prompted[:, :2], prompts)


def test_wrong_per_example_prompt_shape_is_rejected():
    layer = PromptLayer(prompt_length=2, hidden_dim=3)
    with pytest.raises(ValueError, match=r"\[batch, 2, 3\]"):
        layer(
            np.zeros((2, 1, 3), "float32"),
            np.ones((2, 1), "int32"),
            prompt=np.zeros((2, 4, 3), "float32"),
        )


@pytest.mark.parametrize("bad", [-3, 2.5, True])
def test_bad_prompt_length(bad):
    with pytest.raises(ValueError, match="prompt_length"):
        PromptLayer(prompt_length=bad, hidden_dim=4)


def test_zero_length_adds_nothing():
    """`prompt_length=0` is the frozen model alone (prompt design)."""
    layer = PromptLayer(prompt_length=0, hidden_dim=4)
    embeddings = np.random.default_rng(0).normal(size=(2, 3, 4)).astype("float32")
    mask = np.array([[1, 1, 0], [1, 0, 0]], "int32")
    prompted, prompted_mask = layer(embeddings, mask)
    np.testing.assert_array_equal(prompted, embeddings)
    np.testing.assert_array_equal(prompted_mask, mask)
    assert layer.count_params() == 0


def test_prompt_weight_stays_float32_under_mixed_precision():
    layer = PromptLayer(prompt_length=2, hidden_dim=4, dtype="mixed_bfloat16")
    prompted, _ = layer(
        keras.ops.zeros((1, 3, 4), "bfloat16"), np.ones((1, 3), "int32")
    )
    assert layer.prompt.dtype == "float32"
    assert prompted.dtype == "bfloat16"


def test_config_round_trip():
    layer = PromptLayer(
        prompt_length=7,
        hidden_dim=5,
        initializer=keras.initializers.Constant(0.25),
        name="my_prompt",
    )
    restored = PromptLayer.from_config(layer.get_config())
    restored.build()
    assert restored.prompt_length == 7 and restored.hidden_dim == 5
    assert restored.name == "my_prompt"
    np.testing.assert_array_equal(restored.prompt.numpy(), np.full((7, 5), 0.25))


def test_serialization_through_keras():
    layer = PromptLayer(prompt_length=3, hidden_dim=2)
    restored = keras.layers.deserialize(keras.layers.serialize(layer))
    assert isinstance(restored, PromptLayer)
    assert restored.prompt_length == 3
