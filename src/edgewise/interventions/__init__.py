"""The interventions stage: capability removal. Ablate a circuit's edges (the circuit removed, the rest of the model
intact) and measure what the model lost on the forget task and kept on the retain tasks, beside baselines: random
edges, a removal mask trained for the purpose, task vectors and gradient ascent (weight edits of a copy); and how
fast each removed capability is relearned."""

from .comparison import (
    ComparedRemoval,
    RemovalComparison,
    RemovalSettings,
    TaskSplit,
    compare_removals,
    discovered_circuits,
    minus_retain,
    node_edges,
)
from .relearning import Relearning, relearn
from .removal import Removal, TaskMeasure, random_edges, remove
from .removal_mask import RemovalMaskConfig, learn_removal_mask
from .removed import (
    CircuitNodes,
    DiscoveredCircuit,
    GivenCircuit,
    GradientAscent,
    RandomEdges,
    RemovalFileError,
    RemovalKind,
    RemovalMask,
    Removed,
    RemovedCircuit,
    TaskVector,
)
from .weight_edits import WeightEdit, fine_tune, task_vector_model, weight_edit

__all__ = [
    "CircuitNodes",
    "ComparedRemoval",
    "DiscoveredCircuit",
    "GivenCircuit",
    "GradientAscent",
    "RandomEdges",
    "Relearning",
    "Removal",
    "RemovalComparison",
    "RemovalFileError",
    "RemovalKind",
    "RemovalMask",
    "RemovalMaskConfig",
    "RemovalSettings",
    "Removed",
    "RemovedCircuit",
    "TaskMeasure",
    "TaskSplit",
    "TaskVector",
    "WeightEdit",
    "compare_removals",
    "discovered_circuits",
    "fine_tune",
    "learn_removal_mask",
    "minus_retain",
    "node_edges",
    "random_edges",
    "relearn",
    "remove",
    "task_vector_model",
    "weight_edit",
]
