"""keras-prompt's tf2onnx handlers: `XlaDynamicUpdateSlice` (KerasHub's
cache writes, `keras.ops.slice_update`) converts to standard ONNX ops that
onnxruntime runs with TensorFlow's results, start clamping included."""

import numpy as np
import pytest


def _session(function):
    """`function` converted with keras-prompt's handlers, checked by
    `onnx.checker`, in an onnxruntime session; also its op types (those of
    loop bodies included)."""
    import onnx
    import onnxruntime
    import tf2onnx

    from keras_prompt.export.onnx_export import DEFAULT_OPSET
    from keras_prompt.export.onnx_op_handlers import CUSTOM_OP_HANDLERS
    from keras_prompt.export.onnx_subgraphs import all_nodes

    model_proto, _ = tf2onnx.convert.from_function(
        function,
        input_signature=function.input_signature,
        opset=DEFAULT_OPSET,
        custom_op_handlers=CUSTOM_OP_HANDLERS,
    )
    onnx.checker.check_model(model_proto, full_check=True)

    session = onnxruntime.InferenceSession(model_proto.SerializeToString())
    return session, {node.op_type for node in all_nodes(model_proto.graph)}


def _run(session, feed):
    names = [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(names, feed)))


def _expected(cache, update, start):
    """numpy `XlaDynamicUpdateSlice`: each start clamped to
    `[0, cache_dim - update_dim]`, then the block overwritten."""
    start = [
        min(max(int(s), 0), c - u)
        for s, c, u in zip(start, cache.shape, update.shape)
    ]
    out = cache.copy()
    out[tuple(slice(s, s + u) for s, u in zip(start, update.shape))] = update
    return out


@pytest.mark.parametrize("static", [True, False], ids=["static", "dynamic"])
def test_rank3_slice_update_with_clamped_index(static):
    """`[B, L, H]` with one or two positions written at a runtime index,
    also past either end (XLA moves the block back inside). With static
    trailing sizes the handler indexes rows; with none known, elements."""
    import tensorflow as tf
    from keras import ops

    batch, length, hidden = 3, 6, 4
    rng = np.random.default_rng(0)
    cache = rng.normal(size=(batch, length, hidden)).astype(np.float32)
    for width in (1, 2):
        update = rng.normal(size=(batch, width, hidden)).astype(np.float32)
        if static:
            shapes = ([None, length, hidden], [None, width, hidden])
        else:
            shapes = ([None, None, None], [None, None, None])
        spec = [
            tf.TensorSpec(shapes[0], tf.float32, name="cache"),
            tf.TensorSpec(shapes[1], tf.float32, name="update"),
            tf.TensorSpec([], tf.int32, name="index"),
        ]

        @tf.function(input_signature=spec, autograph=False)
        def write(cache, update, index):
            return {"out": ops.slice_update(cache, (0, index, 0), update)}

        session, op_types = _session(write)
        assert "ScatterND" in op_types
        assert not any(op.startswith("Xla") for op in op_types), op_types
        for index in (0, 2, length - width, length - 1, length + 3, -1, -5):
            feed = {
                "cache": cache,
                "update": update,
                "index": np.array(index, np.int32),
            }
            got = _run(session, feed)["out"]
            want = write(**feed)["out"].numpy()
            # ScatterND copies values: exactly TensorFlow's result.
            np.testing.assert_array_equal(want, _expected(cache, update,
                                                          (0, index, 0)))
            np.testing.assert_array_equal(got, want, err_msg=f"{index}")


@pytest.mark.parametrize("static", [True, False], ids=["static", "dynamic"])
def test_rank6_cache_write_at_runtime_layer_and_position(static):
    """A KerasHub-like cache `[B, layers, 2, L, heads, head_dim]` written
    at a runtime layer and position (both clamped when out of range), and
    a batch size other than the traced one."""
    import tensorflow as tf
    from keras import ops

    shape = (2, 3, 2, 5, 2, 4)
    update_shape = (2, 1, 2, 1, 2, 4)
    if static:
        cache_spec = [None, *shape[1:]]
        update_spec = [None, *update_shape[1:]]
    else:
        cache_spec = update_spec = [None] * 6
    spec = [
        tf.TensorSpec(cache_spec, tf.float32, name="cache"),
        tf.TensorSpec(update_spec, tf.float32, name="update"),
        tf.TensorSpec([], tf.int32, name="layer"),
        tf.TensorSpec([], tf.int32, name="index"),
    ]

    @tf.function(input_signature=spec, autograph=False)
    def write(cache, update, layer, index):
        start = (0, layer, 0, index, 0, 0)
        return {"out": ops.slice_update(cache, start, update)}

    session, op_types = _session(write)
    assert "ScatterND" in op_types
    assert not any(op.startswith("Xla") for op in op_types), op_types
    rng = np.random.default_rng(1)
    for batch in (2, 5):
        cache = rng.normal(size=(batch, *shape[1:])).astype(np.float32)
        update = rng.normal(size=(batch, *update_shape[1:]))
        update = update.astype(np.float32)
        for layer, index in ((0, 0), (2, 4), (1, 2), (7, 9), (-1, -3)):
            feed = {
                "cache": cache,
                "update": update,
                "layer": np.array(layer, np.int32),
                "index": np.array(index, np.int32),
            }
            got = _run(session, feed)["out"]
            want = write(**feed)["out"].numpy()
            np.testing.assert_array_equal(
                want, _expected(cache, update, (0, layer, 0, index, 0, 0))
            )
            np.testing.assert_array_equal(
                got, want, err_msg=f"batch {batch}, {layer}, {index}"
            )


def test_gpt2_layer_cached_decoding_loop():
    """A tiny KerasHub GPT-2 transformer layer run one position at a time
    with its cache (`self_attention_cache_update_index`) in a
    `tf.while_loop`, the way KerasHub's causal LMs decode: the ONNX `Loop`
    gives TensorFlow's outputs and cache."""
    import keras
    import keras_hub
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=100,
        num_layers=1,
        num_heads=2,
        hidden_dim=16,
        intermediate_dim=32,
        max_sequence_length=16,
        dropout=0.0,
    )
    layer = backbone.transformer_layers[0]
    length, hidden, heads = 5, 16, 2
    spec = [tf.TensorSpec([None, length, hidden], tf.float32, name="x")]

    @tf.function(input_signature=spec, autograph=False)
    def decode(x):
        batch = tf.shape(x)[0]
        cache = tf.zeros([batch, 2, length, heads, hidden // heads])
        outputs = tf.zeros([batch, length, hidden])

        def body(index, outputs, cache):
            step = tf.gather(x, tf.reshape(index, [1]), axis=1)
            y, cache = layer(
                step,
                self_attention_cache=cache,
                self_attention_cache_update_index=index,
            )
            # The step's output goes to row `index` (a select, so that the
            # cache writes are the graph's only XlaDynamicUpdateSlice).
            row = tf.equal(tf.range(length), index)[None, :, None]
            return index + 1, tf.where(row, y, outputs), cache

        _, outputs, cache = tf.while_loop(
            lambda index, *_: index < length,
            body,
            (tf.constant(0), outputs, cache),
        )
        return {"y": outputs, "cache": cache}

    graph = decode.get_concrete_function().graph.as_graph_def()
    traced = {n.op for f in graph.library.function for n in f.node_def}
    assert "XlaDynamicUpdateSlice" in traced  # what the handler is for
    session, op_types = _session(decode)
    assert "Loop" in op_types and "ScatterND" in op_types
    assert not any(op.startswith("Xla") for op in op_types), op_types
    x = np.random.default_rng(2).normal(size=(3, length, hidden))
    x = x.astype(np.float32)
    got = _run(session, {"x": x})
    want = {key: value.numpy() for key, value in decode(x).items()}
    # The cached loop is the layer's uncached causal pass.
    np.testing.assert_allclose(want["y"], layer(x).numpy(), atol=1e-5)
    for key in ("y", "cache"):
        np.testing.assert_allclose(got[key], want[key], atol=1e-6, rtol=0)
