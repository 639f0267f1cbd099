"""Ablation sensitivity (edgewise.evaluate.sensitivity), against circuits and faithfulness computed one by one."""

from __future__ import annotations

import pytest
from conftest import tracr

from edgewise.errors import UsageError
from edgewise.evaluate import ablation_sensitivity, faithfulness, jaccard
from edgewise.methods import discover, method_circuit
from edgewise.patching import task_ablation


def test_each_circuit_and_each_cross_faithfulness_equal_separate_runs():
    task = tracr("tracr-reverse")
    graph = task.graph()
    result = ablation_sensitivity(task, "eap", ("resample", "zero"), graph=graph, circuit_size=4)
    found = {}
    for kind in ("resample", "zero"):
        scores = discover(task, "eap", graph=graph, ablated=task_ablation(task, graph, kind))
        found[kind] = set(method_circuit(scores, 4).edges)
        assert set(result.circuits[kind].edges) == found[kind]
    assert result.overlap == {"resample vs zero": pytest.approx(jaccard(found["resample"], found["zero"]))}
    for kind in ("resample", "zero"):
        for scored in ("resample", "zero"):
            expected = faithfulness(task, graph, task_ablation(task, graph, scored), found[kind])
            assert result.faithfulness[kind][scored] == pytest.approx(expected, nan_ok=True)
    assert result.depends_on_ablation == (result.overlap["resample vs zero"] < 0.5)
    assert result.to_dict()["circuits"]["zero"] == sorted(e.name for e in found["zero"])


def test_one_ablation_is_refused():
    with pytest.raises(UsageError, match="at least 2"):
        ablation_sensitivity(tracr("tracr-reverse"), "eap", ("resample", "resample"))


def test_diagnose_flags_minimal_circuits_that_differ_between_ablations():
    from edgewise.diagnostics import diagnose, format_diagnosis

    diagnosis = diagnose(tracr("tracr-reverse"))
    edges = {k: set(a.minimal.edges) for k, a in diagnosis.ablations.items()}
    # docs/diagnostics.md: resample keeps 2 edges, mean and zero need more (the length MIRs are constant)
    expected = jaccard(edges["resample"], edges["mean"])
    assert diagnosis.ablation_overlap["resample vs mean"] == pytest.approx(expected)
    record = diagnosis.to_dict()
    assert record["depends_on_ablation"] == any(v < 0.5 for v in record["ablation_overlap"].values())
    assert "does the circuit depend on the ablation?" in format_diagnosis(diagnosis)


def test_the_sensitivity_command_writes_what_the_library_computes(tmp_path, capsys):
    import json

    from edgewise.cli.main import main

    out = tmp_path / "sensitivity.json"
    assert main(["sensitivity", "tracr-reverse", "--method", "eap", "--top-k", "4", "--json", str(out)]) == 0
    assert "membership" in capsys.readouterr().out
    record = json.loads(out.read_text())
    expected = ablation_sensitivity(tracr("tracr-reverse"), "eap", circuit_size=4).to_dict()
    assert record["overlap"] == pytest.approx(expected["overlap"]) and record["circuits"] == expected["circuits"]
    assert main(["sensitivity", "tracr-reverse", "--ablations", "zero,zero"]) == 2


def test_the_docs_optimal_sensitivity_command_scores_each_circuit_under_optimal_ablation(tmp_path):
    import json

    from edgewise.cli.main import main

    out = tmp_path / "sensitivity.json"
    # docs/error-bars.md, "Optimal ablation"
    args = ["sensitivity", "tracr-reverse", "--method", "eap", "--top-k", "4", "--ablations", "resample,mean,optimal"]
    assert main([*args, "--json", str(out)]) == 0
    record = json.loads(out.read_text())
    task = tracr("tracr-reverse")
    graph = task.graph()
    optimal = task_ablation(task, graph, "optimal")
    for found in ("resample", "mean", "optimal"):
        edges = {e for e in graph.edges if e.name in set(record["circuits"][found])}
        expected = faithfulness(task, graph, optimal, edges)
        assert record["faithfulness"][found]["optimal"] == pytest.approx(expected, abs=1e-4, nan_ok=True)
