"""Adapter: how one model family exposes its writers (node outputs) and readers (node inputs) as hook points.

The graph, the patching forward and everything after them see a model only through an adapter: an ordered list
of hook groups in residual-stream order, and a way to run the model. Every writer group feeds every reader group
that comes after it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Literal

import torch

from ..errors import GraphMismatchError


@dataclass(frozen=True)
class HookGroup:
    """Nodes that live on one hook point: a writer group (the hook's value is their outputs) or a reader group.

    A per-head hook's value is [batch, pos, len(names), d_model]; any other hook's is [batch, pos, d_model] and
    the group has exactly one name.
    """

    kind: Literal["writer", "reader"]
    hook: str
    names: tuple[str, ...]
    per_head: bool

    def to_dict(self) -> dict:
        return {"kind": self.kind, "hook": self.hook, "names": list(self.names), "per_head": self.per_head}

    @classmethod
    def from_dict(cls, d: dict) -> "HookGroup":
        return cls(kind=d["kind"], hook=d["hook"], names=tuple(d["names"]), per_head=d["per_head"])


class Adapter(ABC):
    """Describes one hookable model to edgewise: its hook groups in residual order, and its forward."""

    model: torch.nn.Module  # a HookedRootModule or a TransformerBridge: anything with `.hooks(fwd_hooks=...)`

    @abstractmethod
    def hook_groups(self, split_embeddings: bool = False) -> list[HookGroup]:
        """Returns the writer and reader groups in the order the residual stream meets them."""

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Returns logits [batch, pos, vocab] for token ids [batch, pos]."""
        return self.model(tokens)

    @contextmanager
    def hooks(self, fwd_hooks: list[tuple[str, Callable]]) -> Iterator[None]:
        """Adds forward hooks `fn(value, hook)` for the duration of the block, and removes exactly those.

        Cheaper than `HookedRootModule.hooks()`, which resets every hook point of the model on exit: for small models
        that reset costs as much as the forward itself.
        """
        handles = []
        try:
            for name, fn in fwd_hooks:
                if name not in self.model.hook_dict:
                    raise GraphMismatchError(
                        f"the model has no hook point {name!r}: was the graph built for another model? Build it with "
                        "Graph.from_model(this model)"
                    )
                point = self.model.hook_dict[name]
                handles.append((point, point.add_hook(fn)))
            yield
        finally:
            for point, handle in handles:
                handle.hook.remove()
                point.fwd_hooks.remove(handle)

    @property
    def n_layers(self) -> int:
        return self.model.cfg.n_layers

    def describe(self) -> dict:
        """Returns the model's size in a few numbers, for listings."""
        cfg = self.model.cfg
        return {"n_layers": cfg.n_layers, "n_heads": cfg.n_heads, "d_model": cfg.d_model}


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
            HookGroup("writer", embed_hooks[0], ("Tok Embed",), False),
            HookGroup("writer", embed_hooks[1], ("Pos Embed",), False),
        ]
    else:
        groups = [HookGroup("writer", merged_embed_hook, ("Resid Start",), False)]
    for layer in range(n_layers):
        block = f"blocks.{layer}"
        groups += [
            HookGroup("reader", f"{block}.hook_q_input", tuple(f"A{layer}.{h}.Q" for h in range(n_heads)), True),
            HookGroup("reader", f"{block}.hook_k_input", tuple(f"A{layer}.{h}.K" for h in range(n_kv_heads)), True),
            HookGroup("reader", f"{block}.hook_v_input", tuple(f"A{layer}.{h}.V" for h in range(n_kv_heads)), True),
            HookGroup("writer", f"{block}.attn.hook_result", tuple(f"A{layer}.{h}" for h in range(n_heads)), True),
            HookGroup("reader", f"{block}.hook_mlp_in", (f"MLP {layer}",), False),
            HookGroup("writer", f"{block}.hook_mlp_out", (f"MLP {layer}",), False),
        ]
    groups.append(HookGroup("reader", final_hook, ("Resid End",), False))
    return groups
