"""A circuit's objective: the task's metric at the full model, the circuit and the empty circuit, what a method that
minimised a user objective (`discover(minimise=...)`) is judged by."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..graph import Circuit, Graph
from ..patching import AblatedOutputs, patched_forward
from ..tasks import Task


@dataclass(frozen=True)
class CircuitObjective:
    """The task's metric on three masks of one graph (lower is what the method sought).

    Attributes:
        metric: the metric's name.
        full: on the full model (every edge kept).
        circuit: on the circuit (its edges kept, the rest ablated).
        empty: on the empty circuit (every edge ablated).
    """

    metric: str
    full: float
    circuit: float
    empty: float


@torch.no_grad()
def circuit_objective(task: Task, graph: Graph, ablated: AblatedOutputs, circuit: Circuit) -> CircuitObjective:
    """Returns the task's metric on the full model, the circuit and the empty circuit, from one patched forward.

    Args:
        task: the task whose metric is measured (`task.with_objective(name)` for one of its named objectives).
        graph: the graph the circuit's edges belong to.
        ablated: what ablated edges carry.
        circuit: the circuit to measure.

    Returns:
        The three values, with the metric's name.

    Raises:
        GraphMismatchError: the circuit holds edges that are not in `graph`.
    """
    masks = torch.stack([torch.ones(graph.n_edges), circuit.mask(graph), torch.zeros(graph.n_edges)])  # [3, edges]
    logits = patched_forward(task.adapter, graph, task.clean, ablated, masks)  # [3, batch, pos, vocab]
    full, kept, empty = task.metric(logits, logits[0], task.scored_positions).tolist()
    return CircuitObjective(task.metric.name, full, kept, empty)
