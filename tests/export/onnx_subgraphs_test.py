"""Walking ONNX graphs with their subgraphs."""

from onnx import TensorProto
from onnx import helper

from keras_prompt.export.onnx_subgraphs import all_graphs
from keras_prompt.export.onnx_subgraphs import all_nodes
from keras_prompt.export.onnx_subgraphs import subgraphs


def _branch(name, op_type):
    return helper.make_graph(
        [helper.make_node(op_type, ["x"], [f"{name}_out"])], name, [],
        [helper.make_tensor_value_info(f"{name}_out", TensorProto.FLOAT, [2])])


def _model_graph():
    inner_if = helper.make_node(
        "If", ["flag"], ["inner_out"], then_branch=_branch("then_inner", "Relu"),
        else_branch=_branch("else_inner", "Neg"))
    outer_then = helper.make_graph(
        [inner_if], "then_outer", [],
        [helper.make_tensor_value_info("inner_out", TensorProto.FLOAT, [2])])
    outer_if = helper.make_node(
        "If", ["flag"], ["y"], then_branch=outer_then,
        else_branch=_branch("else_outer", "Abs"))
    return helper.make_graph(
        [helper.make_node("Identity", ["x"], ["z"]), outer_if], "main",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2]),
         helper.make_tensor_value_info("flag", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])


def test_every_graph_outer_first_and_every_node():
    # `make_node` stores attributes by name: `else_branch` comes first.
    graph = _model_graph()
    assert [g.name for g in all_graphs(graph)] == [
        "main", "else_outer", "then_outer", "else_inner", "then_inner"]
    assert sorted(node.op_type for node in all_nodes(graph)) == [
        "Abs", "Identity", "If", "If", "Neg", "Relu"]


def test_a_node_without_subgraphs_has_none():
    graph = _model_graph()
    assert list(subgraphs(graph.node[0])) == []
    assert [g.name for g in subgraphs(graph.node[1])] == ["else_outer", "then_outer"]
