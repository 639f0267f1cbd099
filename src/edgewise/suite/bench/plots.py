"""Plots of a bench folder: ROC and faithfulness curves per task, graph and ablation, circuit diagrams, and the
cross-benchmark summary of task families."""

from __future__ import annotations

import textwrap
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window (as edgewise.report does)
import matplotlib.pyplot as plt  # noqa: E402

from edgewise.errors import BenchFileWarning, RunFileError, ScoresFileError
from edgewise.evaluate import FAITHFUL_LEVEL, FaithfulnessCurve, RocCurve
from edgewise.graph import Edge, EdgeScores, circuit_from_scores
from edgewise.report import draw_circuit, plot_faithfulness_curves, plot_roc_curves, save_figure

from .families import FamilySummary
from .records import RunRecord, load_run


def plot_bench(out: str | Path, level: float = FAITHFUL_LEVEL) -> None:
    """Draws, per task, graph and ablation (first seed): ROC curves against both truths and faithfulness curves, one
    line per method; and per plain-graph run a diagram of its top-k circuit against the effective ground truth, k
    that truth's size. Reads the finished runs of the bench folder `out`, leaving out, with a BenchFileWarning, a run
    whose record or scores cannot be read (`run_bench` sets damaged records aside and redoes them).

    Args:
        out: the bench folder; the plots go to its `plots/` (diagrams to `plots/circuits/`).
        level: the faithfulness level the faithfulness plots mark.
    """
    out = Path(out)
    groups: dict[tuple, list[tuple[RunRecord, dict]]] = {}  # (task, graph, ablation) -> (record, curves) per run
    for path in sorted((out / "runs").glob("*.json")):
        try:
            r, curves = load_run(path)
        except RunFileError as error:
            warnings.warn(f"{error}; left out of the plots", BenchFileWarning, stacklevel=2)
            continue
        groups.setdefault((r.task, str(r.graph), str(r.ablation)), []).append((r, curves))
    for (task, graph, ablation), runs in groups.items():
        seed = min(r.seed for r, _ in runs)
        runs = [(r, curves) for r, curves in runs if r.seed == seed]
        stem = f"{task}-{graph.replace('/', '+')}-{ablation}"
        setting = f"{task}, {graph} graph, {ablation} ablation, seed {seed}"
        panels = {
            title: {r.label: RocCurve.from_dict(curves[name]) for r, curves in runs if curves.get(name)}
            for title, name in (("compiler's ground truth", "roc"), ("effective ground truth", "roc_effective"))
        }
        if any(panels.values()):  # a task without a ground truth has faithfulness curves only
            plot_roc_curves(panels, out / "plots" / f"{stem}-roc", f"edge ROC: {setting}")
        plot_faithfulness_curves(
            {
                r.label: FaithfulnessCurve.from_dict(curves["faithfulness"])
                for r, curves in runs
                if curves.get("faithfulness")  # none kept: a NaN curve, or a run restored without its curves
            },
            out / "plots" / f"{stem}-faithfulness",
            f"faithfulness: {setting}",
            level,
        )
        if graph not in ("plain", "plain/oracle"):
            continue
        for r, _ in runs:
            truth = {Edge.from_endpoints(w, rd) for w, rd in r.effective_ground_truth or []}
            if not truth:
                continue
            try:
                scores = EdgeScores.load(out / "scores" / f"{r.key}.json")
            except ScoresFileError as error:
                warnings.warn(f"{error}; no circuit diagram of {r.key}", BenchFileWarning, stacklevel=2)
                continue
            found = set(circuit_from_scores(scores, top_k=len(truth)).edges)
            label = r.label
            draw_circuit(
                scores.graph,
                found,
                out / "plots" / "circuits" / f"{stem}-{label.replace(' ', '-')}",
                truth,
                f"{label} on {setting}\ntop {len(truth)} edges vs the effective ground truth",
            )


def plot_families(summary: FamilySummary, path: str | Path) -> list[Path]:
    """Draws the cross-benchmark summary: per method, one bar per family (mean AUROC against the effective truth;
    hatched where the method covers only part of the family), the rank correlations in the title; PNG and SVG.

    Args:
        summary: the summary of `family_summary`.
        path: where to write: its suffix is replaced by .png and .svg.

    Returns:
        The PNG and SVG paths.
    """
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(summary.methods), 3.6))
    width = 0.8 / len(summary.families)
    for i, family in enumerate(summary.families):
        heights = [summary.auroc[m][family] or 0.0 for m in summary.methods]
        bars = ax.bar(
            [x + (i - (len(summary.families) - 1) / 2) * width for x in range(len(summary.methods))],
            heights,
            width,
            label=f"{family} ({summary.runs[family]} runs)",
        )
        for bar, method in zip(bars, summary.methods):
            if family in summary.partial[method]:
                bar.set_hatch("///")
    ax.axhline(0.5, color="grey", linewidth=0.8, linestyle=":")
    ax.set_xticks(range(len(summary.methods)), summary.methods, rotation=20, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("mean AUROC, effective truth")
    rho = ", ".join(f"{pair} {v:+.2f}" for pair, v in summary.correlation.items() if v is not None)
    hatched = "; hatched: partial (part of the family's runs)" if any(summary.partial.values()) else ""
    ax.set_title(
        "methods across task families\n" + textwrap.fill(f"Spearman's rank correlation: {rho}{hatched}", 100),
        fontsize=8,
    )
    ax.legend(fontsize=8, loc="lower left")
    return save_figure(fig, path)
