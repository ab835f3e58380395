import keras
import tensorflow as tf

# Random bits per dropout decision: a 32-bit Philox draw makes two.
DECISION_BITS = 16


@keras.saving.register_keras_serializable(package="keras_prompt")
class SixteenBitDropout(keras.layers.Dropout):
    """Dropout that draws 16 random bits per element instead of a float.

    Keras's TensorFlow dropout draws a float32 uniform per element, compares
    it with the rate, then selects against a zero tensor of the input's
    size. In prompt tuning the frozen backbone's dropout (T5's 0.1, after
    attention weights, feed-forward activations and every sublayer) is most
    of a CPU training step's work besides the matmuls. This layer splits each
    32-bit draw into two 16-bit integers, keeps an element when its integer
    is at least `round(rate * 65536)` and scales kept elements by
    `1 / (1 - rate)` with one select against a scalar: half the random bits
    and two passes fewer over the tensor, the same gradient (the mask). The
    drop probability is the rate rounded to a multiple of 1/65536 (0.1 ->
    0.100006).

    Like `keras.layers.Dropout` it draws from its own `SeedGenerator`
    (the same masks for the same seed state, in any process) and is the
    identity when `training` is false, so inference and every export are
    unchanged.

    Args:
        rate: float in `[0, 1)`, the fraction of elements dropped.
        noise_shape: optional shape of the mask, broadcast over the input
            as in `keras.layers.Dropout`.
        seed: optional int seed of the layer's `SeedGenerator`.
        **kwargs: other arguments for `keras.layers.Layer`.

    Example:
    ```python
    layer = keras_prompt.layers.SixteenBitDropout(0.1, seed=0)
    x = np.ones((4, 1000), "float32")
    y = layer(x, training=True)
    float(np.mean(y == 0))  # about 0.1; kept elements are 1 / 0.9
    ```
    """

    def call(self, inputs, training=False):
        if not training or self.rate == 0:
            return inputs
        shape = tf.shape(inputs)
        if self.noise_shape is not None:
            shape = tf.stack([
                shape[axis] if dim is None else dim
                for axis, dim in enumerate(self.noise_shape)
            ])
        size = tf.reduce_prod(shape)
        seed = tf.cast(self.seed_generator.next(), tf.int32)
        # Philox by name: the default algorithm choice under XLA on CPUs
        # is about 200 times slower (799 ms vs 4 ms for 1.2M words).
        words = tf.random.stateless_uniform(
            [(size + 1) // 2], seed=seed, minval=None, maxval=None,
            dtype=tf.uint32, alg="philox",
        )
        halves = tf.reshape(tf.bitcast(words, tf.uint16), [-1])[:size]
        threshold = tf.constant(
            round(self.rate * 2**DECISION_BITS), tf.uint16
        )
        keep = tf.reshape(halves >= threshold, shape)
        scaled = inputs * tf.cast(1.0 / (1.0 - self.rate), inputs.dtype)
        return tf.where(keep, scaled, tf.constant(0, inputs.dtype))


def use_sixteen_bit_dropout(model):
    """Makes every `keras.layers.Dropout` of `model` (at any depth) a
    `SixteenBitDropout`, in place; returns how many were changed.

    The layers keep their rate, name and seed generator (so
    `keras_prompt.training.seeding.seed_random_layers` still seeds them);
    only how training draws the mask changes. A model rebuilt from its
    config has Keras's dropout again until this runs.

    Args:
        model: a Keras layer or model, e.g. a KerasHub backbone.

    Example:
    ```python
    use_sixteen_bit_dropout(backbone)
    ```
    """
    changed = 0
    for layer in model._flatten_layers(include_self=True, recursive=True):
        if type(layer) is keras.layers.Dropout:
            # Same class layout; only `call` differs.
            layer.__class__ = SixteenBitDropout
            changed += 1
    return changed
