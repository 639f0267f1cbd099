"""Optimal ablation (edgewise.patching.optimal_ablation): each writer node's learned constant, checked against a
node ablation written by hand with a TransformerLens hook, and against the mean it starts from."""

from __future__ import annotations

import pytest
import torch
from conftest import tracr

from edgewise.errors import UsageError
from edgewise.patching import (
    Ablation,
    OptimalAblationSettings,
    faithfulness_loss,
    make_ablation,
    optimal_ablation,
    task_ablation,
)


def _writer_nodes(graph):
    return [(group, i) for group in graph.groups if group.kind == "writer" for i in range(len(group.nodes))]


def _hand_ablated_loss(task, group, index, constant):
    """The task's loss with one node's output set to `constant` [P, d_model] by a hook on the model itself."""

    def hook(value, hook):
        value = value.clone()
        if group.per_head:
            value[:, :, index] = constant
        else:
            value[:] = constant
        return value

    with torch.no_grad():
        reference = task.model(task.clean)
        logits = task.model.run_with_hooks(task.clean, fwd_hooks=[(group.hook, hook)])
    return task.metric(logits, reference, task.scored_positions).item()


def _node_mask(graph, node):
    return torch.tensor([0.0 if e.writer == node.name else 1.0 for e in graph.edges])


@pytest.fixture(scope="module")
def reverse_constants():
    task = tracr("tracr-reverse")
    graph = task.graph()
    return task, graph, optimal_ablation(task, graph)


def test_each_constant_is_never_worse_than_the_mean_and_better_where_the_mean_is_off(reverse_constants):
    task, graph, optimal = reverse_constants
    mean = task_ablation(task, graph, "mean")
    gains = []
    for group, index in _writer_nodes(graph):
        constant = optimal.values[group.hook][0]
        constant = constant[:, index] if group.per_head else constant
        learned = _hand_ablated_loss(task, group, index, constant)
        at_mean = mean.values[group.hook][0]
        at_mean = _hand_ablated_loss(task, group, index, at_mean[:, index] if group.per_head else at_mean)
        assert learned <= at_mean + 1e-6, group.nodes[index].name
        gains.append(at_mean - learned)
    assert max(gains) > 0.05  # tracr-reverse: one head's mean is off-distribution (0.20 -> 0.12)


def test_the_patching_forward_reads_the_constants_as_a_hand_written_node_ablation(reverse_constants):
    task, graph, optimal = reverse_constants
    assert optimal.kind is Ablation.OPTIMAL
    for group, index in _writer_nodes(graph):
        node = group.nodes[index]
        constant = optimal.values[group.hook][0]
        expected = _hand_ablated_loss(task, group, index, constant[:, index] if group.per_head else constant)
        patched = faithfulness_loss(task, graph, optimal, _node_mask(graph, node)).item()
        assert patched == pytest.approx(expected, abs=1e-5), node.name


@pytest.mark.parametrize("kind", ["per-position", "feature"])
def test_per_position_and_feature_graphs_learn_a_constant_per_node_no_worse_than_the_mean(kind):
    task = tracr("tracr-reverse")
    graph = task.graph(per_position=True) if kind == "per-position" else task.graph(features="oracle")
    settings = OptimalAblationSettings(steps=30, nodes_per_forward=64)
    optimal = optimal_ablation(task, graph, settings)
    mean = task_ablation(task, graph, "per-position-mean" if kind == "per-position" else "mean")
    n_positions = task.clean.shape[1] if kind == "per-position" else 1
    for group in graph.groups:
        if group.kind == "writer":
            assert optimal.values[group.hook].shape[:2] == (1, n_positions)
    for group, index in _writer_nodes(graph):
        mask = _node_mask(graph, group.nodes[index])
        learned = faithfulness_loss(task, graph, optimal, mask).item()
        assert learned <= faithfulness_loss(task, graph, mean, mask).item() + 1e-6, group.nodes[index].name


def test_optimal_needs_a_task_and_sensible_settings():
    task = tracr("tracr-reverse")
    with pytest.raises(UsageError, match="task_ablation"):
        make_ablation("optimal", task.model, task.graph(), task.clean)
    with pytest.raises(UsageError, match="steps"):
        OptimalAblationSettings(steps=0)
    with pytest.raises(UsageError, match="lr"):
        OptimalAblationSettings(lr=-1.0)
