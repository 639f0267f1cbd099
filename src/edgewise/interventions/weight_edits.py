"""Removal baselines that edit weights instead of ablating edges, each applied to a copy of the model (the task's
own model is never changed): task vectors (Ilharco et al. 2023: fine-tune on the forget task, subtract alpha times
the weight change) and gradient ascent on the forget task. Both train on the task's discovery inputs toward (or
away from) its answers: `task.answers` where the task has them, else the full model's top class."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import torch

from ..adapters import Adapter
from ..errors import InvalidHyperparameterError
from ..patching import full_logits
from ..tasks import Task
from .removal import Reference, TaskMeasure, check_same_model, task_measure


@dataclass(frozen=True)
class WeightEdit:
    """One weight-editing intervention: what it did to the forget task and each retain task, and its size."""

    label: str
    weight_change: float  # the L2 norm of the change to the model's parameters
    forget: TaskMeasure
    retain: tuple[TaskMeasure, ...]

    @property
    def size(self) -> str:
        """Returns the intervention's size in words: `|dw| 1.47`, the norm of the weight change."""
        return f"|dw| {self.weight_change:.3g}"

    def to_dict(self) -> dict:
        return {
            "label": self.label,
            "weight_change": self.weight_change,
            "forget": self.forget.to_dict(),
            "retain": [m.to_dict() for m in self.retain],
        }

    @classmethod
    def from_dict(cls, record: dict) -> "WeightEdit":
        """Returns the weight edit `to_dict` wrote.

        Args:
            record: a record of `to_dict`.

        Returns:
            The weight edit.
        """
        return cls(
            record["label"],
            record["weight_change"],
            TaskMeasure.from_dict(record["forget"]),
            tuple(TaskMeasure.from_dict(m) for m in record["retain"]),
        )


def _answers(task: Task) -> torch.Tensor:
    """Returns the class to train toward at each position [batch, pos] (-1 where nothing is scored)."""
    answers = task.answers
    if answers is None:
        with torch.no_grad():
            answers = full_logits(task).argmax(-1)
    return answers.masked_fill(~task.scored_positions, -1)


def check_training(task: Task, steps: int, lr: float) -> None:
    """Raises InvalidHyperparameterError unless the task has answers to train on and steps, lr are usable."""
    if not task.categorical:
        raise InvalidHyperparameterError(
            f"task {task.name} has numerical outputs; weight-edit baselines train on "
            "answers, so they need a categorical task"
        )
    if steps < 0 or not lr > 0:
        raise InvalidHyperparameterError(f"steps={steps} and lr={lr} must be at least 0 and above 0")


def answer_steps(
    adapter: Adapter,
    task: Task,
    steps: int,
    lr: float,
    ascend: bool = False,
    forward: Callable[[], torch.Tensor] | None = None,
) -> Iterator[int]:
    """Takes `steps` Adam steps on the adapter's model, in place, of cross-entropy toward the task's answers on its
    inputs (`ascend`: away from them), all inputs in every step; yields the number of steps taken after each.
    `forward` gives the logits [batch, pos, classes] to train (default: the adapter's plain forward)."""
    check_training(task, steps, lr)
    forward = forward or (lambda: adapter.forward(task.clean))
    answers = _answers(task)
    optimiser = torch.optim.Adam(adapter.model.parameters(), lr=lr)
    for step in range(steps):
        loss = torch.nn.functional.cross_entropy(forward().flatten(0, -2), answers.flatten(), ignore_index=-1)
        optimiser.zero_grad()
        (-loss if ascend else loss).backward()
        optimiser.step()
        yield step + 1


def fine_tune(task: Task, steps: int = 100, lr: float = 1e-3, ascend: bool = False, seed: int = 0) -> Adapter:
    """Returns a copy of the task's adapter and model after `steps` Adam steps of cross-entropy toward the task's
    answers on its inputs (`ascend`: away from them, gradient ascent), all inputs in every step."""
    if steps < 1:
        raise InvalidHyperparameterError(f"steps={steps} must be at least 1: a weight edit of no steps edits nothing")
    torch.manual_seed(seed)
    adapter = task.adapter.copy()
    adapter.model.train()
    for _ in answer_steps(adapter, task, steps, lr, ascend):
        pass
    adapter.model.eval()
    return adapter


def task_vector_model(adapter: Adapter, tuned: Adapter, alpha: float) -> Adapter:
    """Returns a copy of `adapter` whose model has alpha times its task vector (tuned - original, parameter by
    parameter) subtracted: theta - alpha (theta_tuned - theta)."""
    edited = adapter.copy()
    tuned_parameters = dict(tuned.model.named_parameters())
    with torch.no_grad():
        for name, parameter in edited.model.named_parameters():
            parameter -= alpha * (tuned_parameters[name] - parameter)
    return edited


@torch.no_grad()
def weight_edit(
    forget: Task,
    edited: Adapter,
    retain: list[Task] | tuple[Task, ...] = (),
    label: str = "weight edit",
    references: dict[str, Reference] | None = None,
) -> WeightEdit:
    """Returns what the edited copy of the forget task's adapter and model does to the forget task and each retain
    task (which must run the original model), beside the size of the change. `references`, by task name: the
    original model's logits on each task's inputs (as `remove` takes them), when many edits share them."""
    for task in retain:
        check_same_model(forget, task)
    original = dict(forget.adapter.model.named_parameters())
    change = sum(((p - original[n]) ** 2).sum() for n, p in edited.model.named_parameters()).sqrt().item()
    full = {name: reference.full for name, reference in (references or {}).items()}
    measure = lambda task, role: task_measure(task, edited.forward(task.clean), role, full.get(task.name))  # noqa: E731
    return WeightEdit(label, change, measure(forget, "forget"), tuple(measure(t, "retain") for t in retain))
