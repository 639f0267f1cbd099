"""edgewise: circuit discovery on edge graphs, with a tracr benchmark whose circuits are known by construction.

Two wings. The library follows the data path, one subpackage a stage: graph -> models -> adapters -> tasks ->
features -> patching -> methods -> evaluate -> diagnostics -> interventions -> report -> interop. The benchmark suite
(`edgewise.suite`: its models, built-in tasks and the bench) sits above it, and the command line (`cli`) above both.
The names below load their stage on first use, so `edgewise --help` does not pay for torch, transformers or jax.
"""

from __future__ import annotations

from .lazy import lazy_exports

__version__ = "0.1.0"

# public name -> the module that holds it
_EXPORTS = {
    **dict.fromkeys(
        [
            "AblatedOutputs",
            "make_ablation",
            "mean_ablation",
            "per_position_mean_ablation",
            "resample_ablation",
            "zero_ablation",
            "task_ablation",
            "patched_forward",
            "full_logits",
            "faithfulness_loss",
            "answer_score",
        ],
        "patching",
    ),
    **dict.fromkeys(["Adapter", "DeclaredAdapter", "adapter_for"], "adapters"),
    **dict.fromkeys(
        [
            "BatchShapeError",
            "CompileError",
            "DeclarationError",
            "EdgewiseError",
            "GraphMismatchError",
            "InvalidHyperparameterError",
            "InvalidMaskError",
            "InvalidTokensError",
            "PretrainedModelMissingError",
            "UnknownAblationError",
            "UnknownMethodError",
            "UnknownTaskError",
            "UnsupportedArchitectureError",
        ],
        "errors",
    ),
    **dict.fromkeys(["Circuit", "circuit_from_scores", "Edge", "Graph", "EdgeScores", "Node", "NodeKind"], "graph"),
    "diagnose": "diagnostics",
    "discover": "methods",
    "remove": "interventions",
    **dict.fromkeys(["get_task", "task_names"], "suite.tasks"),
    "Task": "tasks",
    "tracr_task": "suite.tasks",
    **dict.fromkeys(["Transformer", "TransformerConfig"], "models"),
    **dict.fromkeys(["Sweep", "run_bench"], "suite.bench"),
    **dict.fromkeys(["to_mib", "from_mib"], "interop"),
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
