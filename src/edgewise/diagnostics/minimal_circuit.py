"""Minimal circuit: a part of a circuit (the ground truth) that keeps the outputs unchanged under one ablation and
cannot lose any single further edge, each removed edge with the reason it could go.

Why an edge can be removed without changing the outputs (`RemovedEdge.reason`):

- `constant writer` (resample, mean, per-position-mean ablation): the ablated value equals the writer's clean
  output at every position the edge reads, because the writer outputs the same there on every input (for mean
  ablation, also at every position). Removing the edge replaces a value by itself.
- `zero writer` (zero ablation): the same, because the writer outputs zero there.
- `reader ignores it`: the ablated value differs, but the node the reader feeds (its head, its MLP, or the
  outputs) computes the same output from it on these inputs: it reads only directions where the two agree.
- `absorbed downstream`: that node's output changes (often at an unscored position such as BOS), but nothing that
  reaches the scored outputs does.
- `masked by removals`: removing the edge alone from the start circuit changes the outputs, but once the edges
  removed before it are gone it does not: their ablated values leave nothing for it to change (tracr's length head:
  with its key input ablated every key scores the same, so its query input no longer matters).

A redundant path shows up on the kept side: `KeptEdge.redundant` marks a kept edge whose removal alone from the start
circuit changed nothing. Another path carried the same; the greedy removal took that path away, so this one is now
needed.

A reason explains a removal; every removal is also checked by a patched forward on the task's inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..evaluate import OUTPUT_TOLERANCE, scored_change
from ..graph import Edge, Graph
from ..patching import AblatedOutputs, full_logits, patched_forward, writer_savers
from ..tasks import Task
from .constant_writers import WRITER_TOLERANCE, no_op_positions


@dataclass(frozen=True)
class RemovedEdge:
    """An edge the minimisation removed, and why that leaves the outputs unchanged.

    Attributes:
        edge: the removed edge.
        reason: constant writer, zero writer, reader ignores it, absorbed downstream, masked by removals.
        detail: the reason in a sentence that names the nodes.
        loss_alone: the task metric with only this edge removed from the start circuit.
        change_alone: the largest |scored output change| with only this edge removed from the start circuit.
    """

    edge: Edge
    reason: str
    detail: str
    loss_alone: float
    change_alone: float

    def to_dict(self) -> dict:
        """Returns the removal as JSON-ready data, the edge as its endpoints."""
        return {
            "edge": self.edge.endpoints(),
            "reason": self.reason,
            "detail": self.detail,
            "loss_alone": self.loss_alone,
            "change_alone": self.change_alone,
        }


@dataclass(frozen=True)
class KeptEdge:
    """An edge of the minimal circuit, with what removing it (alone) from the minimal circuit costs.

    Attributes:
        edge: the kept edge.
        loss_without: the task metric of the minimal circuit without this edge.
        change_without: the largest |scored output change| of the minimal circuit without this edge.
        redundant: its removal alone from the start circuit changed nothing: a removed path carried the same.
    """

    edge: Edge
    loss_without: float
    change_without: float
    redundant: bool

    def to_dict(self) -> dict:
        """Returns the kept edge as JSON-ready data, the edge as its endpoints."""
        return {
            "edge": self.edge.endpoints(),
            "loss_without": self.loss_without,
            "change_without": self.change_without,
            "redundant": self.redundant,
        }


@dataclass(frozen=True)
class MinimalCircuit:
    """The greedy minimisation of a start circuit under one ablation; `edges` is None when the start is unfaithful.

    Attributes:
        ablation: the ablation's kind.
        start: the circuit the minimisation starts from.
        start_loss: the task metric of the start circuit.
        start_change: the largest |scored output change| of the start circuit.
        faithful: whether the start circuit keeps every scored output within the tolerance.
        edges: the minimal circuit, or None when the start is unfaithful.
        loss: the task metric of the minimal circuit, or None when the start is unfaithful.
        removed: the removed edges with their reasons, in the order they were removed.
        kept: the minimal circuit's edges, in graph order.
    """

    ablation: str
    start: frozenset[Edge]
    start_loss: float
    start_change: float
    faithful: bool
    edges: frozenset[Edge] | None
    loss: float | None
    removed: tuple[RemovedEdge, ...]
    kept: tuple[KeptEdge, ...]


class _PatchedRuns:
    """Patched forwards of one task under one ablation, scored against the full model."""

    def __init__(self, task: Task, graph: Graph, ablated: AblatedOutputs):
        self.task, self.graph, self.ablated = task, graph, ablated
        self.full = full_logits(task)

    def losses(self, circuits: list[set[Edge]]) -> tuple[list[float], list[float]]:
        """Returns the metric and the largest |scored output change| of each circuit, in one batched forward."""
        masks = torch.stack([self.graph.mask_for(c) for c in circuits])
        logits = patched_forward(self.task.model, self.graph, self.task.clean, self.ablated, masks)
        return self.task.metric(logits, self.full, self.task.scored_positions).tolist(), self.changes(logits).tolist()

    def changes(self, logits: torch.Tensor) -> torch.Tensor:
        """Returns the largest |output change| over the scored positions: [n] for logits [n, batch, pos, out] (in
        logits whatever the task's truth measure: faithfulness here means every output kept)."""
        return scored_change(self.task, logits, self.full, "logits")

    def recorded(self, circuit: set[Edge]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Returns the circuit's logits and every writer hook's value in that same patched forward."""
        hooks, values = writer_savers(self.graph)
        adapter = self.task.adapter
        with adapter.hooks(hooks):
            logits = patched_forward(adapter, self.graph, self.task.clean, self.ablated, self.graph.mask_for(circuit))
        return logits, values


def _fed_node(graph: Graph, reader: str) -> tuple[str | None, str]:
    """Returns the hook of the writer group holding the node `reader` feeds (None for the output: compare the logits
    instead) and that node's name (the reader itself for the output; a split writer's, not its features')."""
    indices = graph.fed_writers(reader)
    if not indices:
        return None, reader
    return graph.writer_group(graph.writers[indices[0]]).hook, graph.reader_node(reader).component


def _removal_reason(
    edge: Edge,
    graph: Graph,
    ablated: AblatedOutputs,
    is_no_op: bool,
    alone_moves: bool,
    before: tuple[torch.Tensor, dict[str, torch.Tensor]],
    after: tuple[torch.Tensor, dict[str, torch.Tensor]],
    removed_before: list[RemovedEdge],
    tolerance: float,
) -> tuple[str, str]:
    """Returns (reason, detail) for a removal that left the scored outputs unchanged; see the module docstring."""
    if is_no_op:
        if ablated.kind == "zero":
            return "zero writer", f"{edge.writer} is zero where this edge reads it: zeroing it changes nothing"
        same = "every input and position" if ablated.kind == "mean" else "every input"
        return (
            "constant writer",
            f"{edge.writer} is the same on {same} where this edge reads it: the ablated value is the clean one",
        )
    if alone_moves:
        earlier = [r.edge.name for r in removed_before if r.reason not in ("constant writer", "zero writer")]
        earlier = earlier or [r.edge.name for r in removed_before]
        named = ", ".join(earlier[:3]) + (f" and {len(earlier) - 3} more" if len(earlier) > 3 else "")
        return "masked by removals", f"needed alone, but not once {named} are removed"

    hook, node = _fed_node(graph, edge.reader)
    old = before[0] if hook is None else before[1][hook]
    new = after[0] if hook is None else after[1][hook]
    if (new - old).abs().max().item() <= tolerance * (1 + old.abs().max().item()):
        return "reader ignores it", f"{node}'s output stays the same: it ignores what the ablation changes"
    return "absorbed downstream", f"{node}'s output changes, the scored outputs do not"


@torch.no_grad()
def minimal_circuit(
    task: Task,
    graph: Graph,
    ablated: AblatedOutputs,
    start: set[Edge] | None = None,
    output_tolerance: float = OUTPUT_TOLERANCE,
    writer_tolerance: float = WRITER_TOLERANCE,
) -> MinimalCircuit:
    """Returns a 1-minimal faithful sub-circuit of `start` (default: the ground truth) under this ablation, each
    removed edge with its reason: greedy removal, each checked by a patched forward, until no single kept edge can go.

    Edges whose ablation is a no-op go first, then those whose removal alone changes nothing, then the rest (which
    may become removable once others are gone). Another order can give another 1-minimal circuit, when the ablated
    values of some edges stand in for others (tracr-reverse under mean ablation: docs/diagnostics.md).

    Args:
        task: the task whose clean inputs are run.
        graph: the graph the circuit's edges are taken on.
        ablated: the ablation every removed edge takes.
        start: the circuit to minimise; None: the task's ground truth on `graph`.
        output_tolerance: the largest |scored output change| (in logits) that counts as none.
        writer_tolerance: the tolerance of a writer's constant output, as in `writer_variation`.

    Returns:
        The minimal circuit with its removed and kept edges; `edges` None when `start` itself changes the outputs.

    Raises:
        GraphMismatchError: `start` is None and the task has no ground truth for this kind of graph.
    """
    start = set(task.ground_truth_edges(graph) if start is None else start)
    runs = _PatchedRuns(task, graph, ablated)
    order = sorted(start, key=graph.edge_index)
    losses, changes = runs.losses([start] + [start - {e} for e in order])
    if changes[0] > output_tolerance:
        return MinimalCircuit(ablated.kind, frozenset(start), losses[0], changes[0], False, None, None, (), ())
    alone = {e: (loss, change) for e, loss, change in zip(order, losses[1:], changes[1:])}
    no_op = no_op_positions(task, graph, ablated, writer_tolerance)
    is_no_op = {e: bool((no_op[e.writer] if e.position is None else no_op[e.writer][e.position]).all()) for e in order}
    candidates = sorted(order, key=lambda e: (not is_no_op[e], alone[e][1] > output_tolerance, graph.edge_index(e)))
    rank = {e: i for i, e in enumerate(candidates)}

    current, removed = set(start), []
    current_run = runs.recorded(current)
    kept, kept_losses, kept_changes = order, losses[1:], changes[1:]
    while True:
        n_removed = len(removed)
        trials = sorted((e for e, change in zip(kept, kept_changes) if change <= output_tolerance), key=rank.get)
        for edge in trials:  # each removal changes the circuit, so every trial after the first is checked again
            trial_run = runs.recorded(current - {edge})
            if runs.changes(trial_run[0]).item() > output_tolerance:
                continue
            reason, detail = _removal_reason(
                edge,
                graph,
                ablated,
                is_no_op[edge],
                alone[edge][1] > output_tolerance,
                current_run,
                trial_run,
                removed,
                writer_tolerance,
            )
            removed.append(RemovedEdge(edge, reason, detail, *alone[edge]))
            current.discard(edge)
            current_run = trial_run
        if len(removed) == n_removed:
            break
        kept = sorted(current, key=graph.edge_index)
        kept_losses, kept_changes = runs.losses([current - {e} for e in kept]) if kept else ([], [])
    kept_edges = tuple(
        KeptEdge(e, without, change, alone[e][1] <= output_tolerance)
        for e, without, change in zip(kept, kept_losses, kept_changes)
    )
    loss = task.metric(current_run[0], runs.full, task.scored_positions).item()
    return MinimalCircuit(
        ablated.kind,
        frozenset(start),
        losses[0],
        changes[0],
        True,
        frozenset(current),
        loss,
        tuple(removed),
        kept_edges,
    )
