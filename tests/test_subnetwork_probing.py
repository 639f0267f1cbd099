"""Subnetwork probing (edge-sp, node-sp) on the tracr tasks: recovery of the circuit the ablation makes necessary,
reproducibility, node gates shared across a writer's edges, the Lagrangian's edge-count target and lambda sweeps.

Under resample ablation only the edges whose writer differs between clean and corrupted inputs get a training
signal: on reverse that is embeddings -> A3.0.V -> output (docs/ground-truth.md), on proportion the path through
MLP 0 and A1.0's value. The rest of the derived circuit is exactly a no-op there, so its gates fall with the
irrelevant ones and tie with them; AUROC is therefore asserted against the minimal faithful circuit under each
ablation, and against the derived circuit only as the tie-limited value it must then reach.
"""

import re

import pytest
import torch
from conftest import tracr

from edgewise.evaluate import effective_ground_truth, faithfulness, roc_auc
from edgewise.graph import Edge
from edgewise.methods import discover, hard_concrete, lambda_sweep
from edgewise.methods.subnetwork_probing import SubnetworkProbingConfig, deterministic_circuit, node_gates
from edgewise.patching import task_ablation

# Minimal circuits faithful under resample ablation, typed in from docs/ground-truth.md.
RESAMPLE_CIRCUIT = {
    "tracr-reverse": {Edge("Resid Start", "A3.0.V"), Edge("A3.0", "Resid End")},
    "tracr-proportion": {Edge("Resid Start", "MLP 0"), Edge("MLP 0", "A1.0.V"), Edge("A1.0", "Resid End")},
}
# ACDC's canonical tracr-reverse circuit (its own zero-ablation run), merged embeddings: docs/ground-truth.md.
ACDC_REVERSE = {
    Edge("Resid Start", "A0.0.V"),
    Edge("Resid Start", "MLP 0"),
    Edge("A0.0", "MLP 0"),
    Edge("Resid Start", "MLP 1"),
    Edge("MLP 0", "MLP 1"),
    Edge("MLP 1", "MLP 2"),
    Edge("MLP 2", "A3.0.Q"),
    Edge("Resid Start", "A3.0.K"),
    Edge("Resid Start", "A3.0.V"),
    Edge("A3.0", "Resid End"),
}


@pytest.mark.parametrize("name", ["tracr-reverse", "tracr-proportion"])
def test_edge_sp_recovers_the_resample_circuit(name):
    task = tracr(name)
    scores = discover(task, "edge-sp", "resample", seed=0)
    graph, truth = scores.graph, RESAMPLE_CIRCUIT[name]
    ablated = task_ablation(task, graph, "resample")
    assert effective_ground_truth(task, graph, ablated) == truth
    assert roc_auc(scores, truth) == 1.0
    circuit = deterministic_circuit(scores)
    assert circuit.edges == truth
    assert faithfulness(task, graph, ablated, set(circuit.edges)) > 0.999
    # The derived edges outside `truth` are no-ops here and tie with the false edges, so the AUROC against the
    # derived circuit is (n_truth * n_false + (n_derived - n_truth) * n_false / 2) / (n_derived * n_false).
    derived = task.ground_truth_edges(graph)
    assert roc_auc(scores, derived) == pytest.approx((1 + len(truth) / len(derived)) / 2)


def test_edge_sp_per_position_recovers_the_resample_circuit_at_every_input_position(proportion):
    scores = discover(proportion, "edge-sp", "resample", per_position=True, seed=0)
    positions = range(1, proportion.n_positions)  # BOS is the same in clean and corrupted inputs: a no-op
    truth = {Edge(e.writer, e.reader, p) for e in RESAMPLE_CIRCUIT["tracr-proportion"] for p in positions}
    assert roc_auc(scores, truth) == 1.0
    assert deterministic_circuit(scores).edges == truth


def test_edge_sp_under_zero_ablation_ranks_acdcs_reverse_circuit_first(reverse):
    """Zero ablation breaks reverse's whole chain (length -> opp_idx -> A3.0) unless every link is kept: the
    compiled MLPs are step functions, so the gradient is almost flat. The defaults (lr 0.02, 4 masks a step, the last
    half of the steps noise-free) rank ACDC's 10 edges first and keep them, and at most `Resid Start->A3.0.Q` besides
    (worth 6e-7, docs/ground-truth.md)."""
    scores = discover(reverse, "edge-sp", "zero", seed=0)
    graph = scores.graph
    assert roc_auc(scores, ACDC_REVERSE) == 1.0
    circuit = deterministic_circuit(scores)
    assert ACDC_REVERSE <= circuit.edges <= reverse.ground_truth_edges(graph)
    assert faithfulness(reverse, graph, task_ablation(reverse, graph, "zero"), set(circuit.edges)) > 0.999


def test_same_seed_same_scores_and_different_seed_different_scores(proportion):
    run = lambda seed: discover(proportion, "edge-sp", "resample", seed=seed, steps=30).scores
    first = run(0)
    assert torch.equal(first, run(0))
    assert not torch.equal(first, run(1))


def test_node_sp_gives_every_edge_its_writers_score(proportion):
    scores = discover(proportion, "node-sp", "zero", seed=0, steps=30)
    graph = scores.graph
    for w in range(len(graph.writers)):
        assert scores.scores[graph.edge_writer == w].unique().numel() == 1
    assert scores.scores.unique().numel() > 1
    per_position = proportion.graph(per_position=True)
    gate_of_edge, n_gates = node_gates(per_position)
    assert n_gates == len(per_position.writers) * per_position.n_positions
    for i, e in enumerate(per_position.edges):
        assert gate_of_edge[i] == per_position.writers.index(e.writer) * per_position.n_positions + e.position


def test_lagrangian_reaches_the_target_edge_count(proportion):
    """Zero ablation on proportion needs 5 edges; a 5-edge target finds them. (A target above the number of edges
    with any signal cannot be met by the deterministic circuit: the no-signal gates tie, and open or close together.)"""
    target = 5
    scores = discover(proportion, "edge-sp", "zero", seed=0, target_edges=target)
    assert scores.hyperparameters["steps"] == 500  # the target mode's longer default schedule
    assert hard_concrete.expected_l0(scores.scores).sum().item() == pytest.approx(target, abs=0.5)
    circuit = deterministic_circuit(scores)
    assert abs(len(circuit) - target) <= 1
    assert (
        faithfulness(proportion, scores.graph, task_ablation(proportion, scores.graph, "zero"), set(circuit.edges))
        > 0.99
    )


def test_lambda_sweep_keeps_fewer_edges_as_lambda_grows(proportion):
    """Without a penalty no gate has a reason to close; with one, every gate without signal does (Adam moves it at
    the learning rate whatever lambda is), leaving the 3 edges that matter under resample ablation."""
    sweep = lambda_sweep(proportion, [0.0, 1.0], "edge-sp", "resample", steps=200)
    assert [s.hyperparameters["lambda_"] for s in sweep.values()] == [0.0, 1.0]
    sizes = [len(deterministic_circuit(s)) for s in sweep.values()]
    assert sizes == [proportion.graph().n_edges, 3]


def test_lambda_sweep_refuses_a_method_without_lambda(proportion):
    from edgewise.errors import UnknownMethodError

    with pytest.raises(UnknownMethodError, match=r"methods with a lambda_ \(edge-sp, node-sp\), not 'eap'"):
        lambda_sweep(proportion, [0.1], "eap")


def test_lambda_sweep_refuses_a_target(proportion):
    with pytest.raises(ValueError, match="target_edges"):
        lambda_sweep(proportion, [0.1], target_edges=3)


def test_prefilter_trains_gates_on_the_attribution_top_edges_only(reverse):
    """With an EAP pre-filter, only EAP's top edges get gates; the rest rank below every candidate in EAP's order
    (equal EAP scores tie), and reverse's minimal resample circuit still comes first."""
    graph = reverse.graph()
    ablated = task_ablation(reverse, graph, "resample")
    prior = discover(reverse, "eap", graph=graph, ablated=ablated).scores.abs()
    scores = discover(reverse, "edge-sp", graph=graph, ablated=ablated, candidates=20, steps=100).scores
    top = set(prior.argsort(descending=True, stable=True)[:20].tolist())
    rest = sorted(set(range(graph.n_edges)) - top, key=lambda e: -prior[e].item())
    assert max(scores[e] for e in rest) < min(scores[e] for e in top)
    for a, b in zip(rest, rest[1:]):  # EAP's order, ties kept
        assert (scores[a] > scores[b]) if prior[a] > prior[b] else (scores[a] == scores[b])
    circuit = {graph.edges[e] for e in scores.argsort(descending=True)[: len(RESAMPLE_CIRCUIT["tracr-reverse"])]}
    assert circuit == RESAMPLE_CIRCUIT["tracr-reverse"]


def test_edges_the_prefilter_left_out_never_enter_the_circuit_even_when_every_gate_stays_open(reverse):
    """With no sparsity pressure every trained gate stays open (log_alpha near its initial 1.6); the left-out edges,
    ablated the whole run, must still fall below the keep threshold, so SP's own circuit holds candidates only."""
    graph = reverse.graph()
    ablated = task_ablation(reverse, graph, "resample")
    prior = discover(reverse, "eap", graph=graph, ablated=ablated).scores.abs()
    scores = discover(reverse, "edge-sp", graph=graph, ablated=ablated, candidates=5, steps=2, lambda_=0.0)
    top = {graph.edges[e] for e in prior.argsort(descending=True, stable=True)[:5].tolist()}
    assert min(scores.scores[graph.edge_index(e)] for e in top) > 1  # the premise: every candidate stayed open
    circuit = deterministic_circuit(scores)
    assert set(circuit.edges) == top


def test_prefilter_refuses_sp_and_nonpositive_sizes():
    from edgewise.errors import InvalidHyperparameterError
    from edgewise.methods.subnetwork_probing import SubnetworkProbingConfig

    with pytest.raises(InvalidHyperparameterError, match="attribution method"):
        SubnetworkProbingConfig(candidates=10, prefilter="edge-sp")
    with pytest.raises(InvalidHyperparameterError, match="candidates=0"):
        SubnetworkProbingConfig(candidates=0)


def test_gate_trajectory_is_log_alpha_along_training_as_a_shorter_run_ends(proportion, tmp_path):
    """The recorded trajectory starts at the initial gate and ends at the scores; its row at step 20 of a 40-step
    run is where a separate 20-step run (same seed, no schedule tied to the length) ends."""
    settings = {"lr": 0.1, "n_samples": 2, "noise_free_tail": 0.0, "init_gate": 0.9}
    long = discover(proportion, "edge-sp", steps=40, **settings)
    short = discover(proportion, "edge-sp", steps=20, **settings)
    trajectory = long.trajectory
    assert trajectory.steps == tuple(range(0, 41, 2)) and trajectory.values.shape == (21, long.graph.n_edges)
    assert torch.allclose(
        trajectory.values[0], torch.full((long.graph.n_edges,), hard_concrete.log_alpha_for(0.9), dtype=torch.float64)
    )
    assert torch.equal(trajectory.values[-1], long.scores)
    assert torch.allclose(trajectory.values[trajectory.steps.index(20)], short.scores, atol=1e-6)
    path = tmp_path / "scores.json"
    long.save(path)
    loaded = type(long).load(path).trajectory
    assert loaded.steps == trajectory.steps and torch.allclose(loaded.values, trajectory.values, atol=1e-4)


def test_node_sp_trajectory_gives_every_edge_its_writers_gate(proportion):
    scores = discover(proportion, "node-sp", steps=10)
    gate_of_edge, _ = node_gates(scores.graph)
    values = scores.trajectory.values
    for writer in gate_of_edge.unique():
        same = values[:, gate_of_edge == writer]
        assert torch.equal(same, same[:, :1].expand_as(same))


def _mean_ranks(values: list[float]) -> list[float]:
    """Ranks from 0, ties sharing their mean rank: by counting, as a reader would by hand."""
    return [sum(w < v for w in values) + (sum(w == v for w in values) - 1) / 2 for v in values]


def test_a_warm_start_begins_each_gate_at_its_attribution_rank(reverse):
    """init="eap": the trajectory's first point (the gates before training) puts every edge at its |EAP| rank, spread
    linearly over init_gate's log_alpha +- init_spread; the uniform start puts all at init_gate's."""
    graph = reverse.graph()
    ablated = task_ablation(reverse, graph, "resample")
    eap = discover(reverse, "eap", graph=graph, ablated=ablated).scores.abs().tolist()
    warm = discover(reverse, "edge-sp", graph=graph, ablated=ablated, init="eap", init_spread=3.0, steps=2)
    start = hard_concrete.log_alpha_for(0.9)
    expected = [start + 3.0 * (2 * r / (len(eap) - 1) - 1) for r in _mean_ranks(eap)]
    assert warm.trajectory.values[0].tolist() == pytest.approx(expected, abs=1e-5)
    assert warm.hyperparameters["init"] == "eap"
    uniform = discover(reverse, "edge-sp", graph=graph, ablated=ablated, steps=2)
    assert uniform.trajectory.values[0].tolist() == pytest.approx([start] * graph.n_edges)


def test_a_warm_started_node_sp_starts_each_node_from_its_best_edge(reverse):
    graph = reverse.graph()
    ablated = task_ablation(reverse, graph, "resample")
    eap = discover(reverse, "eap", graph=graph, ablated=ablated).scores.abs()
    best = [
        max(eap[e].item() for e in range(graph.n_edges) if graph.edge_writer[e] == w) for w in range(len(graph.writers))
    ]
    warm = discover(reverse, "node-sp", graph=graph, ablated=ablated, init="eap", steps=2)
    start = hard_concrete.log_alpha_for(0.9)
    per_node = [start + 2.0 * (2 * r / (len(best) - 1) - 1) for r in _mean_ranks(best)]
    assert warm.trajectory.values[0].tolist() == pytest.approx(
        [per_node[w] for w in graph.edge_writer.tolist()], abs=1e-5
    )


@pytest.mark.parametrize(
    ("settings", "error", "message"),
    [
        ({"init": "edge-sp"}, "InvalidHyperparameterError", "init='edge-sp' would train SP to start SP"),
        ({"init": "node-sp"}, "InvalidHyperparameterError", "init='node-sp'"),
        ({"init": "eapp"}, "UnknownMethodError", "unknown method 'eapp'"),
        ({"init": "eap", "init_spread": -1.0}, "InvalidHyperparameterError", "init_spread=-1.0"),
        ({"patching": "fast"}, "InvalidHyperparameterError", "patching='fast' must be 'dense' or 'sparse'"),
        ({"patching": "sparse"}, "InvalidHyperparameterError", "set candidates=N"),
    ],
)
def test_a_bad_warm_start_is_refused_before_any_work(settings, error, message):
    import edgewise.errors

    with pytest.raises(getattr(edgewise.errors, error), match=re.escape(message)):
        SubnetworkProbingConfig(**settings)


def test_candidates_beyond_the_graph_and_candidates_for_node_sp_are_refused(reverse):
    from edgewise.errors import InvalidHyperparameterError

    graph = reverse.graph()
    with pytest.raises(InvalidHyperparameterError, match=f"candidates=1000 exceeds the graph's {graph.n_edges} edges"):
        discover(reverse, "edge-sp", candidates=1000, steps=1)
    with pytest.raises(InvalidHyperparameterError, match="node-sp gates whole nodes"):
        discover(reverse, "node-sp", candidates=10, steps=1)


def test_a_prefiltered_run_trains_on_the_sparse_forward_as_it_would_on_the_dense_one(reverse, monkeypatch):
    """With candidates and patching="sparse", edge-sp runs `SparseMasking`; the same run on a stand-in that feeds the
    equivalent full mask to the dense `patched_forward` (an independent path) learns the same gates, as does the
    default dense run."""
    import edgewise.methods.subnetwork_probing as sp
    from edgewise.patching import SparseMasking, patched_forward

    built = []

    class Dense(SparseMasking):
        def forward(self, tokens, gates):
            built.append(1)
            return patched_forward(self.adapter, self.graph, tokens, self.ablated, self.full_mask(gates))

    graph = reverse.graph()
    ablated = task_ablation(reverse, graph, "zero")
    settings = {"graph": graph, "ablated": ablated, "candidates": 15, "steps": 30}
    sparse = discover(reverse, "edge-sp", patching="sparse", **settings)
    default = discover(reverse, "edge-sp", **settings)
    monkeypatch.setattr(sp, "SparseMasking", Dense)
    dense = discover(reverse, "edge-sp", patching="sparse", **settings)
    assert built  # the stand-in ran: patching="sparse" takes the sparse path
    assert torch.allclose(sparse.scores, dense.scores, atol=1e-4)
    assert torch.allclose(sparse.scores, default.scores, atol=1e-4)
    assert sparse.hyperparameters["patching"] == "sparse" and default.hyperparameters["patching"] == "dense"
    assert (sparse.scores - sparse.scores.mean()).abs().max() > 0.1  # the gates moved: the comparison has teeth
