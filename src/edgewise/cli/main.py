"""The `edgewise` command line: thin; it parses, calls the library, prints."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .. import __version__
from ..errors import EdgewiseError, OutputPathError, UsageError


def _tasks(args: argparse.Namespace) -> int:
    from ..suite.tasks import task_cards

    cards, unavailable = task_cards()
    for name, reason in unavailable.items():
        print(f"{name}: not available ({reason})", file=sys.stderr)
    rows = [card.to_dict() for card in cards]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    header = (
        f"{'task':<32}{'layers':>7}{'heads':>6}{'d_model':>8}{'edges':>7}{'per-pos':>9}{'truth':>7}{'n':>5}"
        f"{'held-out':>9}  metric"
    )
    print(header)
    for r in rows:
        print(
            f"{r['name']:<32}{r['n_layers']:>7}{r['n_heads']:>6}{r['d_model']:>8}{r['n_edges']:>7}"
            f"{r['n_edges_per_position']:>9}{r['n_ground_truth_edges'] or '-':>7}{r['n_examples']:>5}"
            f"{r['n_held_out'] or 'none':>9}  {r['metric']}" + _compression_note(r.get("compression"))
        )
    print(
        "held-out: inputs kept apart from discovery for evaluation (`edgewise bench` scores on them); none: every "
        "input of the task's form is used (tracr-reverse: ACDC's 6 permutations)"
    )
    if any(r.get("compression") for r in rows):
        print(
            "compressed: residual directions -> dimensions after the learned projection, and how often the "
            "compressed model gives tracr's output (discovery / held-out inputs)"
        )
    return 0


def _compression_note(compression: dict | None) -> str:
    """Returns a task row's note on its compression: directions -> dimensions, agreement with tracr's outputs."""
    if not compression:
        return ""
    held_out = compression["held_out_accuracy"]
    agreement = f"{compression['accuracy']:.1%}" + ("" if held_out is None else f" / {held_out:.1%}")
    return (
        f"  compressed {compression['n_directions']} -> {compression['d_compressed']}, agrees with tracr on {agreement}"
    )


def _graph(args: argparse.Namespace) -> int:
    from ..suite.tasks import TracrData, get_task

    _check_writable(args.json)
    task = get_task(args.task)
    graph = task.graph(per_position=args.per_position, features=_task_features(task, args.features))
    known = task.knows_truth(graph)
    truth = sorted(task.ground_truth_edges(graph), key=graph.edge_index) if known else []
    # a tracr task: the compiler says which RASP operation lives where
    compiled = task.family.compiled if isinstance(task.family, TracrData) else None
    operations = compiled.writer_operations() if compiled is not None else {}
    carried = {e: compiled.carried(graph.writer_node(e.writer).component, e.reader) for e in truth} if compiled else {}
    if args.json:
        record = {**graph.to_dict(), "ground_truth": [e.endpoints() for e in truth]}
        if compiled is not None:
            record["operations"] = {
                w: operations[w] for w in dict.fromkeys(n.component for n in graph.writer_nodes) if w in operations
            }
            record["carries"] = [[*e.endpoints(), carried[e]] for e in truth]
        Path(args.json).write_text(json.dumps(record, indent=1))
        print(f"wrote {args.json}: {len(graph.nodes)} nodes, {graph.n_edges} edges, {len(truth)} ground-truth edges")
        return 0
    print(f"{task.name}: {task.description}")
    print(graph)
    print(f"nodes ({len(graph.nodes)}): {', '.join(graph.nodes)}")
    if args.all_edges:
        print("edges:")
        for e in graph.edges:
            print(f"  {e.name}")
    if operations:
        print("RASP operations (from the compiler):")
        for writer in dict.fromkeys(n.component for n in graph.writer_nodes):
            if writer in operations:
                print(f"  {writer:<12} {', '.join(operations[writer])}")
    print(f"ground-truth circuit ({len(truth)} edges):" if known else "no known ground truth")
    for e in truth:
        print(f"  {e.name}" + (f"  carries {', '.join(carried[e])}" if carried.get(e) else ""))
    return 0


def _check(args: argparse.Namespace) -> int:
    import torch

    from ..patching import run_checks
    from ..suite.tasks import get_task

    task = get_task(args.task)
    if args.float64:  # float32 rounding grows with how far a patch moves a deep model; float64 isolates the algorithm
        task.model.to(torch.float64)
    results = run_checks(task, per_position=args.per_position, features=_task_features(task, args.features))
    for r in results:
        print(
            f"{'PASS' if r.passed else 'FAIL'}  diff {r.max_abs_diff:.1e} <= {r.tolerance:.0e}  "
            f"(patch moves logits by {r.effect:.2g})  {r.name}"
        )
    failed = [r for r in results if not r.passed]
    print(f"{len(results) - len(failed)}/{len(results)} patching checks passed on {task.name}")
    return 1 if failed else 0


def _check_writable(path: str | None, folder: bool = False) -> None:
    """Raises OutputPathError unless `path` (when given) can be written as a file (or, with `folder`, as a folder);
    creates its missing parent folders."""
    if path is None:
        return
    target = Path(path)
    if target.is_dir() and not folder:
        raise OutputPathError(f"{path} is a directory; give the path of a file to write")
    if target.exists() and folder and not target.is_dir():
        raise OutputPathError(f"{path} is a file; give a folder (new or existing) for the results")
    existing = target if folder and target.exists() else target.parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise OutputPathError(f"cannot write {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK):
        raise OutputPathError(f"cannot write {path}: {existing} is not writable; choose another location")
    (target if folder else target.parent).mkdir(parents=True, exist_ok=True)


def _features_argument(parser: argparse.ArgumentParser, sets: str = "oracle | train | sae:DIR") -> None:
    parser.add_argument(
        "--features",
        metavar="SET",
        help=f"split writers into dictionary features ({sets}): oracle "
        "is tracr's labelled residual directions (feature-level ground truth known); train fits a TopK "
        "SAE per writer on the task's inputs; sae:DIR loads SAELens folders",
    )


def _task_features(task, features: str | None) -> str | None:
    """Returns the dictionary set to build the graph with, loading (sae:DIR) or training (train) it first."""
    if features is None or features == "oracle":
        return features
    from ..features import TRAINED, add_sae_features, add_trained_features

    if features.startswith("sae:"):
        return add_sae_features(task, features[len("sae:") :])
    if features == TRAINED:
        for writer, report in add_trained_features(task, progress=True).items():
            recovered = report.get("oracle_recovered")
            print(
                f"trained SAE on {writer}: {report['n_active']} of {report['n_features']} features active, "
                f"L0 {report['l0']:.2f}, FVU {report['fvu'] if report['fvu'] is None else round(report['fvu'], 4)}"
                + ("" if recovered is None else f", oracle directions recovered (cosine >= 0.9): {recovered:.0%}")
            )
        return TRAINED
    raise UsageError(f"unknown feature set {features!r}: use oracle, train or sae:DIR")


def _positive_int(text: str) -> int:
    """Returns `text` as an integer >= 1; argparse turns the ValueError into a usage error (exit status 2)."""
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


def _hyperparameters(items: list[str] | None) -> dict[str, str]:
    """Returns `--set NAME=VALUE` items as {name: text}; the method's config converts each by its declared type."""
    hyperparameters = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--set takes NAME=VALUE, got {item!r}")
        hyperparameters[key.replace("-", "_")] = value
    return hyperparameters


def _discover(args: argparse.Namespace) -> int:
    from ..evaluate import RunEvaluation, ground_truths
    from ..methods import discover, get_method, resolve_config
    from ..patching import task_ablation
    from ..suite.tasks import get_task

    hyperparameters = _hyperparameters(args.set)
    resolve_config(get_method(args.method), args.preset, hyperparameters)  # bad names and values fail before any work
    for path in (args.json, args.circuit_out):
        _check_writable(path)
    task = get_task(args.task, metric=args.metric)
    graph = task.graph(per_position=args.per_position, features=_task_features(task, args.features))
    ablated = task_ablation(task, graph, args.ablation)
    scores = discover(
        task,
        args.method,
        seed=args.seed,
        progress=True,
        graph=graph,
        ablated=ablated,
        preset=args.preset,
        minimise=args.objective,
        **hyperparameters,
    )
    if args.json:
        scores.save(args.json)
    truths = ground_truths(task, graph, ablated)
    run = RunEvaluation(task, scores, ablated, truths, circuit_size=args.top_k)
    print(f"{args.method} on {task.name} ({graph}, {args.ablation} ablation, seed {args.seed}): {scores.seconds:.2f} s")
    if truths:
        effective = truths["effective"]
        n_true = len(truths["compiler"])
        line = f"ROC AUC against the ground truth: {run.auroc('compiler'):.3f} (compiler's, {n_true} edges)"
        if run.auroc("effective") is not None:
            line += f", {run.auroc('effective'):.3f} (effective under {args.ablation}, {len(effective)} edges)"
        print(line)
    circuit = run.circuit
    print(f"circuit ({circuit.description}): {len(circuit)} edges, faithfulness {run.circuit_faithfulness:.3f}")
    if args.objective:
        _print_objective(task.with_objective(args.objective), graph, ablated, circuit)
    shown = args.top_k or max(len(circuit), len(truths.get("compiler", ())), 1)
    print(f"top {shown} edges by score:")
    truth = truths.get("compiler")
    for edge, score in scores.ranked()[:shown]:
        mark = "" if truth is None else ("  true" if edge in truth else "  -")
        kept = "  in circuit" if edge in circuit.edges else ""
        print(f"  {score:+.4g}  {edge.name}{mark}{kept}")
    if args.circuit_out:
        circuit.save(args.circuit_out)
        print(
            f"wrote the circuit to {args.circuit_out} (check it with `edgewise diagnose {task.name} "
            f"--circuit {args.circuit_out}`)"
        )
    if args.json:
        print(f"wrote {args.json}")
    return 0


def _print_objective(task, graph, ablated, circuit) -> None:
    """Prints the objective a method minimised on the full model, the circuit and the empty circuit."""
    from ..evaluate import circuit_objective

    values = circuit_objective(task, graph, ablated, circuit)
    print(
        f"objective {values.metric}: full model {values.full:.4g}, circuit {values.circuit:.4g}, empty circuit "
        f"{values.empty:.4g} (lower is what the method sought; `edgewise diagnose {task.name} --circuit FILE` shows "
        "what the circuit does)"
    )


def _export(args: argparse.Namespace) -> int:
    from ..evaluate import DEFAULT_CIRCUIT_SIZE
    from ..graph import Circuit, EdgeScores, circuit_from_scores
    from ..interop import save_mib, to_mib
    from ..methods import method_circuit, method_names
    from ..suite.tasks import card_for, task_names

    _check_writable(args.out)
    scores = EdgeScores.load(args.scores)
    if args.circuit:
        circuit = Circuit.load(args.circuit, task=scores.task or None)
    elif args.top_k:
        circuit = circuit_from_scores(scores, top_k=args.top_k)
    elif scores.method in method_names():
        circuit = method_circuit(scores, DEFAULT_CIRCUIT_SIZE)
    else:
        circuit = None
    d_model = card_for(scores.task).d_model if scores.task in task_names() else None
    save_mib(to_mib(scores, circuit, d_model=d_model), args.out)
    kept = "no edges in_graph" if circuit is None else f"{len(circuit)} edges in_graph ({circuit.description})"
    print(f"wrote {args.out}: MIB circuit file of {scores.method} scores on {scores.task or 'an unnamed task'}, {kept}")
    return 0


def _import(args: argparse.Namespace) -> int:
    from ..interop import from_mib, load_mib
    from ..suite.tasks import get_task

    for path in (args.out, args.circuit_out):
        _check_writable(path)
    record = load_mib(args.file)
    task = get_task(args.task)
    scores, circuit = from_mib(record, task.graph(), method=args.method, task=task.name)
    scores.save(args.out)
    print(f"wrote {args.out}: {scores.graph.n_edges} edge scores of {task.name} from {args.file}")
    if args.circuit_out:
        circuit.save(args.circuit_out)
        print(f"wrote {args.circuit_out}: its {len(circuit)} in_graph edges")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    _check_writable(args.out, folder=True)
    return run_demo(args.task, Path(args.out))


def _comma_list(text: str) -> tuple[str, ...]:
    """Returns the comma-separated names in `text`."""
    return tuple(name.strip() for name in text.split(",") if name.strip())


def _comma_floats(text: str) -> tuple[float, ...]:
    """Returns the comma-separated numbers in `text`; argparse turns a ValueError into a usage error."""
    return tuple(float(value) for value in _comma_list(text))


def _comma_ints(text: str) -> tuple[int, ...]:
    """Returns the comma-separated integers in `text`; argparse turns a ValueError into a usage error."""
    return tuple(int(value) for value in _comma_list(text))


def _bench(args: argparse.Namespace) -> int:
    import dataclasses
    import time

    from ..graph import GraphKind
    from ..methods import PRESETS
    from ..suite.bench import full_sweep, graph_kind, quick_sweep, run_bench

    sweep = full_sweep() if args.full else quick_sweep()
    chosen = {name: getattr(args, name) for name in ("tasks", "methods", "ablations", "graphs", "seeds")}
    if args.preset is not None:
        chosen["presets"] = PRESETS if args.preset == "both" else (args.preset,)
    sweep = dataclasses.replace(sweep, **{name: value for name, value in chosen.items() if value is not None})
    if args.features:
        kinds = (graph_kind(g) for g in sweep.graphs)
        sweep = dataclasses.replace(sweep, graphs=tuple(GraphKind(k.per_position, args.features) for k in kinds))
    sweep.runs()  # unknown names fail before any work
    _check_writable(args.out, folder=True)
    start = time.perf_counter()
    records = run_bench(sweep, args.out, progress=True, wait=args.wait, jobs=args.jobs)
    families = Path(args.out) / "families.md"
    if not args.no_plots:
        from ..suite.bench import RunRecord, family_summary, plot_bench, plot_families

        plot_bench(args.out)
        if families.exists():
            results = json.loads((Path(args.out) / "results.json").read_text())
            plot_families(
                family_summary([RunRecord.from_json(fields) for fields in results]),
                Path(args.out) / "plots" / "families",
            )
    print((Path(args.out) / "summary.md").read_text())
    if families.exists():
        print(families.read_text())
    print(
        f"wrote {Path(args.out) / 'results.json'} (every finished run in the folder): this sweep's {len(records)} "
        f"runs, {time.perf_counter() - start:.1f} s"
    )
    return 0


def _diagnose(args: argparse.Namespace) -> int:
    from ..diagnostics import ABLATIONS, diagnose, format_diagnosis
    from ..graph import Circuit, EdgeScores
    from ..suite.tasks import get_task

    _check_writable(args.json)
    circuit = Circuit.load(args.circuit, task=args.task) if args.circuit else None
    scores = EdgeScores.load(args.scores, task=args.task) if args.scores else None
    task = get_task(args.task, metric=args.metric)
    per_position = (
        args.per_position
        or (circuit is not None and circuit.per_position)
        or (scores is not None and scores.graph.per_position)
    )
    features = _task_features(task, args.features)
    ablations = args.ablations or ((scores.ablation,) if scores is not None else ABLATIONS)
    diagnosis = diagnose(task, per_position, ablations, circuit, features=features, scores=scores)
    print(format_diagnosis(diagnosis))
    if args.json:
        Path(args.json).write_text(json.dumps(diagnosis.to_dict(), indent=1))
        print(f"\nwrote {args.json}")
    return 0


def _remove(args: argparse.Namespace) -> int:
    from ..graph import Circuit
    from ..interventions import (
        GivenCircuit,
        RemovalMaskConfig,
        RemovalSettings,
        compare_removals,
        discovered_circuits,
        minus_retain,
    )
    from ..suite.tasks import task_split

    _check_writable(args.json)
    _check_writable(args.plot)
    if args.subtract_retain and not (args.method and args.retain):
        raise UsageError("--subtract-retain needs --method (the circuits to fit on each retain task too) and --retain")
    forget = task_split(args.task)
    retain = [task_split(name) for name in args.retain or ()]
    if args.circuit:
        circuit = Circuit.load(args.circuit, task=args.task)
        circuits, per_position = [GivenCircuit(circuit.description, circuit.edges)], circuit.per_position
    else:  # each method fits on the discovery inputs; its circuit follows the method's rule (discover's)
        per_position = args.per_position
        fit = lambda task: discovered_circuits(
            task,
            [(m, {}) for m in args.method],
            args.ablation,  # noqa: E731
            per_position,
            args.seed,
            (args.top_k,),
            progress=True,
        )
        circuits = fit(forget.discovery)
        if args.subtract_retain:
            circuits += minus_retain(circuits, [fit(split.discovery) for split in retain])
    given = {"alpha": args.mask_alpha, "lambda_": args.mask_lambda, "steps": args.mask_steps}
    mask = RemovalMaskConfig(**{k: v for k, v in given.items() if v is not None}) if args.removal_mask else None
    settings = RemovalSettings(
        args.ablation,
        per_position,
        args.nodes,
        args.random_seeds,
        tuple(args.task_vector or ()),
        args.gradient_ascent,
        args.edit_steps,
        args.edit_lr,
        mask,
        args.relearn_steps,
        args.relearn_lr,
        args.seed,
    )
    comparison = compare_removals(forget, circuits, retain, settings, progress=True)
    print(
        f"removing from {comparison.forget} ({args.ablation} ablation), measured on {comparison.measured_on} "
        f"inputs; per task: metric {forget.evaluation.metric.name} to the full model, accuracy before -> after"
    )
    header = ["intervention", "size", f"forget {comparison.forget}", *(f"retain {t}" for t in comparison.retain)]
    if args.relearn_steps:
        header.append(f"relearned in (of {args.relearn_steps} steps)")
    rows = []
    for row in comparison.rows:
        cells = [row.label, row.result.size, *(_measure_cell(m) for m in (row.result.forget, *row.result.retain))]
        if row.relearning is not None:
            cells.append("not" if row.relearning.recovered_at is None else f"{row.relearning.recovered_at} steps")
        rows.append(cells)
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)))
    if args.json:
        Path(args.json).write_text(json.dumps(comparison.to_dict(), indent=1, allow_nan=False))
        print(f"wrote {args.json}")
    if args.plot:
        from ..report import plot_removals

        print("wrote " + ", ".join(str(p) for p in plot_removals(comparison, args.plot)))
    return 0


def _measure_cell(measure) -> str:
    """Returns `0.31, 1.00 -> 0.42` (metric, accuracy before -> after) for an intervention's effect on one task."""
    accuracy = (
        "" if measure.accuracy_after is None else (f", {measure.accuracy_before:.2f} -> {measure.accuracy_after:.2f}")
    )
    return f"{measure.metric:.3g}{accuracy}"


def build_parser() -> argparse.ArgumentParser:
    """Returns the parser of every `edgewise` subcommand.

    Returns:
        The parser; each subcommand's parsed arguments carry the function that runs it as `run`.
    """
    parser = argparse.ArgumentParser(prog="edgewise", description="Circuit discovery on edge graphs.")
    parser.add_argument("--version", action="version", version=f"edgewise {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("tasks", help="list the built-in tasks with model sizes and edge counts")
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    p.set_defaults(run=_tasks)
    p = sub.add_parser("graph", help="print a task's nodes, edges and ground-truth circuit")
    p.add_argument("task")
    p.add_argument("--per-position", action="store_true", help="unroll the graph over sequence positions")
    p.add_argument("--json", metavar="FILE", help="write {nodes, edges, ground_truth} to FILE")
    _features_argument(p)
    p.add_argument("--all-edges", action="store_true", help="also print every edge")
    p.set_defaults(run=_graph)
    p = sub.add_parser("check", help="run the patching exactness checks on a task's model")
    p.add_argument("task")
    p.add_argument("--per-position", action="store_true")
    p.add_argument("--float64", action="store_true", help="run the model in float64: no float32 rounding in the diffs")
    _features_argument(p)
    p.set_defaults(run=_check)
    p = sub.add_parser("discover", help="score every edge of a task's graph with one method; print the circuit")
    p.add_argument("task")
    p.add_argument("--method", default="edge-sp", help="edge-sp, node-sp, acdc, eap, eap-ig-inputs, ...")
    p.add_argument("--ablation", default="resample", choices=["resample", "mean", "zero", "per-position-mean"])
    p.add_argument("--per-position", action="store_true")
    _features_argument(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--preset",
        choices=["tuned", "published"],
        default="tuned",
        help="tuned: edgewise's defaults; published: the method's authors' settings (docs/presets.md)",
    )
    p.add_argument(
        "--top-k",
        type=_positive_int,
        metavar="K",
        help="size of top-k circuits and edges to print (default: the effective truth's size, else 20)",
    )
    p.add_argument("--set", action="append", metavar="NAME=VALUE", help="a hyperparameter, e.g. --set steps=500")
    p.add_argument("--metric", choices=["kl", "mse", "l2"], help="faithfulness metric (default: the task's own)")
    p.add_argument("--json", metavar="FILE", help="write {method, seconds, scores: [[writer, reader, score]]}")
    p.add_argument("--circuit-out", metavar="FILE", help="write the method's circuit (input of diagnose --circuit)")
    p.add_argument(
        "--objective",
        metavar="NAME",
        help="minimise one of the task's objectives instead of "
        "faithfulness (edge-sp, node-sp), e.g. tictactoe's worst-move",
    )
    p.set_defaults(run=_discover)
    p = sub.add_parser("export", help="write edge scores (and a circuit) as another tool's file: MIB's circuit JSON")
    p.add_argument("scores", metavar="SCORES.json", help="edge scores from `edgewise discover --json`")
    p.add_argument("--format", choices=["mib"], default="mib", help="MIB circuit-localization JSON (EAP-IG's format)")
    p.add_argument("--out", required=True, metavar="FILE")
    p.add_argument("--circuit", metavar="FILE", help="the edges to mark in_graph (default: the method's own circuit)")
    p.add_argument("--top-k", type=_positive_int, metavar="K", help="mark the K best-scoring edges in_graph instead")
    p.set_defaults(run=_export)
    p = sub.add_parser("import", help="read another tool's circuit file (MIB's JSON) as edge scores of a task")
    p.add_argument("file", metavar="FILE", help="a MIB circuit JSON file")
    p.add_argument("--task", required=True, help="the built-in task whose graph the file describes")
    p.add_argument("--out", required=True, metavar="SCORES.json", help="where to write the edge scores")
    p.add_argument("--circuit-out", metavar="FILE", help="also write the file's in_graph edges as a circuit")
    p.add_argument("--method", default="mib", help="the method name to record (default: mib)")
    p.set_defaults(run=_import)
    p = sub.add_parser("demo", help="show a task, its graph, its true circuit and a patching check, with plots")
    p.add_argument("--task", default="tracr-reverse")
    p.add_argument("--out", default="demo-output", help="folder for the plots and JSON")
    p.set_defaults(run=_demo)
    p = sub.add_parser("bench", help="run methods x tasks x ablations x seeds; write results.json, a summary, plots")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="3 small tasks x 5 methods, resample, plain (default)")
    size.add_argument("--full", action="store_true", help="every task and method, both graphs, 3 ablations, 3 seeds")
    p.add_argument("--out", required=True, help="results folder; a re-run into it skips finished runs")
    p.add_argument("--tasks", type=_comma_list, help="comma-separated tasks, replacing the mode's")
    p.add_argument("--methods", type=_comma_list, help="comma-separated methods, e.g. eap,random")
    p.add_argument("--ablations", type=_comma_list, help="comma-separated ablations: resample, mean, zero, ...")
    p.add_argument("--graphs", type=_comma_list, help="comma-separated graph kinds: plain, per-position")
    _features_argument(p, "oracle | train")
    p.add_argument("--seeds", type=_comma_ints, help="comma-separated seeds, e.g. 0,1,2")
    p.add_argument(
        "--preset",
        choices=["tuned", "published", "both"],
        help="hyperparameters: edgewise's tuned defaults (default), the authors' published settings, or both",
    )
    p.add_argument("--no-plots", action="store_true", help="write results and summary only")
    p.add_argument(
        "--wait",
        action="store_true",
        help="wait for another bench writing into --out to finish (default: exit with status 2 naming it)",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="runs at once, in worker processes (one per core; their "
        "times share the machine, and each record says how many ran beside it)",
    )
    p.set_defaults(run=_bench)
    p = sub.add_parser(
        "diagnose", help="constant writers, the ground truth's minimal circuit per ablation, and what a circuit outputs"
    )
    p.add_argument("task")
    p.add_argument(
        "--circuit",
        metavar="FILE",
        help="a Circuit JSON whose behaviour to check (default: each ablation's minimal circuit)",
    )
    p.add_argument(
        "--scores",
        metavar="FILE",
        help="EdgeScores JSON (`edgewise discover --json`, a bench's "
        "scores/): explain where the method goes wrong against the effective truth, and check its circuit",
    )
    p.add_argument(
        "--ablations",
        type=_comma_list,
        help="comma-separated ablations (default: resample,mean,zero; with --scores: the scores' ablation)",
    )
    p.add_argument("--per-position", action="store_true", help="diagnose the per-position graph")
    p.add_argument("--metric", choices=["kl", "mse", "l2"], help="faithfulness metric (default: the task's own)")
    _features_argument(p)
    p.add_argument("--json", metavar="FILE", help="write the diagnostics to FILE")
    p.set_defaults(run=_diagnose)
    p = sub.add_parser(
        "remove",
        help="ablate a circuit and measure what the model lost (the task) and kept (--retain "
        "tasks), beside random edges of the same number",
    )
    p.add_argument("task", help="the forget task")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--circuit", metavar="FILE", help="a Circuit JSON (`edgewise discover --circuit-out`)")
    source.add_argument(
        "--method",
        type=_comma_list,
        help="discover each comma-separated method's circuit on the task's discovery inputs, e.g. acdc,eap,edge-sp",
    )
    p.add_argument("--ablation", default="resample", help="how removed edges are fed: resample (default), mean, zero")
    p.add_argument("--retain", type=_comma_list, help="comma-separated tasks of the same model to keep")
    p.add_argument("--per-position", action="store_true", help="with --method: the per-position graph")
    p.add_argument(
        "--top-k",
        type=int,
        help="with --method: circuit size of a top-k method (default: the effective truth's, else 20)",
    )
    p.add_argument("--seed", type=int, default=0, help="the seed of the methods, the mask and the weight edits")
    p.add_argument("--nodes", action="store_true", help="also remove each circuit's nodes (every edge out of them)")
    p.add_argument(
        "--subtract-retain",
        action="store_true",
        help="with --method and --retain: also each circuit "
        "less the same method's circuits for the retain tasks (what the task uses alone)",
    )
    p.add_argument("--random-seeds", type=int, default=3, help="random-edge baselines per circuit size (default 3)")
    p.add_argument(
        "--removal-mask",
        action="store_true",
        help="also a removal mask trained to forget the task and "
        "keep the --retain tasks (hard-concrete gates on every edge)",
    )
    p.add_argument("--mask-alpha", type=float, help="the mask's weight of the retain KL (default 1)")
    p.add_argument("--mask-lambda", type=float, help="the mask's weight of the fraction of edges removed (default 0.1)")
    p.add_argument("--mask-steps", type=int, help="Adam steps of the mask (default 200)")
    p.add_argument(
        "--task-vector",
        type=_comma_floats,
        metavar="ALPHAS",
        help="also task vectors: fine-tune a copy "
        "on the task, subtract alpha times the weight change, one row per comma-separated alpha",
    )
    p.add_argument("--gradient-ascent", action="store_true", help="also gradient ascent on the task (a copy)")
    p.add_argument("--edit-steps", type=int, default=100, help="Adam steps of the weight edits (default 100)")
    p.add_argument("--edit-lr", type=float, default=1e-3, help="learning rate of the weight edits (default 1e-3)")
    p.add_argument(
        "--relearn-steps",
        type=int,
        default=0,
        help="fine-tune every intervened model this many steps "
        "on the task and report when its accuracy is back to 90%% of the full model's (default 0: no)",
    )
    p.add_argument("--relearn-lr", type=float, default=1e-3, help="learning rate of relearning (default 1e-3)")
    p.add_argument("--json", metavar="FILE", help="write every removal's measurements to FILE")
    p.add_argument("--plot", metavar="FILE", help="draw forget drop against retain kept, one point per intervention")
    p.set_defaults(run=_remove)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs one `edgewise` command; returns its exit status (2 for errors edgewise explains).

    Args:
        argv: the arguments after `edgewise`; None reads `sys.argv`.

    Returns:
        The command's exit status, or 2 after printing an EdgewiseError's message to stderr.
    """
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except EdgewiseError as err:
        print(f"edgewise: error: {err}", file=sys.stderr)
        return 2
