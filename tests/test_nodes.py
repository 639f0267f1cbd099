"""Typed nodes: what the adapters declare, what the graph answers about them, and that nodes other than heads and
MLPs (dictionary features, arbitrary modules) fit the graph, its files and the methods unchanged."""

import json
import re
from pathlib import Path

import pytest

from edgewise.adapters.base import layered_hook_groups
from edgewise.errors import GraphMismatchError
from edgewise.graph import Edge, Graph, HookGroup, Node, NodeKind, parse_node_name
from edgewise.methods import get_method, make_config


def _gqa_graph(per_position: bool = False) -> Graph:
    groups = layered_hook_groups(
        n_layers=2, n_heads=4, n_kv_heads=2, final_hook="blocks.1.hook_resid_post", split_embeddings=False
    )
    return Graph(groups, 3 if per_position else None)


def test_adapter_nodes_carry_kind_layer_head_and_input():
    graph = _gqa_graph()
    assert graph.writer_node("Resid Start").kind is NodeKind.EMBEDDING
    assert graph.writer_node("A1.3") == Node("A1.3", NodeKind.HEAD, layer=1, head=3)
    k = graph.reader_node("A1.1.K")  # key-value head 1 of 2
    assert (k.kind, k.layer, k.head, k.input, k.component) == (NodeKind.HEAD, 1, 1, "k", "A1.1")
    assert graph.reader_node("MLP 0").kind is NodeKind.MLP and graph.writer_node("MLP 0").kind is NodeKind.MLP
    assert graph.reader_node("Resid End").kind is NodeKind.OUTPUT
    assert [n.name for n in graph.reader_nodes if n.input == "k"] == ["A0.0.K", "A0.1.K", "A1.0.K", "A1.1.K"]


def test_graph_queries():
    graph = _gqa_graph()
    assert [graph.writers[i] for i in graph.fed_writers("A1.2.Q")] == ["A1.2"]
    assert [graph.writers[i] for i in graph.fed_writers("MLP 1")] == ["MLP 1"]
    assert graph.fed_writers("Resid End") == []
    assert graph.input_writers == ["Resid Start"] and graph.output_readers == ["Resid End"]
    assert not graph.split_embeddings
    assert graph.edge_nodes(Edge("A0.1", "A1.0.V")) == ("A0.1", "A1.0")
    positions = _gqa_graph(per_position=True)
    assert positions.reached_positions("A1.0.K", 1) == [0, 1, 2]  # attention carries a key to every query
    assert positions.reached_positions("A1.0.Q", 1) == [1]
    assert positions.reached_positions("MLP 0", 2) == [2]
    assert positions.edge_nodes(Edge("A0.1", "A1.0.V", 2)) == ("A0.1@2", "A1.0@2")
    with pytest.raises(GraphMismatchError, match="no reader 'A9.0.Q'"):
        graph.reader_node("A9.0.Q")


def test_standard_names_parse_to_the_nodes_adapters_make():
    graph = _gqa_graph()
    for node in graph.writer_nodes + graph.reader_nodes:
        assert parse_node_name(node.name) == node
    with pytest.raises(GraphMismatchError, match="not a node name edgewise knows"):
        parse_node_name("L3 feature 12")


def test_graph_files_without_node_records_still_load(tmp_path):
    graph = _gqa_graph()
    record = graph.to_dict()
    for group in record["groups"]:
        del group["nodes"]  # a file written before nodes were typed
    (tmp_path / "g.json").write_text(json.dumps(record))
    assert Graph.load(tmp_path / "g.json") == graph


def _feature_graph() -> Graph:
    """A graph no adapter makes yet: an MLP split into dictionary features plus its error, and an arbitrary module."""
    features = tuple(Node(f"MLP 0 f{i}", NodeKind.FEATURE, layer=0, index=i) for i in range(3))
    return Graph(
        [
            HookGroup("writer", "embed.hook_out", (Node("embed", NodeKind.MODULE),), False),
            HookGroup("reader", "mlp.hook_in", (Node("MLP 0", NodeKind.MLP, layer=0),), False),
            HookGroup(
                "writer", "mlp.sae.hook_features", features + (Node("MLP 0 error", NodeKind.ERROR, layer=0),), True
            ),
            HookGroup("reader", "head.hook_in", (Node("classifier", NodeKind.OUTPUT),), False),
        ]
    )


def test_feature_and_module_nodes_fit_the_graph_its_files_and_the_methods(tmp_path):
    graph = _feature_graph()
    assert graph.n_edges == 1 + 5  # embed -> MLP 0; embed and 4 dictionary nodes -> classifier
    assert graph.writer_node("MLP 0 f2").index == 2 and graph.writer_node("MLP 0 error").kind is NodeKind.ERROR
    assert graph.input_writers == [] and graph.output_readers == ["classifier"]
    graph.save(tmp_path / "g.json")
    loaded = Graph.load(tmp_path / "g.json")
    assert loaded == graph and loaded.writer_node("MLP 0 f1") == graph.writer_node("MLP 0 f1")
    method = get_method("random")  # a method sees edges only; no method changes for new node kinds
    scores = method.run(None, graph, None, make_config(method, {}), 0, False)
    assert scores.shape == (graph.n_edges,)


def test_no_module_outside_the_graph_package_parses_node_names():
    """Code asks the graph about typed nodes; names are for files and screens (issue: typed nodes)."""
    root = Path(__file__).resolve().parent.parent / "src" / "edgewise"
    patterns = [
        r"\[-2:\]",
        r"\.startswith\(\"A\"\)",
        r"\"Embed\" in",
        r"reader_component",
        r"rsplit\(\"@\"",
        r"\.split\(\)\[1\]",
        r"_EDGEWISE_NODE",
    ]
    offenders = []
    for path in root.rglob("*.py"):
        if path.parent.name == "graph":
            continue
        text = path.read_text()
        offenders += [f"{path.relative_to(root)}: {p}" for p in patterns if re.search(p, text)]
    assert offenders == []
