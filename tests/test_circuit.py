"""Circuits: masks, thresholds and JSON round trips."""

import pytest
import torch

from edgewise.errors import GraphMismatchError
from edgewise.graph import (
    Circuit,
    Edge,
    EdgeScores,
    circuit_from_scores,
    connected_edges,
)


@pytest.mark.parametrize("per_position", [False, True])
def test_ground_truth_circuit_round_trips_through_json(reverse, tmp_path, per_position):
    graph = reverse.graph(per_position)
    circuit = Circuit(frozenset(reverse.ground_truth_edges(graph)), per_position, "derived ground truth")
    circuit.save(tmp_path / "c.json")
    loaded = Circuit.load(tmp_path / "c.json")
    assert loaded == circuit
    assert torch.equal(loaded.mask(graph), graph.mask_for(reverse.ground_truth_edges(graph)))


def test_from_mask_keeps_edges_above_threshold(reverse):
    graph = reverse.graph()
    mask = torch.zeros(graph.n_edges)
    mask[graph.edge_index(Edge("A3.0", "Resid End"))] = 0.9
    mask[graph.edge_index(Edge("Resid Start", "A3.0.V"))] = 0.4
    assert Circuit.from_mask(graph, mask).edges == {Edge("A3.0", "Resid End")}
    assert len(Circuit.from_mask(graph, mask, threshold=0.3)) == 2


def test_circuit_on_the_wrong_kind_of_graph(reverse):
    circuit = Circuit(frozenset({Edge("A3.0", "Resid End")}))
    with pytest.raises(GraphMismatchError, match="per_position=False"):
        circuit.mask(reverse.graph(per_position=True))


def test_top_k_and_threshold(reverse):
    graph = reverse.graph()
    values = torch.arange(graph.n_edges).double()
    scores = EdgeScores(graph, values, "t")
    assert circuit_from_scores(scores, top_k=3).edges == set(graph.edges[-3:])
    assert circuit_from_scores(scores, threshold=graph.n_edges - 3.5).edges == set(graph.edges[-3:])
    with pytest.raises(GraphMismatchError, match="exactly one"):
        circuit_from_scores(scores, top_k=3, threshold=1.0)


def test_connected_keeps_only_paths_from_input_to_output(reverse):
    graph = reverse.graph()
    path = {Edge("Resid Start", "A3.0.V"), Edge("A3.0", "Resid End")}
    dangling_start = Edge("A1.0", "MLP 2")  # nothing feeds A1.0
    dead_end = Edge("Resid Start", "A2.0.Q")  # A2.0 feeds nothing
    assert connected_edges(graph, path | {dangling_start, dead_end}) == path
    chain = {Edge("Resid Start", "MLP 0"), Edge("MLP 0", "MLP 1"), Edge("MLP 1", "Resid End")}
    assert connected_edges(graph, chain) == chain


def test_per_position_connectivity_moves_along_the_sequence_only_through_keys_and_values(reverse):
    graph = reverse.graph(per_position=True)
    # The value input at position 1 reaches the head's output at position 3; the query input does not.
    via_value = {Edge("Resid Start", "A3.0.V", 1), Edge("A3.0", "Resid End", 3)}
    via_query = {Edge("Resid Start", "A3.0.Q", 1), Edge("A3.0", "Resid End", 3)}
    assert connected_edges(graph, via_value) == via_value
    assert connected_edges(graph, via_query) == set()
