"""The patching stage: what ablated edges carry, the one-pass edge-masked forward, the objectives computed from it,
and the slow independent references and exactness checks that it is tested against."""

from .ablation import (
    ABLATIONS,
    AblatedOutputs,
    Ablation,
    make_ablation,
    mean_ablation,
    per_position_mean_ablation,
    record_writer_outputs,
    resample_ablation,
    task_ablation,
    writer_savers,
    zero_ablation,
)
from .allocator import release_freed_memory
from .checks import run_checks
from .forward import patched_forward
from .memory import available_bytes, check_memory, patching_bytes
from .objectives import answer_score, faithfulness_loss, full_logits
from .optimal_ablation import OptimalAblationSettings, optimal_ablation
from .sparse import SparseMasking

__all__ = [
    "ABLATIONS",
    "AblatedOutputs",
    "OptimalAblationSettings",
    "Ablation",
    "SparseMasking",
    "answer_score",
    "available_bytes",
    "check_memory",
    "faithfulness_loss",
    "full_logits",
    "make_ablation",
    "mean_ablation",
    "optimal_ablation",
    "patched_forward",
    "patching_bytes",
    "per_position_mean_ablation",
    "record_writer_outputs",
    "release_freed_memory",
    "resample_ablation",
    "run_checks",
    "task_ablation",
    "writer_savers",
    "zero_ablation",
]
