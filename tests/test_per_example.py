"""Faithfulness per input (edgewise.evaluate.per_example), against the batch figure computed on one-row tasks."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from conftest import tracr

from edgewise.evaluate import ExampleFaithfulness, faithfulness, per_example_faithfulness
from edgewise.graph import Edge
from edgewise.patching import task_ablation


def _row(task, i):
    """Returns the task on its row i alone."""
    return replace(
        task,
        clean=task.clean[i : i + 1],
        corrupt=task.corrupt[i : i + 1],
        scored_positions=task.scored_positions[i : i + 1],
        answers=None if task.answers is None else task.answers[i : i + 1],
    )


def test_each_input_equals_the_faithfulness_of_a_task_of_that_row_alone():
    task = tracr("tracr-sort")
    graph = task.graph()
    ablated = task_ablation(task, graph, "resample")
    edges = set(graph.edges[: graph.n_edges // 2])
    result = per_example_faithfulness(task, graph, ablated, edges)
    assert result.values.shape == (task.clean.shape[0],)
    for i in range(0, task.clean.shape[0], 7):
        one = _row(task, i)
        expected = faithfulness(one, graph, task_ablation(one, graph, "resample"), edges)
        got = result.values[i].item()
        assert (math.isnan(got) and math.isnan(expected)) or got == pytest.approx(expected, abs=1e-6)


def test_the_full_circuit_recovers_every_input_the_ablation_changes():
    task = tracr("tracr-reverse")
    graph = task.graph()
    result = per_example_faithfulness(task, graph, task_ablation(task, graph, "resample"), set(graph.edges))
    assert torch.allclose(result.defined, torch.ones_like(result.defined), atol=1e-6)
    assert result.share_recovered() == 1.0


def test_quantiles_share_and_worst_inputs():
    values = torch.tensor([0.9, float("nan"), 0.1, 0.5, 1.0], dtype=torch.float64)
    f = ExampleFaithfulness(values)
    q = f.quantiles()
    assert q["min"] == 0.1 and q["max"] == 1.0 and q["median"] == pytest.approx(0.7)
    assert f.share_recovered(0.8) == pytest.approx(2 / 4)
    assert f.worst(2) == [2, 3]
    record = f.to_dict(2)
    assert record["undefined"] == 1 and record["values"][1] is None and record["worst"] == [[2, 0.1], [3, 0.5]]


def test_an_empty_circuit_is_zero_on_every_input_it_changes():
    task = tracr("tracr-reverse")
    graph = task.graph()
    result = per_example_faithfulness(task, graph, task_ablation(task, graph, "zero"), set[Edge]())
    assert torch.allclose(result.defined, torch.zeros_like(result.defined))


def test_diagnose_reports_the_checked_circuits_faithfulness_per_input_and_names_the_worst():
    from edgewise.diagnostics import diagnose, format_diagnosis

    task = tracr("tracr-reverse")
    diagnosis = diagnose(task, ablations=("resample",))
    a = diagnosis.ablations["resample"]
    edges = {e for e in diagnosis.graph.edges if e in set(a.minimal.edges or a.minimal.start)}
    graph = diagnosis.graph
    for i in (0, len(task.clean) - 1):
        one = _row(task, i)
        expected = faithfulness(one, graph, task_ablation(one, graph, "resample"), edges)
        got = a.per_example.values[i].item()
        assert (math.isnan(got) and math.isnan(expected)) or got == pytest.approx(expected, abs=1e-6)
    report = format_diagnosis(diagnosis)
    assert "per input: median" in report and "worst inputs:" in report
    record = diagnosis.to_dict()["ablations"]["resample"]["per_example_faithfulness"]
    assert len(record["values"]) == len(task.clean)
