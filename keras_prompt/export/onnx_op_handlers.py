"""tf2onnx handlers for what the model's TensorFlow graph needs and tf2onnx
1.17 converts badly or not at all, passed per conversion
(`custom_op_handlers`, nothing is registered globally)."""

import numpy as np
from tf2onnx import utils


def erfc(ctx, node, name, args):
    """`erfc(x) = 1 - erf(x)`: Keras's exact GELU (`tf.nn.gelu`) is written
    with `Erfc`, which has no ONNX op; ONNX has `Erf` (opset 9)."""
    node.type = "Erf"
    dtype = utils.map_onnx_to_numpy_type(ctx.get_dtype(node.output[0]))
    one = ctx.make_const(utils.make_name(name + "_one"), np.ones((), dtype))
    output = node.output[0]
    ctx.insert_new_node_on_output(
        "Sub",
        output,
        inputs=[one.output[0], output],
        name=utils.make_name(name + "_erfc"),
    )


def select_v2(ctx, node, name, args):
    """`tf.where(condition, x, y)` as ONNX `Where` (same broadcasting).
    tf2onnx writes it as `cast(c) * x + cast(!c) * y`, five ops where one
    does (and not NaN-safe), for an old ONNX Runtime's slow `Where`."""
    node.type = "Where"


def xla_dynamic_update_slice(ctx, node, name, args):
    """`XlaDynamicUpdateSlice(operand, update, start)` as ONNX `ScatterND`.

    KerasHub's causal LMs (GPT-2, Llama, Gemma, Mistral, Qwen) write their
    key/value caches with `keras.ops.slice_update`, which on TensorFlow is
    this XLA op; tf2onnx 1.17 has no handler for it and leaves it in the
    graph as is, which no ONNX runtime runs.

    The result is `operand` with the block `update` written at `start`,
    each start clamped as XLA clamps it, to `[0, operand_dim - update_dim]`,
    so the block always fits (TensorFlow and LiteRT's `DYNAMIC_UPDATE_SLICE`
    give the same). `ScatterND` gets the block's index grid: per axis
    `Range(start, start + update_dim)`, broadcast over the block's shape.
    Trailing axes of the same static size in `operand` and `update` (a
    cache's heads and head size) always start at 0 and are left out of the
    index, so that `ScatterND` copies whole rows and its index holds one
    entry per row, not per element. Values are copied, not computed: the
    output equals TensorFlow's exactly.
    """
    from onnx import TensorProto
    from tf2onnx.graph_builder import GraphBuilder

    # ScatterND is opset 11; int64 Max/Min (the clamping) opset 12.
    utils.make_sure(
        ctx.opset >= 12,
        "XlaDynamicUpdateSlice needs ONNX opset >= 12, got %s",
        ctx.opset,
    )
    operand, update, start = node.input
    rank = ctx.get_rank(operand)
    if rank is None:
        rank = ctx.get_rank(update)
    utils.make_sure(rank is not None, "XlaDynamicUpdateSlice: unknown rank")
    operand_shape = ctx.get_shape(operand) or [-1] * rank
    update_shape = ctx.get_shape(update) or [-1] * rank
    # Index depth: up to the last axis whose start may be nonzero (at
    # least 1: ScatterND needs an index).
    depth = rank
    while (
        depth > 1
        and operand_shape[depth - 1] >= 0
        and operand_shape[depth - 1] == update_shape[depth - 1]
    ):
        depth -= 1
    builder = GraphBuilder(ctx)

    def const(suffix, value):
        return ctx.make_const(
            utils.make_name(f"{name}_{suffix}"), np.array(value, np.int64)
        ).output[0]

    def make(op_type, inputs, **attr):
        return ctx.make_node(
            op_type, inputs, attr=attr, op_name_scope=name
        ).output[0]

    update_dims = make("Shape", [update])
    last = make("Sub", [make("Shape", [operand]), update_dims])
    begin = make("Cast", [start], to=TensorProto.INT64)
    begin = make("Min", [make("Max", [begin, const("zero", 0)]), last])
    end = make("Add", [begin, update_dims])
    # Every index component is broadcast to [*update_dims[:depth], 1].
    grid_dims = update_dims
    if depth < rank:
        grid_dims = builder.make_slice(
            {"data": update_dims, "starts": [0], "ends": [depth], "axes": [0]}
        )
    grid_dims = make("Concat", [grid_dims, const("one", [1])], axis=0)
    step = const("step", 1)
    components = []
    for axis in range(depth):
        position = const(f"axis{axis}", axis)
        positions = make(
            "Range",
            [
                make("Gather", [begin, position]),
                make("Gather", [end, position]),
                step,
            ],
        )
        # [update_dims[axis]] -> [1, ..., update_dims[axis], ..., 1, 1].
        positions = builder.make_unsqueeze(
            {
                "data": positions,
                "axes": [i for i in range(depth + 1) if i != axis],
            }
        )
        components.append(make("Expand", [positions, grid_dims]))
    if depth > 1:
        indices = make("Concat", components, axis=-1)
    else:
        indices = components[0]
    # TensorFlow's attributes (T, Tindices) are dropped on export, as for
    # the handlers above.
    node.type = "ScatterND"
    ctx.replace_inputs(node, [operand, indices, update])


CUSTOM_OP_HANDLERS = {
    "Erfc": (erfc, []),
    "SelectV2": (select_v2, []),
    "XlaDynamicUpdateSlice": (xla_dynamic_update_slice, []),
}
