"""Ablations: what an ablated edge carries instead of its writer's clean output.

Each ablation records the writers' ablated outputs once, as one tensor per writer hook broadcastable to the
hook's value ([batch, pos, (head,) d_model]; a group split into features: [batch, pos, node, d_model]); the
patching forward reuses them for every mask. A feature is ablated as a node: zero ablation zeroes its contribution,
resample takes its contribution on the corrupted input, mean averages its contribution.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Callable

import torch

from ..adapters import Adapter, adapter_for
from ..errors import BatchShapeError, UnknownAblationError, UsageError
from ..graph import Graph, HookGroup, node_outputs
from ..tasks import Task


class Ablation(StrEnum):
    """What an ablated edge carries instead of its writer's clean output: the one place ablation names are known.
    A member equals its name as a string, so records, files and `kind == "resample"` read as before."""

    RESAMPLE = "resample"  # the writer's output on the paired corrupted input
    ZERO = "zero"  # nothing
    MEAN = "mean"  # the writer's output averaged over the reference batch and its positions
    PER_POSITION_MEAN = "per-position-mean"  # averaged over the reference batch at each position
    OPTIMAL = "optimal"  # the constant that best keeps the task's behaviour with the node alone removed (learned)

    @classmethod
    def parse(cls, name: "str | Ablation") -> "Ablation":
        """Returns the ablation called `name`.

        Args:
            name: an ablation's name (`resample`, `zero`, `mean`, `per-position-mean`, `optimal`) or an Ablation.

        Returns:
            The Ablation member.

        Raises:
            UnknownAblationError: `name` is no ablation; the message lists the known ones.
        """
        try:
            return cls(name)
        except ValueError:
            raise UnknownAblationError(f"unknown ablation {name!r}; choose one of {', '.join(cls)}") from None


@dataclass
class AblatedOutputs:
    """Writers' ablated outputs per writer hook; `batch_shape` is the (batch, pos) a resample ablation pairs with."""

    kind: Ablation
    values: dict[str, torch.Tensor]
    batch_shape: tuple[int, int] | None = None
    _stacked: dict = field(default_factory=dict, init=False, repr=False, compare=False)  # by (hook, node axis)

    def __post_init__(self):
        self.kind = Ablation.parse(self.kind)
        # Recorded under torch.inference_mode the values would be inference tensors, which no later forward with
        # autograd may save: keep normal copies (of those only)
        with torch.inference_mode(False):
            self.values = {k: v.clone() if v.is_inference() else v for k, v in self.values.items()}

    def stacked(self, group: HookGroup) -> torch.Tensor | None:
        """Returns a writer group's ablated outputs as the patching forward stacks deltas, [node, batch, pos, d_model]
        or broadcastable to it (a view, made once per group); None where none were recorded for its hook."""
        key = (group.hook, group.node_axis)
        if key not in self._stacked:
            value = self.values.get(group.hook)
            if value is not None:
                value = (value if group.node_axis else value.unsqueeze(-2)).movedim(-2, 0)
            self._stacked[key] = value
        return self._stacked[key]

    def check_batch(self, tokens: torch.Tensor) -> None:
        """Raises BatchShapeError when `tokens` cannot be paired with these ablated outputs."""
        if self.batch_shape is not None and tuple(tokens.shape) != self.batch_shape:
            raise BatchShapeError(
                f"{self.kind} ablation was recorded on a corrupted batch of shape {self.batch_shape}, but the clean "
                f"batch has shape {tuple(tokens.shape)}; resample ablation pairs clean row i with corrupted row i, "
                "so both must have the same number of rows and the same sequence length"
            )
        if self.batch_shape is None:
            n_pos = next(iter(self.values.values())).shape[1]
            if n_pos not in (1, tokens.shape[1]):
                raise BatchShapeError(
                    f"{self.kind} ablation holds {n_pos} positions but the batch has {tokens.shape[1]}; record it on "
                    "reference data of the same sequence length"
                )


def writer_savers(graph: Graph) -> tuple[list[tuple[str, Callable]], dict[str, torch.Tensor]]:
    """Returns hooks that save each writer hook's value (detached) during a forward, and the dict they fill, keyed
    by the graph's hook name rather than hook.name: a model may report a canonical name for an alias. A group split
    by a dictionary saves its nodes' outputs [batch, pos, node, d_model] (`adapters.dictionary.node_outputs`)."""
    outputs: dict[str, torch.Tensor] = {}

    def saver(group: HookGroup):
        def save(value: torch.Tensor, hook) -> None:
            value = value.detach()
            outputs[group.hook] = node_outputs(group, graph.dictionaries, value) if group.split else value.clone()

        return save

    return [(g.hook, saver(g)) for g in graph.groups if g.kind == "writer"], outputs


def record_writer_outputs(adapter: Adapter, graph: Graph, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
    """Returns each writer hook's value [batch, pos, (head,) d_model] on `tokens`, detached."""
    hooks, outputs = writer_savers(graph)
    with torch.no_grad(), adapter.hooks(hooks):
        adapter.forward(tokens)
    return outputs


def resample_ablation(model: object, graph: Graph, corrupt_tokens: torch.Tensor) -> AblatedOutputs:
    """Returns the writers' outputs on the corrupted batch; clean row i is paired with corrupted row i."""
    adapter = adapter_for(model)
    values = record_writer_outputs(adapter, graph, corrupt_tokens)
    return AblatedOutputs(Ablation.RESAMPLE, values, tuple(corrupt_tokens.shape))


def zero_ablation(model: object, graph: Graph, tokens: torch.Tensor) -> AblatedOutputs:
    """Returns zeros for every writer (biases the residual stream carries are kept); `tokens` fix the shapes."""
    values = record_writer_outputs(adapter_for(model), graph, tokens[:1])
    return AblatedOutputs(Ablation.ZERO, {k: torch.zeros_like(v[:, :1]) for k, v in values.items()})


def mean_ablation(model: object, graph: Graph, reference_tokens: torch.Tensor) -> AblatedOutputs:
    """Returns each writer's output averaged over the reference batch and over positions: [1, 1, (head,) d_model]."""
    values = record_writer_outputs(adapter_for(model), graph, reference_tokens)
    return AblatedOutputs(Ablation.MEAN, {k: v.mean(dim=(0, 1), keepdim=True) for k, v in values.items()})


def per_position_mean_ablation(model: object, graph: Graph, reference_tokens: torch.Tensor) -> AblatedOutputs:
    """Returns each writer's output averaged over the reference batch at each position: [1, pos, (head,) d_model]."""
    values = record_writer_outputs(adapter_for(model), graph, reference_tokens)
    return AblatedOutputs(Ablation.PER_POSITION_MEAN, {k: v.mean(dim=0, keepdim=True) for k, v in values.items()})


ABLATIONS: dict[Ablation, Callable[[object, Graph, torch.Tensor], AblatedOutputs]] = {
    Ablation.RESAMPLE: resample_ablation,
    Ablation.ZERO: zero_ablation,
    Ablation.MEAN: mean_ablation,
    Ablation.PER_POSITION_MEAN: per_position_mean_ablation,
}


def make_ablation(name: str | Ablation, model: object, graph: Graph, tokens: torch.Tensor) -> AblatedOutputs:
    """Returns the named ablation; `tokens` are the corrupted batch (resample) or the reference data (others).

    Args:
        name: the ablation (any but `optimal`, which learns against a task's metric: see `task_ablation`).
        model: the model whose writers are recorded.
        graph: the graph whose writers are ablated.
        tokens: the corrupted batch (resample) or the reference data.

    Returns:
        The ablated outputs.

    Raises:
        UnknownAblationError: `name` is no ablation (see `Ablation`).
        UsageError: `optimal`, which needs a task.
    """
    kind = Ablation.parse(name)
    if kind not in ABLATIONS:
        raise UsageError(
            f"{kind} ablation learns its constants against a task's metric, which tokens alone do not give: use "
            f"task_ablation(task, graph, {str(kind)!r})"
        )
    return ABLATIONS[kind](model, graph, tokens)


def task_ablation(
    task: Task, graph: Graph, kind: str | Ablation = Ablation.RESAMPLE, adapter: Adapter | None = None
) -> AblatedOutputs:
    """Returns the named ablation of a task's writers: resample uses the corrupted batch, the others average (or
    shape zeros on) the clean batch; optimal learns one constant per writer node against the task's metric on the
    clean batch (`optimal_ablation`). `adapter`: the writers as another copy of the task's model computes them (an
    edited or relearning copy), instead of the task's own."""
    kind = Ablation.parse(kind)
    if kind is Ablation.OPTIMAL:
        from .optimal_ablation import optimal_ablation  # it builds on this module

        if adapter is not None:
            raise UsageError("optimal ablation learns against the task's own model; it takes no other adapter")
        return optimal_ablation(task, graph)
    return make_ablation(
        kind, adapter or task.adapter, graph, task.corrupt if kind is Ablation.RESAMPLE else task.clean
    )
