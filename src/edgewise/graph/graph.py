"""Graph: the nodes and edges of one model's computation, built from its adapter's hook groups; serialisable.

Every writer (embeddings, attention head, MLP) feeds every reader (a head's q, k or v input, an MLP input, the
final residual) that comes later in the residual stream. A per-position graph repeats each edge once per
sequence position (auto-circuit's token circuits): edge (w, r, p) carries w's output at position p into r's
input at position p.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import GraphMismatchError, InvalidMaskError
from ..outputs import write_text
from .nodes import HookGroup, Node, NodeKind


@dataclass(frozen=True, order=True)
class Edge:
    """One writer -> reader edge; `position` is set only in per-position graphs.

    Attributes:
        writer: the writer node's name.
        reader: the reader node's name.
        position: the sequence position the edge carries in a per-position graph; None in a plain graph.
    """

    writer: str
    reader: str
    position: int | None = None

    @property
    def name(self) -> str:
        """Returns `writer->reader`, with `@position` appended in per-position graphs."""
        suffix = "" if self.position is None else f"@{self.position}"
        return f"{self.writer}->{self.reader}{suffix}"

    def endpoints(self) -> list[str]:
        """Returns [writer, reader] node names as JSON stores them (`A0.0@2` style in per-position graphs)."""
        if self.position is None:
            return [self.writer, self.reader]
        return [f"{self.writer}@{self.position}", f"{self.reader}@{self.position}"]

    @classmethod
    def from_endpoints(cls, writer: str, reader: str) -> "Edge":
        """Parses the JSON form written by `endpoints`.

        Args:
            writer: the writer's name, with `@position` in a per-position graph.
            reader: the reader's name, with `@position` in a per-position graph.

        Returns:
            The edge.

        Raises:
            GraphMismatchError: the two names carry different positions.
        """
        if "@" in writer:
            w, wp = writer.rsplit("@", 1)
            r, rp = reader.rsplit("@", 1)
            if wp != rp:
                raise GraphMismatchError(f"edge {writer} -> {reader} joins two positions; edges stay at one position")
            return cls(w, r, int(wp))
        return cls(writer, reader)


class Graph:
    """Nodes and edges of one model, with the hook layout the patching forward needs.

    A feature graph (`features` names its dictionaries: `oracle`, `sae:DIR`, ...) splits some writers into feature
    and error nodes; `dictionaries` maps each split writer's name to the object that splits its output (see
    `edgewise.graph.dictionary`). Files keep the nodes, not the dictionaries: a loaded feature graph scores and
    evaluates, but patching needs it rebuilt with its dictionaries (`task.graph(features=...)`).

    Args:
        groups: the model's hook groups in residual-stream order; every writer feeds every reader after it (or the
            writers a reader group's `fed_by` names).
        n_positions: the sequence length of a per-position graph, whose edges repeat once per position; None for a
            plain graph.
        features: the name of the dictionary set of a feature graph; None for a graph of the model's own nodes.
        dictionaries: the `Dictionary` of each split writer, by writer name.

    Attributes:
        writer_nodes: the writer nodes in residual-stream order; `writers` holds their names.
        reader_nodes: the reader nodes in residual-stream order; `readers` holds their names.
        edges: every edge, in the order of the mask vector: by reader group, reader, writer, then position.
        group_offset: for each group, the index of its first node among the writers (or readers).
        writers_before: for each group, the number of writers in the groups before it.
        edge_writer: the writer index of each edge [n_edges].
        edge_reader: the reader index of each edge [n_edges].
        edge_position: the position of each edge [n_edges] (0 in a plain graph).

    Raises:
        GraphMismatchError: the groups name a writer or a reader twice.
    """

    def __init__(
        self,
        groups: list[HookGroup],
        n_positions: int | None = None,
        features: str | None = None,
        dictionaries: dict | None = None,
    ):
        self.groups = tuple(groups)
        self.n_positions = n_positions
        self.features = features
        self.dictionaries = dict(dictionaries or {})
        self.writer_nodes: list[Node] = [n for g in groups if g.kind == "writer" for n in g.nodes]
        self.reader_nodes: list[Node] = [n for g in groups if g.kind == "reader" for n in g.nodes]
        self.writers: list[str] = [n.name for n in self.writer_nodes]
        self.readers: list[str] = [n.name for n in self.reader_nodes]
        if len(set(self.writers)) != len(self.writers) or len(set(self.readers)) != len(self.readers):
            raise GraphMismatchError("hook groups name a writer or reader twice; every node name must be unique")
        self._writer_index = {n: i for i, n in enumerate(self.writers)}
        self._component_writers: dict[str, list[int]] = {}
        for i, node in enumerate(self.writer_nodes):
            self._component_writers.setdefault(node.component, []).append(i)
        self._reader_index = {n: i for i, n in enumerate(self.readers)}
        # For each group: its first index among writers (or readers) and the number of writers before it.
        self.group_offset: list[int] = []
        self.writers_before: list[int] = []
        n_w = n_r = 0
        for g in groups:
            self.group_offset.append(n_w if g.kind == "writer" else n_r)
            self.writers_before.append(n_w)
            if g.kind == "writer":
                n_w += len(g.names)
            else:
                n_r += len(g.names)
        positions = [None] if n_positions is None else list(range(n_positions))
        self.edges: list[Edge] = []
        for g, before in zip(groups, self.writers_before):
            if g.kind != "reader":
                continue
            feeding = [n.name for n in self.writer_nodes[:before] if g.fed_by is None or n.component in g.fed_by]
            for reader in g.names:
                for writer in feeding:
                    self.edges.extend(Edge(writer, reader, p) for p in positions)
        self._index = {e: i for i, e in enumerate(self.edges)}
        self.edge_writer = torch.tensor([self._writer_index[e.writer] for e in self.edges], dtype=torch.long)
        self.edge_reader = torch.tensor([self._reader_index[e.reader] for e in self.edges], dtype=torch.long)
        self.edge_position = torch.tensor([e.position or 0 for e in self.edges], dtype=torch.long)

    @classmethod
    def from_model(
        cls, model: object, per_position: bool = False, n_positions: int | None = None, split_embeddings: bool = False
    ) -> "Graph":
        """Returns the graph of `model` (or of an Adapter); per-position graphs need the sequence length.

        A convenience for users: it asks `edgewise.adapters` for the model's hook groups. Inside the library a graph
        is built from the groups an adapter already gave (`Task.graph`), so the data path never turns back here.

        Args:
            model: a model `edgewise.adapters.adapter_for` knows, or an `Adapter`.
            per_position: build a per-position graph (one edge per position) rather than a plain one.
            n_positions: the sequence length of the task's data; required with `per_position`, refused without.
            split_embeddings: make token and position embeddings separate writers (`Tok Embed`, `Pos Embed`) instead
                of one `Resid Start`.

        Returns:
            The graph of the model's hook groups.

        Raises:
            UnsupportedArchitectureError: no adapter describes `model`.
            GraphMismatchError: `per_position` without `n_positions`, or `n_positions` without `per_position`.
        """
        from ..adapters import adapter_for

        adapter = adapter_for(model)
        if per_position and not n_positions:
            raise GraphMismatchError("a per-position graph needs n_positions (the sequence length of the task's data)")
        if n_positions and not per_position:
            raise GraphMismatchError(f"n_positions={n_positions} was given for a plain graph; pass per_position=True")
        return cls(adapter.hook_groups(split_embeddings=split_embeddings), n_positions if per_position else None)

    @property
    def per_position(self) -> bool:
        return self.n_positions is not None

    @property
    def n_edges(self) -> int:
        return len(self.edges)

    def writer_node(self, name: str) -> Node:
        """Returns the writer named `name`, or raises GraphMismatchError.

        Args:
            name: a writer's name, without a position.

        Returns:
            The writer node.

        Raises:
            GraphMismatchError: the graph has no writer `name`.
        """
        if name not in self._writer_index:
            raise GraphMismatchError(f"this graph has no writer {name!r}; its writers are {', '.join(self.writers)}")
        return self.writer_nodes[self._writer_index[name]]

    def reader_node(self, name: str) -> Node:
        """Returns the reader named `name`, or raises GraphMismatchError.

        Args:
            name: a reader's name, without a position.

        Returns:
            The reader node.

        Raises:
            GraphMismatchError: the graph has no reader `name`.
        """
        if name not in self._reader_index:
            raise GraphMismatchError(f"this graph has no reader {name!r}; its readers are {', '.join(self.readers)}")
        return self.reader_nodes[self._reader_index[name]]

    def writer_group(self, writer: str) -> HookGroup:
        """Returns the hook group that holds `writer`.

        Args:
            writer: a writer's name.

        Returns:
            The writer group whose nodes include `writer`.

        Raises:
            GraphMismatchError: the graph has no writer `writer`.
        """
        self.writer_node(writer)
        return next(g for g in self.groups if g.kind == "writer" and writer in g.names)

    def fed_writers(self, reader: str) -> list[int]:
        """Returns the indices of the writer nodes of the computation `reader` feeds (a q/k/v input's head, an MLP's
        output): one node, or in a feature graph its split writer's feature and error nodes; none for a reader no
        writer follows (the output).

        Args:
            reader: a reader's name.

        Returns:
            Indices into `writers`.

        Raises:
            GraphMismatchError: the graph has no reader `reader`.
        """
        return self._component_writers.get(self.reader_node(reader).component, [])

    def reached_positions(self, reader: str, position: int) -> list[int]:
        """Returns the positions of the fed node's output that the reader's input at `position` can change: every
        position for a key or value input (attention moves information along the sequence) and for a declared model's
        module (nothing says it does not mix positions), else `position`.

        Args:
            reader: a reader's name.
            position: the position of the reader's input.

        Returns:
            Positions of the fed node's output. Meant for per-position graphs: "every position" is
                `range(n_positions)`.

        Raises:
            GraphMismatchError: the graph has no reader `reader`.
        """
        node = self.reader_node(reader)
        if node.attends or node.kind is NodeKind.MODULE:
            return list(range(self.n_positions))
        return [position]

    def edge_nodes(self, edge: Edge) -> tuple[str, str]:
        """Returns the labels of the (writer, component) nodes an edge joins: a reader belongs to its component
        (`A1.0.Q` -> `A1.0`), and a per-position edge joins the two nodes at its position (`A1.0@2`).

        Args:
            edge: an edge of this graph.

        Returns:
            The writer's label and the reader's component's label.

        Raises:
            GraphMismatchError: the graph has no reader `edge.reader`.
        """
        component = self.reader_node(edge.reader).component
        if edge.position is None:
            return edge.writer, component
        return f"{edge.writer}@{edge.position}", f"{component}@{edge.position}"

    @property
    def input_writers(self) -> list[str]:
        """Returns the writers where the residual stream starts: the embeddings."""
        return [n.name for n in self.writer_nodes if n.kind is NodeKind.EMBEDDING]

    @property
    def output_readers(self) -> list[str]:
        """Returns the readers of the final residual stream."""
        return [n.name for n in self.reader_nodes if n.kind is NodeKind.OUTPUT]

    @property
    def split_embeddings(self) -> bool:
        """Returns whether token and position embeddings are separate writers."""
        return len(self.input_writers) > 1

    @property
    def nodes(self) -> list[str]:
        """Returns node names in residual-stream order; an MLP is one node that both reads and writes."""
        names = list(dict.fromkeys(n for g in self.groups for n in g.names))
        if self.n_positions is None:
            return names
        return [f"{n}@{p}" for p in range(self.n_positions) for n in names]

    def edge_index(self, edge: Edge | tuple) -> int:
        """Returns the position of `edge` in the mask vector, or raises GraphMismatchError.

        Args:
            edge: an `Edge`, or a tuple `(writer, reader)` or `(writer, reader, position)`.

        Returns:
            The edge's index in `edges`.

        Raises:
            GraphMismatchError: the edge is not in this graph.
        """
        key = edge if isinstance(edge, Edge) else Edge(*edge)
        try:
            return self._index[key]
        except KeyError:
            raise GraphMismatchError(
                f"edge {key.name} is not in this graph ({self.n_edges} edges, "
                f"{'per-position' if self.per_position else 'plain'}); writers must precede readers and names must "
                f"match `edgewise graph` output, e.g. {self.edges[0].name}"
            ) from None

    def __contains__(self, edge: Edge) -> bool:
        return edge in self._index

    def mask_for(self, edges: "set[Edge] | list[Edge]", keep: float = 1.0) -> torch.Tensor:
        """Returns a mask [n_edges] that keeps exactly `edges` (value `keep`) and ablates every other edge.

        Args:
            edges: the edges to keep.
            keep: the mask value of a kept edge (1: fully kept).

        Returns:
            A float mask [n_edges]: `keep` at `edges`, 0 elsewhere.

        Raises:
            GraphMismatchError: an edge is not in this graph.
        """
        mask = torch.zeros(self.n_edges)
        for e in edges:
            mask[self.edge_index(e)] = keep
        return mask

    def check_mask(self, mask: torch.Tensor) -> torch.Tensor:
        """Returns `mask` as float [n_masks, n_edges], or raises GraphMismatchError naming the expected shape.

        Args:
            mask: a float mask [n_edges] or [n_masks, n_edges]; 1 keeps an edge, 0 ablates it.

        Returns:
            The mask [n_masks, n_edges] (a mask [n_edges] gains a leading axis of 1).

        Raises:
            GraphMismatchError: `mask` is not a float tensor, or its last axis is not `n_edges`.
            InvalidMaskError: `mask` holds NaN or infinite values.
        """
        if not isinstance(mask, torch.Tensor) or not mask.is_floating_point():
            raise GraphMismatchError(
                f"the mask must be a float tensor [n_edges] or [n_masks, n_edges]; got {type(mask).__name__}"
                f"{'' if not isinstance(mask, torch.Tensor) else ' of dtype ' + str(mask.dtype)}. Use graph.mask_for("
                "edges) or torch.ones(graph.n_edges)"
            )
        if mask.dim() not in (1, 2) or mask.shape[-1] != self.n_edges:
            raise GraphMismatchError(
                f"mask has shape {tuple(mask.shape)} but this graph has {self.n_edges} edges: pass [{self.n_edges}] "
                f"or [n_masks, {self.n_edges}] (was the mask made for the "
                f"{'plain' if self.per_position else 'per-position'} graph?)"
            )
        if not torch.isfinite(mask).all():
            raise InvalidMaskError("the mask holds NaN or infinite values; masks are weights in [0, 1] per edge")
        return mask if mask.dim() == 2 else mask.unsqueeze(0)

    def to_dict(self) -> dict:
        """Returns the graph as JSON-ready data: its hook groups (enough to rebuild it) plus nodes and edges."""
        return {
            "groups": [g.to_dict() for g in self.groups],
            "n_positions": self.n_positions,
            **({"features": self.features} if self.features else {}),
            "nodes": self.nodes,
            "edges": [e.endpoints() for e in self.edges],
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Graph":
        """Returns the graph that `to_dict` described; raises GraphMismatchError for other JSON.

        Args:
            d: a record written by `to_dict` (or `edgewise graph --json`).

        Returns:
            The graph, without dictionaries: a feature graph scores and evaluates, but does not patch.

        Raises:
            GraphMismatchError: the record holds no hook groups.
        """
        if "groups" not in d:
            raise GraphMismatchError(
                "this JSON has no hook groups: Graph.load reads files written by Graph.save or "
                "by `edgewise graph --json`"
            )
        return cls([HookGroup.from_dict(g) for g in d["groups"]], d["n_positions"], d.get("features"))

    def save(self, path: str | Path) -> None:
        """Writes the graph as JSON, atomically: a failed write leaves the previous file as it was.

        Args:
            path: the file to write.

        Raises:
            OutputPathError: the file cannot be written (a full disk, no permission).
        """
        write_text(path, json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: str | Path) -> "Graph":
        """Returns the graph saved at `path`.

        Args:
            path: a file written by `save` or `edgewise graph --json`.

        Returns:
            The graph, without dictionaries.

        Raises:
            GraphMismatchError: the file holds no hook groups.
        """
        return cls.from_dict(json.loads(Path(path).read_text()))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Graph)
            and self.groups == other.groups
            and self.n_positions == other.n_positions
            and self.features == other.features
        )

    def __repr__(self) -> str:
        kind = f"per-position x{self.n_positions}" if self.per_position else "plain"
        kind += f", {self.features} features" if self.features else ""
        return f"Graph({len(self.writers)} writers, {len(self.readers)} readers, {self.n_edges} edges, {kind})"
