"""Circuit: a set of edges of one graph, the thing a method finds and an evaluation scores; JSON round trips."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .errors import CircuitFileError, GraphMismatchError
from .graph import Edge, Graph, reader_component

if TYPE_CHECKING:
    from .scores import EdgeScores


@dataclass(frozen=True)
class Circuit:
    """Edges kept (every other edge of the graph is ablated), with where they came from."""

    edges: frozenset[Edge]
    per_position: bool = False
    description: str = ""
    metadata: dict = field(default_factory=dict, hash=False, compare=False)

    @classmethod
    def from_mask(cls, graph: Graph, mask: torch.Tensor, threshold: float = 0.5, description: str = "") -> "Circuit":
        """Returns the edges whose mask value is above `threshold`."""
        mask = graph.check_mask(mask)
        if mask.shape[0] != 1:
            raise GraphMismatchError(f"from_mask takes one mask [{graph.n_edges}], got {mask.shape[0]} masks")
        kept = torch.nonzero(mask[0] > threshold).flatten().tolist()
        return cls(frozenset(graph.edges[i] for i in kept), graph.per_position, description)

    def mask(self, graph: Graph) -> torch.Tensor:
        """Returns the float mask [n_edges] of this circuit on `graph`; raises GraphMismatchError on a mismatch."""
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
        return cls(edges, per_position, record.get("description", ""), record.get("metadata", {}))

    def save(self, path: str | Path) -> None:
        """Writes the circuit as JSON."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> "Circuit":
        """Returns the circuit saved at `path`; raises CircuitFileError for a missing, non-JSON or malformed file."""
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise CircuitFileError(
                f"cannot read a circuit from {path}: {error!r}; give a file written by Circuit.save or `edgewise "
                "discover --circuit-out` (JSON with an \"edges\" list of [writer, reader] names, A0.0@2 per position)"
            ) from error


def connected_edges(graph: Graph, edges: set[Edge]) -> set[Edge]:
    """Returns the edges of `edges` that lie on a path from the embeddings to `Resid End` through `edges`.

    In per-position graphs an attention head's key and value inputs at one position reach its output at every
    position (attention moves information along the sequence); everything else stays at its position.
    """

    def node(name: str, position: int | None) -> tuple:
        return (name, position)

    def targets(edge: Edge) -> list[tuple]:
        comp = reader_component(edge.reader)[0]
        if edge.position is not None and edge.reader[-2:] in (".K", ".V"):
            return [node(comp, p) for p in range(graph.n_positions)]
        return [node(comp, edge.position)]

    starts = {n for n in graph.writers if "Embed" in n or n == "Resid Start"}
    forward: dict[tuple, list[tuple[Edge, list[tuple]]]] = {}
    for e in edges:
        forward.setdefault(node(e.writer, e.position), []).append((e, targets(e)))
    reached = {node(s, p) for s in starts for p in ([None] if graph.n_positions is None else range(graph.n_positions))}
    frontier = list(reached)
    while frontier:
        current = frontier.pop()
        for _, nexts in forward.get(current, []):
            for n in nexts:
                if n not in reached:
                    reached.add(n)
                    frontier.append(n)
    # Backward: nodes from which Resid End is reachable.
    backward: dict[tuple, list[tuple]] = {}
    for e in edges:
        for t in targets(e):
            backward.setdefault(t, []).append(node(e.writer, e.position))
    alive = {node("Resid End", p) for p in ([None] if graph.n_positions is None else range(graph.n_positions))}
    frontier = list(alive)
    while frontier:
        current = frontier.pop()
        for n in backward.get(current, []):
            if n not in alive:
                alive.add(n)
                frontier.append(n)
    return {e for e in edges if node(e.writer, e.position) in reached and any(t in alive for t in targets(e))}


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
    return Circuit(frozenset(chosen), scores.graph.per_position, f"{scores.method}: {rule}" + (", connected" if connected else ""))
