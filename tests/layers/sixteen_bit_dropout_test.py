import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf

from keras_prompt.layers import SixteenBitDropout
from keras_prompt.layers import use_sixteen_bit_dropout
from keras_prompt.models import PromptedT5Seq2SeqLM


def test_drops_the_rate_and_scales_the_rest():
    layer = SixteenBitDropout(0.1, seed=3)
    x = np.full((64, 1001), 2.0, "float32")  # odd size: half a word unused
    y = layer(x, training=True).numpy()
    dropped = np.mean(y == 0)
    # Binomial standard deviation at n = 64,064: 0.0012.
    assert abs(dropped - 0.1) < 0.005
    np.testing.assert_allclose(y[y != 0], 2.0 / 0.9, rtol=1e-6)


def test_identity_unless_training():
    layer = SixteenBitDropout(0.5, seed=0)
    x = np.random.default_rng(0).normal(size=(3, 7)).astype("float32")
    np.testing.assert_array_equal(layer(x).numpy(), x)
    np.testing.assert_array_equal(layer(x, training=False).numpy(), x)
    np.testing.assert_array_equal(
        SixteenBitDropout(0.0)(x, training=True).numpy(), x
    )


def test_masks_follow_the_seed_state_and_advance():
    x = np.ones((8, 512), "float32")
    first, second = SixteenBitDropout(0.3, seed=7), SixteenBitDropout(0.3, seed=7)
    a1, a2 = first(x, training=True), first(x, training=True)
    b1 = second(x, training=True)
    np.testing.assert_array_equal(a1.numpy(), b1.numpy())
    assert np.mean(a1.numpy() != a2.numpy()) > 0.2  # a new mask per call


def test_gradient_is_the_scaled_mask():
    layer = SixteenBitDropout(0.25, seed=1)
    x = tf.Variable(np.ones((16, 33), "float32"))
    with tf.GradientTape() as tape:
        y = layer(x * 3.0, training=True)
        loss = tf.reduce_sum(y)
    grad = tape.gradient(loss, x).numpy()
    kept = y.numpy() != 0
    np.testing.assert_allclose(grad[kept], 3.0 / 0.75, rtol=1e-6)
    np.testing.assert_array_equal(grad[~kept], 0.0)


def test_noise_shape_broadcasts_the_mask():
    layer = SixteenBitDropout(0.5, noise_shape=(None, 1, 6), seed=2)
    y = layer(np.ones((4, 5, 6), "float32"), training=True).numpy()
    # The same mask in every position of axis 1.
    np.testing.assert_array_equal(y, np.broadcast_to(y[:, :1], y.shape))
    assert 0 < np.mean(y == 0) < 1


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_runs_under_xla(dtype):
    layer = SixteenBitDropout(0.1, seed=5)
    x = tf.ones((8, 300), dtype)
    compiled = tf.function(lambda v: layer(v, training=True), jit_compile=True)
    y = compiled(x).numpy().astype("float32")
    assert y.dtype == np.float32 and 0.05 < np.mean(y == 0) < 0.15


def test_config_round_trip():
    layer = SixteenBitDropout(0.2, noise_shape=(None, 1), seed=4, name="d")
    restored = SixteenBitDropout.from_config(layer.get_config())
    assert (restored.rate, restored.noise_shape, restored.name) == (
        0.2, (None, 1), "d")
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer))
    assert isinstance(restored, SixteenBitDropout)


def _backbone(dropout):
    return keras_hub.models.T5Backbone(
        vocabulary_size=32, num_layers=2, num_heads=2, hidden_dim=8,
        intermediate_dim=16, dropout=dropout)


def test_prompted_models_train_with_it_and_keep_the_seeds():
    backbone = _backbone(0.1)
    dropouts = [layer for layer in backbone._flatten_layers()
                if isinstance(layer, keras.layers.Dropout)]
    generators = [layer.seed_generator for layer in dropouts]
    model = PromptedT5Seq2SeqLM(backbone, prompt_length=2)
    assert dropouts and all(type(layer) is SixteenBitDropout
                            for layer in dropouts)
    assert [layer.seed_generator for layer in dropouts] == generators
    # Only training draws masks: inference is the frozen model's.
    x = {
        "encoder_token_ids": np.array([[5, 6, 7, 1]]),
        "encoder_padding_mask": np.ones((1, 4), "int32"),
        "decoder_token_ids": np.array([[0, 8, 9]]),
        "decoder_padding_mask": np.ones((1, 3), "int32"),
    }
    inference = model(x, training=False).numpy()
    np.testing.assert_array_equal(model(x, training=False).numpy(), inference)
    assert not np.allclose(model(x, training=True).numpy(), inference)
    assert use_sixteen_bit_dropout(backbone) == 0  # already swapped
