"""Capability removal by ablation: the edges of a circuit are ablated (fed their ablated values: resample, mean or
zero) and every other edge is kept, so the model runs without the circuit. Measured per task on the inputs given
(held-out ones, by the caller's choice): the task metric against the full model and the accuracy before and after.
The model's weights are never changed: removal is a patched forward, so the same model can be measured again."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..adapters import Adapter
from ..diagnostics import top_class
from ..errors import GraphMismatchError
from ..graph import Edge, Graph
from ..patching import AblatedOutputs, full_logits, patched_forward, task_ablation
from ..tasks import Task

TIE_TOLERANCE = 1e-5  # top logits this close (relative) are a tie: diagnose's behaviour check uses the same


@dataclass(frozen=True)
class TaskMeasure:
    """One task's behaviour before and after a removal, on its inputs."""

    task: str
    role: str  # forget or retain
    metric: float  # the task's metric (e.g. KL) of the model without the edges, against the full model
    accuracy_before: float | None  # top answer = the task's answer (`task.answers`), else = the full model's
    accuracy_after: float | None  # None for numerical outputs

    def to_dict(self) -> dict:
        return {
            "task": self.task,
            "role": self.role,
            "metric": self.metric,
            "accuracy_before": self.accuracy_before,
            "accuracy_after": self.accuracy_after,
        }

    @classmethod
    def from_dict(cls, record: dict) -> "TaskMeasure":
        """Returns the measure `to_dict` wrote.

        Args:
            record: a record of `to_dict`.

        Returns:
            The measure.
        """
        return cls(
            record["task"], record["role"], record["metric"], record["accuracy_before"], record["accuracy_after"]
        )


@dataclass(frozen=True)
class Removal:
    """One intervention: which edges it removed, and what that did to the forget task and each retain task."""

    label: str
    ablation: str
    edges: frozenset[Edge]
    n_graph_edges: int
    forget: TaskMeasure
    retain: tuple[TaskMeasure, ...]

    @property
    def size(self) -> str:
        """Returns the intervention's size in words: `20 edges`."""
        return f"{len(self.edges)} edges"

    def to_dict(self) -> dict:
        return {
            "label": self.label,
            "ablation": self.ablation,
            "n_edges": len(self.edges),
            "n_graph_edges": self.n_graph_edges,
            "fraction_of_edges": len(self.edges) / self.n_graph_edges,
            "edges": sorted(e.endpoints() for e in self.edges),
            "forget": self.forget.to_dict(),
            "retain": [m.to_dict() for m in self.retain],
        }

    @classmethod
    def from_dict(cls, record: dict, n_graph_edges: int | None = None) -> "Removal":
        """Returns the removal `to_dict` wrote.

        Args:
            record: a record of `to_dict`.
            n_graph_edges: the graph's size, for records written before they stored it (None: from the record's
                `n_graph_edges`, else its share of the graph's edges).

        Returns:
            The removal.

        Raises:
            GraphMismatchError: the record holds no graph size and none can be derived (it removed no edges).
        """
        n_graph_edges = record.get("n_graph_edges") or n_graph_edges
        if n_graph_edges is None:
            if not record["fraction_of_edges"]:
                raise GraphMismatchError(
                    f"removal {record['label']!r} removed no edges and records no graph size; give n_graph_edges"
                )
            n_graph_edges = round(record["n_edges"] / record["fraction_of_edges"])
        edges = frozenset(Edge.from_endpoints(writer, reader) for writer, reader in record["edges"])
        return cls(
            record["label"],
            record["ablation"],
            edges,
            n_graph_edges,
            TaskMeasure.from_dict(record["forget"]),
            tuple(TaskMeasure.from_dict(m) for m in record["retain"]),
        )


def accuracy(task: Task, logits: torch.Tensor, full: torch.Tensor) -> float | None:
    """Returns the share of scored positions whose top class is the task's answer (else the full model's); a tie of
    the top logits answers nothing, so it is never right."""
    if not task.categorical:
        return None
    answers = task.answers
    target = full.argmax(-1) if answers is None else answers
    return (top_class(logits, TIE_TOLERANCE) == target)[task.scored_positions].float().mean().item()


def check_same_model(forget: Task, other: Task) -> None:
    """Raises GraphMismatchError unless `other` runs the forget task's model (the same weights)."""
    mine, theirs = forget.adapter.model.state_dict(), other.adapter.model.state_dict()
    if mine.keys() != theirs.keys() or not all(torch.equal(mine[k], theirs[k]) for k in mine):
        raise GraphMismatchError(
            f"retain task {other.name} runs another model than {forget.name}; removal is "
            "measured on one model, so give retain tasks of the same model"
        )


@dataclass(frozen=True)
class Reference:
    """What every removal from one task is measured against, computed once per task: the full model's logits on
    its inputs and its writers' ablated values."""

    full: torch.Tensor
    ablated: AblatedOutputs

    @classmethod
    @torch.no_grad()
    def of(cls, task: Task, graph: Graph, ablation: str) -> "Reference":
        return cls(full_logits(task), task_ablation(task, graph, ablation))


def task_measure(task: Task, logits: torch.Tensor, role: str, full: torch.Tensor | None = None) -> TaskMeasure:
    """Returns the task's metric against the full model and its accuracy before and after, for the logits
    [batch, pos, out] an intervened model gave on the task's inputs (`full`: the full model's, when known)."""
    full = full_logits(task) if full is None else full
    metric = task.metric(logits.unsqueeze(0), full, task.scored_positions)[0].item()
    return TaskMeasure(task.name, role, metric, accuracy(task, full, full), accuracy(task, logits, full))


def removal_logits(
    task: Task,
    graph: Graph,
    edges: frozenset[Edge],
    ablation: str,
    adapter: Adapter | None = None,
    ablated: AblatedOutputs | None = None,
) -> torch.Tensor:
    """Returns the logits [batch, pos, out] on the task's inputs with `edges` ablated and every other edge kept, run
    by `adapter` (default: the task's own; a copy that relearns gets its ablated values from its current weights,
    unless `ablated` gives them)."""
    adapter = adapter or task.adapter
    if not edges:
        return adapter.forward(task.clean)
    ablated = task_ablation(task, graph, ablation, adapter) if ablated is None else ablated
    return patched_forward(adapter, graph, task.clean, ablated, 1 - graph.mask_for(edges))


@torch.no_grad()
def _measure(
    task: Task, graph: Graph, edges: frozenset[Edge], ablation: str, role: str, reference: Reference | None
) -> TaskMeasure:
    """Returns the task's metric and accuracy with `edges` ablated, every other edge kept."""
    reference = reference or Reference.of(task, graph, ablation)
    return task_measure(
        task, removal_logits(task, graph, edges, ablation, ablated=reference.ablated), role, reference.full
    )


def remove(
    forget: Task,
    edges: set[Edge],
    retain: list[Task] | tuple[Task, ...] = (),
    ablation: str = "resample",
    per_position: bool = False,
    label: str = "circuit",
    references: dict[str, Reference] | None = None,
) -> Removal:
    """Returns what ablating `edges` (and nothing else) does to the forget task and to each retain task, each on its
    own inputs with its own ablated values; the retain tasks must run the forget task's model. `references`, by
    task name: each task's full logits and ablated values, when many removals share them."""
    for task in retain:
        check_same_model(forget, task)
    graph = forget.graph(per_position)
    edges = frozenset(edges)
    missing = [e.name for e in edges if e not in graph]
    if missing:
        raise GraphMismatchError(
            f"{len(missing)} edges to remove are not in {forget.name}'s "
            f"{'per-position' if per_position else 'plain'} graph, e.g. {missing[0]}"
        )
    references = references or {}
    return Removal(
        label,
        ablation,
        edges,
        graph.n_edges,
        _measure(forget, graph, edges, ablation, "forget", references.get(forget.name)),
        tuple(_measure(t, t.graph(per_position), edges, ablation, "retain", references.get(t.name)) for t in retain),
    )


def random_edges(graph: Graph, n: int, seed: int = 0) -> set[Edge]:
    """Returns `n` edges of the graph drawn uniformly without replacement: the baseline a circuit's removal must
    beat (the same number of edges, no knowledge of the task)."""
    order = torch.randperm(graph.n_edges, generator=torch.Generator().manual_seed(seed))[:n]
    return {graph.edges[i] for i in order.tolist()}
