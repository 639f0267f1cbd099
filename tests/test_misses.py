"""Where a method goes wrong: hand-made scores on tracr-redundant-or under zero ablation, where every reason is
known by construction (a copy of a redundant pair, a needed edge scored zero, a tie, a false edge whose writer is
silent), and each edge's measured effect against a hand-written hook."""

from __future__ import annotations

import json

import torch
from conftest import run_edgewise, tracr

from edgewise.diagnostics import explain_misses, redundant_groups
from edgewise.evaluate import effective_truth
from edgewise.evaluate.ground_truth import scored_change
from edgewise.graph import Edge, EdgeScores
from edgewise.patching import full_logits, task_ablation

COPY_EDGE = Edge("A1.1", "MLP 1")  # one copy of the OR: either head suffices under zero ablation
NEEDED = Edge("MLP 2", "Resid End")  # the answer's only way out
TIED = Edge("Resid Start", "MLP 0")
SILENT = Edge("A0.0", "MLP 0")  # layer 0's attention is empty: A0.0 writes zero


def _scores(task, graph, truth):
    """Returns scores that rank the truth first, except: the copy edge and the needed edge at zero, the tied edge
    at a false edge's score, and the silent false edge above them."""
    values = torch.zeros(graph.n_edges, dtype=torch.float64)
    for i, e in enumerate(sorted(truth, key=graph.edge_index)):
        values[graph.edge_index(e)] = 10.0 + i
    values[graph.edge_index(COPY_EDGE)] = 0.0
    values[graph.edge_index(NEEDED)] = 0.0
    values[graph.edge_index(SILENT)] = 5.0
    values[graph.edge_index(Edge("A0.1", "MLP 0"))] = 3.0
    values[graph.edge_index(TIED)] = 3.0
    # Named after a top-k method, so that diagnose can draw its circuit by the registered rule
    return EdgeScores(graph, values, "exact", ablation="zero", task=task.name)


@torch.no_grad()
def test_each_miss_has_the_reason_it_was_built_with():
    task = tracr("tracr-redundant-or")
    graph = task.graph()
    ablated = task_ablation(task, graph, "zero")
    truth = effective_truth(task, graph, ablated)
    scores = _scores(task, graph, truth.edges)
    report = explain_misses(task, scores, ablated, truth, tuple(redundant_groups(task, graph, ablated, truth)))
    reasons = {m.edge: m.reason for m in report.missed}
    assert reasons[COPY_EDGE] == "redundant partner"
    assert reasons[NEEDED] == "below resolution"
    assert reasons[TIED] == "tied"
    assert set(reasons) == {COPY_EDGE, NEEDED, TIED}  # every other true edge outranks every false one
    [silent] = [f for f in report.false_high if f.edge == SILENT]
    assert silent.reason == "carries nothing" and "outputs the same" in silent.detail
    # The measured effect of removing the needed edge alone, by hand: without MLP 2's output in the final residual
    by_hand = task.model.run_with_hooks(task.clean, fwd_hooks=[("blocks.2.hook_mlp_out", lambda v, hook: v * 0)])
    [needed] = [m for m in report.missed if m.edge == NEEDED]
    assert abs(needed.change_alone - scored_change(task, by_hand, full_logits(task)).item()) < 1e-5


def test_cli_diagnose_scores_explains_the_misses(tmp_path):
    task = tracr("tracr-redundant-or")
    graph = task.graph()
    truth = effective_truth(task, graph, task_ablation(task, graph, "zero"))
    path = tmp_path / "scores.json"
    _scores(task, graph, truth.edges).save(path)
    result = run_edgewise("diagnose", "tracr-redundant-or", "--scores", str(path), "--json", str(tmp_path / "d.json"))
    assert result.returncode == 0, result.stderr
    assert "== where exact goes wrong under zero ablation" in result.stdout
    assert "redundant partner: one edge of copy A1.1 (A1.0 and A1.1 each suffice)" in result.stdout
    report = json.loads((tmp_path / "d.json").read_text())["ablations"]
    assert list(report) == ["zero"] and len(report["zero"]["misses"]["missed"]) == 3


@torch.no_grad()
def test_sp_scores_explain_each_miss_with_its_gates_trajectory():
    """With a trajectory (as SP records one), each explained edge says how its gate moved and since when it has been
    closed or open: here the copy edge's gate opens at step 0 and closes between steps 50 and 100."""
    from edgewise.graph import ScoreTrajectory

    task = tracr("tracr-redundant-or")
    graph = task.graph()
    ablated = task_ablation(task, graph, "zero")
    truth = effective_truth(task, graph, ablated)
    plain = _scores(task, graph, truth.edges)
    steps = (0, 50, 100, 150, 200)
    values = plain.scores.expand(len(steps), -1).clone()
    values[:, graph.edge_index(COPY_EDGE)] = torch.tensor([2.0, 1.0, -1.0, -2.0, -3.0], dtype=torch.float64)
    with_gates = EdgeScores(
        graph, values[-1], "edge-sp", ablation="zero", task=task.name, trajectory=ScoreTrajectory(steps, values)
    )
    report = explain_misses(task, with_gates, ablated, truth, tuple(redundant_groups(task, graph, ablated, truth)))
    [copy] = [m for m in report.missed if m.edge == COPY_EDGE]
    assert copy.reason == "redundant partner"
    assert copy.detail.endswith(
        "its gate's log_alpha 2.00 (step 0) -> 1.00 (step 50) -> -1.00 (step 100) -> -2.00 "
        "(step 150) -> -3.00 (step 200): closed since step 100"
    )
    [silent] = [f for f in report.false_high if f.edge == SILENT]
    assert silent.detail.endswith(
        "its gate's log_alpha 5.00 (step 0) -> 5.00 (step 50) -> 5.00 (step 100) -> 5.00 "
        "(step 150) -> 5.00 (step 200): open throughout"
    )
    assert "its gate" not in explain_misses(task, plain, ablated, truth).missed[0].detail
