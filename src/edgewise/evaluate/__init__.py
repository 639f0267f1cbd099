"""The evaluation stage: ROC curves and AUROC against a ground truth (edge and node level), ground truths per
ablation, faithfulness of circuits and MIB's faithfulness curves, and the one scorer of a discovery run."""

from .faithfulness import (
    FaithfulnessCurve,
    circuit_loss,
    circuit_sizes,
    circuits_faithfulness,
    cmd,
    cpr,
    edges_to_reach,
    faithfulness,
    faithfulness_curve,
)
from .ground_truth import EffectiveTruth, effective_ground_truth, effective_truth
from .roc import RocCurve, circuit_nodes, node_roc_auc, node_roc_curve, node_scores, roc_auc, roc_curve
from .run import FAITHFUL_LEVEL, RunEvaluation, ground_truths, truths_from

__all__ = ["FAITHFUL_LEVEL", "EffectiveTruth", "FaithfulnessCurve", "RocCurve", "RunEvaluation", "circuit_loss",
           "circuit_nodes", "circuit_sizes", "circuits_faithfulness", "cmd", "cpr", "edges_to_reach",
           "effective_ground_truth", "effective_truth", "faithfulness", "faithfulness_curve", "ground_truths",
           "node_roc_auc", "node_roc_curve", "node_scores", "roc_auc", "roc_curve", "truths_from"]
