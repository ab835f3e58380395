"""Walking an ONNX graph together with its subgraphs (`Loop` bodies, `If`
branches), for the exporter's checks and graph rewrites.

Example:
```python
import onnx
from keras_prompt.export.onnx_subgraphs import all_nodes

model = onnx.load("generate.onnx")
op_types = {node.op_type for node in all_nodes(model.graph)}
```
"""


def subgraphs(node):
    """The graphs held in `node`'s attributes."""
    for attribute in node.attribute:
        if attribute.g.node:
            yield attribute.g
        yield from attribute.graphs


def all_graphs(graph):
    """`graph` and every subgraph in it, outer graphs first."""
    yield graph
    for node in graph.node:
        for subgraph in subgraphs(node):
            yield from all_graphs(subgraph)


def all_nodes(graph):
    """Every node of `graph` and of its subgraphs."""
    for each in all_graphs(graph):
        yield from each.node
