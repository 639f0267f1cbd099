"""edgewise: circuit discovery on edge graphs, with a tracr benchmark whose circuits are known by construction."""

from .ablation import AblatedOutputs, make_ablation, mean_ablation, per_position_mean_ablation, resample_ablation, zero_ablation
from .adapters import Adapter, adapter_for
from .errors import (
    BatchShapeError,
    CompileError,
    EdgewiseError,
    GraphMismatchError,
    InvalidMaskError,
    InvalidTokensError,
    PretrainedModelMissingError,
    UnknownAblationError,
    UnknownTaskError,
    UnsupportedArchitectureError,
)
from .circuit import Circuit
from .graph import Edge, Graph
from .patching import patched_forward
from .task import Task
from .transformer import Transformer, TransformerConfig

__version__ = "0.1.0"


def __getattr__(name: str):
    """Imports the tracr suite (and with it jax) only when it is used."""
    if name in ("get_task", "task_names", "tracr_task"):
        from . import tracr_tasks

        return getattr(tracr_tasks, name)
    raise AttributeError(f"module 'edgewise' has no attribute {name!r}")
