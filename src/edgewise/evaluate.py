"""Scoring circuits and edge scores: ROC AUC against a ground truth, and faithfulness of a circuit."""

from __future__ import annotations

import torch

from .ablation import AblatedOutputs
from .graph import Edge, Graph
from .patching import patched_forward
from .scores import EdgeScores
from .task import Task


def roc_auc(scores: EdgeScores, truth: set[Edge], zero_tolerance: float = 1e-9) -> float:
    """Returns the probability that a random true edge outscores a random other edge (ties count one half).

    Scores within `zero_tolerance` (relative to the largest) of zero count as zero: gradient methods give edges
    with no effect float noise of either sign, which would otherwise break ties at random.
    """
    labels = torch.tensor([e in truth for e in scores.graph.edges])
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"ROC AUC needs true and false edges; got {n_pos} true and {n_neg} false")
    values = scores.scores.clone()
    values[values.abs() <= zero_tolerance * values.abs().max()] = 0.0
    # Mann-Whitney U via average ranks, which handles ties exactly.
    order = torch.argsort(values, stable=True)
    ranks = torch.empty_like(values)
    sorted_values = values[order]
    i = 0
    n = len(values)
    while i < n:
        j = i
        while j + 1 < n and sorted_values[j + 1] == sorted_values[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    u = ranks[labels].sum().item() - n_pos * (n_pos + 1) / 2
    return u / (n_pos * n_neg)


@torch.no_grad()
def effective_ground_truth(task: Task, graph: Graph, ablated: AblatedOutputs, tolerance: float = 1e-6) -> set[Edge]:
    """Returns the ground-truth edges that carry information under this ablation on the task's data: the derived
    circuit minus every edge whose removal alone leaves the outputs unchanged (max |logit change| <= tolerance),
    provided the rest is still exactly faithful; otherwise (the removable edges are redundant copies of one another)
    the derived circuit itself.

    Under resample ablation on tracr-reverse this is auto-circuit's 2-edge circuit; under zero ablation its 10 edges.
    """
    truth = sorted(task.ground_truth_edges(graph), key=graph.edge_index)
    full = task.full_logits()
    keep_all = graph.mask_for(truth)
    masks = keep_all.repeat(len(truth), 1)
    for row, edge in enumerate(truth):
        masks[row, graph.edge_index(edge)] = 0
    moved = (patched_forward(task.model, graph, task.clean, ablated, masks) - full).flatten(1).abs().amax(1)
    needed = {e for e, m in zip(truth, moved.tolist()) if m > tolerance}
    rest = patched_forward(task.model, graph, task.clean, ablated, graph.mask_for(needed))
    return needed if (rest - full).abs().max() <= tolerance else set(truth)


@torch.no_grad()
def circuit_loss(task: Task, graph: Graph, ablated: AblatedOutputs, edges: set[Edge]) -> float:
    """Returns the task metric between the circuit (every other edge ablated) and the full model."""
    logits = patched_forward(task.model, graph, task.clean, ablated, graph.mask_for(edges))
    return task.metric(logits, task.full_logits(), task.scored_positions).item()


@torch.no_grad()
def faithfulness(task: Task, graph: Graph, ablated: AblatedOutputs, edges: set[Edge]) -> float:
    """Returns 1 - loss(circuit) / loss(empty circuit): 1 = as faithful as the full model, 0 = as the empty one."""
    empty = circuit_loss(task, graph, ablated, set())
    return 1.0 - circuit_loss(task, graph, ablated, edges) / empty if empty > 0 else float("nan")
