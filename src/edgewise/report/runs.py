"""A run's page parts from the library's own run scorer: the method's circuit and its faithfulness, the faithfulness
curve, the ROC curves and figures of `RunEvaluation`, and the effective truth under each ablation the page marks."""

from __future__ import annotations

from ..evaluate import RunEvaluation, effective_truth
from ..graph import Edge, Graph
from ..patching import Ablation, task_ablation
from ..tasks import Task
from .page import BootstrapSummary, DiagnosisFindings, RunParts


def effective_truths(task: Task, graph: Graph, ablations: tuple[str, ...]) -> dict[str, set[Edge]]:
    """Returns the effective truth (the true edges that change the outputs) under each ablation, named
    `effective (KIND)`; {} for a task without a ground truth on this graph. Costs a patched forward per true edge and
    ablation.

    Args:
        task: the task whose ground truth is tested.
        graph: the graph the truths are taken on.
        ablations: the ablations, by name.

    Returns:
        The truths by name.

    Raises:
        UnknownAblationError: an unknown ablation name.
    """
    if not task.knows_truth(graph):
        return {}
    kinds = [Ablation.parse(kind) for kind in ablations]
    return {
        f"effective ({kind})": set(effective_truth(task, graph, task_ablation(task, graph, kind)).edges)
        for kind in kinds
    }


def run_parts(
    run: RunEvaluation,
    other_truths: dict[str, set[Edge]] | None = None,
    diagnosis: DiagnosisFindings | None = None,
    bootstrap: BootstrapSummary | None = None,
    facts: tuple[tuple[str, str], ...] = (),
) -> RunParts:
    """Returns the page parts of one scored run: its method's circuit with that circuit's faithfulness, the
    faithfulness curve, the ROC curves (edge and node level) against each truth, and every figure.

    Args:
        run: the run's evaluation (its task, scores, ablation and truths).
        other_truths: more truths the page marks edges by (the effective truth under other ablations), by name.
        diagnosis: the diagnose report to show, or None.
        bootstrap: bootstrap refits of the method, or None.
        facts: extra (name, value) lines about the run.

    Returns:
        The parts; the truths are named `compiler` and `effective (KIND)`.
    """
    names = {"compiler": "compiler", "effective": f"effective ({run.scores.ablation})"}
    truths = {names.get(name, name): edges for name, edges in run.truths.items()}
    truths.update({name: edges for name, edges in (other_truths or {}).items() if name not in truths})
    rocs = {}
    for truth in run.truths:
        for level, curve in (("edges", run.roc(truth)), ("nodes", run.node_roc(truth))):
            if curve is not None:
                rocs[f"{level} vs {names.get(truth, truth)}"] = curve
    return RunParts(
        graph=run.graph,
        scores=run.scores,
        task=run.task.name,
        truths=truths,
        method_circuit=frozenset(run.circuit.edges),
        circuit_faithfulness=run.circuit_faithfulness,
        faithfulness=run.faithfulness_curve,
        rocs=rocs,
        figures=run.figures(),
        diagnosis=diagnosis,
        bootstrap=bootstrap,
        circuit_size=len(run.circuit),
        facts=(("circuit rule", run.circuit.description), *facts),
    )
