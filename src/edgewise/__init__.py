"""edgewise: circuit discovery on edge graphs, with a tracr benchmark whose circuits are known by construction."""

from .ablation import AblatedOutputs, make_ablation, mean_ablation, per_position_mean_ablation, resample_ablation, zero_ablation
from .adapters import Adapter, adapter_for
from .errors import (
    BatchShapeError,
    CompileError,
    EdgewiseError,
    GraphMismatchError,
    UnknownAblationError,
    UnknownTaskError,
    UnsupportedArchitectureError,
)
from .graph import Edge, Graph
from .patching import patched_forward
from .transformer import Transformer, TransformerConfig

__version__ = "0.1.0"
