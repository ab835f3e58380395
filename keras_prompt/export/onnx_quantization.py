"""Opt-in dynamic int8 quantization of the ONNX exports, for CPU serving.

onnxruntime's dynamic quantizer (`quantize_dynamic`) replaces each `MatMul`
whose weight `B` is an initializer by `DynamicQuantizeLinear` (the
activation, to uint8 with a scale measured at run time) and `MatMulInteger`
(the weight, int8 with one scale per output column), then rescales the
result to float32. It leaves a matmul alone when its weight is computed, and
`Gemm` altogether.

The exported graphs compute some weights: tf2onnx converts the traced
function with the weights as inputs (see `onnx_export`), so it cannot fold
what the model derives from a weight. A tied LM head multiplies by
`Transpose(embedding)` (inside the decoding `Loop` of a generate graph),
KerasHub's `EinsumDense` layers reshape their kernels, and tf2onnx writes
some 2-D projections with a bias as `Gemm`. `fold_weight_matmuls` makes
those weights initializers and those `Gemm`s `MatMul` + `Add` (the same
values), so that the quantizer reaches every weight matmul, those of the
decoding loop included. Embedding lookups (`Gather`), layer norms and the
attention's activation-by-activation matmuls stay float32.
"""

import contextlib
import hashlib
import logging
import os

import numpy as np

from keras_prompt.export.export_error import ExportError
from keras_prompt.export.onnx_subgraphs import all_graphs
from keras_prompt.export.onnx_subgraphs import subgraphs

logger = logging.getLogger(__name__)

_WEIGHT_MATMULS = ("MatMul", "Gemm")


def _consumed(nodes, graph):
    """Names that `nodes` (their subgraphs included) read, and `graph`'s
    outputs."""
    names = {output.name for output in graph.output}
    for node in nodes:
        names.update(node.input)
        for subgraph in subgraphs(node):
            names.update(_consumed(subgraph.node, subgraph))
    return names


class _Folder:
    """Folds the constant weights of one model's matmuls (see the module
    docstring); new initializers go into the main graph, once per value."""

    def __init__(self, model):
        self.model = model
        self.main = model.graph
        self.folded = {}
        self.names = {
            name
            for graph in all_graphs(self.main)
            for name in [i.name for i in graph.initializer]
            + [o for node in graph.node for o in node.output]
        }

    def fold(self, graph, outer):
        """Folds `graph`, then its subgraphs; `outer` maps the names of the
        enclosing graphs' initializers to them."""
        rewritten = self._fold_graph(graph, outer)
        inner = dict(outer, **{i.name: i for i in graph.initializer})
        for node in graph.node:
            for subgraph in subgraphs(node):
                rewritten += self.fold(subgraph, inner)
        return rewritten

    def _fold_graph(self, graph, outer):
        initializers = dict(outer, **{i.name: i for i in graph.initializer})
        nodes = list(graph.node)
        producers = {out: node for node in nodes for out in node.output}
        replacements = {}
        folded_nodes = []
        rewritten = 0
        for node in nodes:
            if node.op_type not in _WEIGHT_MATMULS or len(node.input) < 2:
                continue
            weight = node.input[1]
            if node.op_type == "MatMul" and weight in initializers:
                continue
            computing = self._constant_nodes(weight, producers, initializers)
            if computing is None:
                continue
            value = self._evaluate(weight, computing, initializers)
            if node.op_type == "MatMul":
                node.input[1] = self._initializer(value)
            else:
                replacement = self._gemm_as_matmul(node, value, initializers)
                if replacement is None:
                    continue
                replacements[id(node)] = replacement
            folded_nodes.extend(computing)
            rewritten += 1
        if not rewritten:
            return 0
        kept = [
            new_node
            for node in nodes
            for new_node in replacements.get(id(node), [node])
        ]
        kept = _without_unused(graph, kept, {id(n) for n in folded_nodes})
        copies = []
        for node in kept:
            copy = type(node)()
            copy.CopyFrom(node)
            copies.append(copy)
        graph.ClearField("node")
        graph.node.extend(copies)
        return rewritten

    def _constant_nodes(self, name, producers, initializers):
        """The nodes computing `name` from initializers alone, in graph
        order; `[]` for an initializer, `None` if `name` is not a
        constant."""
        if name in initializers:
            return []
        node = producers.get(name)
        if (
            node is None
            or node.op_type.startswith("Random")
            or any(True for _ in subgraphs(node))
        ):
            return None
        computing = []
        for input_name in node.input:
            if not input_name:
                continue
            inputs = self._constant_nodes(input_name, producers, initializers)
            if inputs is None:
                return None
            computing.extend(n for n in inputs if n not in computing)
        return computing + [node]

    def _evaluate(self, name, nodes, initializers):
        from onnx import helper
        from onnx import numpy_helper
        from onnx.reference import ReferenceEvaluator

        if not nodes:
            return numpy_helper.to_array(initializers[name])
        produced = {out for node in nodes for out in node.output}
        needed = {
            i for node in nodes for i in node.input if i and i not in produced
        }
        graph = helper.make_graph(
            nodes,
            "weight",
            [],
            [helper.make_empty_tensor_value_info(name)],
            initializer=[initializers[i] for i in sorted(needed)],
        )
        model = helper.make_model(
            graph, opset_imports=list(self.model.opset_import)
        )
        return np.asarray(ReferenceEvaluator(model).run(None, {})[0])

    def _initializer(self, value):
        """The name of a main-graph initializer holding `value`, added once
        (a tied head folds the same transposed embedding in the prefill
        and in the decoding loop)."""
        from onnx import numpy_helper

        value = np.ascontiguousarray(value)
        key = hashlib.sha256(
            str((value.dtype, value.shape)).encode() + value.tobytes()
        ).hexdigest()
        if key not in self.folded:
            index = len(self.folded)
            while f"folded_weight_{index}" in self.names:
                index += 1
            name = f"folded_weight_{index}"
            self.names.add(name)
            self.main.initializer.append(numpy_helper.from_array(value, name))
            self.folded[key] = name
        return self.folded[key]

    def _gemm_as_matmul(self, node, weight, initializers):
        """The nodes computing `Gemm(A, B, C)` with a constant `B` as
        `MatMul(A, alpha * op(B))` (+ `beta * C`); `None` if `A` is
        transposed or a scaled `C` is not a constant."""
        from onnx import helper
        from onnx import numpy_helper

        attributes = {
            a.name: helper.get_attribute_value(a) for a in node.attribute
        }
        if attributes.get("transA", 0):
            return None
        alpha = attributes.get("alpha", 1.0)
        beta = attributes.get("beta", 1.0)
        bias = node.input[2] if len(node.input) > 2 else ""
        if bias and beta != 1.0:
            if bias not in initializers:
                return None
            value = numpy_helper.to_array(initializers[bias])
            bias = self._initializer(value * value.dtype.type(beta))
        if attributes.get("transB", 0):
            weight = weight.T
        if alpha != 1.0:
            weight = weight * weight.dtype.type(alpha)
        product = node.output[0] + "/matmul" if bias else node.output[0]
        nodes = [
            helper.make_node(
                "MatMul",
                [node.input[0], self._initializer(weight)],
                [product],
                name=node.name + "/matmul",
            )
        ]
        if bias:
            nodes.append(
                helper.make_node(
                    "Add",
                    [product, bias],
                    [node.output[0]],
                    name=node.name + "/bias",
                )
            )
        return nodes


def _without_unused(graph, nodes, removable):
    """`nodes` without those of `removable` (ids) that nothing reads: the
    weight transposes and reshapes that were folded."""
    while True:
        consumed = _consumed(nodes, graph)
        kept = [
            node
            for node in nodes
            if id(node) not in removable or consumed.intersection(node.output)
        ]
        if len(kept) == len(nodes):
            return kept
        nodes = kept


def fold_weight_matmuls(model):
    """Makes the weight of every matmul in `model` an initializer, in place.

    A `MatMul` (or `Gemm`) whose weight is computed from initializers alone
    (`Transpose`, `Reshape`, `Unsqueeze`, ... of a weight, in any graph,
    `Loop` bodies included) gets the computed value as a main-graph
    initializer; such a `Gemm` becomes `MatMul` (+ `Add` of its bias). The
    nodes that computed the weights are removed once nothing reads them.

    Args:
        model: an `onnx.ModelProto`.

    Returns:
        The number of matmuls rewritten.

    Example:
    ```python
    model = onnx.load("generate.onnx")
    fold_weight_matmuls(model)
    ```
    """
    return _Folder(model).fold(model.graph, {})


def float_weight_matmuls(model):
    """The names of the float `MatMul`/`Gemm` nodes of `model` (subgraphs
    included) whose weight is a constant: an initializer, or computed from
    initializers alone. Dynamic quantization should leave none.

    Args:
        model: an `onnx.ModelProto` whose nodes are in topological order.
    """
    found = []

    def visit(graph, outer):
        constants = outer | {i.name for i in graph.initializer}
        for node in graph.node:
            held = list(subgraphs(node))
            if (
                not held
                and not node.op_type.startswith("Random")
                and all(name in constants for name in node.input if name)
            ):
                constants.update(node.output)
            if (
                node.op_type in _WEIGHT_MATMULS
                and len(node.input) > 1
                and node.input[1] in constants
            ):
                found.append(node.name or node.output[0])
            for subgraph in held:
                visit(subgraph, constants)

    visit(model.graph, set())
    return found


def sort_topologically(graph):
    """Orders the nodes of `graph` and of its subgraphs so that each comes
    after the nodes computing its inputs, a subgraph's reads of the
    enclosing graph included, keeping the given order where it is free.

    onnxruntime's quantizer can place a `Loop` before nodes computing values
    its body reads; onnxruntime runs that, `onnx.checker` refuses it.
    """
    import heapq

    nodes = list(graph.node)
    producers = {
        out: index for index, node in enumerate(nodes) for out in node.output
    }
    dependents = [[] for _ in nodes]
    waiting = []
    for index, node in enumerate(nodes):
        read = set(node.input)
        for subgraph in subgraphs(node):
            sort_topologically(subgraph)
            read |= _consumed(subgraph.node, subgraph)
        sources = {producers[name] for name in read if name in producers}
        sources.discard(index)
        waiting.append(len(sources))
        for source in sources:
            dependents[source].append(index)
    ready = [index for index, count in enumerate(waiting) if not count]
    heapq.heapify(ready)
    order = []
    while ready:
        index = heapq.heappop(ready)
        order.append(index)
        for dependent in dependents[index]:
            waiting[dependent] -= 1
            if not waiting[dependent]:
                heapq.heappush(ready, dependent)
    if len(order) != len(nodes) or order == list(range(len(nodes))):
        # A cycle is left for `onnx.checker` to name.
        return
    copies = []
    for index in order:
        copy = type(nodes[index])()
        copy.CopyFrom(nodes[index])
        copies.append(copy)
    graph.ClearField("node")
    graph.node.extend(copies)


class _LastResort(logging.Handler):
    """Handles records as Python does when no handler takes them
    (`logging.lastResort`)."""

    def emit(self, record):
        last = logging.lastResort
        if last is not None and record.levelno >= last.level:
            last.handle(record)


@contextlib.contextmanager
def _quantizer_logs_at_debug():
    """Within the block, what onnxruntime's quantizer logs goes to this
    module's logger at DEBUG (`keras-prompt --log-level debug` shows it).

    The quantizer logs through the root logger (`logging.warning(...)`):
    on every model it advises a pre-processing step that changes nothing
    here, and notes each matmul it skips (the attention's, which have no
    weight). A process without a root handler would also get one for good
    (`logging.basicConfig`); a stand-in that does what Python does without
    handlers prevents that.
    """
    import onnxruntime.quantization

    source = os.path.dirname(onnxruntime.quantization.__file__)
    root = logging.getLogger()

    def redirect(record):
        if not record.pathname.startswith(source):
            return True
        logger.debug("onnxruntime quantizer: %s", record.getMessage())
        return False

    stand_in = None if root.handlers else _LastResort()
    if stand_in is not None:
        root.addHandler(stand_in)
    root.addFilter(redirect)
    try:
        yield
    finally:
        root.removeFilter(redirect)
        if stand_in is not None:
            root.removeHandler(stand_in)


def quantize_onnx_model(model, path, display_name=None):
    """Writes `model` with dynamic int8 weight matmuls to `path`.

    Weights are int8 within a 7-bit range (no CPU's integer kernels
    saturate then), symmetric, one scale per output column; activations are
    quantized to uint8 with one scale per tensor at run time, so a row's
    result can move slightly with the other rows of its batch. `model` is
    changed in place (`fold_weight_matmuls`).

    Args:
        model: an `onnx.ModelProto` (float32).
        path: where the quantized model is written.
        display_name: how errors name the model (default `path`).

    Raises:
        ExportError: the quantizer failed, or a weight matmul stayed
            float32.

    Example:
    ```python
    quantize_onnx_model(onnx.load("generate.onnx"), "generate_int8.onnx")
    ```
    """
    import onnx
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization import quantize_dynamic

    name = display_name or path
    rewritten = fold_weight_matmuls(model)
    logger.debug("Folded %d computed matmul weights of '%s'.", rewritten, name)
    try:
        with _quantizer_logs_at_debug():
            quantize_dynamic(
                model,
                path,
                op_types_to_quantize=["MatMul"],
                per_channel=True,
                # 7-bit weights: x86 CPUs without VNNI multiply uint8 by
                # int8 in pairs summed to int16 (VPMADDUBSW), which full
                # int8 weights can saturate; with 7 bits no CPU does, and
                # every CPU gives the same answers.
                reduce_range=True,
                weight_type=QuantType.QInt8,
                extra_options={"EnableSubgraph": True},
            )
    except Exception as error:
        raise ExportError(
            f"onnxruntime could not quantize '{name}' to int8: {error}. "
            "Export it without `quantize` (float32)."
        ) from error
    quantized = onnx.load(path)
    sort_topologically(quantized.graph)
    # The quantizer's shape inference results (and its note saying so):
    # onnxruntime infers them again, and they would grow a small model's
    # file by a fifth.
    for graph in all_graphs(quantized.graph):
        graph.ClearField("value_info")
    props = {
        prop.key: prop.value
        for prop in quantized.metadata_props
        if prop.key != "onnx.infer"
    }
    onnx.helper.set_model_props(quantized, props)
    remaining = float_weight_matmuls(quantized)
    if remaining:
        raise ExportError(
            f"{len(remaining)} weight matmuls of '{name}' stayed float32 "
            f"after int8 quantization ({', '.join(remaining[:5])}"
            + (", ..." if len(remaining) > 5 else "")
            + "). Export it without `quantize` (float32)."
        )
    onnx.save(quantized, path)
