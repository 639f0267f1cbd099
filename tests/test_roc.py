"""ROC curves and AUROC (edge and node level) against hand computations and brute-force pairwise counts."""

import pytest
import torch
from conftest import pairwise_auroc, tracr

from edgewise.errors import DegenerateGroundTruthError
from edgewise.evaluate import (
    node_roc_auc,
    node_roc_curve,
    node_scores,
    roc_auc,
    roc_curve,
)
from edgewise.graph import EdgeScores


@pytest.fixture(scope="module")
def shift():
    # 8 edges: RS->A0.0.Q, RS->A0.0.K, RS->A0.0.V, RS->MLP 0, A0.0->MLP 0, RS->Resid End, A0.0->Resid End,
    # MLP 0->Resid End (RS = Resid Start)
    return tracr("tracr-shift")


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
    assert curve.auc == pytest.approx(pairwise_auroc(values.tolist(), labels), abs=1e-12)
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


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_roc_auc_equals_pairwise_count_with_ties(reverse, seed):
    graph = reverse.graph()
    g = torch.Generator().manual_seed(seed)
    values = torch.randint(0, 5, (graph.n_edges,), generator=g).double()  # many ties
    truth = {e for e, keep in zip(graph.edges, torch.rand(graph.n_edges, generator=g) < 0.3) if keep}
    scores = EdgeScores(graph, values, "test")
    assert roc_auc(scores, truth) == pytest.approx(pairwise_auroc(values.tolist(), [e in truth for e in graph.edges]))


def test_perfect_and_inverted_scores(reverse):
    graph = reverse.graph()
    truth = reverse.ground_truth_edges(graph)
    labels = torch.tensor([e in truth for e in graph.edges]).double()
    assert roc_auc(EdgeScores(graph, labels, "t"), truth) == 1.0
    assert roc_auc(EdgeScores(graph, -labels, "t"), truth) == 0.0


def test_roc_auc_treats_float_noise_as_zero(reverse):
    graph = reverse.graph()
    truth = {graph.edges[0], graph.edges[1]}
    values = torch.zeros(graph.n_edges, dtype=torch.float64)
    values[0] = 1.0
    values[2:] = torch.linspace(-1e-19, 1e-19, graph.n_edges - 2)  # noise on edges with no effect
    values[1] = 0.0  # a true edge with no effect ties with the noise, it does not lose to half of it
    noisy = EdgeScores(graph, values, "t")
    assert roc_auc(noisy, truth) == pytest.approx(
        pairwise_auroc([1.0, 0.0] + [0.0] * (graph.n_edges - 2), [True, True] + [False] * (graph.n_edges - 2))
    )


def test_one_auroc_in_float32_and_float64():
    """EAP-IG (inputs) gives three true edges of tracr-sort no effect: float32 rounding leaves 1e-9..1e-7 there,
    float64 1e-16. Snapped by one rule, both precisions give the same AUROC, and the same top-k circuit."""
    from edgewise.evaluate import effective_ground_truth
    from edgewise.graph import circuit_from_scores
    from edgewise.methods import discover
    from edgewise.patching import task_ablation
    from edgewise.suite.tasks import get_task

    results = []
    for dtype in (torch.float32, torch.float64):
        task = get_task("tracr-sort")  # a fresh model each time: this one is cast
        task.model.to(dtype)
        graph = task.graph()
        ablated = task_ablation(task, graph, "resample")
        scores = discover(task, "eap-ig-inputs", graph=graph, ablated=ablated)
        truth = effective_ground_truth(task, graph, ablated)
        noise = [abs(scores[e]) for e in truth if abs(scores[e]) < 1e-3]
        assert noise and max(noise) < 1e-6  # the no-effect true edges are there, at rounding level
        results.append((roc_auc(scores, truth), circuit_from_scores(scores, top_k=12).edges))
    assert results[0] == results[1]


def test_near_zero_scores_tie_in_circuits_as_in_auroc(shift):
    graph = shift.graph()
    # edges 0 and 1 are float noise (1e-9 and -1e-9 of the largest); ranked by graph order like exact zeros
    scores = EdgeScores(graph, torch.tensor([1e-9, -1e-9, 0.0, 0.0, 1.0, 0.5, 0.0, 0.0]), "t")
    assert [e for e, _ in scores.ranked()][:4] == [graph.edges[4], graph.edges[5], graph.edges[0], graph.edges[1]]
    assert scores.snapped().tolist() == [0.0, 0.0, 0.0, 0.0, 1.0, 0.5, 0.0, 0.0]
