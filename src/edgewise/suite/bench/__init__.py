"""The bench (the suite's top stage): sweeps of methods x tasks x graphs x ablations x seeds, run records scored by the
one run scorer, resumable result folders, and the Markdown summary. Names load on first use, so that a bench's worker
process can start (and learn to die with its bench, workers.py) before it imports torch."""

from edgewise.lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(["Executor", "LocalExecutor"], "executors"),
    "RayExecutor": "ray_executor",
    **dict.fromkeys(["FamilySummary", "family_summary"], "families"),
    **dict.fromkeys(["BENCH_DRAWN", "bench_view"], "folder"),
    **dict.fromkeys(["PairedDifference", "mean_interval", "paired_difference"], "intervals"),
    "PeakMemory": "memory",
    **dict.fromkeys(["plot_bench", "plot_families"], "plots"),
    **dict.fromkeys(["RunRecord", "load_results", "load_run"], "records"),
    **dict.fromkeys(
        ["FinishedRun", "RunFailure", "Setting", "run_bench", "run_group", "run_one", "write_atomic", "write_outcome"],
        "runner",
    ),
    **dict.fromkeys(["copies_kept", "markdown_table", "summary_markdown"], "summary"),
    **dict.fromkeys(
        ["FEATURE_SETS", "GRAPH_KINDS", "PromptSource", "RunSpec", "Sweep", "full_sweep", "graph_kind", "quick_sweep"],
        "sweep",
    ),
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
