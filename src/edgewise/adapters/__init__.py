"""Adapters: one per model family, each describing which hook points of a model write into and read from its residual
stream; `adapter_for(model)` picks the right one, `boot_bridge` boots a local Hugging Face folder through
TransformerBridge."""

from __future__ import annotations

from ..errors import UnsupportedArchitectureError
from ..graph import HookGroup
from ..models import Transformer
from .base import Adapter
from .bridge import BridgeAdapter, boot_bridge
from .declared import DeclaredAdapter
from .transformer import TransformerAdapter


def adapter_for(model: object) -> Adapter:
    """Returns the adapter that describes `model`'s writers and readers, or raises UnsupportedArchitectureError."""
    if isinstance(model, Adapter):
        return model
    if isinstance(model, Transformer):
        return TransformerAdapter(model)
    from transformer_lens import TransformerBridge

    if isinstance(model, TransformerBridge):
        return BridgeAdapter(model)
    raise UnsupportedArchitectureError(
        f"edgewise has no adapter for {type(model).__name__}. Supported: edgewise.models.Transformer "
        "(tracr and trained models) and transformer_lens.TransformerBridge (Hugging Face causal LMs, booted with "
        "TransformerBridge.boot_transformers). Any other HookedRootModule: declare its writer and reader hook points "
        "with edgewise.DeclaredAdapter (docs/any-model.md)."
    )


__all__ = [
    "Adapter",
    "BridgeAdapter",
    "DeclaredAdapter",
    "HookGroup",
    "TransformerAdapter",
    "adapter_for",
    "boot_bridge",
]
