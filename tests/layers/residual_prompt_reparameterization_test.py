"""`ResidualPromptReparameterization`: the official code's MLP, its defaults,
the identity it becomes, and `PromptLayer` with it."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_prompt.layers import PromptLayer
from keras_prompt.layers import ResidualPromptReparameterization

PROMPT = np.random.default_rng(0).uniform(-0.5, 0.5, (4, 8)).astype("float32")


def reference(layer, prompt):
    """`P + LayerNorm(W_up ReLU(W_down P + b_down) + b_up)` in NumPy, with
    PyTorch's `nn.LayerNorm` (biased variance, epsilon inside the root)."""
    down_kernel, down_bias = (w.numpy() for w in layer.down.weights)
    up_kernel, up_bias = (w.numpy() for w in layer.up.weights)
    gamma, beta = (w.numpy() for w in layer.layer_norm.weights)
    h = np.maximum(prompt @ down_kernel + down_bias, 0) @ up_kernel + up_bias
    mean = h.mean(-1, keepdims=True)
    var = h.var(-1, keepdims=True)
    return prompt + (h - mean) / np.sqrt(var + 1e-5) * gamma + beta


def test_matches_the_official_mlp_and_its_defaults():
    layer = ResidualPromptReparameterization(seed=0)
    out = layer(PROMPT)
    assert layer.bottleneck_size == 800
    assert layer.layer_norm.epsilon == 1e-5
    assert out.dtype == "float32" and tuple(out.shape) == PROMPT.shape
    np.testing.assert_allclose(out, reference(layer, PROMPT), atol=2e-5)
    # Layer norm starts as the identity map (scale 1, offset 0); the linear
    # layers as PyTorch's nn.Linear: uniform in +-1/sqrt(fan_in).
    np.testing.assert_array_equal(layer.layer_norm.gamma.numpy(), 1.0)
    for dense, fan_in in ((layer.down, 8), (layer.up, 800)):
        for weight in dense.weights:
            values = weight.numpy()
            assert np.abs(values).max() <= fan_in**-0.5
            assert np.abs(values).max() > 0.9 * fan_in**-0.5


def test_seeded_weights_repeat_and_differ_between_layers_and_seeds():
    def weights(seed):
        layer = ResidualPromptReparameterization(bottleneck_size=8, seed=seed)
        layer.build(PROMPT.shape)
        return [w.numpy() for w in layer.weights]

    first, again, other = weights(3), weights(3), weights(4)
    for a, b, c in zip(first, again, other):
        np.testing.assert_array_equal(a, b)
        if a.std() > 0:  # Not the layer norm's constant start.
            assert not np.array_equal(a, c)


def test_zero_residual_is_the_exact_identity_and_still_trains():
    layer = ResidualPromptReparameterization(bottleneck_size=8, seed=0)
    layer.build(PROMPT.shape)
    layer.zero_residual()
    np.testing.assert_array_equal(layer(PROMPT), PROMPT)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(PROMPT) ** 3)
    gradients = tape.gradient(loss, layer.trainable_variables)
    by_name = dict(zip([v.name for v in layer.trainable_variables], gradients))
    # The residual comes back through the layer norm's scale and offset.
    assert np.abs(by_name["gamma"].numpy()).max() > 0
    assert np.abs(by_name["beta"].numpy()).max() > 0


def test_float32_under_mixed_precision_and_config_round_trip():
    layer = ResidualPromptReparameterization(
        bottleneck_size=8, seed=1, dtype="mixed_bfloat16"
    )
    assert layer(PROMPT).dtype == "float32"
    assert all(w.dtype == "float32" for w in layer.weights)
    restored = keras.layers.deserialize(keras.layers.serialize(layer))
    assert restored.get_config() == layer.get_config()
    np.testing.assert_array_equal(restored(PROMPT), layer(PROMPT))


@pytest.mark.parametrize("bad", [0, -2, 2.5, True, "800"])
def test_bad_bottleneck_size(bad):
    with pytest.raises(ValueError, match="`bottleneck_size` must be a positive"):
        ResidualPromptReparameterization(bottleneck_size=bad)


def test_prompt_layer_with_a_reparameterization():
    layer = PromptLayer(
        4, 8, initializer=keras.initializers.Constant(PROMPT),
        reparameterization=ResidualPromptReparameterization(8, seed=0),
    )
    embeddings = np.random.default_rng(1).normal(size=(2, 3, 8)).astype("float32")
    mask = np.ones((2, 3), "int32")
    prompted, _ = layer(embeddings, mask)
    effective = keras.ops.convert_to_numpy(layer.effective_prompt())
    assert not np.allclose(effective, PROMPT)
    np.testing.assert_array_equal(prompted[0, :4], effective)
    # The prompt first, then the MLP's six variables; all of them train.
    assert [w.path.split("/")[-1] for w in layer.trainable_weights] == [
        "prompt", "kernel", "bias", "kernel", "bias", "gamma", "beta"]
    # Per-example prompts are effective prompts: no MLP on them.
    given = np.stack([PROMPT, -PROMPT])
    prompted, _ = layer(embeddings, mask, prompt=given)
    np.testing.assert_array_equal(prompted[:, :4], given)
    layer.assign_prompt(-PROMPT)
    np.testing.assert_array_equal(layer.effective_prompt(), -PROMPT)

    restored = PromptLayer.from_config(layer.get_config())
    assert isinstance(
        restored.reparameterization, ResidualPromptReparameterization
    )
    assert restored.reparameterization.bottleneck_size == 8
