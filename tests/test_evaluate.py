"""Edge scores, the shared scores -> circuit rule, ROC AUC and faithfulness, against hand computations."""

import itertools

import pytest
import torch

from edgewise.graph import circuit_from_scores, connected_edges
from edgewise.errors import GraphMismatchError
from edgewise.evaluate import faithfulness, roc_auc
from edgewise.graph import Edge
from edgewise.methods import UnknownMethodError, discover
from edgewise.graph import EdgeScores
from edgewise.patching import task_ablation


def _brute_force_auc(values, labels):
    pos = [v for v, l in zip(values, labels) if l]
    neg = [v for v, l in zip(values, labels) if not l]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_roc_auc_equals_pairwise_count_with_ties(reverse, seed):
    graph = reverse.graph()
    g = torch.Generator().manual_seed(seed)
    values = torch.randint(0, 5, (graph.n_edges,), generator=g).double()  # many ties
    truth = {e for e, keep in zip(graph.edges, torch.rand(graph.n_edges, generator=g) < 0.3) if keep}
    scores = EdgeScores(graph, values, "test")
    assert roc_auc(scores, truth) == pytest.approx(_brute_force_auc(values.tolist(), [e in truth for e in graph.edges]))


def test_perfect_and_inverted_scores(reverse):
    graph = reverse.graph()
    truth = reverse.ground_truth_edges(graph)
    labels = torch.tensor([e in truth for e in graph.edges]).double()
    assert roc_auc(EdgeScores(graph, labels, "t"), truth) == 1.0
    assert roc_auc(EdgeScores(graph, -labels, "t"), truth) == 0.0


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


def test_faithfulness_of_ground_truth_and_empty_circuit(reverse):
    graph = reverse.graph()
    ablated = task_ablation(reverse, graph, "zero")
    assert faithfulness(reverse, graph, ablated, reverse.ground_truth_edges(graph)) == pytest.approx(1.0)
    assert faithfulness(reverse, graph, ablated, set()) == pytest.approx(0.0)


def test_scores_round_trip_through_json(reverse, tmp_path):
    scores = discover(reverse, "random", seed=4)
    scores.save(tmp_path / "s.json")
    loaded = EdgeScores.load(tmp_path / "s.json")
    assert torch.equal(loaded.scores, scores.scores) and loaded.graph == scores.graph
    assert loaded.method == "random" and loaded.seed == 4


def test_unknown_method_and_hyperparameter(reverse):
    with pytest.raises(UnknownMethodError, match="unknown method 'acdcc'"):
        discover(reverse, "acdcc")
    with pytest.raises(UnknownMethodError, match="random has no hyperparameter steps"):
        discover(reverse, "random", steps=3)


def test_effective_ground_truth_matches_auto_circuit_resample_circuits(reverse, proportion):
    from edgewise.evaluate import effective_ground_truth

    graph = reverse.graph()
    assert effective_ground_truth(reverse, graph, task_ablation(reverse, graph, "resample")) == {
        Edge("Resid Start", "A3.0.V"), Edge("A3.0", "Resid End")
    }
    graph = proportion.graph()
    assert effective_ground_truth(proportion, graph, task_ablation(proportion, graph, "resample")) == {
        Edge("Resid Start", "MLP 0"), Edge("MLP 0", "A1.0.V"), Edge("A1.0", "Resid End")
    }
    # Zero ablation removes the positions and BOS too, so the query and key edges matter again.
    assert effective_ground_truth(proportion, graph, task_ablation(proportion, graph, "zero")) == set(
        proportion.ground_truth_edges(graph)
    )


def test_roc_auc_treats_float_noise_as_zero(reverse):
    graph = reverse.graph()
    truth = {graph.edges[0], graph.edges[1]}
    values = torch.zeros(graph.n_edges, dtype=torch.float64)
    values[0] = 1.0
    values[2:] = torch.linspace(-1e-19, 1e-19, graph.n_edges - 2)  # noise on edges with no effect
    values[1] = 0.0  # a true edge with no effect ties with the noise, it does not lose to half of it
    noisy = EdgeScores(graph, values, "t")
    assert roc_auc(noisy, truth) == pytest.approx(_brute_force_auc([1.0, 0.0] + [0.0] * (graph.n_edges - 2),
                                                                     [True, True] + [False] * (graph.n_edges - 2)))
