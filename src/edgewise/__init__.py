"""edgewise: circuit discovery on edge graphs, with a tracr benchmark whose circuits are known by construction."""

from .ablation import AblatedOutputs, make_ablation, mean_ablation, per_position_mean_ablation, resample_ablation, zero_ablation
from .adapters import Adapter, adapter_for
from .errors import (
    BatchShapeError,
    CompileError,
    EdgewiseError,
    GraphMismatchError,
    InvalidHyperparameterError,
    InvalidMaskError,
    InvalidTokensError,
    PretrainedModelMissingError,
    UnknownAblationError,
    UnknownTaskError,
    UnsupportedArchitectureError,
)
from .circuit import Circuit, circuit_from_scores
from .diagnostics import diagnose
from .graph import Edge, Graph
from .methods import discover
from .patching import patched_forward
from .scores import EdgeScores
from .task import Task
from .transformer import Transformer, TransformerConfig

__version__ = "0.1.0"


def __getattr__(name: str):
    """Imports the tracr suite (and with it jax) only when it is used; the bench runs it."""
    if name in ("get_task", "task_names"):
        from . import tasks

        return getattr(tasks, name)
    if name == "tracr_task":
        from . import tracr_tasks

        return tracr_tasks.tracr_task
    if name in ("Sweep", "run_bench"):
        from . import bench

        return getattr(bench, name)
    raise AttributeError(f"module 'edgewise' has no attribute {name!r}")
