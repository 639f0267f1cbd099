"""Adapter for edgewise's own Transformer (tracr-compiled and project-trained models)."""

from __future__ import annotations

from ..graph import HookGroup, NodeKind
from ..models import Transformer
from .base import Adapter, layered_hook_groups


class TransformerAdapter(Adapter):
    """Writers and readers of an `edgewise.models.Transformer`.

    Args:
        model: the transformer to describe.
    """

    def __init__(self, model: Transformer):
        self.model = model

    def hook_groups(self, split_embeddings: bool = False) -> list[HookGroup]:
        """Returns `Resid Start` (or `Tok Embed` and `Pos Embed`), then per layer the q/k/v input readers, the head
        writers, the MLP reader and writer, then `Resid End` (the last block's `hook_resid_post`); an attention-only
        model has no MLP groups.

        Args:
            split_embeddings: make token and position embeddings separate writers (`hook_embed`, `hook_pos_embed`)
                instead of one `Resid Start` (`blocks.0.hook_resid_pre`).

        Returns:
            The hook groups, in residual-stream order.
        """
        cfg = self.model.cfg
        groups = layered_hook_groups(
            n_layers=cfg.n_layers,
            n_heads=cfg.n_heads,
            n_kv_heads=cfg.n_kv_heads,
            final_hook=f"blocks.{cfg.n_layers - 1}.hook_resid_post",
            split_embeddings=split_embeddings,
        )
        if cfg.attn_only:  # no MLP computes anything, so no MLP node reads or writes
            return [g for g in groups if g.nodes[0].kind is not NodeKind.MLP]
        return groups
