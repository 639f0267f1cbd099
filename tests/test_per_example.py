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


def test_the_interval_over_inputs_equals_faithfulness_recomputed_on_each_draw_of_rows():
    from edgewise.evaluate import faithfulness_interval

    task = tracr("tracr-sort")
    graph = task.graph()
    ablated = task_ablation(task, graph, "zero")  # a constant: the same on any draw of rows
    edges = set(graph.edges[: graph.n_edges // 3])
    n, resamples = task.clean.shape[0], 40
    generator, values = torch.Generator().manual_seed(3), []
    for _ in range(resamples):
        rows = torch.randint(0, n, (n,), generator=generator)
        drawn = replace(
            task,
            clean=task.clean[rows],
            corrupt=task.corrupt[rows],
            scored_positions=task.scored_positions[rows],
            answers=None if task.answers is None else task.answers[rows],
        )
        value = faithfulness(drawn, graph, ablated, edges)
        if not math.isnan(value):
            values.append(value)
    low, high = torch.quantile(
        torch.tensor(values, dtype=torch.float64), torch.tensor([0.025, 0.975], dtype=torch.float64)
    )
    assert faithfulness_interval(task, graph, ablated, edges, resamples=resamples, seed=3) == pytest.approx(
        (low.item(), high.item()), abs=1e-6
    )
    one = replace(task, clean=task.clean[:1], corrupt=task.corrupt[:1], scored_positions=task.scored_positions[:1])
    assert faithfulness_interval(one, graph, ablated, edges) is None


def test_a_game_metric_is_drawn_with_its_legal_moves_and_a_closure_over_rows_is_refused():
    from edgewise.errors import UsageError
    from edgewise.evaluate import on_rows
    from edgewise.suite.tasks import get_task
    from edgewise.suite.tasks.game.task import offered_metric
    from edgewise.tasks import METRICS, Metric

    task = get_task("tictactoe-no-corners")
    n = task.clean.shape[0]
    rows = torch.randint(0, n, (n,), generator=torch.Generator().manual_seed(0))
    reference = task.adapter.forward(task.clean).detach()
    logits = torch.randn(reference.shape, generator=torch.Generator().manual_seed(1))
    by_hand = offered_metric(METRICS["kl"], task.offered[rows])  # the metric built on the drawn rows' moves
    expected = by_hand(logits[rows], reference[rows], task.scored_positions[rows])
    drawn = on_rows(task.metric, rows, n)(logits[rows], reference[rows], task.scored_positions[rows])
    assert drawn.item() == pytest.approx(expected.item(), rel=1e-6)
    assert not torch.equal(rows, torch.arange(n))

    per_row = task.scored_positions.float()

    def closes_over_rows(logits, reference, positions):
        return (logits.sum(-1) * per_row).mean()

    with pytest.raises(UsageError, match="functools.partial"):
        on_rows(Metric("closure", closes_over_rows), rows, n)
