"""Scoring circuits and edge scores: ROC curves and AUROC against a ground truth (edge and node level), faithfulness
of a circuit, and the faithfulness curve over circuit sizes with MIB's CPR and CMD."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import torch

from .ablation import AblatedOutputs
from .errors import DegenerateGroundTruthError, InvalidHyperparameterError
from .graph import Edge, Graph, reader_component
from .patching import patched_forward
from .scores import EdgeScores
from .task import Task


def _snap_to_zero(values: torch.Tensor, zero_tolerance: float) -> torch.Tensor:
    """Returns a copy of `values` with those within `zero_tolerance` (relative to the largest) of zero set to zero."""
    values = values.clone()
    values[values.abs() <= zero_tolerance * values.abs().max()] = 0.0
    return values


def roc_auc(scores: EdgeScores, truth: set[Edge], zero_tolerance: float = 1e-9) -> float:
    """Returns the probability that a random true edge outscores a random other edge (ties count one half): the area
    under `roc_curve`.

    Scores within `zero_tolerance` (relative to the largest) of zero count as zero: gradient methods give edges
    with no effect float noise of either sign, which would otherwise break ties at random.
    """
    return roc_curve(scores, truth, zero_tolerance).auc


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


def _trapezoid(x: list[float], y: list[float]) -> float:
    """Returns the area under the piecewise-linear curve through the points (x, y), x ascending."""
    return sum((x1 - x0) * (y0 + y1) / 2 for x0, x1, y0, y1 in zip(x, x[1:], y, y[1:]))


@dataclass(frozen=True)
class RocCurve:
    """(false positive rate, true positive rate) at every distinct score threshold, strictest first, from (0, 0) to
    (1, 1); tied scores enter together, as one diagonal step."""

    false_positive_rate: list[float]
    true_positive_rate: list[float]

    @property
    def auc(self) -> float:
        """Returns the area under the curve (trapezoid rule); the diagonal steps make it count ties one half."""
        return _trapezoid(self.false_positive_rate, self.true_positive_rate)

    def to_dict(self) -> dict:
        return {"false_positive_rate": self.false_positive_rate, "true_positive_rate": self.true_positive_rate}

    @classmethod
    def from_dict(cls, record: dict) -> "RocCurve":
        return cls(record["false_positive_rate"], record["true_positive_rate"])


def _roc_points(values: torch.Tensor, labels: torch.Tensor, items: str) -> RocCurve:
    """Returns the ROC curve of `values` [n] against boolean `labels` [n]; `items` names them in errors."""
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        raise DegenerateGroundTruthError(
            f"a ROC curve needs true and false {items}; got {n_pos} true and {n_neg} false: give a ground truth that "
            f"holds some but not all of the graph's {items}"
        )
    order = torch.argsort(values, descending=True, stable=True)
    ranked, hits = values[order], labels[order]
    # A threshold can only fall between distinct scores, so each run of ties ends at one point of the curve.
    run_ends = torch.cat([ranked[1:] != ranked[:-1], torch.tensor([True])])
    true_pos = hits.cumsum(0)[run_ends]
    false_pos = (~hits).cumsum(0)[run_ends]
    return RocCurve([0.0, *(false_pos.double() / n_neg).tolist()], [0.0, *(true_pos.double() / n_pos).tolist()])


def roc_curve(scores: EdgeScores, truth: set[Edge], zero_tolerance: float = 1e-9) -> RocCurve:
    """Returns the edge-level ROC curve of the scores against `truth`; near-zero scores count as zero, as in
    `roc_auc`, so its area equals `roc_auc`."""
    labels = torch.tensor([e in truth for e in scores.graph.edges], dtype=torch.bool)
    return _roc_points(_snap_to_zero(scores.scores, zero_tolerance), labels, "edges")


def edge_nodes(edge: Edge) -> tuple[str, str]:
    """Returns the (writer, reader) nodes an edge joins: an input belongs to its component (`A1.0.Q` -> `A1.0`), and
    a per-position edge joins the two nodes at its position (`A1.0@2`), so nodes mean one thing at every level."""
    reader = reader_component(edge.reader)[0]
    if edge.position is None:
        return edge.writer, reader
    return f"{edge.writer}@{edge.position}", f"{reader}@{edge.position}"


def circuit_nodes(edges: Iterable[Edge]) -> set[str]:
    """Returns the nodes the edges touch: a node belongs to a circuit when any of its edges does."""
    return {node for edge in edges for node in edge_nodes(edge)}


def node_scores(scores: EdgeScores, zero_tolerance: float = 1e-9) -> dict[str, float]:
    """Returns each node's score, in graph order: the largest score among the edges it writes or reads, so a node
    ranks with its most important edge. Near-zero edge scores count as zero first, as in `roc_auc`.

    Nodes are the components of `edge_nodes`: the embeddings (`Resid Start`), heads, MLPs and `Resid End`, one per
    position in per-position graphs.
    """
    values = _snap_to_zero(scores.scores, zero_tolerance).tolist()
    best: dict[str, float] = {}
    for edge, value in zip(scores.graph.edges, values):
        for node in edge_nodes(edge):
            best[node] = max(best.get(node, -math.inf), value)
    return best


def node_roc_curve(scores: EdgeScores, truth: set[Edge], zero_tolerance: float = 1e-9) -> RocCurve:
    """Returns the node-level ROC curve: `node_scores` against the true nodes, those the true edges touch.

    Every circuit touches the input and output nodes, so for any method those are true and score high; the curve
    tells methods apart by the heads and MLPs.
    """
    by_node = node_scores(scores, zero_tolerance)
    true_nodes = circuit_nodes(truth)
    values = torch.tensor(list(by_node.values()), dtype=torch.float64)
    labels = torch.tensor([node in true_nodes for node in by_node], dtype=torch.bool)
    return _roc_points(values, labels, "nodes")


def node_roc_auc(scores: EdgeScores, truth: set[Edge], zero_tolerance: float = 1e-9) -> float:
    """Returns the probability that a random true node outscores a random other node (ties one half), as
    `node_roc_curve` defines nodes, scores and truth."""
    return node_roc_curve(scores, truth, zero_tolerance).auc


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
    rank[torch.argsort(-scores.scores, stable=True)] = torch.arange(graph.n_edges)
    full = task.full_logits()
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
    return _trapezoid(curve.fractions, curve.faithfulness)


def cmd(curve: FaithfulnessCurve) -> float:
    """Returns MIB's integrated circuit-model distance: the area under |1 - f| over the fraction of edges kept
    (trapezoid rule). Lower is better: 0 when every circuit size matches the full model."""
    return _trapezoid(curve.fractions, [abs(1.0 - f) for f in curve.faithfulness])


def edges_to_reach(curve: FaithfulnessCurve, level: float = 0.95) -> int | None:
    """Returns the smallest evaluated circuit size whose faithfulness reaches `level` (the edges a method needs),
    or None when none does. On a subset of sizes (large graphs) it is the first evaluated size at or past the true
    one."""
    return next((k for k, f in zip(curve.sizes, curve.faithfulness) if f >= level), None)
