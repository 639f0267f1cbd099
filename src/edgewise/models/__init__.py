"""The model stage: edgewise's own transformer, the decoder that tracr-compiled and project-trained models run on
(a HookedRootModule with TransformerLens hook names; optional LayerNorm, grouped-query attention and padding).
Pretrained models are booted through TransformerBridge (`edgewise.adapters.boot_bridge`); the benchmark's own models
and their loaders live in `edgewise.suite.models`."""

from .transformer import Transformer, TransformerConfig

__all__ = ["Transformer", "TransformerConfig"]
