"""`edgewise report` and the `--html FILE` of discover, diagnose and bench: parse, call the library, print.

`edgewise report SCORES.json` scores the run again with the library's run scorer (its faithfulness curve, ROC
curves and truths under every ablation) when the scores name a built-in task; `edgewise report DIAGNOSE.json` shows
a diagnosis on its task's graph; `edgewise report BENCH_DIR` shows a bench folder as it was measured."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from ..errors import GraphMismatchError, ScoresFileError, UsageError
from ..outputs import check_output_paths
from .options import _positive_int


def add_html_argument(parser: argparse.ArgumentParser) -> None:
    """Adds `--html FILE` (one self-contained interactive page) to a command's parser.

    Args:
        parser: the subcommand's parser.
    """
    parser.add_argument(
        "--html", metavar="FILE", help="also write one self-contained interactive HTML report (opens from file://)"
    )


def add_report_parser(sub: argparse._SubParsersAction) -> None:
    """Adds the `report` subcommand.

    Args:
        sub: the subparsers of `edgewise`.
    """
    p = sub.add_parser(
        "report", help="write one self-contained interactive HTML page of scores, a diagnosis or a bench"
    )
    p.add_argument(
        "input",
        metavar="SCORES.json|DIAGNOSE.json|BENCH_DIR",
        help="`discover --json`, `diagnose --json` or `bench --out` output",
    )
    p.add_argument("--out", default="report.html", metavar="FILE", help="the HTML file to write (default report.html)")
    p.add_argument("--diagnosis", metavar="FILE", help="with scores: also show this `diagnose --json` output")
    p.add_argument("--bootstrap", metavar="FILE", help="with scores: colour edges by this `--bootstrap-json` output")
    p.add_argument(
        "--top-k", type=_positive_int, metavar="K", help="circuit size of a top-k method (default: discover's rule)"
    )
    p.add_argument(
        "--max-drawn", type=_positive_int, default=None, metavar="N", help="draw the N best-ranked edges (default 1000)"
    )
    p.set_defaults(run=run_report)


def _read_json(path: str, option: str):
    """Returns the JSON at `path`, or raises ScoresFileError naming the option and the file."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise ScoresFileError(
            f"{option} {path} cannot be read as JSON ({error}); give the file edgewise wrote"
        ) from None


def _max_drawn(args: argparse.Namespace, default: int) -> int:
    """Returns --max-drawn, or the default."""
    return default if args.max_drawn is None else args.max_drawn


def run_report(args: argparse.Namespace) -> int:
    """Runs `edgewise report`: writes the page of a scores file, a diagnose file or a bench folder.

    Args:
        args: the parsed command line.

    Returns:
        0 once the page is written.

    Raises:
        ScoresFileError: the input is not a file edgewise wrote, or holds non-finite scores.
        GraphMismatchError: the parts are of different tasks or graphs.
        RunFileError: a bench folder without a readable run.
        UsageError: options that do not fit the input.
    """
    from ..report import write_report
    from .main import _check_not_an_input

    source = Path(args.input)
    if not source.exists():
        raise UsageError(f"{source} does not exist: give a scores or diagnose JSON file, or a bench folder")
    _check_not_an_input(
        {"--out": args.out}, {args.input: args.input, "--diagnosis": args.diagnosis, "--bootstrap": args.bootstrap}
    )
    check_output_paths({"--out": args.out})
    if source.is_dir():
        if args.diagnosis or args.bootstrap or args.top_k:
            raise UsageError("--diagnosis, --bootstrap and --top-k go with a scores file, not a bench folder")
        from ..suite.bench import BENCH_DRAWN, bench_view

        view = bench_view(source, _max_drawn(args, BENCH_DRAWN))
    else:
        record = _read_json(str(source), "the input")
        if isinstance(record, dict) and "scores" in record and "graph" in record:
            view = _scores_view(args)
        elif isinstance(record, dict) and "ablations" in record and "constant_writers" in record:
            if args.diagnosis or args.bootstrap or args.top_k:
                raise UsageError("--diagnosis, --bootstrap and --top-k go with a scores file, not a diagnosis")
            view = _diagnosis_view(args, record)
        else:
            raise ScoresFileError(
                f"{source} is neither edge scores (`edgewise discover --json`) nor a diagnosis (`edgewise diagnose "
                "--json`); give one of them, or a bench folder"
            )
    _print_written(write_report(view, args.out), view)
    return 0


def _print_written(path: Path, view) -> None:
    """Prints what the page shows and what it misses."""
    from ..report import BenchView

    if isinstance(view, BenchView):
        print(f"bench page: {len(view.rows)} runs, {len(view.runs)} run pages")
    else:
        circuit = view.circuit
        print(f"{view.title}: {len(circuit.edge_names)} of {circuit.n_edges} edges drawn")
    for note in view.missing:
        print(f"  missing: {note}")
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB; open it in a browser)")


def _task_of(scores):
    """Returns the built-in task the scores name and the scores on that task's graph (which patches), or (None,
    scores) for scores of no built-in task; raises GraphMismatchError where the graphs differ."""
    from ..suite.tasks import task_names
    from .main import _labelled_task, _load_task, _task_features

    if scores.task not in task_names():
        return None, scores
    if not scores.graph.features:
        task = _labelled_task(scores)
        graph = task.graph(per_position=scores.graph.per_position)
    else:
        task = _load_task(scores.task)
        features = _task_features(task, scores.graph.features)
        graph = task.graph(per_position=scores.graph.per_position, features=features)
        if graph.edges != scores.graph.edges:
            raise GraphMismatchError(
                f"the scores' {scores.graph.features} feature graph ({scores.graph.n_edges} edges) is not task "
                f"{scores.task}'s ({graph.n_edges} edges): its dictionaries changed; rerun `edgewise discover "
                f"{scores.task} --features {scores.graph.features} --json FILE`"
            )
    return task, dataclasses.replace(scores, graph=graph)


def _scores_view(args: argparse.Namespace):
    """Returns the page of `edgewise report SCORES.json`."""
    from ..diagnostics import ABLATIONS
    from ..evaluate import RunEvaluation
    from ..patching import task_ablation
    from ..report import (
        MAX_DRAWN,
        RunParts,
        bootstrap_from_record,
        check_finite_scores,
        diagnosis_findings,
        effective_truths,
        run_parts,
        run_view,
    )
    from .main import _load_scores_strictly

    scores = _load_scores_strictly(args.input)
    check_finite_scores(scores)  # before any work
    findings = (
        None if not args.diagnosis else diagnosis_findings(_read_json(args.diagnosis, "--diagnosis"), scores.graph)
    )
    bootstrap = (
        None if not args.bootstrap else bootstrap_from_record(_read_json(args.bootstrap, "--bootstrap"), scores.graph)
    )
    task, scores = _task_of(scores)
    if task is None:
        if args.top_k:
            raise UsageError("--top-k sizes the circuit of a built-in task's scores; these name no built-in task")
        note = (
            f"the scores name no built-in task ({scores.task or 'none'}): no faithfulness curve, ground truth or "
            "method circuit; write the page with `discover --html` where the task is at hand"
        )
        parts = RunParts(scores.graph, scores, scores.task, diagnosis=findings, bootstrap=bootstrap, missing=(note,))
    else:
        ablated = task_ablation(task, scores.graph, scores.ablation)
        run = RunEvaluation(task, scores, ablated, circuit_size=args.top_k)
        others = effective_truths(task, scores.graph, tuple(str(a) for a in ABLATIONS if str(a) != scores.ablation))
        parts = run_parts(run, others, findings, bootstrap)
    return run_view(parts, _max_drawn(args, MAX_DRAWN))


def _diagnosis_view(args: argparse.Namespace, record: dict):
    """Returns the page of `edgewise report DIAGNOSE.json`: the diagnosis on its built-in task's graph."""
    from ..report import MAX_DRAWN, diagnosis_findings, run_view
    from ..suite.tasks import task_names
    from .main import _load_task

    name = record.get("task")
    if name not in task_names():
        raise UsageError(
            f"the diagnosis is of task {name!r}, not a built-in one, so its graph cannot be rebuilt here; write "
            "the page with `edgewise diagnose ... --html FILE`"
        )
    task = _load_task(name)
    graph = task.graph(per_position=bool(record.get("graph", {}).get("per_position")))
    return run_view(_diagnosis_parts(task, graph, diagnosis_findings(record, graph)), _max_drawn(args, MAX_DRAWN))


def _diagnosis_parts(task, graph, findings):
    """Returns the parts of a page without scores: the diagnosis, the compiler's truth, opening at the first
    ablation's minimal circuit."""
    from ..report import RunParts

    truths = {"compiler": task.ground_truth_edges(graph)} if task.knows_truth(graph) else {}
    sizes = [a.minimal_size for a in findings.ablations if a.minimal_size is not None]
    return RunParts(graph, None, task.name, truths, diagnosis=findings, circuit_size=sizes[0] if sizes else None)


def write_discover_html(path: str, run, stability=None) -> None:
    """Writes `discover --html`: the run's page, with the effective truth under every ablation and the bootstrap.

    Args:
        path: the HTML file.
        run (RunEvaluation): the run, as discover scored it.
        stability (Stability | None): the bootstrap of `--bootstrap N`, or None.
    """
    from ..diagnostics import ABLATIONS
    from ..report import bootstrap_summary, effective_truths, run_parts, run_view, write_report

    kinds = tuple(str(a) for a in ABLATIONS if str(a) != run.scores.ablation)
    others = effective_truths(run.task, run.graph, kinds)
    bootstrap = None if stability is None else bootstrap_summary(stability)
    view = run_view(run_parts(run, others, None, bootstrap))
    _print_written(write_report(view, path), view)


def write_diagnose_html(path: str, task, diagnosis, scores=None) -> None:
    """Writes `diagnose --html`: the diagnosis on its graph, with the scores' run when scores were given.

    Args:
        path: the HTML file.
        task (Task): the diagnosed task.
        diagnosis (Diagnosis): the diagnosis.
        scores (EdgeScores | None): the scores given to diagnose, or None.
    """
    from ..evaluate import RunEvaluation
    from ..patching import task_ablation
    from ..report import findings_of, run_parts, run_view, write_report

    findings = findings_of(diagnosis)
    graph = diagnosis.graph
    if scores is not None:
        scores = dataclasses.replace(scores, graph=graph)
        run = RunEvaluation(task, scores, task_ablation(task, graph, scores.ablation))
        parts = run_parts(run, diagnosis=findings)
    else:
        parts = _diagnosis_parts(task, graph, findings)
    view = run_view(parts)
    _print_written(write_report(view, path), view)


def write_bench_html(path: str, folder: str) -> None:
    """Writes `bench --html`: the page of the bench folder, every finished run in it.

    Args:
        path: the HTML file.
        folder: the bench's --out folder.
    """
    from ..report import write_report
    from ..suite.bench import bench_view

    view = bench_view(folder)
    _print_written(write_report(view, path), view)
