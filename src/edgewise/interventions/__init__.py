"""The interventions stage: capability removal. Ablate a circuit's edges (the circuit removed, the rest of the model
intact) and measure what the model lost on the forget task and kept on the retain tasks, beside baselines."""

from .removal import Removal, TaskMeasure, random_edges, remove

__all__ = ["Removal", "TaskMeasure", "random_edges", "remove"]
