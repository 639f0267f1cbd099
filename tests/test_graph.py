"""Graph construction, edge counts against published conventions, and JSON round trips."""

import json

import pytest
import torch
from conftest import random_transformer

from edgewise.graph import Edge, Graph


def test_edge_counts_match_auto_circuit_convention(reverse, proportion):
    # auto-circuit merges the embeddings into Resid Start and counts residual edges: reverse 77, proportion 23.
    assert reverse.graph().n_edges == 77
    assert proportion.graph().n_edges == 23


def test_split_embeddings_match_acdc_residual_edge_count(reverse):
    # ACDC splits token and position embeddings: reverse has 94 residual ("ADD") edges.
    assert Graph.from_model(reverse.model, split_embeddings=True).n_edges == 94


def test_edges_join_every_writer_to_every_later_reader():
    model = random_transformer()  # 3 layers, 4 query heads, 2 kv heads
    graph = Graph.from_model(model)
    # Brute force: a writer at "time" t feeds every reader strictly later.
    order = [("Resid Start", "w", 0)]
    for layer in range(3):
        order += [(f"A{layer}.{h}.Q", "r", 3 * layer + 1) for h in range(4)]
        order += [(f"A{layer}.{h}.{x}", "r", 3 * layer + 1) for x in "KV" for h in range(2)]
        order += [(f"A{layer}.{h}", "w", 3 * layer + 2) for h in range(4)]
        order += [(f"MLP {layer}", "r", 3 * layer + 2.5), (f"MLP {layer}", "w", 3 * layer + 3)]
    order.append(("Resid End", "r", 100))
    expected = {(w, r) for w, kw, tw in order for r, kr, tr in order if kw == "w" and kr == "r" and tw < tr}
    assert {(e.writer, e.reader) for e in graph.edges} == expected
    assert "A0.3.Q" in graph.readers and "A0.2.K" not in graph.readers  # k/v per key-value head


def test_per_position_graph_repeats_each_edge_at_each_position(reverse):
    plain, unrolled = reverse.graph(), reverse.graph(per_position=True)
    n_pos = reverse.clean.shape[1]
    assert unrolled.n_edges == plain.n_edges * n_pos
    assert {(e.writer, e.reader) for e in unrolled.edges} == {(e.writer, e.reader) for e in plain.edges}
    assert {e.position for e in unrolled.edges} == set(range(n_pos))


@pytest.mark.parametrize("per_position", [False, True])
def test_graph_json_round_trip(reverse, tmp_path, per_position):
    graph = reverse.graph(per_position)
    graph.save(tmp_path / "g.json")
    loaded = Graph.load(tmp_path / "g.json")
    assert loaded == graph and loaded.edges == graph.edges
    record = json.loads((tmp_path / "g.json").read_text())
    assert [Edge.from_endpoints(*pair) for pair in record["edges"]] == graph.edges


def test_edge_names_and_endpoints():
    assert Edge("A0.0", "A1.0.Q").name == "A0.0->A1.0.Q"
    assert Edge("MLP 0", "Resid End", 2).endpoints() == ["MLP 0@2", "Resid End@2"]
    assert Edge.from_endpoints("MLP 0@2", "Resid End@2") == Edge("MLP 0", "Resid End", 2)


def test_mask_for_keeps_exactly_the_given_edges(reverse):
    graph = reverse.graph()
    edges = {Edge("Resid Start", "A3.0.V"), Edge("A3.0", "Resid End")}
    mask = graph.mask_for(edges)
    assert mask.sum() == 2 and {graph.edges[i] for i in torch.nonzero(mask).flatten().tolist()} == edges


def test_edge_nodes_map_inputs_to_their_component_and_keep_positions(random_model):
    graph = Graph.from_model(random_model)
    assert graph.edge_nodes(Edge("Resid Start", "A0.0.K")) == ("Resid Start", "A0.0")
    assert graph.edge_nodes(Edge("MLP 0", "Resid End")) == ("MLP 0", "Resid End")
    positions = Graph.from_model(random_model, per_position=True, n_positions=4)
    assert positions.edge_nodes(Edge("A0.0", "A1.0.V", 2)) == ("A0.0@2", "A1.0@2")
