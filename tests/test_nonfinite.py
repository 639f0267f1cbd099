"""Numbers a researcher can trust: a NaN metric, empty inputs, NaN scores and NaN training losses raise errors that
name their cause, for every method, and score and circuit files are strict JSON."""

import dataclasses
import json
import math

import pytest
import torch

import edgewise.methods.discovery
from edgewise.errors import (
    CircuitFileError,
    EmptyInputsError,
    InvalidHyperparameterError,
    NonFiniteMetricError,
    NonFiniteScoresError,
    ScoresFileError,
)
from edgewise.graph import Circuit, EdgeScores
from edgewise.methods import METHODS, check_metric, discover, get_method, method_circuit, method_names
from edgewise.methods.subnetwork_probing import SubnetworkProbingConfig, train_gates
from edgewise.patching import patched_forward, task_ablation
from edgewise.tasks import METRICS, Metric

NAN = float("nan")


def nan_everywhere(logits, reference, positions):
    """A metric that is NaN for every mask, shaped as a metric's value ([n_masks] or scalar)."""
    return torch.full(logits.shape[:-3], NAN)


def nan_away_from_the_full_model(logits, reference, positions):
    """KL, except NaN wherever the outputs differ from the reference at all."""
    same = (logits == reference).flatten(-3).all(-1)
    return torch.where(same, METRICS["kl"](logits, reference, positions), NAN)


def root_of_squared_error(logits, reference, positions):
    """A distance that is finite everywhere but, like sqrt at 0, has an infinite gradient at a zero distance."""
    per_position = (logits - reference).pow(2).sum(-1).sqrt()
    return (per_position * positions).sum((-1, -2)) / positions.sum()


def must_not_run(task, graph, ablated, config, seed, progress):
    """Returns nothing: fails the test, for a method that should never have been called."""
    raise AssertionError("the method ran although the metric check should have stopped it")


@pytest.fixture
def methods_must_not_run(monkeypatch):
    """Every registered method replaced by one that fails if called, so a test sees the check before the method."""
    for name in method_names():
        monkeypatch.setitem(METHODS, name, dataclasses.replace(get_method(name), run=must_not_run))


@pytest.mark.parametrize("method", method_names())
def test_a_nan_metric_stops_every_method_before_it_runs(reverse, method, methods_must_not_run):
    task = dataclasses.replace(reverse, metric=Metric("nan", nan_everywhere))
    with pytest.raises(NonFiniteMetricError, match=r"metric 'nan' is nan on the full model against itself"):
        discover(task, method)


@pytest.mark.parametrize("method", method_names())
def test_a_metric_nan_only_away_from_the_full_model_stops_every_method(reverse, method, methods_must_not_run):
    task = dataclasses.replace(reverse, metric=Metric("nan-off-full", nan_away_from_the_full_model))
    with pytest.raises(
        NonFiniteMetricError, match=r"metric 'nan-off-full' is nan on the fully ablated model \(zero ablation"
    ):
        discover(task, method, "zero")


def test_the_metric_check_costs_one_forward_with_two_masks(reverse, monkeypatch):
    graph = reverse.graph()
    ablated = task_ablation(reverse, graph)
    shapes = []

    def counting(model, graph, tokens, ablated, mask):
        shapes.append(tuple(mask.shape))
        return patched_forward(model, graph, tokens, ablated, mask)

    monkeypatch.setattr(edgewise.methods.discovery, "patched_forward", counting)
    for metric in METRICS.values():  # every built-in metric is finite at both ends: no false alarm
        check_metric(dataclasses.replace(reverse, metric=metric), graph, ablated)
    assert shapes == [(2, graph.n_edges)] * len(METRICS)


def test_a_task_without_any_scored_position(reverse):
    with pytest.raises(EmptyInputsError, match=r"scored_positions is False at every position of its 6 rows"):
        dataclasses.replace(reverse, scored_positions=torch.zeros_like(reverse.scored_positions))


def test_a_task_without_rows(reverse):
    with pytest.raises(EmptyInputsError, match=r"clean batch \(0, \d+\) holds no rows"):
        dataclasses.replace(
            reverse, clean=reverse.clean[:0], corrupt=reverse.corrupt[:0], scored_positions=reverse.scored_positions[:0]
        )


def test_a_tracr_task_of_two_empty_sequences(reverse):
    from tracr.compiler import lib
    from tracr.rasp import rasp

    from edgewise.suite.tasks.tracr import tracr_task

    max_seq_len = reverse.family.compiled.max_seq_len  # the built-in task's program: compiled already, cached
    with pytest.raises(EmptyInputsError, match="tracr: give sequences of at least one value"):
        tracr_task(
            lib.make_reverse(rasp.tokens).named("reverse"), {1, 2, 3}, max_seq_len, "tracr-reverse", sequences=[[], []]
        )


def test_rows_without_a_scored_position_are_allowed_and_change_no_value(reverse):
    """The rule Task enforces: only a batch without any scored position is an error, because the metric averages
    over all scored positions together, so a row without one leaves it as the other rows alone give it."""
    positions = reverse.scored_positions.clone()
    positions[0] = False
    task = dataclasses.replace(reverse, scored_positions=positions)
    graph = task.graph()
    full, ablated = patched_forward(
        task.adapter,
        graph,
        task.clean,
        task_ablation(task, graph, "zero"),
        torch.stack([torch.ones(graph.n_edges), torch.zeros(graph.n_edges)]),
    )
    with_row = task.metric(ablated, full, positions)
    assert with_row.item() > 0.1
    torch.testing.assert_close(with_row, task.metric(ablated[1:], full[1:], positions[1:]))


@pytest.mark.parametrize("bad", [NAN, math.inf])
def test_a_method_returning_non_finite_scores_is_named(reverse, monkeypatch, bad):
    def three_bad(task, graph, ablated, config, seed, progress):
        scores = torch.zeros(graph.n_edges)
        scores[[0, 5, 9]] = bad
        return scores

    monkeypatch.setitem(METHODS, "eap", dataclasses.replace(get_method("eap"), run=three_bad))
    with pytest.raises(
        NonFiniteScoresError,
        match=r"eap with \{'objective': 'answer'.*\} returned 3 NaN or infinite scores of 77 edges",
    ):
        discover(reverse, "eap")


def test_sp_with_an_lr_whose_first_step_overflows(reverse):
    with pytest.raises(InvalidHyperparameterError, match=r"lr=1e\+38 must be a number > 0 and below 3.4e\+37"):
        discover(reverse, "edge-sp", lr=1e38)


def test_sp_with_the_largest_lr_ends_with_saturated_finite_gates(reverse):
    """What the bound relies on: below it, Adam's steps shrink once the gates saturate, so no lr drives them to
    infinity."""
    scores = discover(reverse, "edge-sp", lr=3.4e37, steps=100)
    assert torch.isfinite(scores.scores).all() and scores.scores.abs().min() > 1e37


def test_sp_whose_metric_goes_nan_mid_training(reverse):
    calls = []

    def nan_from_the_third_step(logits, reference, positions):
        calls.append(None)
        value = METRICS["kl"](logits, reference, positions)
        return value if len(calls) < 3 else value * NAN

    task = dataclasses.replace(reverse, metric=Metric("flaky", nan_from_the_third_step))
    graph = task.graph()
    config = SubnetworkProbingConfig(steps=10)
    with pytest.raises(
        NonFiniteMetricError,
        match=r"metric 'flaky' of task tracr-reverse is nan on the sampled, "
        r"partly ablated masks at step 3 of 10 \(lr=0.02\)",
    ):
        train_gates(task, graph, task_ablation(task, graph), torch.arange(graph.n_edges), graph.n_edges, config, 0)


def test_sp_with_a_metric_whose_gradient_is_infinite_names_the_gradient(reverse):
    """Before, NaN gradients made the gates NaN and the next forward blamed the mask (InvalidMaskError)."""
    task = dataclasses.replace(reverse, metric=Metric("root", root_of_squared_error))
    with pytest.raises(
        NonFiniteMetricError,
        match=r"the gradient of metric 'root' of task tracr-reverse is NaN or "
        r"infinite at step 1 of 5",
    ):
        discover(task, "node-sp", steps=5)


def test_sp_whose_lagrangian_multipliers_overflow(reverse):
    message = r"the sparsity term or its gradient is NaN or infinite at step .*multiplier_lr=3e\+38; lower lambda_"
    with pytest.raises(InvalidHyperparameterError, match=message):
        discover(reverse, "edge-sp", target_edges=2, multiplier_lr=3e38, steps=50)


def strict_json(text: str) -> dict:
    """Returns the JSON in `text`, failing the test at a NaN, Infinity or -Infinity that strict readers reject."""
    return json.loads(text, parse_constant=lambda constant: pytest.fail(f"not strict JSON: {constant}"))


def test_score_and_circuit_files_are_strict_json(reverse, tmp_path):
    scores = discover(reverse, "edge-sp", steps=5)
    scores.save(tmp_path / "scores.json")
    method_circuit(scores, 5).save(tmp_path / "circuit.json")
    assert len(strict_json((tmp_path / "scores.json").read_text())["scores"]) == reverse.graph().n_edges
    assert strict_json((tmp_path / "circuit.json").read_text())["task"] == "tracr-reverse"


def test_saving_a_nan_names_where_it_sits(reverse, tmp_path):
    graph = reverse.graph()
    values = torch.zeros(graph.n_edges)
    values[5] = NAN
    with pytest.raises(ScoresFileError, match=r"the record\['scores'\]\[5\]\[2\] = nan is not a finite number"):
        EdgeScores(graph, values, "by hand").save(tmp_path / "scores.json")
    circuit = Circuit(frozenset(), metadata={"loss": -math.inf})
    with pytest.raises(CircuitFileError, match=r"the record\['metadata'\]\['loss'\] = -inf is not a finite number"):
        circuit.save(tmp_path / "circuit.json")
    assert not (tmp_path / "scores.json").exists() and not (tmp_path / "circuit.json").exists()


def test_l2_metric_has_a_gradient_at_zero_distance(reverse):
    """sqrt's gradient at 0 is NaN; the l2 metric's is 0, so SP can train on it (it could not before)."""
    import torch

    from edgewise.tasks import METRICS

    logits = torch.zeros(2, 3, 4, requires_grad=True)
    reference = torch.zeros(2, 3, 4)
    reference[0, 0, 0] = 1.0  # one position at distance 1, the others at 0
    METRICS["l2"](logits, reference, torch.ones(2, 3, dtype=torch.bool)).backward()
    assert torch.isfinite(logits.grad).all() and logits.grad[0, 0, 0] == pytest.approx(-1 / 6)
    assert logits.grad[1].abs().sum() == 0
