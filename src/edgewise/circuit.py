"""Circuit: a set of edges of one graph, the thing a method finds and an evaluation scores; JSON round trips."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .errors import GraphMismatchError
from .graph import Edge, Graph


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
        return {
            "per_position": self.per_position,
            "description": self.description,
            "edges": [e.endpoints() for e in sorted(self.edges, key=lambda e: (e.position or 0, e.reader, e.writer))],
            "metadata": self.metadata,
        }

    @classmethod
    def from_dict(cls, record: dict) -> "Circuit":
        edges = frozenset(Edge.from_endpoints(w, r) for w, r in record["edges"])
        return cls(edges, record.get("per_position", False), record.get("description", ""), record.get("metadata", {}))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> "Circuit":
        return cls.from_dict(json.loads(Path(path).read_text()))
