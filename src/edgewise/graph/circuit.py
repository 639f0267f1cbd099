"""Circuit: a set of edges of one graph, the thing a method finds and an evaluation scores; JSON round trips."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..errors import CircuitFileError, GraphMismatchError
from .files import load_json, write_json
from .graph import Edge, Graph

if TYPE_CHECKING:
    from .scores import EdgeScores


@dataclass(frozen=True)
class Circuit:
    """Edges kept (every other edge of the graph is ablated), with where they came from."""

    edges: frozenset[Edge]
    per_position: bool = False
    description: str = ""
    metadata: dict = field(default_factory=dict, hash=False, compare=False)
    task: str = field(default="", compare=False)  # the task it was found on ("" unknown); files record it
    n_graph_edges: int | None = field(default=None, compare=False)  # the size of the graph it was found in

    @classmethod
    def from_mask(cls, graph: Graph, mask: torch.Tensor, threshold: float = 0.5, description: str = "",
                  task: str = "") -> "Circuit":
        """Returns the edges whose mask value is above `threshold`."""
        mask = graph.check_mask(mask)
        if mask.shape[0] != 1:
            raise GraphMismatchError(f"from_mask takes one mask [{graph.n_edges}], got {mask.shape[0]} masks")
        kept = torch.nonzero(mask[0] > threshold).flatten().tolist()
        return cls(frozenset(graph.edges[i] for i in kept), graph.per_position, description, task=task,
                   n_graph_edges=graph.n_edges)

    def check_task(self, task: str) -> None:
        """Raises GraphMismatchError when the circuit records another task than `task`."""
        if self.task and self.task != task:
            raise GraphMismatchError(
                f"this circuit was found on task {self.task!r}, not {task!r}; give a circuit of {task} (e.g. from "
                f"`edgewise discover {task} --circuit-out FILE`) or run on {self.task}"
            )

    def mask(self, graph: Graph) -> torch.Tensor:
        """Returns the float mask [n_edges] of this circuit on `graph`; raises GraphMismatchError on a mismatch."""
        if self.n_graph_edges is not None and self.n_graph_edges != graph.n_edges:
            raise GraphMismatchError(
                f"this circuit was found in a graph of {self.n_graph_edges} edges, but this graph has {graph.n_edges}; "
                "use the graph it was found in (same task, plain or per-position, embeddings merged or split)"
            )
        if graph.per_position != self.per_position:
            raise GraphMismatchError(
                f"this circuit is {'per-position' if self.per_position else 'plain'} but the graph is "
                f"{'per-position' if graph.per_position else 'plain'}; build the graph with per_position="
                f"{self.per_position}"
            )
        return graph.mask_for(self.edges)

    def __len__(self) -> int:
        return len(self.edges)

    def to_dict(self) -> dict:
        """Returns the circuit as JSON-ready data: edges as [writer, reader] names, plus where it came from."""
        return {
            "task": self.task,
            "n_graph_edges": self.n_graph_edges,
            "per_position": self.per_position,
            "description": self.description,
            "edges": [e.endpoints() for e in sorted(self.edges, key=lambda e: (e.position or 0, e.reader, e.writer))],
            "metadata": self.metadata,
        }

    @classmethod
    def from_dict(cls, record: dict) -> "Circuit":
        """Returns the circuit in `record`; also reads the `ground_truth` list of `edgewise graph --json`."""
        if "nodes" in record:  # a graph file: its circuit is the ground truth
            if "ground_truth" not in record:
                raise GraphMismatchError("this is a graph file without a ground truth; it holds no circuit")
            record = {"edges": record["ground_truth"], "description": "ground truth"}
        edges = frozenset(Edge.from_endpoints(w, r) for w, r in record["edges"])
        per_position = record.get("per_position", any(e.position is not None for e in edges))
        if any((e.position is not None) != per_position for e in edges):
            raise GraphMismatchError("a circuit's edges must all carry a position (per-position) or none (plain)")
        return cls(edges, per_position, record.get("description", ""), record.get("metadata", {}),
                   record.get("task") or "", record.get("n_graph_edges"))

    def save(self, path: str | Path) -> None:
        """Writes the circuit as strict JSON; a NaN or infinite number in its metadata raises CircuitFileError."""
        write_json(path, self.to_dict(), CircuitFileError, indent=1)

    @classmethod
    def load(cls, path: str | Path, task: str | None = None) -> "Circuit":
        """Returns the circuit saved at `path`; raises CircuitFileError for a missing, non-JSON or malformed file, and
        GraphMismatchError when `task` is given and the file records another task."""
        circuit = load_json(path, cls.from_dict, CircuitFileError,
                            "a circuit written by Circuit.save or `edgewise discover --circuit-out` (JSON with an "
                            "\"edges\" list of [writer, reader] names, A0.0@2 per position)")
        if task is not None:
            circuit.check_task(task)
        return circuit


def connected_edges(graph: Graph, edges: set[Edge]) -> set[Edge]:
    """Returns the edges of `edges` that lie on a path from the embeddings to the output through `edges`.

    In per-position graphs an attention head's key and value inputs at one position reach its output at every
    position (`Graph.reached_positions`); everything else stays at its position.
    """
    positions = [None] if graph.n_positions is None else list(range(graph.n_positions))

    def targets(edge: Edge) -> list[tuple[str, int | None]]:
        component = graph.reader_node(edge.reader).component
        if edge.position is None:
            return [(component, None)]
        return [(component, p) for p in graph.reached_positions(edge.reader, edge.position)]

    def closure(starts: set, step: dict) -> set:
        reached, frontier = set(starts), list(starts)
        while frontier:
            for n in step.get(frontier.pop(), []):
                if n not in reached:
                    reached.add(n)
                    frontier.append(n)
        return reached

    forward: dict[tuple, list[tuple]] = {}
    backward: dict[tuple, list[tuple]] = {}
    for e in edges:
        for t in targets(e):
            forward.setdefault((e.writer, e.position), []).append(t)
            backward.setdefault(t, []).append((e.writer, e.position))
    reached = closure({(s, p) for s in graph.input_writers for p in positions}, forward)
    alive = closure({(r, p) for r in graph.output_readers for p in positions}, backward)
    return {e for e in edges if (e.writer, e.position) in reached and any(t in alive for t in targets(e))}


def circuit_from_scores(
    scores: "EdgeScores", top_k: int | None = None, threshold: float | None = None, connected: bool = False
) -> Circuit:
    """Returns the circuit of the `top_k` highest-scoring edges, or of those scoring above `threshold`; with
    `connected`, only those on a path from the embeddings to the output. The one rule every method shares."""
    if (top_k is None) == (threshold is None):
        raise GraphMismatchError("give exactly one of top_k or threshold to turn scores into a circuit")
    ranked = scores.ranked()
    chosen = {e for e, _ in ranked[:top_k]} if top_k is not None else {e for e, s in ranked if s > threshold}
    if connected:
        chosen = connected_edges(scores.graph, chosen)
    rule = f"top {top_k}" if top_k is not None else f"score > {threshold}"
    return Circuit(frozenset(chosen), scores.graph.per_position,
                   f"{scores.method}: {rule}" + (", connected" if connected else ""), task=scores.task,
                   n_graph_edges=scores.graph.n_edges)
