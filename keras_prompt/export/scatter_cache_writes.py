"""KerasHub's cache writes as scatters while a SavedModel is traced."""

import contextlib

import tensorflow as tf


def scatter_slice_update(inputs, start_indices, updates):
    """`keras.ops.slice_update` with `tf.tensor_scatter_nd_update`.

    On TensorFlow `ops.slice_update` is `XlaDynamicUpdateSlice`, which plain
    TensorFlow runs only by compiling it with XLA on demand, and TF Serving
    disables that. This writes the same values with a core op: the starts
    are clamped as XLA clamps them (so the update fits), then every element
    of `updates` is scattered to its index.

    Args:
        inputs: the tensor to update.
        start_indices: one start per axis (ints or int scalars).
        updates: a tensor of the same rank as `inputs`.

    Returns:
        `inputs` with `updates` written at `start_indices`.

    Example:
    ```python
    cache = tf.zeros([2, 4, 3])
    scatter_slice_update(cache, [0, 1, 0], tf.ones([2, 1, 3]))  # row 1 set
    ```
    """
    inputs = tf.convert_to_tensor(inputs)
    updates = tf.cast(updates, inputs.dtype)
    input_shape = tf.shape(inputs, out_type=tf.int32)
    update_shape = tf.shape(updates, out_type=tf.int32)
    starts = tf.stack([tf.cast(start, tf.int32) for start in start_indices])
    starts = tf.clip_by_value(starts, 0, input_shape - update_shape)
    grids = tf.meshgrid(
        *[
            tf.range(update_shape[axis]) + starts[axis]
            for axis in range(len(start_indices))
        ],
        indexing="ij",
    )
    return tf.tensor_scatter_nd_update(
        inputs, tf.stack(grids, axis=-1), updates
    )


@contextlib.contextmanager
def scatter_cache_writes():
    """Within the block, Keras's TensorFlow `slice_update` (what KerasHub's
    attention layers write their caches with) is `scatter_slice_update`:
    functions traced here hold no XLA op. Identical values (the ONNX handler
    of `XlaDynamicUpdateSlice` and its tests compare the same clamping)."""
    from keras.src import backend

    original = backend.core.slice_update
    backend.core.slice_update = scatter_slice_update
    try:
        yield
    finally:
        backend.core.slice_update = original
