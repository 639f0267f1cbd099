"""ROC curves and AUROC of edge scores against a ground truth, at edge and at node level."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import torch

from ..errors import DegenerateGroundTruthError
from ..graph import ZERO_TOLERANCE, Edge, EdgeScores, Graph


def trapezoid(x: list[float], y: list[float]) -> float:
    """Returns the area under the piecewise-linear curve through the points (x, y), x ascending.

    Args:
        x: the x coordinates, ascending.
        y: the y coordinates, one per x.

    Returns:
        The area (0 for fewer than two points).
    """
    return sum((x1 - x0) * (y0 + y1) / 2 for x0, x1, y0, y1 in zip(x, x[1:], y, y[1:]))


def roc_auc(scores: EdgeScores, truth: set[Edge], zero_tolerance: float = ZERO_TOLERANCE) -> float:
    """Returns the probability that a random true edge outscores a random other edge (ties count one half): the area
    under `roc_curve`.

    Scores within `zero_tolerance` (relative to the largest) of zero count as zero (`EdgeScores.snapped`, the rule
    circuits and faithfulness curves use too): gradient methods give edges with no effect float noise of either
    sign, which would otherwise break ties at random.

    Args:
        scores: the edge scores, on `scores.graph`.
        truth: the true edges, of the same graph.
        zero_tolerance: scores within this fraction of the largest |score| of zero count as zero.

    Returns:
        The AUROC, in [0, 1].

    Raises:
        DegenerateGroundTruthError: `truth` holds none or all of the graph's edges.
    """
    return roc_curve(scores, truth, zero_tolerance).auc


@dataclass(frozen=True)
class RocCurve:
    """(false positive rate, true positive rate) at every distinct score threshold, strictest first, from (0, 0) to
    (1, 1); tied scores enter together, as one diagonal step.

    Attributes:
        false_positive_rate: the x coordinates, ascending from 0 to 1.
        true_positive_rate: the y coordinates, one per x, ascending from 0 to 1.
    """

    false_positive_rate: list[float]
    true_positive_rate: list[float]

    @property
    def auc(self) -> float:
        """Returns the area under the curve (trapezoid rule); the diagonal steps make it count ties one half."""
        return trapezoid(self.false_positive_rate, self.true_positive_rate)

    def to_dict(self) -> dict:
        """Returns the curve as JSON-ready data, the fields by name (read back by `from_dict`)."""
        return {"false_positive_rate": self.false_positive_rate, "true_positive_rate": self.true_positive_rate}

    @classmethod
    def from_dict(cls, record: dict) -> "RocCurve":
        """Returns the curve that `to_dict` wrote as `record`.

        Args:
            record: the dict `to_dict` returned, or the same fields read back from JSON.

        Returns:
            The curve.
        """
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


def roc_curve(scores: EdgeScores, truth: set[Edge], zero_tolerance: float = ZERO_TOLERANCE) -> RocCurve:
    """Returns the edge-level ROC curve of the scores against `truth`; near-zero scores count as zero, as in
    `roc_auc`, so its area equals `roc_auc`.

    Args:
        scores: the edge scores, on `scores.graph`.
        truth: the true edges, of the same graph.
        zero_tolerance: scores within this fraction of the largest |score| of zero count as zero.

    Returns:
        The curve, one point per distinct snapped score plus (0, 0).

    Raises:
        DegenerateGroundTruthError: `truth` holds none or all of the graph's edges.
    """
    labels = torch.tensor([e in truth for e in scores.graph.edges], dtype=torch.bool)
    return _roc_points(scores.snapped(zero_tolerance), labels, "edges")


def circuit_nodes(graph: Graph, edges: Iterable[Edge]) -> set[str]:
    """Returns the nodes the edges touch (`Graph.edge_nodes`): a node belongs to a circuit when any of its edges
    does.

    Args:
        graph: the graph whose edges they are.
        edges: the edges, e.g. a circuit's or a ground truth's.

    Returns:
        The labels of the nodes the edges join, e.g. `A1.0` or `MLP 2` (`A1.0@2` in a per-position graph).
    """
    return {node for edge in edges for node in graph.edge_nodes(edge)}


def node_scores(scores: EdgeScores, zero_tolerance: float = ZERO_TOLERANCE) -> dict[str, float]:
    """Returns each node's score, in graph order: the largest score among the edges it writes or reads, so a node
    ranks with its most important edge. Near-zero edge scores count as zero first, as in `roc_auc`.

    Nodes are the components of `Graph.edge_nodes`: the embeddings (`Resid Start`), heads, MLPs and `Resid End`, one per
    position in per-position graphs.

    Args:
        scores: the edge scores, on `scores.graph`.
        zero_tolerance: scores within this fraction of the largest |score| of zero count as zero.

    Returns:
        Each node's label and score, in the order the graph's edges first touch the nodes.
    """
    values = scores.snapped(zero_tolerance).tolist()
    best: dict[str, float] = {}
    for edge, value in zip(scores.graph.edges, values):
        for node in scores.graph.edge_nodes(edge):
            best[node] = max(best.get(node, -math.inf), value)
    return best


def node_roc_curve(scores: EdgeScores, truth: set[Edge], zero_tolerance: float = ZERO_TOLERANCE) -> RocCurve:
    """Returns the node-level ROC curve: `node_scores` against the true nodes, those the true edges touch.

    Every circuit touches the input and output nodes, so for any method those are true and score high; the curve
    tells methods apart by the heads and MLPs.

    Args:
        scores: the edge scores, on `scores.graph`.
        truth: the true edges, of the same graph.
        zero_tolerance: scores within this fraction of the largest |score| of zero count as zero.

    Returns:
        The node-level curve.

    Raises:
        DegenerateGroundTruthError: the true edges touch none or all of the graph's nodes.
    """
    by_node = node_scores(scores, zero_tolerance)
    true_nodes = circuit_nodes(scores.graph, truth)
    values = torch.tensor(list(by_node.values()), dtype=torch.float64)
    labels = torch.tensor([node in true_nodes for node in by_node], dtype=torch.bool)
    return _roc_points(values, labels, "nodes")


def node_roc_auc(scores: EdgeScores, truth: set[Edge], zero_tolerance: float = ZERO_TOLERANCE) -> float:
    """Returns the probability that a random true node outscores a random other node (ties one half), as
    `node_roc_curve` defines nodes, scores and truth.

    Args:
        scores: the edge scores, on `scores.graph`.
        truth: the true edges, of the same graph.
        zero_tolerance: scores within this fraction of the largest |score| of zero count as zero.

    Returns:
        The node-level AUROC, in [0, 1].

    Raises:
        DegenerateGroundTruthError: the true edges touch none or all of the graph's nodes.
    """
    return node_roc_curve(scores, truth, zero_tolerance).auc
