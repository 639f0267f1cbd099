"""The true circuit of a compiled program, read off the compiler: a writer -> reader edge is true when the writer
writes a residual direction the reader reads (by the craft model's vector spaces) and both weights on that direction
are non-zero. At feature level (oracle dictionaries: one feature per written direction) the same rule holds per
direction, so an edge is true exactly when one of its writer's features is."""

from __future__ import annotations

import torch

from edgewise.graph import Graph, Node, NodeKind
from edgewise.models import Transformer


def node_weights(model: Transformer, node: Node, role: str) -> torch.Tensor:
    """Returns the weights through which a node reads ([d_model, *] rows) or writes ([*, d_model] columns, as rows).

    A head's value input counts only through W_V W_O: a direction it reads but maps to zero carries nothing.

    Args:
        model: the compiled transformer.
        node: an embedding, head (a head's q, k or v input as a reader), MLP or the output.
        role: `reader` or `writer`; any other value is read as `reader`.

    Returns:
        The weights [d_model, k], one row per residual dimension (detached).
    """
    w = lambda t: t.detach()  # noqa: E731
    if node.kind is NodeKind.OUTPUT:
        return w(model.W_U)
    if node.kind is NodeKind.MLP:
        mlp = model.blocks[node.layer].mlp
        return w(mlp.W_in) if role == "reader" else w(mlp.W_out).T
    if node.kind is NodeKind.EMBEDDING:
        parts = {"Tok Embed": [model.W_E], "Pos Embed": [model.W_pos], "Resid Start": [model.W_E, model.W_pos]}
        return torch.cat([w(p) for p in parts[node.name]]).T
    attn = model.blocks[node.layer].attn
    ov = w(attn.W_V[node.head]) @ w(attn.W_O[node.head])  # [d_model in, d_model out]
    if role == "writer":
        return ov.T
    return {"q": w(attn.W_Q[node.head]), "k": w(attn.W_K[node.head]), "v": ov}[node.input]


def _carries(model: Transformer, writer: Node, reader: Node, labels: list[str], directions: dict[str, int]) -> bool:
    """Returns whether the writer's weights and the reader's are both non-zero on one of `labels`' directions."""
    if not labels:
        return False
    rows = torch.tensor([directions[label] for label in labels])
    written = node_weights(model, writer, "writer")[rows].abs().amax(-1) > 0
    read = node_weights(model, reader, "reader")[rows].abs().amax(-1) > 0
    return bool((written & read).any())


def derived_edges(model: Transformer, graph: Graph, reads: dict, writes: dict, directions: dict) -> list:
    """Returns the (writer, reader) edges of a head/MLP graph along which the program moves information.

    Args:
        model: the compiled transformer.
        graph: its head/MLP graph.
        reads: reader node name -> residual direction labels it reads.
        writes: writer node name -> residual direction labels it writes.
        directions: residual direction label -> its dimension.

    Returns:
        The true edges as (writer name, reader name), in the graph's edge order.
    """
    return [
        (e.writer, e.reader)
        for e in graph.edges
        if _carries(
            model,
            graph.writer_node(e.writer),
            graph.reader_node(e.reader),
            sorted(set(writes.get(e.writer, ())) & set(reads.get(e.reader, ()))),
            directions,
        )
    ]


def derived_feature_edges(
    model: Transformer, graph: Graph, components: Graph, reads: dict, writes: dict, directions: dict
) -> list:
    """Returns the (feature, reader) edges of an oracle feature graph along which the program moves information:
    the feature's direction (written by its writer, `writes[writer][index]`) is one the reader reads. `components`
    is the head/MLP graph the features split. Error nodes carry nothing: an oracle dictionary reconstructs its writer
    exactly.

    Args:
        model: the compiled transformer.
        graph: the oracle feature graph.
        components: the head/MLP graph its features split.
        reads: reader node name -> residual direction labels it reads.
        writes: writer node name -> residual direction labels it writes.
        directions: residual direction label -> its dimension.

    Returns:
        The true edges as (feature name, reader name), in the graph's edge order.
    """
    truth = []
    for e in graph.edges:
        node = graph.writer_node(e.writer)
        if node.kind is not NodeKind.FEATURE:
            continue
        label = writes[node.component][node.index]
        if label in reads.get(e.reader, ()) and _carries(
            model, components.writer_node(node.component), graph.reader_node(e.reader), [label], directions
        ):
            truth.append((e.writer, e.reader))
    return truth
