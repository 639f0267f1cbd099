"""The bench (the suite's top stage): sweeps of methods x tasks x graphs x ablations x seeds, run records scored by the
one run scorer, resumable result folders, and the Markdown summary."""

from .families import FamilySummary, family_summary
from .memory import PeakMemory
from .plots import plot_bench, plot_families
from .records import RunRecord
from .runner import Setting, run_bench, run_one, write_atomic
from .summary import copies_kept, markdown_table, summary_markdown
from .sweep import FEATURE_SETS, GRAPH_KINDS, RunSpec, Sweep, full_sweep, graph_kind, quick_sweep

__all__ = [
    "FEATURE_SETS",
    "GRAPH_KINDS",
    "FamilySummary",
    "PeakMemory",
    "RunRecord",
    "RunSpec",
    "Setting",
    "Sweep",
    "copies_kept",
    "family_summary",
    "full_sweep",
    "graph_kind",
    "markdown_table",
    "plot_bench",
    "plot_families",
    "quick_sweep",
    "run_bench",
    "run_one",
    "summary_markdown",
    "write_atomic",
]
