"""Interchange interventions on a Transformer's heads and MLPs: each writer's output read at its hook, and forwards
with some outputs replaced (by those of another input), with TransformerLens hooks.

A head's output is its slice of `blocks.{l}.attn.hook_result` ([batch, pos, head, d_model]), an MLP's is
`blocks.{l}.hook_mlp_out` ([batch, pos, d_model]); the residual stream sums them, so replacing one changes what
every later node reads.
"""

from __future__ import annotations

from collections import defaultdict

import torch

from edgewise.errors import GraphMismatchError
from edgewise.graph import Node, NodeKind
from edgewise.models import Transformer


def writer_hook(node: Node) -> tuple[str, int | None]:
    """Returns (hook name, head index or None) where a head or MLP writes its output.

    Args:
        node: a head or MLP node.

    Returns:
        The hook's name (`blocks.{l}.attn.hook_result` or `blocks.{l}.hook_mlp_out`) and the head's index, or None
            for an MLP.

    Raises:
        GraphMismatchError: the node is not a head or an MLP.
    """
    if node.kind is NodeKind.HEAD:
        return f"blocks.{node.layer}.attn.hook_result", node.head
    if node.kind is NodeKind.MLP:
        return f"blocks.{node.layer}.hook_mlp_out", None
    raise GraphMismatchError(f"{node.name} is not a head or an MLP; interventions replace head and MLP outputs only")


def writer_outputs(
    model: Transformer, tokens: torch.Tensor, nodes: list[Node], grad: bool = False
) -> dict[Node, torch.Tensor]:
    """Returns each node's output [batch, pos, d_model] on `tokens`: detached, or (`grad`) with autograd kept, so
    that a loss on a forward they are patched into also trains the nodes that computed them.

    Args:
        model: the transformer.
        tokens: the inputs [batch, pos].
        nodes: heads and MLPs of `model`.
        grad: keep autograd through the outputs.

    Returns:
        Each node's output by node.

    Raises:
        GraphMismatchError: a node is not a head or an MLP.
    """
    hooks = {node: writer_hook(node) for node in nodes}
    saved: dict[str, torch.Tensor] = {}

    def save(activation: torch.Tensor, hook) -> None:
        saved[hook.name] = activation

    with torch.set_grad_enabled(grad):
        model.run_with_hooks(tokens, fwd_hooks=[(name, save) for name in {h for h, _ in hooks.values()}])
    return {node: saved[hook] if head is None else saved[hook][:, :, head] for node, (hook, head) in hooks.items()}


def intervened_logits(model: Transformer, tokens: torch.Tensor, replacements: dict[Node, torch.Tensor]) -> torch.Tensor:
    """Returns the logits on `tokens` with each node's output replaced by `replacements[node]` [batch, pos, d_model]
    (differentiable in the model's weights: the forward keeps autograd).

    Args:
        model: the transformer.
        tokens: the inputs [batch, pos].
        replacements: each head's or MLP's new output [batch, pos, d_model], by node.

    Returns:
        The logits [batch, pos, out].

    Raises:
        GraphMismatchError: a node is not a head or an MLP.
    """
    by_hook: dict[str, list[tuple[int | None, torch.Tensor]]] = defaultdict(list)
    for node, value in replacements.items():
        hook, head = writer_hook(node)
        by_hook[hook].append((head, value))

    def replace(heads: list[tuple[int | None, torch.Tensor]]):
        def hook_fn(activation: torch.Tensor, hook) -> torch.Tensor:
            if heads[0][0] is None:  # an MLP: one writer per hook
                return heads[0][1]
            activation = activation.clone()
            for head, value in heads:
                activation[:, :, head] = value
            return activation

        return hook_fn

    return model.run_with_hooks(tokens, fwd_hooks=[(hook, replace(heads)) for hook, heads in by_hook.items()])
