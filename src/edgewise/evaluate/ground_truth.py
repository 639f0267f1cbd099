"""Ground truths per ablation: the compiler's circuit minus the edges that carry nothing under an ablation on the
task's data."""

from __future__ import annotations

import torch

from ..graph import Edge, Graph
from ..patching import AblatedOutputs, full_logits, patched_forward
from ..tasks import Task


@torch.no_grad()
def effective_ground_truth(task: Task, graph: Graph, ablated: AblatedOutputs, tolerance: float = 1e-6) -> set[Edge]:
    """Returns the ground-truth edges that carry information under this ablation on the task's data: the derived
    circuit minus every edge whose removal alone leaves the outputs unchanged (max |logit change| <= tolerance),
    provided the rest is still exactly faithful; otherwise (the removable edges are redundant copies of one another)
    the derived circuit itself.

    Under resample ablation on tracr-reverse this is auto-circuit's 2-edge circuit; under zero ablation 11 edges:
    ACDC's 10 and Resid Start->A3.0.Q, which moves the (unscored) BOS output by 6e-7 (`minimal_circuit` drops it).
    """
    truth = sorted(task.ground_truth_edges(graph), key=graph.edge_index)
    full = full_logits(task)
    keep_all = graph.mask_for(truth)
    masks = keep_all.repeat(len(truth), 1)
    for row, edge in enumerate(truth):
        masks[row, graph.edge_index(edge)] = 0
    moved = (patched_forward(task.model, graph, task.clean, ablated, masks) - full).flatten(1).abs().amax(1)
    needed = {e for e, m in zip(truth, moved.tolist()) if m > tolerance}
    rest = patched_forward(task.model, graph, task.clean, ablated, graph.mask_for(needed))
    return needed if (rest - full).abs().max() <= tolerance else set(truth)
