"""The alignment of a SIIT pair: which low-level head or MLP implements each high-level one, and the low-level
model's shape (the high-level model's layers, wider, more heads, LayerNorm on)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from edgewise.errors import GraphMismatchError
from edgewise.graph import Node, NodeKind, head_node, mlp_node, parse_node_name
from edgewise.models import TransformerConfig


@dataclass(frozen=True)
class LowLevelShape:
    """Width of a low-level model beyond its high-level model's layers, vocabulary and context.

    Attributes:
        n_heads: heads per layer; more than any program of the suite that SIIT trains uses (1).
        d_model: the residual width; about four times what tracr needs for these programs (14-18).
        d_head: each head's width.
        d_mlp: the MLP width; ten times tracr's (at most 12): room to spread a function over many neurons.
    """

    n_heads: int = 4
    d_model: int = 64
    d_head: int = 16
    d_mlp: int = 128


def low_level_config(high: TransformerConfig, shape: LowLevelShape) -> TransformerConfig:
    """Returns the config of a low-level model for `high`: the same layers, vocabulary, context, attention direction
    and padding, with `shape`'s widths, LayerNorm and ReLU MLPs.

    Args:
        high: the high-level model's config.
        shape: the low-level model's widths.

    Returns:
        The low-level config (no grouped key/value heads, not attention-only).

    Raises:
        GraphMismatchError: `shape` has fewer heads per layer than `high`.
    """
    if shape.n_heads < high.n_heads:
        raise GraphMismatchError(
            f"a low-level model of {shape.n_heads} heads cannot hold the high-level model's "
            f"{high.n_heads} heads per layer; give LowLevelShape(n_heads>={high.n_heads})"
        )
    return dataclasses.replace(
        high,
        n_heads=shape.n_heads,
        d_model=shape.d_model,
        d_head=shape.d_head,
        d_mlp=shape.d_mlp,
        n_key_value_heads=None,
        normalization=True,
        act_fn="relu",
        attn_only=False,
    )


def component_nodes(cfg: TransformerConfig) -> list[Node]:
    """Returns every head and MLP of a model as writer nodes, layer by layer.

    Args:
        cfg: the model's config.

    Returns:
        Each layer's heads in order, then its MLP (none in an attention-only model).
    """
    nodes = []
    for layer in range(cfg.n_layers):
        nodes += [head_node(layer, head) for head in range(cfg.n_heads)]
        nodes += [] if cfg.attn_only else [mlp_node(layer)]
    return nodes


@dataclass(frozen=True)
class Alignment:
    """High-level writer node -> the low-level writer node that implements it (heads and MLPs); every other
    low-level head and MLP is non-aligned and must not matter.

    Attributes:
        pairs: (high-level node, low-level node) pairs.
    """

    pairs: tuple[tuple[Node, Node], ...]

    @property
    def high_nodes(self) -> list[Node]:
        """Returns the aligned high-level nodes, in pair order."""
        return [high for high, _ in self.pairs]

    @property
    def low_nodes(self) -> list[Node]:
        """Returns the aligned low-level nodes, in pair order."""
        return [low for _, low in self.pairs]

    def non_aligned(self, low: TransformerConfig) -> list[Node]:
        """Returns the low-level model's heads and MLPs that implement no high-level node.

        Args:
            low: the low-level model's config.

        Returns:
            Its non-aligned heads and MLPs, layer by layer.
        """
        aligned = set(self.low_nodes)
        return [node for node in component_nodes(low) if node not in aligned]

    def low_node(self, node: Node) -> Node:
        """Returns the low-level node of a high-level writer or reader: an aligned head (or its q/k/v input) or MLP
        maps to its partner, the embeddings and the output to themselves.

        Args:
            node: a node of the high-level model's graph.

        Returns:
            The low-level node.

        Raises:
            GraphMismatchError: the node belongs to a head or MLP the alignment does not map.
        """
        if node.kind in (NodeKind.EMBEDDING, NodeKind.OUTPUT):
            return node
        component = head_node(node.layer, node.head) if node.kind is NodeKind.HEAD else mlp_node(node.layer)
        partner = dict(self.pairs).get(component)
        if partner is None:
            raise GraphMismatchError(
                f"{node.name} belongs to {component.name}, which the alignment does not map (it maps "
                f"{', '.join(n.name for n in self.high_nodes)}); align every node the high-level circuit uses"
            )
        if node.kind is NodeKind.HEAD and node.input is not None:
            return head_node(partner.layer, partner.head, node.input)
        return partner

    def to_dict(self) -> dict[str, str]:
        """Returns {high-level node name: low-level node name}, as the weights file stores it (read by `from_dict`)."""
        return {high.name: low.name for high, low in self.pairs}

    @classmethod
    def from_dict(cls, names: dict[str, str]) -> "Alignment":
        """Returns the alignment that `to_dict` wrote.

        Args:
            names: {high-level node name: low-level node name}.

        Returns:
            The alignment, pairs in the dict's order.
        """
        return cls(tuple((parse_node_name(high), parse_node_name(low)) for high, low in names.items()))


def align(high_nodes: list[Node], high: TransformerConfig, low: TransformerConfig) -> Alignment:
    """Returns the alignment that maps high-level head A{l}.{h} to low-level head A{l}.{h + n_low - n_high} (the last
    heads of the layer, so that a method favouring head 0 gains nothing) and MLP l to MLP l.

    Args:
        high_nodes: the high-level heads and MLPs to align.
        high: the high-level model's config.
        low: the low-level model's config.

    Returns:
        The alignment, pairs in the order of `high_nodes`.

    Raises:
        GraphMismatchError: a node of `high_nodes` is not a head or an MLP.
    """
    offset = low.n_heads - high.n_heads
    pairs = []
    for node in high_nodes:
        if node.kind is NodeKind.HEAD:
            pairs.append((node, head_node(node.layer, node.head + offset)))
        elif node.kind is NodeKind.MLP:
            pairs.append((node, mlp_node(node.layer)))
        else:
            raise GraphMismatchError(f"only heads and MLPs are aligned; got {node.name} ({node.kind.value})")
    return Alignment(tuple(pairs))
