"""Circuits: masks, thresholds and JSON round trips."""

import pytest
import torch

from edgewise.graph import Circuit
from edgewise.errors import GraphMismatchError
from edgewise.graph import Edge


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
