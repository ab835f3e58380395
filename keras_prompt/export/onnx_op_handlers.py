"""tf2onnx handlers for TensorFlow ops that KerasHub layers emit and tf2onnx
1.17 lacks. Importing this module registers them."""

import numpy as np
from tf2onnx import utils
from tf2onnx.handler import tf_op


@tf_op("Erfc")
class Erfc:
    """`erfc(x) = 1 - erf(x)`: Keras's exact GELU (`tf.nn.gelu`) is written
    with `Erfc`, which has no ONNX op; ONNX has `Erf` (opset 9)."""

    @classmethod
    def version_9(cls, ctx, node, **kwargs):
        node.type = "Erf"
        dtype = utils.map_onnx_to_numpy_type(ctx.get_dtype(node.output[0]))
        one = ctx.make_const(utils.make_name(node.name + "_one"), np.ones((), dtype))
        output = node.output[0]
        ctx.insert_new_node_on_output(
            "Sub",
            output,
            inputs=[one.output[0], output],
            name=utils.make_name(node.name + "_erfc"),
        )
