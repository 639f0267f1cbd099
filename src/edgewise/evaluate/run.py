"""The one run scorer: everything edgewise reports about one discovery run, used alike by `edgewise discover`, the
bench and the demo. Each figure is computed when first asked for, so a caller pays only for what it shows."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

from ..errors import DegenerateGroundTruthError
from ..graph import Circuit, Edge, EdgeScores, circuit_from_scores
from ..methods import method_circuit
from ..patching import AblatedOutputs
from ..tasks import Task
from .faithfulness import FaithfulnessCurve, cmd, cpr, edges_to_reach, faithfulness, faithfulness_curve
from .ground_truth import EffectiveTruth, effective_truth
from .per_example import faithfulness_interval
from .roc import RocCurve, node_roc_curve, roc_curve

FAITHFUL_LEVEL = 0.95  # the faithfulness a top-k circuit must reach for `edges_to_95`
DEFAULT_CIRCUIT_SIZE = 20  # k for top-k methods on tasks without a ground truth to size it


def ground_truths(task: Task, graph, ablated: AblatedOutputs) -> dict[str, set[Edge]]:
    """Returns the truths a run is scored against: `compiler` (the task's derived circuit) and `effective` (its edges
    that change the outputs under this ablation, redundant copies included; see `effective_truth`), or {} for a task
    without one. The effective truth costs a patched forward per true edge, so callers that score many runs build
    this once.

    Args:
        task: the task whose ground truth is read.
        graph (Graph): the graph the truths are taken on.
        ablated: the ablation the effective truth is taken under.

    Returns:
        The truths by name (`compiler`, `effective`), each a set of edges of `graph`; {} where the task has no ground
            truth for this kind of graph.
    """
    if not task.knows_truth(graph):
        return {}
    return truths_from(task, graph, effective_truth(task, graph, ablated))


def truths_from(task: Task, graph, effective: EffectiveTruth) -> dict[str, set[Edge]]:
    """Returns the named truths of `ground_truths` from an effective truth already computed.

    Args:
        task: the task whose derived circuit is the `compiler` truth.
        graph (Graph): the graph the truths are taken on.
        effective: the effective truth (`effective_truth`) on that graph.

    Returns:
        The truths by name: `compiler` and `effective`, each a set of edges of `graph`.

    Raises:
        GraphMismatchError: the task has no ground truth for this kind of graph.
    """
    return {"compiler": task.ground_truth_edges(graph), "effective": set(effective.edges)}


def _finite(value: float | None) -> float | None:
    """Returns the value, or None for NaN: strict JSON has no NaN."""
    return None if value is None or math.isnan(value) else value


@dataclass(frozen=True)
class TruthFigures:
    """A run's figures against one ground truth.

    Attributes:
        auroc: the edge-level AUROC of the scores (None: the truth holds every edge or none).
        node_auroc: the node-level AUROC (a node scores its best edge's score).
        faithfulness_at_truth_size: the faithfulness of the top-k circuit, k the truth's size.
    """

    auroc: float | None
    node_auroc: float | None
    faithfulness_at_truth_size: float | None


@dataclass(frozen=True)
class RunFigures:
    """Every figure edgewise reports about one run; `to_json` gives its one JSON form (flat fields, a truth's
    figures suffixed with its name except the compiler's: `auroc`, `auroc_effective`), `from_json` reads it back.

    Attributes:
        circuit_edges: the size of the method's own circuit.
        circuit_faithfulness: that circuit's faithfulness (None: NaN, the ablation changes nothing).
        circuit_rule: how the method's circuit was taken from its scores.
        truths: the figures against each ground truth, by name (`compiler`, `effective`); {} without one.
        cpr: MIB's area under the faithfulness curve.
        cmd: MIB's area under |1 - faithfulness|.
        edges_to_95: the smallest top-k circuit with faithfulness >= FAITHFUL_LEVEL (None: none reaches it).
        fraction_to_95: that k as a fraction of the graph's edges.
        circuit_faithfulness_interval: a 95% bootstrap interval over inputs of `circuit_faithfulness`
            (`faithfulness_interval`); None where it has none (fewer than 2 inputs) or the record predates it.
    """

    circuit_edges: int
    circuit_faithfulness: float | None
    circuit_rule: str
    truths: dict[str, TruthFigures]
    cpr: float | None
    cmd: float | None
    edges_to_95: int | None
    fraction_to_95: float | None
    circuit_faithfulness_interval: tuple[float, float] | None = None

    SCALARS = (
        "circuit_edges",
        "circuit_faithfulness",
        "circuit_rule",
        "cpr",
        "cmd",
        "edges_to_95",
        "fraction_to_95",
        "circuit_faithfulness_interval",
    )
    TRUTH_FIELDS = ("auroc", "node_auroc", "faithfulness_at_truth_size")
    TRUTH_NAMES = ("compiler", "effective")

    def to_json(self) -> dict:
        """Returns the figures as flat JSON-ready fields (`auroc`, `auroc_effective`, `node_auroc`, ...)."""
        fields = {name: getattr(self, name) for name in self.SCALARS[:3]}
        for truth, figures in self.truths.items():
            suffix = "" if truth == "compiler" else f"_{truth}"
            fields.update({f"{name}{suffix}": getattr(figures, name) for name in self.TRUTH_FIELDS})
        fields.update({name: getattr(self, name) for name in self.SCALARS[3:]})
        interval = self.circuit_faithfulness_interval
        fields["circuit_faithfulness_interval"] = None if interval is None else list(interval)
        return fields

    @classmethod
    def from_json(cls, fields: dict) -> "RunFigures":
        """Returns the figures of a record's flat fields (as `to_json` writes them; fields a file lacks read as None).

        Args:
            fields: a run record's fields; others than the figures' are ignored.

        Returns:
            The figures, with a truth's figures present where the record has its AUROC field.
        """
        truths = {}
        for truth in cls.TRUTH_NAMES:
            suffix = "" if truth == "compiler" else f"_{truth}"
            if f"auroc{suffix}" in fields:
                truths[truth] = TruthFigures(*(fields.get(f"{name}{suffix}") for name in cls.TRUTH_FIELDS))
        scalars = {name: fields.get(name) for name in cls.SCALARS}
        interval = scalars["circuit_faithfulness_interval"]
        scalars.update(
            circuit_rule=scalars["circuit_rule"] or "",
            circuit_faithfulness_interval=None if interval is None else tuple(interval),
        )
        return cls(**scalars, truths=truths)


def default_circuit_size(truths: dict[str, set[Edge]]) -> int:
    """Returns k of a top-k method's circuit when none is asked for: the effective truth's size where there is one,
    else DEFAULT_CIRCUIT_SIZE.

    Args:
        truths: the ground truths by name (`ground_truths`); empty for a task without one.

    Returns:
        The circuit size.
    """
    return len(truths["effective"]) if truths.get("effective") else DEFAULT_CIRCUIT_SIZE


class RunEvaluation:
    """The figures of one run: its method's circuit and that circuit's faithfulness, ROC curves and AUROC against
    each truth, and the faithfulness curve with MIB's CPR and CMD.

    The circuit follows the method's registered rule (subnetwork probing: its open gates; ACDC: its kept edges;
    others: the top `circuit_size` edges, by default the effective truth's size, else 20).

    Args:
        task: the task the run discovered a circuit for.
        scores: the run's edge scores; their graph is the graph every figure is taken on.
        ablated: the ablation the run used, which the faithfulness figures use too.
        truths: the truths by name, as `ground_truths` returns them; None computes them (one patched forward per
            true edge, so callers that score many runs pass them in).
        circuit_size: k of a top-k method's circuit, capped at the graph's edges; None (or 0): the effective
            truth's size where there is one, else DEFAULT_CIRCUIT_SIZE.
    """

    def __init__(
        self,
        task: Task,
        scores: EdgeScores,
        ablated: AblatedOutputs,
        truths: dict[str, set[Edge]] | None = None,
        circuit_size: int | None = None,
    ):
        self.task, self.scores, self.ablated = task, scores, ablated
        self.graph = scores.graph
        self.truths = ground_truths(task, self.graph, ablated) if truths is None else truths
        self.circuit_size = min(circuit_size or default_circuit_size(self.truths), self.graph.n_edges)
        self._rocs: dict[tuple[str, str], RocCurve | None] = {}

    @cached_property
    def circuit(self) -> Circuit:
        """Returns the circuit the method reports by its registered rule (`method_circuit`), computed once."""
        return method_circuit(self.scores, self.circuit_size)

    @cached_property
    def circuit_faithfulness(self) -> float:
        """Returns the faithfulness of `circuit` (NaN when the ablation changes nothing), computed once."""
        return faithfulness(self.task, self.graph, self.ablated, set(self.circuit.edges))

    @cached_property
    def circuit_faithfulness_interval(self) -> tuple[float, float] | None:
        """Returns a 95% bootstrap interval over inputs of `circuit_faithfulness` (`faithfulness_interval`), or None
        where there is none; computed once."""
        return faithfulness_interval(self.task, self.graph, self.ablated, set(self.circuit.edges))

    def roc(self, truth: str) -> RocCurve | None:
        """Returns the edge ROC curve against the named truth, or None where it holds every edge or none.

        Args:
            truth: the truth's name, a key of `truths` (`compiler` or `effective`).

        Returns:
            The curve (computed once per truth), or None.
        """
        return self._roc(roc_curve, truth)

    def node_roc(self, truth: str) -> RocCurve | None:
        """Returns the node ROC curve against the named truth, or None where it holds every node or none.

        Args:
            truth: the truth's name, a key of `truths` (`compiler` or `effective`).

        Returns:
            The curve (computed once per truth), or None.
        """
        return self._roc(node_roc_curve, truth)

    def auroc(self, truth: str) -> float | None:
        """Returns the edge AUROC against the named truth, or None where it holds every edge or none.

        Args:
            truth: the truth's name, a key of `truths` (`compiler` or `effective`).

        Returns:
            The area under `roc`'s curve, or None.
        """
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
        """Returns the faithfulness curve of the scores (`edgewise.evaluate.faithfulness_curve`), computed once."""
        return faithfulness_curve(self.task, self.scores, self.ablated)

    def faithfulness_at_size(self, k: int) -> float:
        """Returns the faithfulness of the k best-scoring edges.

        Args:
            k: the circuit size: the number of top-scoring edges kept.

        Returns:
            The faithfulness of that top-k circuit (NaN when the ablation changes nothing).
        """
        return faithfulness(self.task, self.graph, self.ablated, set(circuit_from_scores(self.scores, top_k=k).edges))

    def figures(self) -> "RunFigures":
        """Returns every figure of the run: per truth the AUROC, node AUROC and faithfulness at the truth's size, the
        circuit's size and faithfulness, CPR, CMD and the edges a top-k circuit needs to reach FAITHFUL_LEVEL.

        Returns:
            The figures; NaN values are None (strict JSON has no NaN), and so are AUROCs against a truth that holds
                every edge or none.
        """
        curve = self.faithfulness_curve
        needed = edges_to_reach(curve, FAITHFUL_LEVEL)
        truths = {}
        for truth, edges in self.truths.items():
            node = self.node_roc(truth)
            truths[truth] = TruthFigures(
                self.auroc(truth), None if node is None else node.auc, _finite(self.faithfulness_at_size(len(edges)))
            )
        return RunFigures(
            len(self.circuit),
            _finite(self.circuit_faithfulness),
            self.circuit.description,
            truths,
            _finite(cpr(curve)),
            _finite(cmd(curve)),
            needed,
            None if needed is None else needed / self.graph.n_edges,
            self.circuit_faithfulness_interval,
        )
