"""ROC curves (edge and node level), faithfulness curves, CPR, CMD and edges-to-95%, against hand computations,
brute-force pairwise counts and one-circuit-at-a-time faithfulness."""

import itertools

import pytest
import torch

from conftest import tracr
from edgewise.graph import circuit_from_scores
from edgewise.errors import DegenerateGroundTruthError
from edgewise.evaluate import (
    FaithfulnessCurve,
    circuit_sizes,
    cmd,
    cpr,
    edges_to_reach,
    faithfulness,
    faithfulness_curve,
    node_roc_auc,
    node_roc_curve,
    node_scores,
    roc_curve,
)
from edgewise.graph import Edge, Graph
from edgewise.graph import EdgeScores
from edgewise.patching import task_ablation


@pytest.fixture(scope="module")
def shift():
    # 8 edges: RS->A0.0.Q, RS->A0.0.K, RS->A0.0.V, RS->MLP 0, A0.0->MLP 0, RS->Resid End, A0.0->Resid End,
    # MLP 0->Resid End (RS = Resid Start)
    return tracr("tracr-shift")


def _pairwise_auc(values: list[float], labels: list[bool]) -> float:
    pos = [v for v, l in zip(values, labels) if l]
    neg = [v for v, l in zip(values, labels) if not l]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_roc_curve_with_ties_by_hand(shift):
    graph = shift.graph()
    scores = EdgeScores(graph, torch.tensor([3.0, 3, 2, 2, 2, 1, 1, 0]), "t")
    truth = {graph.edges[i] for i in (0, 2, 5)}
    curve = roc_curve(scores, truth)
    # Tied runs {0+, 1-}, {2+, 3-, 4-}, {5+, 6-}, {7-}: 3 true, 5 false edges.
    assert curve.false_positive_rate == pytest.approx([0, 1 / 5, 3 / 5, 4 / 5, 1])
    assert curve.true_positive_rate == pytest.approx([0, 1 / 3, 2 / 3, 1, 1])
    assert curve.auc == pytest.approx(9 / 15)  # pairwise: 4.5 + 3 + 1.5 wins of 15 pairs


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_roc_curve_area_equals_pairwise_count(seed):
    graph = tracr("tracr-reverse").graph(per_position=True)
    g = torch.Generator().manual_seed(seed)
    values = torch.randint(0, 6, (graph.n_edges,), generator=g).double()  # many ties
    labels = (torch.rand(graph.n_edges, generator=g) < 0.2).tolist()
    truth = {e for e, keep in zip(graph.edges, labels) if keep}
    curve = roc_curve(EdgeScores(graph, values, "t"), truth)
    assert curve.auc == pytest.approx(_pairwise_auc(values.tolist(), labels), abs=1e-12)
    assert (curve.false_positive_rate[0], curve.true_positive_rate[0]) == (0.0, 0.0)
    assert (curve.false_positive_rate[-1], curve.true_positive_rate[-1]) == (1.0, 1.0)


def test_float_noise_around_zero_counts_as_a_tie(shift):
    graph = shift.graph()
    truth = {graph.edges[0]}
    values = torch.tensor([1e-15, -1e-15, 1.0, 0, 0, 0, 0, 0])  # edge 0 ties with edges 1 and 3-7
    assert roc_curve(EdgeScores(graph, values, "t"), truth).auc == pytest.approx(0.5 * 6 / 7)


def test_roc_curve_needs_true_and_false_edges(shift):
    graph = shift.graph()
    scores = EdgeScores(graph, torch.arange(8.0), "t")
    with pytest.raises(DegenerateGroundTruthError, match="8 true and 0 false"):
        roc_curve(scores, set(graph.edges))


def test_edge_nodes_map_inputs_to_their_component_and_keep_positions(random_model):
    graph = Graph.from_model(random_model)
    assert graph.edge_nodes(Edge("Resid Start", "A0.0.K")) == ("Resid Start", "A0.0")
    assert graph.edge_nodes(Edge("MLP 0", "Resid End")) == ("MLP 0", "Resid End")
    positions = Graph.from_model(random_model, per_position=True, n_positions=4)
    assert positions.edge_nodes(Edge("A0.0", "A1.0.V", 2)) == ("A0.0@2", "A1.0@2")


def test_node_scores_and_node_roc_by_hand(shift):
    graph = shift.graph()
    scores = EdgeScores(graph, torch.tensor([0.1, 0.2, 0.3, 0.9, 0.5, 0.05, 0.4, 0.6]), "t")
    # Each node takes its best edge: Resid Start writes edges 0-3 and 5; A0.0 reads 0-2 and writes 4 and 6;
    # MLP 0 reads 3 and 4 and writes 7; Resid End reads 5-7.
    assert node_scores(scores) == pytest.approx({"Resid Start": 0.9, "A0.0": 0.5, "MLP 0": 0.9, "Resid End": 0.6})
    truth = shift.ground_truth_edges(graph)  # touches Resid Start, A0.0 and Resid End; not MLP 0
    curve = node_roc_curve(scores, truth)
    assert curve.false_positive_rate == pytest.approx([0, 1, 1, 1])
    assert curve.true_positive_rate == pytest.approx([0, 1 / 3, 2 / 3, 1])
    assert node_roc_auc(scores, truth) == pytest.approx(1 / 6)  # only the 0.9 tie with MLP 0 wins half a pair


def test_circuit_sizes_every_k_on_small_graphs_and_a_dense_subset_on_large():
    assert circuit_sizes(8) == list(range(9)) and circuit_sizes(1000) == list(range(1001))
    sizes = circuit_sizes(9985, n_sampled=201)
    assert len(sizes) <= 201 and sizes[0] == 0 and sizes[-1] == 9985
    assert all(a < b for a, b in zip(sizes, sizes[1:]))
    assert set(range(11)) <= set(sizes)  # every small circuit, where methods differ


def test_cpr_and_cmd_on_a_known_curve():
    rising = FaithfulnessCurve([0, 1, 2, 3, 4], [0.0, 0.5, 1.0, 1.0, 1.0], 4)
    # Trapezoids of width 1/4: (0 + .5)/2 + (.5 + 1)/2 + 1 + 1 = 3, times 1/4.
    assert cpr(rising) == pytest.approx(0.75)
    assert cmd(rising) == pytest.approx(0.25)
    overshoot = FaithfulnessCurve([0, 1, 2, 3, 4], [0.0, 1.2, 0.8, 1.0, 1.0], 4)
    assert cpr(overshoot) == pytest.approx((0.6 + 1.0 + 0.9 + 1.0) / 4)
    assert cmd(overshoot) == pytest.approx((0.6 + 0.2 + 0.1 + 0.0) / 4)  # |1 - f| = 1, .2, .2, 0, 0


def test_cpr_uses_the_fraction_of_edges_on_uneven_sizes():
    curve = FaithfulnessCurve([0, 10, 100, 1000], [0.0, 0.5, 1.0, 1.0], 1000)
    assert cpr(curve) == pytest.approx(0.01 * 0.25 + 0.09 * 0.75 + 0.9 * 1.0)
    assert cmd(curve) == pytest.approx(0.01 * 0.75 + 0.09 * 0.25)


def test_edges_to_reach_is_the_first_size_at_the_level():
    curve = FaithfulnessCurve([0, 1, 2, 3, 4], [0.0, 0.5, 0.96, 0.9, 1.0], 4)
    assert edges_to_reach(curve) == 2  # reaches 0.95 at 2 edges, though it dips after
    assert edges_to_reach(curve, 0.97) == 4
    assert edges_to_reach(curve, 1.1) is None
    assert edges_to_reach(FaithfulnessCurve([0, 10, 100, 1000], [0.0, 0.5, 0.97, 1.0], 1000)) == 100


@pytest.mark.parametrize("name, per_position, ablation", [
    ("tracr-proportion", False, "resample"),
    ("tracr-reverse", True, "zero"),
])
def test_faithfulness_curve_matches_one_circuit_at_a_time(name, per_position, ablation):
    task = tracr(name)
    graph = task.graph(per_position=per_position)
    ablated = task_ablation(task, graph, ablation)
    values = torch.randint(0, 4, (graph.n_edges,), generator=torch.Generator().manual_seed(0)).double()  # ties
    truth = task.ground_truth_edges(graph)
    values += 10 * torch.tensor([e in truth for e in graph.edges])  # true edges first, so f climbs to 1 early
    scores = EdgeScores(graph, values, "t")
    curve = faithfulness_curve(task, scores, ablated, rows_per_forward=3 * task.clean.shape[0])  # 3 masks a forward
    assert curve.sizes == list(range(graph.n_edges + 1))
    for k in sorted({0, 1, 2, len(truth) - 1, len(truth), len(truth) + 3, graph.n_edges}):
        circuit = circuit_from_scores(scores, top_k=k)  # ties broken the same way: graph order
        assert curve.faithfulness[k] == pytest.approx(faithfulness(task, graph, ablated, set(circuit.edges)), abs=1e-5)
    assert curve.faithfulness[0] == 0.0 and curve.faithfulness[-1] == pytest.approx(1.0)


def test_faithfulness_curve_on_a_subset_of_sizes():
    task = tracr("tracr-reverse")
    graph = task.graph(per_position=True)
    ablated = task_ablation(task, graph, "zero")
    scores = EdgeScores(graph, torch.rand(graph.n_edges, generator=torch.Generator().manual_seed(1)), "t")
    curve = faithfulness_curve(task, scores, ablated, every_k_up_to=100, n_sampled=40)
    assert curve.sizes == circuit_sizes(graph.n_edges, 100, 40) and len(curve.sizes) <= 40
    k = curve.sizes[len(curve.sizes) // 2]
    circuit = circuit_from_scores(scores, top_k=k)
    expected = faithfulness(task, graph, ablated, set(circuit.edges))
    assert curve.faithfulness[len(curve.sizes) // 2] == pytest.approx(expected, abs=1e-5)
