"""The bench stage: sweeps of methods x tasks x graphs x ablations x seeds, run records scored by the one run scorer,
resumable result folders, and the Markdown summary."""

from .memory import PeakMemory
from .runner import Setting, run_bench, run_one, write_atomic
from .summary import copies_kept, markdown_table, summary_markdown
from .sweep import GRAPH_KINDS, RunSpec, Sweep, full_sweep, quick_sweep

__all__ = ["GRAPH_KINDS", "PeakMemory", "RunSpec", "Setting", "Sweep", "copies_kept", "full_sweep", "markdown_table",
           "quick_sweep", "run_bench", "run_one", "summary_markdown", "write_atomic"]
