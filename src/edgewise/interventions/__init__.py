"""The interventions stage: capability removal. Ablate a circuit's edges (the circuit removed, the rest of the model
intact) and measure what the model lost on the forget task and kept on the retain tasks, beside baselines: random
edges, task vectors and gradient ascent (weight edits of a copy)."""

from .removal import Removal, TaskMeasure, random_edges, remove
from .weight_edits import WeightEdit, fine_tune, task_vector_model, weight_edit

__all__ = ["Removal", "TaskMeasure", "WeightEdit", "fine_tune", "random_edges", "remove", "task_vector_model",
           "weight_edit"]
