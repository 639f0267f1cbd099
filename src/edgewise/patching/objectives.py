"""What a task's model does under a mask, as numbers: the full model's logits, the faithfulness loss of a masked
model, and the answer score that gradient methods follow."""

from __future__ import annotations

import torch

from ..graph import Graph
from ..tasks import Task
from .ablation import AblatedOutputs
from .forward import patched_forward


@torch.no_grad()
def full_logits(task: Task) -> torch.Tensor:
    """Returns the unpatched model's logits on the clean batch [batch, pos, vocab].

    Args:
        task: the task whose model and clean batch are used.

    Returns:
        The logits, `[batch, pos, vocab]` (a numerical task: one value per output dimension in place of vocab).
    """
    return task.adapter.forward(task.clean)


def answer_score(task: Task, logits: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor:
    """Returns how strongly the outputs give the full model's answers, averaged over scored positions: the
    log-probability of the full model's top class (categorical), or the outputs' covariance with the full
    model's outputs (numerical); [n_masks] or scalar.

    Unlike the faithfulness metrics, its gradient is not zero at the full model, so gradient methods use it.
    The numerical form weighs each output by how far the full model's answer is from its mean: with a plain mean
    of outputs, a corrupted batch that is a permutation of the clean one would cancel out in the sum.

    Args:
        task: the task: its scored positions, whether it is categorical, and (with `reference` None) its model and
            clean batch.
        logits: the patched model's outputs, `[batch, pos, vocab]` or `[n_masks, batch, pos, vocab]`.
        reference: the full model's outputs on the clean batch, `[batch, pos, vocab]`; None computes them
            (`full_logits`).

    Returns:
        The score, averaged over the scored positions of all rows: `[n_masks]` for batched logits, else a scalar.
    """
    reference = full_logits(task) if reference is None else reference
    weights = task.scored_positions.to(logits.dtype)
    if task.categorical:
        answers = reference.argmax(-1).expand(logits.shape[:-1])
        per_position = logits.log_softmax(-1).gather(-1, answers.unsqueeze(-1)).squeeze(-1)
    else:
        centred = reference - (reference * weights.unsqueeze(-1)).sum((0, 1)) / weights.sum()
        per_position = (logits * centred).sum(-1)
    return (per_position * weights).sum((-1, -2)) / weights.sum()


def faithfulness_loss(
    task: Task, graph: Graph, ablated: AblatedOutputs, mask: torch.Tensor, reference: torch.Tensor | None = None
) -> torch.Tensor:
    """Returns the task's metric between the masked model and the full model: scalar, or [n_masks] for batched
    masks [n_masks, n_edges].

    Args:
        task: the task whose model, clean batch, metric and scored positions are used.
        graph: the graph the mask is over.
        ablated: what an ablated edge carries.
        mask: the edge weights, `[n_edges]` or `[n_masks, n_edges]`, 1 keeping an edge and 0 ablating it; may
            take gradients.
        reference: the full model's outputs on the clean batch, `[batch, pos, vocab]`; None computes them
            (`full_logits`).

    Returns:
        The metric, differentiable in `mask`: a scalar, or `[n_masks]` for batched masks.

    Raises:
        GraphMismatchError: the mask does not fit the graph, or the graph or `ablated` does not fit the task's
            model.
        InvalidMaskError: the mask holds NaN or infinite values.
        BatchShapeError: `ablated` cannot be paired with the clean batch.
    """
    reference = full_logits(task) if reference is None else reference
    logits = patched_forward(task.adapter, graph, task.clean, ablated, mask)
    return task.metric(logits, reference, task.scored_positions)
