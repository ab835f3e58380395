"""Loop-invariant values of ONNX `Loop`s read from the outer scope.

TensorFlow's `while_loop` passes every tensor its body captures (the
weights, the encoder's keys and values, masks) as a loop variable, and
tf2onnx keeps them as loop-carried values of the ONNX `Loop`, which the body
hands back unchanged each iteration. ONNX subgraphs may read the enclosing
graph's values directly, so those pass-through variables are replaced by the
outer values: the same computation, with no per-iteration hand-over of the
weights and the encoder outputs.
"""

from keras_prompt.export.onnx_subgraphs import subgraphs


def _rename_uses(graph, old, new):
    for node in graph.node:
        for index, name in enumerate(node.input):
            if name == old:
                node.input[index] = new
        for subgraph in subgraphs(node):
            _rename_uses(subgraph, old, new)
    for output in graph.output:
        if output.name == old:
            output.name = new


def _hoist(graph, loop):
    body = next(a.g for a in loop.attribute if a.name == "body")
    carried = len(loop.input) - 2
    producers = {out: node for node in body.node for out in node.output}
    passed = []
    for i in range(carried):
        body_in = body.input[2 + i].name
        body_out = body.output[1 + i].name
        producer = producers.get(body_out)
        if body_out == body_in or (
            producer is not None
            and producer.op_type == "Identity"
            and producer.input[0] == body_in
        ):
            passed.append(i)
    for i in reversed(passed):
        outer = loop.input[2 + i]
        body_in = body.input[2 + i].name
        body_out = body.output[1 + i].name
        producer = producers.get(body_out)
        if producer is not None and producer.op_type == "Identity" and body_out != body_in:
            consumers = [
                n for n in body.node if body_out in n.input
            ]
            if not consumers:
                body.node.remove(producer)
            else:
                _rename_uses(body, body_out, outer)
        _rename_uses(body, body_in, outer)
        del body.input[2 + i]
        del body.output[1 + i]
        final = loop.output[i]
        del loop.input[2 + i]
        del loop.output[i]
        _rename_uses(graph, final, outer)
    return len(passed)


def hoist_loop_invariants(graph):
    """Rewrites every `Loop` in `graph` (and its subgraphs) in place.

    Returns:
        The number of loop-carried values removed.
    """
    removed = 0
    for node in list(graph.node):
        for subgraph in subgraphs(node):
            removed += hoist_loop_invariants(subgraph)
        if node.op_type == "Loop":
            removed += _hoist(graph, node)
    return removed
