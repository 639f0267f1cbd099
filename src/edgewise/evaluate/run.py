"""The one run scorer: everything edgewise reports about one discovery run, used alike by `edgewise discover`, the
bench and the demo. Each figure is computed when first asked for, so a caller pays only for what it shows."""

from __future__ import annotations

import math
from functools import cached_property

from ..errors import DegenerateGroundTruthError
from ..graph import Circuit, Edge, EdgeScores, circuit_from_scores
from ..methods import method_circuit
from ..patching import AblatedOutputs
from ..tasks import Task
from .faithfulness import FaithfulnessCurve, cmd, cpr, edges_to_reach, faithfulness, faithfulness_curve
from .ground_truth import EffectiveTruth, effective_truth
from .roc import RocCurve, node_roc_curve, roc_curve

FAITHFUL_LEVEL = 0.95  # the faithfulness a top-k circuit must reach for `edges_to_95`
DEFAULT_CIRCUIT_SIZE = 20  # k for top-k methods on tasks without a ground truth to size it


def ground_truths(task: Task, graph, ablated: AblatedOutputs) -> dict[str, set[Edge]]:
    """Returns the truths a run is scored against: `compiler` (the task's derived circuit) and `effective` (its edges
    that change the outputs under this ablation, redundant copies included; see `effective_truth`), or {} for a task
    without one. The effective truth costs a patched forward per true edge, so callers that score many runs build
    this once."""
    if not task.knows_truth(graph):
        return {}
    return truths_from(task, graph, effective_truth(task, graph, ablated))


def truths_from(task: Task, graph, effective: EffectiveTruth) -> dict[str, set[Edge]]:
    """Returns the named truths of `ground_truths` from an effective truth already computed."""
    return {"compiler": task.ground_truth_edges(graph), "effective": set(effective.edges)}


def _finite(value: float | None) -> float | None:
    """Returns the value, or None for NaN: strict JSON has no NaN."""
    return None if value is None or math.isnan(value) else value


class RunEvaluation:
    """The figures of one run: its method's circuit and that circuit's faithfulness, ROC curves and AUROC against
    each truth, and the faithfulness curve with MIB's CPR and CMD.

    The circuit follows the method's registered rule (subnetwork probing: its open gates; ACDC: its kept edges;
    others: the top `circuit_size` edges, by default the effective truth's size, else 20).
    """

    def __init__(self, task: Task, scores: EdgeScores, ablated: AblatedOutputs,
                 truths: dict[str, set[Edge]] | None = None, circuit_size: int | None = None):
        self.task, self.scores, self.ablated = task, scores, ablated
        self.graph = scores.graph
        self.truths = ground_truths(task, self.graph, ablated) if truths is None else truths
        default = len(self.truths["effective"]) if self.truths.get("effective") else DEFAULT_CIRCUIT_SIZE
        self.circuit_size = min(circuit_size or default, self.graph.n_edges)
        self._rocs: dict[tuple[str, str], RocCurve | None] = {}

    @cached_property
    def circuit(self) -> Circuit:
        return method_circuit(self.scores, self.circuit_size)

    @cached_property
    def circuit_faithfulness(self) -> float:
        return faithfulness(self.task, self.graph, self.ablated, set(self.circuit.edges))

    def roc(self, truth: str) -> RocCurve | None:
        """Returns the edge ROC curve against the named truth, or None where it holds every edge or none."""
        return self._roc(roc_curve, truth)

    def node_roc(self, truth: str) -> RocCurve | None:
        """Returns the node ROC curve against the named truth, or None where it holds every node or none."""
        return self._roc(node_roc_curve, truth)

    def auroc(self, truth: str) -> float | None:
        curve = self.roc(truth)
        return None if curve is None else curve.auc

    def _roc(self, curve_fn, truth: str) -> RocCurve | None:
        key = (curve_fn.__name__, truth)
        if key not in self._rocs:
            try:
                self._rocs[key] = curve_fn(self.scores, self.truths[truth])
            except DegenerateGroundTruthError:
                self._rocs[key] = None
        return self._rocs[key]

    @cached_property
    def faithfulness_curve(self) -> FaithfulnessCurve:
        return faithfulness_curve(self.task, self.scores, self.ablated)

    def faithfulness_at_size(self, k: int) -> float:
        """Returns the faithfulness of the k best-scoring edges."""
        return faithfulness(self.task, self.graph, self.ablated, set(circuit_from_scores(self.scores, top_k=k).edges))

    def record(self) -> dict:
        """Returns every figure as JSON-ready fields: per truth `auroc`, `node_auroc` and `faithfulness_at_truth_size`
        (suffix `_effective` for the effective truth), the circuit's size and faithfulness, CPR, CMD and the edges
        a top-k circuit needs to reach FAITHFUL_LEVEL."""
        curve = self.faithfulness_curve
        needed = edges_to_reach(curve, FAITHFUL_LEVEL)
        record: dict = {"circuit_edges": len(self.circuit), "circuit_faithfulness": _finite(self.circuit_faithfulness),
                        "circuit_rule": self.circuit.description}
        for truth, edges in self.truths.items():
            suffix = "" if truth == "compiler" else f"_{truth}"
            record[f"auroc{suffix}"] = self.auroc(truth)
            node = self.node_roc(truth)
            record[f"node_auroc{suffix}"] = None if node is None else node.auc
            record[f"faithfulness_at_truth_size{suffix}"] = _finite(self.faithfulness_at_size(len(edges)))
        record.update({"cpr": _finite(cpr(curve)), "cmd": _finite(cmd(curve)), "edges_to_95": needed,
                       "fraction_to_95": None if needed is None else needed / self.graph.n_edges})
        return record
