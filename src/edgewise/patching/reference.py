"""Slow, independent references for the patching forward: used by `edgewise check` and by the tests.

Neither uses the patching forward's coefficient matrices or delta stack: `single_edge_patch` is the hand-written
TransformerLens hook patch a researcher would write for one edge, and `per_edge_forward` rebuilds every reader's
input from the definition, one edge at a time, in Python loops. On feature graphs both take a feature's output from
its dictionary's activations and decoder row, not from the forward's split of a writer into nodes.
"""

from __future__ import annotations

import torch

from ..adapters import Adapter, adapter_for
from ..graph import Edge, Graph, HookGroup, NodeKind
from .ablation import AblatedOutputs


def _locate_reader(graph: Graph, name: str) -> tuple[str, int | None]:
    """Returns (hook name, head index or None) of a reader node."""
    for group in graph.groups:
        if group.kind == "reader" and name in group.names:
            return group.hook, (group.names.index(name) if group.per_head else None)
    raise KeyError(f"no reader named {name}")


def _writer_output(graph: Graph, group: HookGroup, name: str, value: torch.Tensor) -> torch.Tensor:
    """Returns one writer node's output [..., pos, d_model] from its group's hook value, by the definition: its head's
    slice; for a feature, its activation times its decoder direction; for an error node, the output minus every
    feature's contribution."""
    node = graph.writer_node(name)
    # A head (or a declared model's channel) is one slot of a per-head value; a feature graph's parts of one writer
    # share their writer's slot
    slots = list(dict.fromkeys(n.component for n in group.nodes)) if group.split else list(group.names)
    out = value[..., slots.index(node.component if group.split else name), :] if group.per_head else value
    if node.kind not in (NodeKind.FEATURE, NodeKind.ERROR):
        return out
    dictionary = graph.dictionaries[node.component]
    activations = dictionary.encode(out)
    contribution = lambda k: activations[..., k : k + 1] * dictionary.decoder[k].to(out)  # noqa: E731
    if node.kind is NodeKind.FEATURE:
        return contribution(dictionary.indices.index(node.index))
    return out - sum(contribution(k) for k in range(dictionary.n_features))


@torch.no_grad()
def single_edge_patch(
    model: object, graph: Graph, clean: torch.Tensor, corrupt: torch.Tensor, edge: Edge
) -> torch.Tensor:
    """Returns logits [batch, pos, vocab] with one edge resample-ablated, by two plain hook runs.

    Run 1 caches the writer's output on the corrupted batch. Run 2 runs the clean batch, notes the writer's own
    output, and adds (corrupted - clean) writer output to the reader's input only (only at `edge.position` if set).

    Args:
        model: the model, or its adapter.
        graph: the model's graph, which holds `edge`.
        clean: the clean inputs, `[batch, pos]` token ids (or a declared model's `[batch, ...]` inputs).
        corrupt: the corrupted inputs, the same shape, paired row by row with `clean`.
        edge: the edge to resample-ablate.

    Returns:
        The logits of the clean forward with that edge patched, `[batch, pos, vocab]`.
    """
    adapter = adapter_for(model)
    w_group = graph.writer_group(edge.writer)
    r_hook, r_head = _locate_reader(graph, edge.reader)
    w_hook = w_group.hook
    cache: dict[str, torch.Tensor] = {}

    def take(value, hook, key):
        cache[key] = _writer_output(graph, w_group, edge.writer, value).clone()

    with adapter.hooks([(w_hook, lambda v, hook: take(v, hook, "corrupt"))]):
        adapter.forward(corrupt)

    def patch_reader(value, hook):
        diff = cache["corrupt"] - cache["clean"]  # [batch, pos, d_model]
        if edge.position is not None:
            keep = torch.zeros_like(diff)
            keep[:, edge.position] = diff[:, edge.position]
            diff = keep
        value = value.clone()
        if r_head is None:
            value += diff
        else:
            value[:, :, r_head] += diff
        return value

    hooks = [(w_hook, lambda v, hook: take(v, hook, "clean")), (r_hook, patch_reader)]
    with adapter.hooks(hooks):
        return adapter.forward(clean)


def per_edge_forward(
    model: object | Adapter, graph: Graph, tokens: torch.Tensor, ablated: AblatedOutputs, mask: torch.Tensor
) -> torch.Tensor:
    """Returns logits with each reader's input rebuilt edge by edge from the definition:

    input_r = bias_r + sum_w mask[w->r] * out_w + (1 - mask[w->r]) * ablated_w,  bias_r = hook value - sum_w out_w.

    Differentiable (plain autograd through every step), so it also serves as the reference for gradients.

    Args:
        model: the model, or its adapter.
        graph: the model's graph, whose edges the mask weighs.
        tokens: the inputs, `[batch, pos]` token ids (or a declared model's `[batch, ...]` inputs).
        ablated: what an ablated edge carries, recorded on this graph.
        mask: the edge weights, `[n_edges]` (one mask; no leading mask dimension).

    Returns:
        The logits, `[batch, pos, vocab]`.
    """
    adapter = adapter_for(model)
    outputs: dict[str, torch.Tensor] = {}  # writer name -> this run's output [batch, pos, d_model]
    ablated_by_writer: dict[str, torch.Tensor] = {}
    positions = [None] if graph.n_positions is None else list(range(graph.n_positions))
    hooks = []
    for group in graph.groups:
        for i, name in enumerate(group.names):
            if group.kind == "writer":
                value = ablated.values[group.hook]
                ablated_by_writer[name] = value[:, :, i] if group.node_axis else value

    def writer_hook(group):
        def hook(value, hook):
            for name in group.names:
                outputs[name] = _writer_output(graph, group, name, value)
            return value

        return hook

    def reader_hook(group):
        def hook(value, hook):
            value = value.clone()
            for i, reader in enumerate(group.names):
                current = value[:, :, i] if group.per_head else value
                # A declared model's reader may see only some earlier writers: the graph's edges say which.
                feeding = {w: out for w, out in outputs.items() if Edge(w, reader, positions[0]) in graph}
                rebuilt = current - sum(feeding.values())  # the bias: what no writer produced
                for writer, out in feeding.items():
                    abl = ablated_by_writer[writer].expand_as(out)
                    for p in positions:
                        m = mask[graph.edge_index(Edge(writer, reader, p))]
                        at = slice(None) if p is None else slice(p, p + 1)
                        rebuilt[:, at] += m * out[:, at] + (1 - m) * abl[:, at]
                if group.per_head:
                    value[:, :, i] = rebuilt
                else:
                    value = rebuilt
            return value

        return hook

    for group in graph.groups:
        hooks.append((group.hook, writer_hook(group) if group.kind == "writer" else reader_hook(group)))
    with adapter.hooks(hooks):
        return adapter.forward(tokens)
