"""Adapter: how one model family exposes its writers (node outputs) and readers (node inputs) as hook points.

The graph, the patching forward and everything after them see a model only through an adapter: an ordered list
of hook groups in residual-stream order, and a way to run the model. Every writer group feeds every reader group
that comes after it.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from contextlib import contextmanager
from typing import Callable, Iterator

import torch
from transformer_lens.hook_points import HookPoint

from ..errors import GraphMismatchError
from ..graph import HookGroup, embedding_node, head_node, mlp_node, output_node


class Adapter(ABC):
    """Describes one hookable model to edgewise: its hook groups in residual order, and its forward.

    A subclass sets `model` and implements `hook_groups`; the rest has defaults for token models.

    Attributes:
        model: a HookedRootModule or a TransformerBridge: anything with `.hooks(fwd_hooks=...)` and a `hook_dict`
            of its hook points.
    """

    model: torch.nn.Module

    @abstractmethod
    def hook_groups(self, split_embeddings: bool = False) -> list[HookGroup]:
        """Returns the writer and reader groups in the order the residual stream meets them.

        Args:
            split_embeddings: make token and position embeddings separate writers (`Tok Embed`, `Pos Embed`)
                instead of one `Resid Start`.

        Returns:
            The hook groups, in residual-stream order.
        """

    def canonical_hook(self, name: str) -> str:
        """Returns the name the hook point `name` fires under: an alias (`blocks.0.hook_mlp_out` on a
        TransformerBridge) resolved to the point's own name, as the hook groups name it.

        Args:
            name: a hook name, e.g. the `hook_name` of an SAE's cfg.

        Returns:
            The hook point's own name; `name` itself where the model has no such alias (TransformerLens-style models
                use one name per point).
        """
        return name

    def whole_attention_group(self, layer: int) -> HookGroup | None:
        """Returns the writer group of attention layer `layer`'s whole output (its heads' sum, as it enters the
        residual stream) as one writer, for a dictionary that splits it (an SAE on `hook_attn_out`); None where the
        model has no such hook, or its graph holds the layer as one writer already.

        Args:
            layer: the attention layer.

        Returns:
            The one-writer group, or None.
        """
        return None

    @property
    def model_source(self) -> str | None:
        """Returns where the model was loaded from (a folder or hub name), or None where the model does not say."""
        return None

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Returns logits [batch, pos, vocab] for token ids [batch, pos].

        Args:
            tokens: token ids [batch, pos].

        Returns:
            The model's logits [batch, pos, vocab].
        """
        return self.model(tokens)

    @contextmanager
    def hooks(self, fwd_hooks: list[tuple[str, Callable]]) -> Iterator[None]:
        """Adds forward hooks `fn(value, hook)` for the duration of the block, and removes exactly those.

        Cheaper than `HookedRootModule.hooks()`, which resets every hook point of the model on exit: for small models
        that reset costs as much as the forward itself. A hook point that holds no hooks yet runs `fn` as its forward
        (see `_as_forward`); the others get a TransformerLens hook. Either way hooks run in the order given, after
        any the point held before.

        Args:
            fwd_hooks: (hook point name, hook function) pairs; a hook function returns a replacement value, or None
                to leave the value as it is.

        Yields:
            Nothing; the hooks are in place inside the `with` block.

        Raises:
            GraphMismatchError: the model has no hook point of a given name (the graph was built for another model).
        """
        replaced, handles = [], []
        try:
            for name, fn in fwd_hooks:
                if name not in self.model.hook_dict:
                    raise GraphMismatchError(
                        f"the model has no hook point {name!r}: was the graph built for another model? Build it with "
                        "Graph.from_model(this model)"
                    )
                point = self.model.hook_dict[name]
                if _is_bare(point):
                    point.forward = _as_forward(fn, point)
                    replaced.append(point)
                else:
                    handles.append((point, point.add_hook(fn)))
            yield
        finally:
            for point, handle in handles:
                handle.hook.remove()
                point.fwd_hooks.remove(handle)
            for point in replaced:
                del point.forward

    def copy(self) -> "Adapter":
        """Returns an independent adapter over a copy of the model (its own parameters and hook points), for
        interventions that train or edit weights and must leave this model as it is.

        Returns:
            A deep copy of this adapter, its model included.
        """
        return copy.deepcopy(self)

    def n_positions(self, inputs: torch.Tensor) -> int:
        """Returns how many sequence positions the model's stream has on `inputs` [batch, pos] (token ids).

        Args:
            inputs: the model's inputs [batch, pos].

        Returns:
            The length of the inputs' second axis.
        """
        return inputs.shape[1]

    @property
    def n_layers(self) -> int:
        """Returns the model's number of layers (`model.cfg.n_layers`)."""
        return self.model.cfg.n_layers

    def describe(self) -> dict:
        """Returns the model's size in a few numbers, for listings: `n_layers`, `n_heads` and `d_model` of
        `model.cfg`."""
        cfg = self.model.cfg
        return {"n_layers": cfg.n_layers, "n_heads": cfg.n_heads, "d_model": cfg.d_model}


def _is_bare(point: torch.nn.Module) -> bool:
    """Whether a hook point is TransformerLens' plain identity with no hooks, no conversion and no replaced forward."""
    return (
        type(point).forward is HookPoint.forward
        and "forward" not in point.__dict__
        and not point._forward_hooks
        and not point._forward_pre_hooks
        and getattr(point, "hook_conversion", None) is None
    )


def _as_forward(fn: Callable, point: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """Returns a forward for `point` that runs the hook `fn(value, hook=point)` (None: value unchanged). Set on the
    instance, it skips torch's forward-hook dispatch and TransformerLens' wrapper: on tracr-sized models registering,
    calling and removing ~15 hooks that way took about a twentieth of an edge-masked forward (~0.2 ms)."""

    def forward(value: torch.Tensor) -> torch.Tensor:
        result = fn(value, hook=point)
        return value if result is None else result

    return forward


def layered_hook_groups(
    n_layers: int,
    n_heads: int,
    n_kv_heads: int,
    final_hook: str,
    split_embeddings: bool,
    embed_hooks: tuple[str, str] = ("hook_embed", "hook_pos_embed"),
    merged_embed_hook: str = "blocks.0.hook_resid_pre",
) -> list[HookGroup]:
    """Returns the hook groups of a pre-norm decoder with TransformerLens hook names.

    Names follow auto-circuit: `Resid Start` (token + position embeddings), `A{layer}.{head}` writers,
    `A{layer}.{head}.Q/K/V` readers (K and V indexed by key-value head under grouped-query attention),
    `MLP {layer}` as both writer and reader, and `Resid End`.
    """
    if split_embeddings:
        groups = [
            HookGroup("writer", embed_hooks[0], (embedding_node("Tok Embed"),), False),
            HookGroup("writer", embed_hooks[1], (embedding_node("Pos Embed"),), False),
        ]
    else:
        groups = [HookGroup("writer", merged_embed_hook, (embedding_node("Resid Start"),), False)]
    for layer in range(n_layers):
        block = f"blocks.{layer}"
        groups += [
            HookGroup(
                "reader",
                f"{block}.hook_{x}_input",
                tuple(head_node(layer, h, x) for h in range(n_heads if x == "q" else n_kv_heads)),
                True,
            )
            for x in ("q", "k", "v")
        ]
        groups += [
            HookGroup("writer", f"{block}.attn.hook_result", tuple(head_node(layer, h) for h in range(n_heads)), True),
            HookGroup("reader", f"{block}.hook_mlp_in", (mlp_node(layer),), False),
            HookGroup("writer", f"{block}.hook_mlp_out", (mlp_node(layer),), False),
        ]
    groups.append(HookGroup("reader", final_hook, (output_node(),), False))
    return groups
