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


CUSTOM_OP_HANDLERS = {"Erfc": (erfc, []), "SelectV2": (select_v2, [])}
