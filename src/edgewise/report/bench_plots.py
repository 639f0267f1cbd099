"""Plots of a bench folder: ROC and faithfulness curves per task, graph and ablation, and circuit diagrams."""

from __future__ import annotations

import json
from pathlib import Path

from ..evaluate import FAITHFUL_LEVEL, FaithfulnessCurve, RocCurve
from ..graph import Edge, EdgeScores, circuit_from_scores
from .plots import draw_circuit, plot_faithfulness_curves, plot_roc_curves


def plot_bench(out: str | Path, level: float = FAITHFUL_LEVEL) -> None:
    """Draws, per task, graph and ablation (first seed): ROC curves against both truths and faithfulness curves, one
    line per method; and per plain-graph run a diagram of its top-k circuit against the effective ground truth, k
    that truth's size. Reads the finished runs of the bench folder `out`."""
    out = Path(out)
    finished = [json.loads(path.read_text()) for path in sorted((out / "runs").glob("*.json"))]
    groups: dict[tuple, list[dict]] = {}
    for r in finished:
        groups.setdefault((r["task"], r["graph"], r["ablation"]), []).append(r)
    for (task, graph, ablation), runs in groups.items():
        seed = min(r["seed"] for r in runs)
        runs = [r for r in runs if r["seed"] == seed]
        stem = f"{task}-{graph.replace('/', '+')}-{ablation}"
        setting = f"{task}, {graph} graph, {ablation} ablation, seed {seed}"
        panels = {
            title: {_label(r): RocCurve.from_dict(r["curves"][name]) for r in runs if r["curves"].get(name)}
            for title, name in (("compiler's ground truth", "roc"), ("effective ground truth", "roc_effective"))
        }
        if any(panels.values()):  # a task without a ground truth has faithfulness curves only
            plot_roc_curves(panels, out / "plots" / f"{stem}-roc", f"edge ROC: {setting}")
        plot_faithfulness_curves(
            {_label(r): FaithfulnessCurve.from_dict(r["curves"]["faithfulness"]) for r in runs
             if r["curves"]["faithfulness"]},
            out / "plots" / f"{stem}-faithfulness", f"faithfulness: {setting}", level,
        )
        if graph not in ("plain", "plain/oracle"):
            continue
        for r in runs:
            truth = {Edge.from_endpoints(w, rd) for w, rd in r["effective_ground_truth"] or []}
            if not truth:
                continue
            scores = EdgeScores.load(out / "scores" / f"{r['key']}.json")
            found = set(circuit_from_scores(scores, top_k=len(truth)).edges)
            label = _label(r)
            draw_circuit(scores.graph, found, out / "plots" / "circuits" / f"{stem}-{label.replace(' ', '-')}",
                         truth, f"{label} on {setting}\ntop {len(truth)} edges vs the effective ground truth")


def _label(record: dict) -> str:
    """Returns a run's method, with its preset when that is not edgewise's tuned default: `edge-sp (published)`."""
    preset = record.get("preset", "tuned")
    return record["method"] if preset == "tuned" else f"{record['method']} ({preset})"
