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
from .ground_truth import (
    MAX_PAIRS,
    OUTPUT_TOLERANCE,
    EffectiveTruth,
    effective_ground_truth,
    effective_truth,
    removal_changes,
    scored_change,
    truth_tolerance,
)
from .objective import CircuitObjective, circuit_objective
from .per_example import RECOVERED_LEVEL, ExampleFaithfulness, faithfulness_interval, per_example_faithfulness
from .roc import RocCurve, circuit_nodes, node_roc_auc, node_roc_curve, node_scores, roc_auc, roc_curve
from .rows import on_rows, resampled_rows
from .run import (
    DEFAULT_CIRCUIT_SIZE,
    FAITHFUL_LEVEL,
    RunEvaluation,
    RunFigures,
    TruthFigures,
    ground_truths,
    truths_from,
)
from .sensitivity import DEPENDS_BELOW, AblationSensitivity, ablation_sensitivity
from .stability import Stability, bootstrap_stability, jaccard

__all__ = [
    "AblationSensitivity",
    "DEPENDS_BELOW",
    "ablation_sensitivity",
    "DEFAULT_CIRCUIT_SIZE",
    "CircuitObjective",
    "circuit_objective",
    "FAITHFUL_LEVEL",
    "MAX_PAIRS",
    "OUTPUT_TOLERANCE",
    "RECOVERED_LEVEL",
    "EffectiveTruth",
    "ExampleFaithfulness",
    "FaithfulnessCurve",
    "RocCurve",
    "RunEvaluation",
    "RunFigures",
    "Stability",
    "TruthFigures",
    "bootstrap_stability",
    "circuit_loss",
    "circuit_nodes",
    "circuit_sizes",
    "circuits_faithfulness",
    "cmd",
    "cpr",
    "edges_to_reach",
    "effective_ground_truth",
    "effective_truth",
    "faithfulness",
    "faithfulness_curve",
    "jaccard",
    "faithfulness_interval",
    "on_rows",
    "per_example_faithfulness",
    "resampled_rows",
    "ground_truths",
    "node_roc_auc",
    "node_roc_curve",
    "node_scores",
    "removal_changes",
    "roc_auc",
    "roc_curve",
    "scored_change",
    "truth_tolerance",
    "truths_from",
]
