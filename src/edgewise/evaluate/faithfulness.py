"""Faithfulness of circuits: the metric of a circuit against the full model, and MIB's faithfulness curve over
circuit sizes with its areas CPR and CMD."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

from ..errors import InvalidHyperparameterError
from ..graph import Edge, EdgeScores, Graph
from ..patching import AblatedOutputs, full_logits, patched_forward
from ..tasks import Task
from .roc import trapezoid


@torch.no_grad()
def circuit_loss(task: Task, graph: Graph, ablated: AblatedOutputs, edges: set[Edge],
                 full: torch.Tensor | None = None) -> float:
    """Returns the task metric between the circuit (every other edge ablated) and the full model (`full`: its logits
    on the clean batch, when the caller has them)."""
    logits = patched_forward(task.model, graph, task.clean, ablated, graph.mask_for(edges))
    return task.metric(logits, full_logits(task) if full is None else full, task.scored_positions).item()


@torch.no_grad()
def faithfulness(task: Task, graph: Graph, ablated: AblatedOutputs, edges: set[Edge]) -> float:
    """Returns 1 - loss(circuit) / loss(empty circuit): 1 = as faithful as the full model, 0 = as the empty one."""
    return circuits_faithfulness(task, graph, ablated, [edges])[0]


@torch.no_grad()
def circuits_faithfulness(task: Task, graph: Graph, ablated: AblatedOutputs, circuits: Sequence[set[Edge]]
                          ) -> list[float]:
    """Returns `faithfulness` of each circuit, with the full model's logits and the empty circuit's loss computed
    once for all of them (NaN for each when the empty circuit's loss is 0: the ablation changes nothing)."""
    full = full_logits(task)
    empty = circuit_loss(task, graph, ablated, set(), full)
    return [1.0 - circuit_loss(task, graph, ablated, edges, full) / empty if empty > 0 else float("nan")
            for edges in circuits]


@dataclass(frozen=True)
class FaithfulnessCurve:
    """Faithfulness f(k) of the top-k circuit at circuit sizes k, ascending from 0 to `n_edges`."""

    sizes: list[int]
    faithfulness: list[float]
    n_edges: int

    @property
    def fractions(self) -> list[float]:
        """Returns the sizes as fractions of the graph's edges: MIB's x axis."""
        return [k / self.n_edges for k in self.sizes]

    def to_dict(self) -> dict:
        return {"sizes": self.sizes, "faithfulness": self.faithfulness, "n_edges": self.n_edges}

    @classmethod
    def from_dict(cls, record: dict) -> "FaithfulnessCurve":
        return cls(record["sizes"], record["faithfulness"], record["n_edges"])


def circuit_sizes(n_edges: int, every_k_up_to: int = 1000, n_sampled: int = 201) -> list[int]:
    """Returns the circuit sizes a faithfulness curve is evaluated at, ascending from 0 to `n_edges`: every k on
    graphs of at most `every_k_up_to` edges; on larger ones at most `n_sampled` sizes, half evenly spaced and half
    geometrically (dense at small k, where circuits are)."""
    if n_sampled < 2:
        raise InvalidHyperparameterError(
            f"n_sampled must be at least 2 (the empty and the full circuit), got {n_sampled}"
        )
    if n_edges <= every_k_up_to:
        return list(range(n_edges + 1))
    half = n_sampled // 2
    linear = torch.linspace(0, n_edges, half, dtype=torch.float64)
    geometric = torch.logspace(0, math.log10(n_edges), n_sampled - half - 1, dtype=torch.float64)
    return sorted({0, n_edges, *linear.round().long().tolist(), *geometric.round().long().tolist()})


@torch.no_grad()
def faithfulness_curve(
    task: Task,
    scores: EdgeScores,
    ablated: AblatedOutputs,
    every_k_up_to: int = 1000,
    n_sampled: int = 201,
    rows_per_forward: int = 2048,
) -> FaithfulnessCurve:
    """Returns MIB's faithfulness curve f(k) = (m(C_k) - m(empty)) / (m(full) - m(empty)) over circuit sizes k, with
    C_k the k best-scoring edges (ties in graph order, as `circuit_from_scores`) and m the task's metric against the
    full model; all NaN when the empty circuit is as good as the full model (the ablation changes nothing).

    MIB evaluates a handful of sizes (0.1% to 100% of the edges). Our graphs are small, so the curve here takes
    every k from 0 to n_edges, except on graphs over `every_k_up_to` edges (dyck2's: 1997, and 9985 per position),
    which get `n_sampled` sizes (see `circuit_sizes`) so that a curve costs seconds rather than a minute. The masks
    are batched, at most `rows_per_forward` input rows to one patched forward. m is a distance to the full model,
    so m(full) = 0 up to float error and f(k) is `faithfulness` of C_k.
    """
    graph = scores.graph
    sizes = circuit_sizes(graph.n_edges, every_k_up_to, n_sampled)
    rank = torch.empty(graph.n_edges, dtype=torch.long)
    rank[torch.argsort(-scores.snapped(), stable=True)] = torch.arange(graph.n_edges)
    full = full_logits(task)
    per_forward = max(1, rows_per_forward // task.clean.shape[0])
    losses = []
    for start in range(0, len(sizes), per_forward):
        chunk = torch.tensor(sizes[start : start + per_forward])
        masks = (rank.unsqueeze(0) < chunk.unsqueeze(1)).float()  # [n_masks, n_edges]: C_k keeps ranks below k
        logits = patched_forward(task.model, graph, task.clean, ablated, masks)
        losses.append(task.metric(logits, full, task.scored_positions).double())
    loss = torch.cat(losses)
    empty, whole = loss[0], loss[-1]
    if empty == whole:
        return FaithfulnessCurve(sizes, [math.nan] * len(sizes), graph.n_edges)
    return FaithfulnessCurve(sizes, ((loss - empty) / (whole - empty)).tolist(), graph.n_edges)


def cpr(curve: FaithfulnessCurve) -> float:
    """Returns MIB's integrated circuit performance ratio: the area under f over the fraction of edges kept
    (trapezoid rule). Higher is better; a circuit can overshoot the full model, so it may exceed 1."""
    return trapezoid(curve.fractions, curve.faithfulness)


def cmd(curve: FaithfulnessCurve) -> float:
    """Returns MIB's integrated circuit-model distance: the area under |1 - f| over the fraction of edges kept
    (trapezoid rule). Lower is better: 0 when every circuit size matches the full model."""
    return trapezoid(curve.fractions, [abs(1.0 - f) for f in curve.faithfulness])


def edges_to_reach(curve: FaithfulnessCurve, level: float = 0.95) -> int | None:
    """Returns the smallest evaluated circuit size whose faithfulness reaches `level` (the edges a method needs),
    or None when none does. On a subset of sizes (large graphs) it is the first evaluated size at or past the true
    one."""
    return next((k for k, f in zip(curve.sizes, curve.faithfulness) if f >= level), None)
