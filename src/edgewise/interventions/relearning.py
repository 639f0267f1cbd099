"""Relearning: how fast a removed capability comes back. A copy of the intervened model (the task's own with the
removed edges still ablated, or a weight-edited copy) takes Adam steps of cross-entropy toward the forget task's
answers on its discovery inputs, and the forget accuracy on held-out inputs is measured after every step. A removal
that only hides the skill (a few weights steer around it) comes back in a step or two; one that took it out of the
model takes as long as learning it would.

Removed edges stay removed while the copy trains: each step feeds them the ablation's value as the copy's current
weights compute it (resample: its outputs on the corrupted inputs), so no step can route the skill through them.
The copy trains in eval mode (no dropout), the mode it is measured in.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass

import torch

from ..adapters import Adapter
from ..graph import Edge
from ..patching import full_logits
from ..tasks import Task
from .removal import accuracy, removal_logits
from .weight_edits import answer_steps, check_training

RECOVERED = 0.9  # a capability is back once the forget accuracy reaches this share of the full model's


@dataclass(frozen=True)
class Relearning:
    """The forget task's held-out accuracy after 0, 1, ..., n relearning steps, beside the full model's."""

    label: str
    accuracy: tuple[float, ...]  # [0] is right after the removal, before any relearning step
    full_accuracy: float
    lr: float

    @property
    def recovered_at(self) -> int | None:
        """Returns the first step count at which the accuracy is back to RECOVERED x the full model's, or None."""
        return next((step for step, value in enumerate(self.accuracy) if value >= RECOVERED * self.full_accuracy), None)

    def to_dict(self) -> dict:
        return {
            "label": self.label,
            "accuracy": list(self.accuracy),
            "full_accuracy": self.full_accuracy,
            "lr": self.lr,
            "recovered_at": self.recovered_at,
            "recovered_share": RECOVERED,
        }

    @classmethod
    def from_dict(cls, record: dict) -> "Relearning":
        """Returns the relearning curve `to_dict` wrote (`recovered_at` follows from the curve again).

        Args:
            record: a record of `to_dict`.

        Returns:
            The relearning curve.
        """
        return cls(record["label"], tuple(record["accuracy"]), record["full_accuracy"], record["lr"])


def relearn(
    train: Task,
    evaluation: Task,
    edges: set[Edge] | frozenset[Edge] = frozenset(),
    ablation: str = "resample",
    per_position: bool = False,
    adapter: Adapter | None = None,
    steps: int = 10,
    lr: float = 1e-3,
    label: str = "",
    seed: int = 0,
) -> Relearning:
    """Returns the forget accuracy on `evaluation`'s inputs while a copy of `adapter` (default: the task's own model)
    relearns on `train`'s, with `edges` ablated throughout; neither the task's model nor `adapter` changes."""
    check_training(train, steps, lr)
    torch.manual_seed(seed)
    learner = (adapter or train.adapter).copy()
    learner.model.eval()
    edges = frozenset(edges)
    train_graph, evaluation_graph = train.graph(per_position), evaluation.graph(per_position)
    full = full_logits(evaluation)

    def measured() -> float:
        with torch.no_grad():
            return accuracy(evaluation, removal_logits(evaluation, evaluation_graph, edges, ablation, copy[0]), full)

    copy = [learner]  # the closures reach the copy through this list, so that emptying it releases the copy
    del learner
    curve = [measured()]
    forward = lambda: removal_logits(train, train_graph, edges, ablation, copy[0])
    for _ in answer_steps(copy[0], train, steps, lr, forward=forward):
        curve.append(measured())
    copy.clear()
    gc.collect()  # a bridge copy sits in reference cycles: only the cycle collector frees its weights and Adam state
    return Relearning(label, tuple(curve), accuracy(evaluation, full, full), lr)
