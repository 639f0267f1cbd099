"""The HTML report: one self-contained file (every script, style and datum inlined, no network request) that opens
from `file://`. A run's page (`RunView`) or a bench folder's (`BenchView`) becomes JSON inside the page; the page's
own script (templates/report.js) draws the circuit view as SVG, and plotly.js (inlined from the plotly package)
draws the curves."""

from __future__ import annotations

import json
import math
from functools import cache
from importlib import resources
from pathlib import Path

from ..outputs import write_text
from .page import BenchView, CircuitView, DiagnosisFindings, RunView


def _number(value: float | int | None) -> float | int | None:
    """Returns the value, or None for NaN or infinity (strict JSON has neither)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _circuit_json(view: CircuitView) -> dict:
    """Returns the circuit view as the page's JSON: nodes and drawn edges as columns."""
    return {
        "nodes": {
            "label": [n.label for n in view.nodes],
            "kind": [n.kind for n in view.nodes],
            "x": [round(n.x, 3) for n in view.nodes],
            "y": [round(n.y, 3) for n in view.nodes],
            "port": [n.port for n in view.nodes],
            "findings": {i: list(n.findings) for i, n in enumerate(view.nodes) if n.findings},
        },
        "n_rows": view.n_rows,
        "edges": {
            "name": list(view.edge_names),
            "writer": list(view.edge_writer),
            "reader": list(view.edge_reader),
            "score": None if view.edge_score is None else [_number(s) for s in view.edge_score],
            "rank": list(view.edge_rank),
            "frequency": None if view.edge_frequency is None else list(view.edge_frequency),
            "findings": {i: list(notes) for i, notes in view.edge_findings.items()},
        },
        "circuits": [
            {
                "name": c.name,
                "edges": list(c.edges),
                "size": c.size,
                "faithfulness": _number(c.faithfulness),
                "truth": c.truth,
            }
            for c in view.circuits
        ],
        "n_edges": view.n_edges,
        "sorted_scores": [float(f"{s:.6g}") for s in view.sorted_scores],
        "undrawn_share": view.undrawn_share,
    }


def _diagnosis_json(findings: DiagnosisFindings) -> dict:
    """Returns the diagnose report as the page's JSON."""
    return {
        "task": findings.task,
        "constant_writers": [list(w) for w in findings.constant_writers],
        "depends_on_ablation": findings.depends_on_ablation,
        "ablations": [
            {
                "ablation": a.ablation,
                "ground_truth_faithful": a.ground_truth_faithful,
                "minimal_size": a.minimal_size,
                "removable": [list(r) for r in a.removable],
                "redundant_groups": list(a.redundant_groups),
                "misses": [list(m) for m in a.misses],
                "behaviour": [
                    {
                        "label": r.label,
                        "n_edges": r.n_edges,
                        "loss": _number(r.loss),
                        "agreement": _number(r.agreement),
                        "flags": list(r.flags),
                        "examples": list(r.examples),
                    }
                    for r in a.behaviour
                ],
            }
            for a in findings.ablations
        ],
    }


def run_json(view: RunView) -> dict:
    """Returns one run's page as the JSON its script reads.

    Args:
        view: the run's page.

    Returns:
        JSON-ready data: facts, circuit view, curves, figures, diagnosis and what is missing.
    """
    curve = view.faithfulness
    return {
        "title": view.title,
        "facts": [list(f) for f in view.facts],
        "circuit": _circuit_json(view.circuit),
        "faithfulness": None
        if curve is None
        else {"sizes": curve.sizes, "values": [_number(f) for f in curve.faithfulness], "n_edges": curve.n_edges},
        "rocs": {
            name: {"fpr": c.false_positive_rate, "tpr": c.true_positive_rate, "auc": _number(c.auc)}
            for name, c in view.rocs.items()
        },
        "figures": [[name, _number(value)] for name, value in view.figures],
        "stability": [[name, _number(value)] for name, value in view.stability],
        "diagnosis": None if view.diagnosis is None else _diagnosis_json(view.diagnosis),
        "default_size": view.default_size,
        "missing": list(view.missing),
    }


def bench_json(view: BenchView) -> dict:
    """Returns a bench folder's page as the JSON its script reads.

    Args:
        view: the bench folder's page.

    Returns:
        JSON-ready data: the table's columns and rows, the run pages, and what is missing.
    """
    return {
        "title": view.title,
        "columns": list(view.columns),
        "rows": [{"key": r.key, "cells": {k: _number(v) for k, v in r.cells.items()}, "run": r.run} for r in view.rows],
        "runs": [run_json(r) for r in view.runs],
        "missing": list(view.missing),
    }


@cache
def _asset(name: str) -> str:
    """Returns a file of the report's templates folder."""
    return resources.files(__package__).joinpath("templates", name).read_text()


@cache
def _plotly_js() -> str:
    """Returns plotly.js from the plotly package (MIT licence), to inline: the page makes no request."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def _script_json(record: dict) -> str:
    """Returns strict JSON safe inside a <script> element: every `<` is written `\\u003c`, so neither `</script>`
    nor an HTML comment opener in a name can end it early."""
    return json.dumps(record, allow_nan=False, separators=(",", ":")).replace("<", "\\u003c")


def render_report(view: RunView | BenchView) -> str:
    """Returns the HTML of one self-contained page for a run or a bench folder.

    Args:
        view: the page's data (`run_view` or a bench folder's `BenchView`).

    Returns:
        The HTML text: scripts, styles and data inlined.
    """
    import jinja2

    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    template = environment.from_string(_asset("report.html.j2"))
    kind = "bench" if isinstance(view, BenchView) else "run"
    record = bench_json(view) if kind == "bench" else run_json(view)
    return template.render(
        title=view.title,
        kind=kind,
        page_json=_script_json(record),
        style=_asset("report.css"),
        script=_asset("report.js"),
        plotly=_plotly_js(),
    )


def write_report(view: RunView | BenchView, path: str | Path) -> Path:
    """Writes the page's HTML to `path`, atomically (a failed write leaves the previous file).

    Args:
        view: the page's data.
        path: the HTML file to write.

    Returns:
        The path written.

    Raises:
        OutputPathError: the file cannot be written.
    """
    write_text(path, render_report(view))
    return Path(path)
