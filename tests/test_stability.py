"""Bootstrap stability (edgewise.evaluate.stability), against brute-force recomputation with Python sets and the
tracr task's own rows."""

from __future__ import annotations

import itertools
import json

import pytest
import torch
from conftest import tracr

from edgewise.errors import UsageError
from edgewise.evaluate import bootstrap_stability, faithfulness, jaccard, resampled_rows
from edgewise.methods import discover
from edgewise.patching import task_ablation


def test_jaccard_of_sets():
    assert jaccard({1, 2}, {2, 3}) == pytest.approx(1 / 3)
    assert jaccard(set(), set()) == 1.0
    assert jaccard({1}, set()) == 0.0


def test_a_resample_keeps_each_clean_row_with_its_own_corrupted_row():
    task = tracr("tracr-reverse")
    resample = resampled_rows(task, torch.Generator().manual_seed(3))
    assert resample.clean.shape == task.clean.shape
    originals = {tuple(c.tolist()): tuple(k.tolist()) for c, k in zip(task.clean, task.corrupt)}
    for clean, corrupt in zip(resample.clean, resample.corrupt):
        assert originals[tuple(clean.tolist())] == tuple(corrupt.tolist())
    rows = torch.randint(0, len(task.clean), (len(task.clean),), generator=torch.Generator().manual_seed(3))
    assert torch.equal(resample.scored_positions, task.scored_positions[rows])


def test_frequencies_overlap_and_consensus_equal_a_brute_force_recount():
    task = tracr("tracr-reverse")
    graph = task.graph()
    result = bootstrap_stability(task, "eap", 4, graph=graph, circuit_size=3, seed=7)
    # brute force: the same draws by hand, the circuits as Python sets of the top 3 edges
    circuits = []
    for i in range(4):
        rows = torch.randint(0, len(task.clean), (len(task.clean),), generator=torch.Generator().manual_seed(7 + i))
        resample = resampled_rows(task, torch.Generator().manual_seed(7 + i))
        assert torch.equal(resample.clean, task.clean[rows])
        scores = discover(resample, "eap", graph=graph, ablated=task_ablation(resample, graph, "resample"), seed=7 + i)
        top = scores.scores.abs().argsort(descending=True, stable=True)[:3].tolist()
        circuits.append({graph.edges[j] for j in top})
    assert [set(c.edges) for c in result.circuits] == circuits
    counts = {e: sum(e in c for c in circuits) for e in set().union(*circuits)}
    for edge, count in counts.items():
        assert result.selection_frequency[graph.edge_index(edge)].item() == pytest.approx(count / 4)
    assert int((result.selection_frequency > 0).sum()) == len(counts)
    pairs = [len(a & b) / len(a | b) for a, b in itertools.combinations(circuits, 2)]
    assert result.stability == pytest.approx(sum(pairs) / len(pairs))
    low, high = result.stability_interval
    assert min(pairs) - 1e-12 <= low <= high <= max(pairs) + 1e-12
    consensus = {e for e, count in counts.items() if count >= 2}
    assert set(result.consensus.edges) == consensus
    expected = faithfulness(task, graph, task_ablation(task, graph, "resample"), consensus)
    assert result.consensus_faithfulness == pytest.approx(expected)
    assert result.evaluated_on == "discovery"
    record = json.loads(json.dumps(result.to_dict()))
    assert record["consensus"]["edges"] == sorted(e.name for e in consensus)
    assert set(record["selection_frequency"]) == {e.name for e in counts}
    assert all(lo <= hi for lo, hi in record["score_interval"].values())


def test_bad_settings_are_refused_before_any_refit(monkeypatch):
    task = tracr("tracr-reverse")
    import edgewise.evaluate.stability as stability

    def refuse(*args, **kwargs):
        raise AssertionError("a refit ran")

    monkeypatch.setattr(stability, "discover", refuse)
    with pytest.raises(UsageError, match="at least 2 refits"):
        bootstrap_stability(task, "eap", 1)
    with pytest.raises(UsageError, match=r"in \(0, 1\]"):
        bootstrap_stability(task, "eap", 3, threshold=0)


def test_the_command_line_bootstrap_writes_what_the_library_computes(tmp_path, capsys):
    from edgewise.cli.main import main

    out = tmp_path / "bootstrap.json"
    argv = ["discover", "tracr-reverse", "--method", "eap", "--top-k", "3", "--seed", "2"]
    assert main([*argv, "--bootstrap", "3", "--bootstrap-json", str(out)]) == 0
    assert "bootstrap, 3 refits" in capsys.readouterr().out
    record = json.loads(out.read_text())
    expected = bootstrap_stability(tracr("tracr-reverse"), "eap", 3, circuit_size=3, seed=2).to_dict()
    assert record["selection_frequency"] == expected["selection_frequency"]
    assert record["consensus"]["edges"] == expected["consensus"]["edges"]
    with pytest.raises(SystemExit) as refused:  # argparse refuses it before any work
        main([*argv, "--bootstrap", "1"])
    assert refused.value.code == 2


def test_too_few_inputs_are_refused_and_empty_circuits_are_stated(monkeypatch):
    from dataclasses import replace

    import edgewise.evaluate.stability as stability
    from edgewise.graph import Circuit

    task = tracr("tracr-reverse")
    few = replace(task, clean=task.clean[:3], corrupt=task.corrupt[:3], scored_positions=task.scored_positions[:3])
    with pytest.raises(UsageError, match="at least 4"):
        bootstrap_stability(few, "eap", 3)

    def nothing(scores, k):
        return Circuit(frozenset(), per_position=False, description="empty", task=task.name, n_graph_edges=k)

    monkeypatch.setattr(stability, "method_circuit", nothing)
    result = bootstrap_stability(task, "eap", 3)
    assert result.stability == 1.0 and len(result.warnings) == 1 and "says nothing" in result.warnings[0]
    assert result.to_dict()["warnings"] == list(result.warnings)
