"""The one run scorer (evaluate/run.py) against figures computed here by hand: each method's own circuit rule, AUROC
by counting pairs, faithfulness from two patched forwards."""

import pytest
import torch
from conftest import pairwise_auroc

from edgewise.evaluate import RunEvaluation, ground_truths
from edgewise.methods import discover, method_circuit
from edgewise.patching import full_logits, patched_forward, task_ablation


@pytest.fixture(scope="module")
def runs(reverse):
    graph = reverse.graph()
    ablated = task_ablation(reverse, graph, "zero")
    truths = ground_truths(reverse, graph, ablated)
    return {
        m: RunEvaluation(reverse, discover(reverse, m, graph=graph, ablated=ablated), ablated, truths)
        for m in ("edge-sp", "acdc", "eap")
    }


def test_each_method_reports_its_own_circuit(runs):
    sp, acdc, eap = runs["edge-sp"], runs["acdc"], runs["eap"]
    graph = sp.graph
    open_gates = {e for e, log_alpha in zip(graph.edges, sp.scores.scores.tolist()) if log_alpha > 0}
    assert set(sp.circuit.edges) == open_gates and sp.circuit.task == "tracr-reverse"
    threshold = acdc.scores.hyperparameters["threshold"]
    kept = {e for e, change in zip(graph.edges, acdc.scores.scores.tolist()) if change >= threshold}
    assert set(acdc.circuit.edges) == kept
    k = len(eap.truths["effective"])
    raw = eap.scores.scores.tolist()
    largest = max(abs(v) for v in raw)
    values = [0.0 if abs(v) <= 1e-6 * largest else v for v in raw]  # near-zero is zero (EdgeScores.snapped)
    order = sorted(range(graph.n_edges), key=lambda i: -values[i])  # stable: graph order on ties
    assert set(eap.circuit.edges) == {graph.edges[i] for i in order[:k]} and len(eap.circuit) == k
    assert method_circuit(eap.scores, 5).edges == frozenset(graph.edges[i] for i in order[:5])


def test_auroc_and_faithfulness_match_hand_computations(reverse, runs):
    for run in runs.values():
        for truth, edges in run.truths.items():
            labels = [e in edges for e in run.graph.edges]
            snapped = run.scores.scores.clone()
            snapped[snapped.abs() <= 1e-6 * snapped.abs().max()] = 0  # the noise rule roc_auc documents
            assert run.auroc(truth) == pytest.approx(pairwise_auroc(snapped, labels))
        masks = torch.stack([run.graph.mask_for(run.circuit.edges), torch.zeros(run.graph.n_edges)])
        logits = patched_forward(reverse.model, run.graph, reverse.clean, run.ablated, masks)
        loss = reverse.metric(logits, full_logits(reverse), reverse.scored_positions)
        assert run.circuit_faithfulness == pytest.approx(1 - (loss[0] / loss[1]).item(), abs=1e-9)


def test_record_holds_every_figure_once(runs):
    record = runs["acdc"].figures().to_json()
    assert {
        "auroc",
        "auroc_effective",
        "node_auroc",
        "node_auroc_effective",
        "faithfulness_at_truth_size",
        "faithfulness_at_truth_size_effective",
        "circuit_edges",
        "circuit_faithfulness",
        "cpr",
        "cmd",
        "edges_to_95",
    } <= set(record)
    assert record["circuit_edges"] == len(runs["acdc"].circuit)


def test_tasks_without_a_ground_truth_get_a_default_circuit_size(reverse):
    graph = reverse.graph()
    ablated = task_ablation(reverse, graph, "resample")
    run = RunEvaluation(reverse, discover(reverse, "random", graph=graph, ablated=ablated), ablated, truths={})
    assert len(run.circuit) == 20 and run.figures().circuit_edges == 20 and run.figures().truths == {}
