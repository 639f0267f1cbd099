"""The model stage: edgewise's own transformer (tracr-compiled and project-trained models) and loaders of pretrained
models. Pretrained loaders import transformers only when called."""

from .transformer import Transformer, TransformerConfig

__all__ = ["Transformer", "TransformerConfig"]
