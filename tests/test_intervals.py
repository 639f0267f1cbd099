"""Bench intervals (edgewise.suite.bench.intervals), against what a bootstrap of a mean must satisfy."""

from __future__ import annotations

import statistics

import pytest

from edgewise.suite.bench.intervals import mean_interval, paired_difference


def test_a_mean_interval_lies_within_the_values_and_around_the_mean():
    values = [0.61, 0.72, 0.55, 0.90, 0.68, 0.70, 0.81]
    low, high = mean_interval(values)
    assert min(values) <= low < statistics.mean(values) < high <= max(values)
    assert mean_interval([0.5, 0.5, 0.5]) == (0.5, 0.5)
    assert mean_interval([0.3]) is None and mean_interval([]) is None
    assert mean_interval(values) == mean_interval(values)  # seeded: the same table on every run
    # a normal approximation of the mean's 95% interval, which the percentile bootstrap should roughly match
    half = 1.96 * statistics.stdev(values) / len(values) ** 0.5
    assert (high - low) == pytest.approx(2 * half, rel=0.35)


def test_a_paired_difference_holds_only_when_its_interval_excludes_zero():
    a = {("t", i): 0.8 + 0.01 * i for i in range(6)}
    better = {k: v - 0.1 - 0.01 * (i % 2) for i, (k, v) in enumerate(a.items())}
    same = {k: v + (0.05 if i % 2 else -0.05) for i, (k, v) in enumerate(a.items())}
    d = paired_difference("a", "b", a, better)
    assert d.n_pairs == 6 and d.difference == pytest.approx(0.105) and d.holds
    assert not paired_difference("a", "c", a, same).holds
    assert paired_difference("a", "b", a, {("u", 0): 1.0}) is None
    partial = paired_difference("a", "b", a, {("t", 0): 0.0})
    assert partial.n_pairs == 1 and partial.interval is None and not partial.holds


def test_a_one_seed_summary_shows_the_circuit_faithfulness_with_its_interval_over_inputs(tmp_path):
    from edgewise.evaluate import faithfulness_interval
    from edgewise.graph import EdgeScores
    from edgewise.methods import method_circuit
    from edgewise.patching import task_ablation
    from edgewise.suite.bench import Sweep, run_bench
    from edgewise.suite.tasks import get_task

    (record,) = run_bench(Sweep(("tracr-shift",), ("eap",)), tmp_path, progress=False)
    held_out = get_task("tracr-shift", held_out=True)  # the bench scores runs on the held-out inputs
    graph = held_out.graph()
    scores = EdgeScores.load(tmp_path / "scores" / f"{record.key}.json")
    circuit = method_circuit(scores, record.figures.circuit_edges)
    expected = faithfulness_interval(held_out, graph, task_ablation(held_out, graph, "resample"), set(circuit.edges))
    assert record.figures.circuit_faithfulness_interval == pytest.approx(expected)
    low, high = expected
    row = next(line for line in (tmp_path / "summary.md").read_text().splitlines() if "| eap |" in line)
    assert f"{record.figures.circuit_faithfulness:.3f} [{low:.3f}, {high:.3f}] inputs" in row
