"""Ground truths per ablation: the compiler's circuit minus the edges that carry nothing the metric sees under an
ablation on the task's data. One definition, used by the bench, `edgewise discover` and `edgewise diagnose` alike
(docs/ground-truth.md, "One truth per ablation")."""

from __future__ import annotations

import torch

from ..graph import Edge, Graph
from ..patching import AblatedOutputs, full_logits, patched_forward
from ..tasks import Task

# An edge carries nothing when removing it moves no scored output by more than this. tracr's float32 noise is ~1e-7;
# effects of ~1e-6 (reverse's half score on BOS, docs/ground-truth.md) count as none, as in ACDC's canonical circuits.
OUTPUT_TOLERANCE = 1e-5


def scored_change(task: Task, logits: torch.Tensor, full: torch.Tensor) -> torch.Tensor:
    """Returns the largest |output change| over the task's scored positions: [n] for logits [n, batch, pos, out]."""
    return (logits - full).abs().amax(-1)[..., task.scored_positions].amax(-1)


@torch.no_grad()
def effective_ground_truth(
    task: Task, graph: Graph, ablated: AblatedOutputs, tolerance: float = OUTPUT_TOLERANCE
) -> set[Edge]:
    """Returns the ground-truth edges that carry information the metric sees under this ablation on the task's data:
    the derived circuit minus every edge whose removal from it moves no scored output of the circuit by more than
    `tolerance`, provided the rest keeps every scored output within `tolerance` of the circuit's; otherwise (the
    removable edges are redundant copies of one another) the derived circuit itself.

    Only scored positions count: an edge that moves only the BOS output (which no metric reads) carries nothing.
    Under resample ablation on tracr-reverse this is auto-circuit's 2-edge circuit; under zero ablation ACDC's 10.
    """
    truth = sorted(task.ground_truth_edges(graph), key=graph.edge_index)
    keep_all = graph.mask_for(truth)
    # What the derived circuit alone computes: the full model's outputs on tracr (tested), and what removals are
    # measured against, so that in a compressed model, where the circuit alone is off by interference, an edge
    # counts by what it adds to the circuit
    alone = patched_forward(task.model, graph, task.clean, ablated, keep_all.unsqueeze(0))
    masks = keep_all.repeat(len(truth), 1)
    for row, edge in enumerate(truth):
        masks[row, graph.edge_index(edge)] = 0
    moved = scored_change(task, patched_forward(task.model, graph, task.clean, ablated, masks), alone)
    needed = {e for e, m in zip(truth, moved.tolist()) if m > tolerance}
    if not needed and scored_change(task, alone, full_logits(task)).item() > tolerance:
        # A circuit that is far from the model and that no removal moves is missing what feeds it (a trained SAE's
        # matched truth without the inputs its features read): no edge can be told apart, so keep them all
        return set(truth)
    rest = patched_forward(task.model, graph, task.clean, ablated, graph.mask_for(needed).unsqueeze(0))
    return needed if scored_change(task, rest, alone).item() <= tolerance else set(truth)
