"""Faithfulness of circuits and MIB's faithfulness curves, CPR, CMD and edges-to-95%, against hand computations and
one-circuit-at-a-time faithfulness."""

import pytest
import torch
from conftest import tracr

from edgewise.evaluate import (
    FaithfulnessCurve,
    circuit_sizes,
    cmd,
    cpr,
    edges_to_reach,
    faithfulness,
    faithfulness_curve,
)
from edgewise.graph import EdgeScores, circuit_from_scores
from edgewise.patching import task_ablation


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


@pytest.mark.parametrize(
    "name, per_position, ablation",
    [
        ("tracr-proportion", False, "resample"),
        ("tracr-reverse", True, "zero"),
    ],
)
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


def test_faithfulness_of_ground_truth_and_empty_circuit(reverse):
    graph = reverse.graph()
    ablated = task_ablation(reverse, graph, "zero")
    assert faithfulness(reverse, graph, ablated, reverse.ground_truth_edges(graph)) == pytest.approx(1.0)
    assert faithfulness(reverse, graph, ablated, set()) == pytest.approx(0.0)
