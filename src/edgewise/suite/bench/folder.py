"""A bench folder as the HTML report's page: one row per finished run (runs/KEY.json), each opening its run's page
built from the run's record, curves and scores (scores/KEY.json). Nothing is recomputed: the page shows what the
bench measured. A run file that does not read back whole (a half-written or damaged file) or a missing scores file
is named on the page, never silently skipped."""

from __future__ import annotations

from pathlib import Path

from edgewise.errors import GraphMismatchError, RunFileError, ScoresFileError
from edgewise.evaluate import FaithfulnessCurve, RocCurve
from edgewise.graph import Edge, EdgeScores
from edgewise.methods import method_circuit
from edgewise.report import BenchRow, BenchView, RunParts, run_view

from .records import RunRecord, load_run

BENCH_DRAWN = 300  # edges each run's circuit view draws: a folder of many runs stays one small page
COLUMNS = (
    "task",
    "graph",
    "method",
    "ablation",
    "seed",
    "auroc",
    "auroc_effective",
    "cpr",
    "cmd",
    "edges_to_95",
    "circuit_edges",
    "circuit_faithfulness",
    "seconds",
)


def _cells(record: RunRecord) -> dict:
    """Returns the record's values for the table's columns."""
    return {
        "task": record.task,
        "graph": str(record.graph),
        "method": record.label,
        "ablation": str(record.ablation),
        "seed": record.seed,
        "auroc": record.figure("auroc"),
        "auroc_effective": record.figure("auroc", "effective"),
        "cpr": record.figure("cpr"),
        "cmd": record.figure("cmd"),
        "edges_to_95": record.figure("edges_to_95"),
        "circuit_edges": record.figure("circuit_edges"),
        "circuit_faithfulness": record.figure("circuit_faithfulness"),
        "seconds": record.seconds,
    }


def _run_parts(record: RunRecord, curves: dict, scores: EdgeScores) -> RunParts:
    """Returns the page parts of one bench run from its record, curves and scores."""
    graph = scores.graph
    if graph.n_edges != record.n_edges or (scores.task and scores.task != record.task):
        raise GraphMismatchError(
            f"scores of run {record.key} are of task {scores.task!r} with {graph.n_edges} edges, its record of "
            f"{record.task!r} with {record.n_edges}"
        )
    truths = {}
    if record.effective_ground_truth is not None:
        truths[f"effective ({record.ablation})"] = {Edge.from_endpoints(*e) for e in record.effective_ground_truth}
    rocs = {}
    for key, curve in curves.items():
        if key != "faithfulness" and curve is not None:
            level = "nodes" if key.startswith("node_") else "edges"
            truth = "effective" if key.endswith("_effective") else "compiler"
            rocs[f"{level} vs {truth}"] = RocCurve.from_dict(curve)
    faithfulness = curves.get("faithfulness")
    circuit = method_circuit(scores, record.figures.circuit_edges or 20)
    return RunParts(
        graph=graph,
        scores=scores,
        task=record.task,
        truths=truths,
        method_circuit=frozenset(circuit.edges),
        circuit_faithfulness=record.figures.circuit_faithfulness,
        faithfulness=None if faithfulness is None else FaithfulnessCurve.from_dict(faithfulness),
        rocs=rocs,
        figures=record.figures,
        circuit_size=len(circuit),
        facts=(("run", record.key), ("evaluated on", f"{record.evaluated_on} inputs")),
    )


def bench_view(folder: str | Path, max_drawn: int = BENCH_DRAWN) -> BenchView:
    """Returns the report page of a bench folder: its runs' table and a page per run.

    Args:
        folder: a folder `edgewise bench --out` wrote.
        max_drawn: the most best-ranked edges each run's circuit view draws.

    Returns:
        The page; damaged run files, failed runs (failed/KEY.json) and missing or unreadable scores are listed in its
            `missing`.

    Raises:
        RunFileError: the folder holds no run file that reads back (none finished, or not a bench folder).
    """
    folder = Path(folder)
    files = sorted((folder / "runs").glob("*.json"))
    rows, runs, missing = [], [], []
    for path in files:
        try:
            record, curves = load_run(path)
        except RunFileError as error:
            missing.append(f"{error} (not in the table; `edgewise bench` reruns it)")
            continue
        scores_path = folder / "scores" / f"{record.key}.json"
        try:
            scores = EdgeScores.load(scores_path)
            runs.append(run_view(_run_parts(record, curves, scores), max_drawn))
            rows.append(BenchRow(record.key, _cells(record), len(runs) - 1))
        except (ScoresFileError, GraphMismatchError) as error:
            missing.append(f"run {record.key}: no run page, its scores do not read back: {error}")
            rows.append(BenchRow(record.key, _cells(record), None))
    for path in sorted((folder / "failed").glob("*.json")):
        missing.append(f"run {path.stem} raised and has no record (its error is in {path})")
    if not rows:
        found = f"{len(files)} run files, none readable" if files else "no run files (runs/*.json)"
        raise RunFileError(
            f"bench folder {folder} has {found}: nothing to report; run `edgewise bench --out {folder}` first"
        )
    return BenchView(f"bench {folder.name}", COLUMNS, tuple(rows), tuple(runs), tuple(missing))
