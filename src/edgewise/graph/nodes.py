"""Typed nodes of an edge graph, and the hook groups that place them on a model's hook points.

A `Node` says what a writer or reader is (its kind, layer, head, which attention input, which feature) so that code
asks a node rather than parsing its name. Names (`A2.0.V`, `MLP 1`, `Resid Start`, `A0.0@2` per position) are for
files and screens; `parse_node_name` reads the standard ones back for files written without node records.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from enum import Enum
from typing import Literal

from ..errors import GraphMismatchError


class NodeKind(str, Enum):
    """What a node computes. Methods never look at it; evaluation, diagnostics and reports do.

    Attributes:
        EMBEDDING: token and/or position embeddings: where the residual stream starts.
        HEAD: one attention head (as a writer), or one of its q/k/v inputs (as a reader).
        MLP: one MLP: both a reader (its input) and a writer (its output).
        OUTPUT: the final residual stream, read by the unembedding.
        FEATURE: one feature of a dictionary (sparse autoencoder) that splits a writer's output.
        ERROR: what a dictionary fails to reconstruct of a writer's output.
        MODULE: a submodule of an arbitrary model, declared by its adapter.
    """

    EMBEDDING = "embedding"
    HEAD = "head"
    MLP = "mlp"
    OUTPUT = "output"
    FEATURE = "feature"
    ERROR = "error"
    MODULE = "module"


AttentionInput = Literal["q", "k", "v"]


@dataclass(frozen=True)
class Node:
    """One writer or reader of a graph. `component` names the node whose computation a reader feeds (the head of a
    q/k/v input; an MLP feeds itself); a writer is its own component. `position` is set in per-position graphs.

    Attributes:
        name: the node's name without a position (`A2.0.V`, `MLP 1`, `Resid Start`, `MLP 2[17]`).
        kind: what the node computes (a `NodeKind`; its string value is converted).
        layer: the layer of a head, an MLP, or the writer a feature or error node splits; None otherwise.
        head: the head of a head node (writer or q/k/v input), or of the head a feature or error node splits.
        input: a head reader: which of the head's inputs (`q`, `k` or `v`); None for a writer.
        index: a feature node: the feature's index in its dictionary (a declared model's channel node: its
            channel).
        component: the node whose computation a reader feeds, or the writer a feature, error or channel node
            splits; defaults to `name`.
        position: the sequence position (`Node.at`); None for the node of a plain graph.
    """

    name: str
    kind: NodeKind
    layer: int | None = None
    head: int | None = None
    input: AttentionInput | None = None
    index: int | None = None
    component: str = ""
    position: int | None = None

    def __post_init__(self):
        if not self.component:
            object.__setattr__(self, "component", self.name)
        object.__setattr__(self, "kind", NodeKind(self.kind))

    @property
    def label(self) -> str:
        """Returns the name as files and screens show it: `A0.0@2` at a position, else the plain name."""
        return self.name if self.position is None else f"{self.name}@{self.position}"

    @property
    def part(self) -> str:
        """Returns what a feature or error node is within its writer (`opp_idx:2`, `17`, `error`); else the name."""
        if self.kind in (NodeKind.FEATURE, NodeKind.ERROR) and self.name.startswith(f"{self.component}["):
            return self.name[len(self.component) + 1 : -1]
        return self.name

    def at(self, position: int | None) -> "Node":
        """Returns this node at `position` (None: the node of a plain graph).

        Args:
            position: the sequence position, or None.

        Returns:
            A copy of this node with `position` set; the node itself is unchanged.
        """
        return replace(self, position=position)

    @property
    def attends(self) -> bool:
        """Returns whether this reader is a key or value input: what it reads at one position reaches the head's
        output at other positions (attention moves information along the sequence)."""
        return self.input in ("k", "v")

    def to_dict(self) -> dict:
        """Returns the node as JSON-ready data; fields left at their defaults are omitted."""
        record = {"name": self.name, "kind": self.kind.value}
        for key in ("layer", "head", "input", "index", "position"):
            if getattr(self, key) is not None:
                record[key] = getattr(self, key)
        if self.component != self.name:
            record["component"] = self.component
        return record

    @classmethod
    def from_dict(cls, record: dict) -> "Node":
        """Returns the node a `to_dict` record describes.

        Args:
            record: the node's fields by name; `kind` as its string value.

        Returns:
            The node.
        """
        return cls(**record)


@dataclass(frozen=True)
class HookGroup:
    """Nodes that live on one hook point: a writer group (the hook's value is their outputs) or a reader group.

    A per-head hook's value is [batch, pos, head, d_model] with one node per head; any other hook's is
    [batch, pos, d_model] with one node. In a feature graph a dictionary splits some of those nodes into feature and
    error nodes (`split`); recorded outputs of such a group then keep a node axis: [batch, pos, len(nodes), d_model].

    Attributes:
        kind: `writer` (the hook's value is the nodes' outputs) or `reader` (the value is their input).
        hook: the name of the model's hook point.
        nodes: the group's nodes, in the order of the hook value's head axis where it has one.
        per_head: whether the hook's value has a head axis [batch, pos, head, d_model] with one node per head.
        fed_by: a reader group of a model whose readers see only some earlier writers (a declared model's
            downsampling stage, a head that reads one branch): the components of the writers it reads. None: every
            earlier writer.
    """

    kind: Literal["writer", "reader"]
    hook: str
    nodes: tuple[Node, ...]
    per_head: bool
    fed_by: tuple[str, ...] | None = None

    @property
    def names(self) -> tuple[str, ...]:
        """Returns the names of the group's nodes, in order."""
        return tuple(n.name for n in self.nodes)

    @property
    def split(self) -> bool:
        """Returns whether a dictionary splits some node of this group into features."""
        return any(n.kind in (NodeKind.FEATURE, NodeKind.ERROR) for n in self.nodes)

    @property
    def node_axis(self) -> bool:
        """Returns whether the group's recorded outputs hold a node axis ([..., node, d_model])."""
        return self.per_head or self.split

    def to_dict(self) -> dict:
        """Returns the group as JSON-ready data: kind, hook, node names, per_head, node records, fed_by where set."""
        record = {
            "kind": self.kind,
            "hook": self.hook,
            "names": list(self.names),
            "per_head": self.per_head,
            "nodes": [n.to_dict() for n in self.nodes],
        }
        return record if self.fed_by is None else {**record, "fed_by": list(self.fed_by)}

    @classmethod
    def from_dict(cls, d: dict) -> "HookGroup":
        """Returns the group; files written before nodes were typed have names only, which are parsed.

        Args:
            d: a record written by `to_dict` (`nodes`), or an older one with `names` only.

        Returns:
            The hook group.

        Raises:
            GraphMismatchError: a record without `nodes` names a node that `parse_node_name` does not know.
        """
        if "nodes" in d:
            nodes = tuple(Node.from_dict(n) for n in d["nodes"])
        else:
            nodes = tuple(parse_node_name(name) for name in d["names"])
        fed_by = None if d.get("fed_by") is None else tuple(d["fed_by"])
        return cls(kind=d["kind"], hook=d["hook"], nodes=nodes, per_head=d["per_head"], fed_by=fed_by)


def embedding_node(name: str = "Resid Start") -> Node:
    """Returns the embedding writer `name`: `Resid Start` (token and position embeddings merged), `Tok Embed` or
    `Pos Embed` (split).

    Args:
        name: the node's name.

    Returns:
        A node of kind `EMBEDDING`.
    """
    return Node(name, NodeKind.EMBEDDING)


def head_node(layer: int, head: int, attention_input: AttentionInput | None = None) -> Node:
    """Returns head `A{layer}.{head}` (a writer) or its q/k/v input `A{layer}.{head}.Q` (a reader).

    Args:
        layer: the head's layer.
        head: the head's index in its layer.
        attention_input: `q`, `k` or `v` for the reader of that input; None for the head as a writer.

    Returns:
        A node of kind `HEAD`; a reader's component is the head `A{layer}.{head}`.
    """
    name = f"A{layer}.{head}"
    if attention_input is None:
        return Node(name, NodeKind.HEAD, layer, head)
    return Node(f"{name}.{attention_input.upper()}", NodeKind.HEAD, layer, head, attention_input, component=name)


def mlp_node(layer: int) -> Node:
    """Returns the MLP `MLP {layer}`: one node that is both a reader (its input) and a writer (its output).

    Args:
        layer: the MLP's layer.

    Returns:
        A node of kind `MLP`.
    """
    return Node(f"MLP {layer}", NodeKind.MLP, layer)


def output_node(name: str = "Resid End") -> Node:
    """Returns the reader of the final residual stream.

    Args:
        name: the node's name.

    Returns:
        A node of kind `OUTPUT`.
    """
    return Node(name, NodeKind.OUTPUT)


def feature_node(writer: Node, label: str, index: int) -> Node:
    """Returns feature `index` of a dictionary that splits `writer`: `MLP 2[opp_idx:2]`, `A3.0[17]`.

    Args:
        writer: the writer node the dictionary splits.
        label: the feature's label, shown in brackets after the writer's name.
        index: the feature's index in its dictionary.

    Returns:
        A node of kind `FEATURE` with the writer's layer and head, whose component is the writer.
    """
    return Node(
        f"{writer.name}[{label}]", NodeKind.FEATURE, writer.layer, writer.head, index=index, component=writer.name
    )


def error_node(writer: Node) -> Node:
    """Returns the node that carries what a dictionary does not reconstruct of `writer`'s output: `MLP 2[error]`.

    Args:
        writer: the writer node the dictionary splits.

    Returns:
        A node of kind `ERROR` with the writer's layer and head, whose component is the writer.
    """
    return Node(f"{writer.name}[error]", NodeKind.ERROR, writer.layer, writer.head, component=writer.name)


_STANDARD_NAME = re.compile(r"^A(\d+)\.(\d+)(?:\.([QKV]))?$|^MLP (\d+)$")
_EMBEDDING_NAMES = ("Resid Start", "Tok Embed", "Pos Embed")


def parse_node_name(name: str) -> Node:
    """Returns the node a standard name denotes (`Resid Start`, `Tok Embed`, `Pos Embed`, `A{l}.{h}`,
    `A{l}.{h}.Q/K/V`, `MLP {l}`, `Resid End`); raises GraphMismatchError for any other name.

    Args:
        name: a node name without a position.

    Returns:
        The node, as `embedding_node`, `head_node`, `mlp_node` or `output_node` build it.

    Raises:
        GraphMismatchError: `name` is none of the standard names.
    """
    if name in _EMBEDDING_NAMES:
        return embedding_node(name)
    if name == "Resid End":
        return output_node(name)
    match = _STANDARD_NAME.match(name)
    if match is None:
        raise GraphMismatchError(
            f"{name!r} is not a node name edgewise knows: use Resid Start, Tok Embed, Pos Embed, A{{layer}}.{{head}}, "
            "A{layer}.{head}.Q/.K/.V, MLP {layer} or Resid End, or load a file that records its nodes"
        )
    layer, head, letter, mlp_layer = match.groups()
    if mlp_layer is not None:
        return mlp_node(int(mlp_layer))
    return head_node(int(layer), int(head), letter.lower() if letter else None)
