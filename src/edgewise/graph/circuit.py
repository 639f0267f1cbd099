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
    """Edges kept (every other edge of the graph is ablated), with where they came from.

    Two circuits are equal when their edges, `per_position` and `description` are.

    Attributes:
        edges: the kept edges.
        per_position: whether the edges carry positions (a circuit of a per-position graph).
        description: how the circuit was made (`edge-sp: top 10`, `ground truth`, ...).
        metadata: anything else worth keeping with it; written to files as is, so JSON values only.
        task: the task it was found on ("" unknown); files record it.
        n_graph_edges: the size of the graph it was found in (None unknown); `mask` checks it.
    """

    edges: frozenset[Edge]
    per_position: bool = False
    description: str = ""
    metadata: dict = field(default_factory=dict, hash=False, compare=False)
    task: str = field(default="", compare=False)
    n_graph_edges: int | None = field(default=None, compare=False)

    @classmethod
    def from_mask(
        cls, graph: Graph, mask: torch.Tensor, threshold: float = 0.5, description: str = "", task: str = ""
    ) -> "Circuit":
        """Returns the edges whose mask value is above `threshold`.

        Args:
            graph: the graph the mask belongs to.
            mask: one mask [n_edges] (or [1, n_edges]) of float values.
            threshold: an edge is kept where its mask value is strictly above this.
            description: how the circuit was made.
            task: the task it was found on ("" unknown).

        Returns:
            The circuit of the kept edges, recording the graph's size.

        Raises:
            GraphMismatchError: the mask does not fit the graph, or holds more than one mask.
            InvalidMaskError: the mask holds NaN or infinite values.
        """
        mask = graph.check_mask(mask)
        if mask.shape[0] != 1:
            raise GraphMismatchError(f"from_mask takes one mask [{graph.n_edges}], got {mask.shape[0]} masks")
        kept = torch.nonzero(mask[0] > threshold).flatten().tolist()
        return cls(
            frozenset(graph.edges[i] for i in kept),
            graph.per_position,
            description,
            task=task,
            n_graph_edges=graph.n_edges,
        )

    def check_task(self, task: str) -> None:
        """Raises GraphMismatchError when the circuit records another task than `task`.

        Args:
            task: the name of the task the circuit is used on; a circuit that records no task passes.

        Raises:
            GraphMismatchError: the circuit records another task.
        """
        if self.task and self.task != task:
            raise GraphMismatchError(
                f"this circuit was found on task {self.task!r}, not {task!r}; give a circuit of {task} (e.g. from "
                f"`edgewise discover {task} --circuit-out FILE`) or run on {self.task}"
            )

    def mask(self, graph: Graph) -> torch.Tensor:
        """Returns the float mask [n_edges] of this circuit on `graph`; raises GraphMismatchError on a mismatch.

        Args:
            graph: the graph to mask; the one the circuit was found in.

        Returns:
            A float mask [n_edges]: 1 at the circuit's edges, 0 elsewhere.

        Raises:
            GraphMismatchError: the graph's size differs from the recorded one, it is plain where the circuit is
                per-position (or the reverse), or it lacks one of the circuit's edges.
        """
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
        """Returns the circuit in `record`; also reads the `ground_truth` list of `edgewise graph --json`.

        Args:
            record: a record written by `to_dict`, or a graph file's record with a `ground_truth` list.

        Returns:
            The circuit; a graph file's is described as `ground truth`.

        Raises:
            GraphMismatchError: a graph file without a ground truth, an edge that joins two positions, or edges of
                which some carry a position and some do not.
        """
        if "nodes" in record:  # a graph file: its circuit is the ground truth
            if "ground_truth" not in record:
                raise GraphMismatchError("this is a graph file without a ground truth; it holds no circuit")
            record = {"edges": record["ground_truth"], "description": "ground truth"}
        edges = frozenset(Edge.from_endpoints(w, r) for w, r in record["edges"])
        per_position = record.get("per_position", any(e.position is not None for e in edges))
        if any((e.position is not None) != per_position for e in edges):
            raise GraphMismatchError("a circuit's edges must all carry a position (per-position) or none (plain)")
        return cls(
            edges,
            per_position,
            record.get("description", ""),
            record.get("metadata", {}),
            record.get("task") or "",
            record.get("n_graph_edges"),
        )

    def save(self, path: str | Path) -> None:
        """Writes the circuit as strict JSON; a NaN or infinite number in its metadata raises CircuitFileError.

        Args:
            path: the file to write.

        Raises:
            CircuitFileError: the metadata holds a NaN or infinite number.
        """
        write_json(path, self.to_dict(), CircuitFileError, indent=1)

    @classmethod
    def load(cls, path: str | Path, task: str | None = None) -> "Circuit":
        """Returns the circuit saved at `path`; raises CircuitFileError for a missing, non-JSON or malformed file, and
        GraphMismatchError when `task` is given and the file records another task.

        Args:
            path: a file written by `save`, `edgewise discover --circuit-out`, or a graph file with a ground truth.
            task: the task the circuit is for; None skips the check.

        Returns:
            The circuit.

        Raises:
            CircuitFileError: the file is missing, not JSON, or not a circuit.
            GraphMismatchError: the file records another task than `task`, or is a graph file without a ground
                truth, or its edges mix positions (see `from_dict`).
        """
        circuit = load_json(
            path,
            cls.from_dict,
            CircuitFileError,
            "a circuit written by Circuit.save or `edgewise discover --circuit-out` (JSON with an "
            '"edges" list of [writer, reader] names, A0.0@2 per position)',
        )
        if task is not None:
            circuit.check_task(task)
        return circuit


def connected_edges(graph: Graph, edges: set[Edge]) -> set[Edge]:
    """Returns the edges of `edges` that lie on a path from the embeddings to the output through `edges`.

    In per-position graphs an attention head's key and value inputs at one position reach its output at every
    position (`Graph.reached_positions`); everything else stays at its position.

    Args:
        graph: the graph the edges belong to.
        edges: edges of `graph`.

    Returns:
        The subset of `edges` on such a path.

    Raises:
        GraphMismatchError: an edge's reader is not in `graph`.
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
    `connected`, only those on a path from the embeddings to the output. The one rule every method shares.

    Args:
        scores: the edge scores; ranked by their snapped values (`EdgeScores.ranked`), ties in graph order.
        top_k: keep this many of the highest-scoring edges.
        threshold: keep the edges scoring strictly above this.
        connected: keep only chosen edges on a path from the embeddings to the output through chosen edges
            (`connected_edges`), so the circuit can hold fewer than `top_k` edges.

    Returns:
        The circuit, described by the scores' method and the rule, on the scores' task and graph.

    Raises:
        GraphMismatchError: both or neither of `top_k` and `threshold` are given.
    """
    if (top_k is None) == (threshold is None):
        raise GraphMismatchError("give exactly one of top_k or threshold to turn scores into a circuit")
    ranked = scores.ranked()
    chosen = {e for e, _ in ranked[:top_k]} if top_k is not None else {e for e, s in ranked if s > threshold}
    if connected:
        chosen = connected_edges(scores.graph, chosen)
    rule = f"top {top_k}" if top_k is not None else f"score > {threshold}"
    return Circuit(
        frozenset(chosen),
        scores.graph.per_position,
        f"{scores.method}: {rule}" + (", connected" if connected else ""),
        task=scores.task,
        n_graph_edges=scores.graph.n_edges,
    )
