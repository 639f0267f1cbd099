"""Faithfulness of circuits: the metric of a circuit against the full model, and MIB's faithfulness curve over
circuit sizes with its areas CPR and CMD."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

from ..errors import InvalidHyperparameterError
from ..graph import Edge, EdgeScores, Graph
from ..patching import AblatedOutputs, available_bytes, full_logits, patched_forward, patching_bytes
from ..tasks import Task
from .roc import trapezoid


@torch.no_grad()
def circuit_loss(
    task: Task, graph: Graph, ablated: AblatedOutputs, edges: set[Edge], full: torch.Tensor | None = None
) -> float:
    """Returns the task metric between the circuit (every other edge ablated) and the full model (`full`: its logits
    on the clean batch, when the caller has them).

    Args:
        task: the task (its model, clean batch, metric and scored positions).
        graph: the graph whose edges `edges` are.
        ablated: what an ablated edge carries (`edgewise.patching.task_ablation`).
        edges: the circuit, as the edges kept; every other edge of `graph` is ablated.
        full: the full model's logits on the clean batch, `[batch, pos, vocab]`; None computes them
            (`full_logits`).

    Returns:
        The task's metric of the circuit against the full model on the scored positions: a distance, 0 when the circuit
            matches the full model.
    """
    logits = patched_forward(task.model, graph, task.clean, ablated, graph.mask_for(edges))
    return task.metric(logits, full_logits(task) if full is None else full, task.scored_positions).item()


@torch.no_grad()
def faithfulness(task: Task, graph: Graph, ablated: AblatedOutputs, edges: set[Edge]) -> float:
    """Returns 1 - loss(circuit) / loss(empty circuit): 1 = as faithful as the full model, 0 = as the empty one.

    Args:
        task: the task whose metric is the loss (`circuit_loss`).
        graph: the graph whose edges `edges` are.
        ablated: what an ablated edge carries.
        edges: the circuit, as the edges kept.

    Returns:
        The circuit's faithfulness; NaN when the empty circuit's loss is 0 (the ablation changes nothing).
    """
    return circuits_faithfulness(task, graph, ablated, [edges])[0]


@torch.no_grad()
def circuits_faithfulness(
    task: Task, graph: Graph, ablated: AblatedOutputs, circuits: Sequence[set[Edge]]
) -> list[float]:
    """Returns `faithfulness` of each circuit, with the full model's logits and the empty circuit's loss computed
    once for all of them (NaN for each when the empty circuit's loss is 0: the ablation changes nothing).

    Args:
        task: the task whose metric is the loss (`circuit_loss`).
        graph: the graph whose edges the circuits are.
        ablated: what an ablated edge carries.
        circuits: the circuits, each a set of kept edges.

    Returns:
        One faithfulness per circuit, in the order given.
    """
    full = full_logits(task)
    empty = circuit_loss(task, graph, ablated, set(), full)
    return [
        1.0 - circuit_loss(task, graph, ablated, edges, full) / empty if empty > 0 else float("nan")
        for edges in circuits
    ]


@dataclass(frozen=True)
class FaithfulnessCurve:
    """Faithfulness f(k) of the top-k circuit at circuit sizes k, ascending from 0 to `n_edges`.

    Attributes:
        sizes: the circuit sizes k (numbers of edges kept), ascending.
        faithfulness: f(k) at each size, in the order of `sizes` (NaN throughout when the ablation changes nothing).
        n_edges: the number of edges of the graph, the largest size.
    """

    sizes: list[int]
    faithfulness: list[float]
    n_edges: int

    @property
    def fractions(self) -> list[float]:
        """Returns the sizes as fractions of the graph's edges: MIB's x axis."""
        return [k / self.n_edges for k in self.sizes]

    def to_dict(self) -> dict:
        """Returns the curve as JSON-ready data, the fields by name (read back by `from_dict`)."""
        return {"sizes": self.sizes, "faithfulness": self.faithfulness, "n_edges": self.n_edges}

    @classmethod
    def from_dict(cls, record: dict) -> "FaithfulnessCurve":
        """Returns the curve that `to_dict` wrote as `record`.

        Args:
            record: the dict `to_dict` returned, or the same fields read back from JSON.

        Returns:
            The curve.
        """
        return cls(record["sizes"], record["faithfulness"], record["n_edges"])


def circuit_sizes(n_edges: int, every_k_up_to: int = 1000, n_sampled: int = 201) -> list[int]:
    """Returns the circuit sizes a faithfulness curve is evaluated at, ascending from 0 to `n_edges`: every k on
    graphs of at most `every_k_up_to` edges; on larger ones at most `n_sampled` sizes, half evenly spaced and half
    geometrically (dense at small k, where circuits are).

    Args:
        n_edges: the number of edges of the graph: the largest size.
        every_k_up_to: the largest graph (in edges) that gets every size from 0 to `n_edges`.
        n_sampled: the most sizes a larger graph gets, counting 0 and `n_edges`; rounding can merge some.

    Returns:
        The distinct sizes, ascending, always including 0 and `n_edges`.

    Raises:
        InvalidHyperparameterError: `n_sampled` is below 2.
    """
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


CURVE_MEMORY_SHARE = 0.25  # of the memory available now, that one forward of a faithfulness curve may plan to take


def _masks_that_fit(task: Task, graph: Graph, ablated: AblatedOutputs) -> int:
    """Returns how many masks one forward of the curve may take: the patching buffers of that many (without
    gradients) stay within CURVE_MEMORY_SHARE of the memory available (the GPU's free memory on CUDA)."""
    tokens = task.clean
    one = patching_bytes(graph, ablated, tokens.shape[0], task.adapter.n_positions(tokens), 1, gradients=False)
    return max(1, int(CURVE_MEMORY_SHARE * available_bytes(tokens.device) // max(one, 1)))


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
    are batched, at most `rows_per_forward` input rows to one patched forward, and no more masks than leave the
    patching buffers (`patching_bytes`) within CURVE_MEMORY_SHARE of the memory available (a 70,000-edge language
    model's buffers are hundreds of MB a mask). m is a distance to the full model, so m(full) = 0 up to float error
    and f(k) is `faithfulness` of C_k.

    Args:
        task: the task (its model, clean batch, metric and scored positions).
        scores: the edge scores that rank the edges; near-zero scores count as zero (`EdgeScores.snapped`).
        ablated: what an ablated edge carries.
        every_k_up_to: the largest graph (in edges) whose curve takes every size (`circuit_sizes`).
        n_sampled: the most sizes a larger graph's curve takes (`circuit_sizes`).
        rows_per_forward: the most input rows (masks times the clean batch's rows) in one patched forward: bounds
            memory.

    Returns:
        The curve on `scores.graph`: f(k) at each size k.

    Raises:
        InvalidHyperparameterError: `n_sampled` is below 2.
    """
    graph = scores.graph
    sizes = circuit_sizes(graph.n_edges, every_k_up_to, n_sampled)
    rank = torch.empty(graph.n_edges, dtype=torch.long)
    rank[torch.argsort(-scores.snapped(), stable=True)] = torch.arange(graph.n_edges)
    full = full_logits(task)
    per_forward = max(1, min(rows_per_forward // task.clean.shape[0], _masks_that_fit(task, graph, ablated)))
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
    (trapezoid rule). Higher is better; a circuit can overshoot the full model, so it may exceed 1.

    Args:
        curve: the faithfulness curve (`faithfulness_curve`).

    Returns:
        The area; NaN when the curve is NaN.
    """
    return trapezoid(curve.fractions, curve.faithfulness)


def cmd(curve: FaithfulnessCurve) -> float:
    """Returns MIB's integrated circuit-model distance: the area under |1 - f| over the fraction of edges kept
    (trapezoid rule). Lower is better: 0 when every circuit size matches the full model.

    Args:
        curve: the faithfulness curve (`faithfulness_curve`).

    Returns:
        The area; NaN when the curve is NaN.
    """
    return trapezoid(curve.fractions, [abs(1.0 - f) for f in curve.faithfulness])


def edges_to_reach(curve: FaithfulnessCurve, level: float = 0.95) -> int | None:
    """Returns the smallest evaluated circuit size whose faithfulness reaches `level` (the edges a method needs),
    or None when none does. On a subset of sizes (large graphs) it is the first evaluated size at or past the true
    one.

    Args:
        curve: the faithfulness curve (`faithfulness_curve`).
        level: the faithfulness to reach.

    Returns:
        The smallest size k with f(k) >= `level`, or None (also when the curve is NaN).
    """
    return next((k for k, f in zip(curve.sizes, curve.faithfulness) if f >= level), None)
