"""The `edgewise` command line: thin; it parses, calls the library, prints."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
import traceback
import warnings
from pathlib import Path

from .. import __version__
from ..errors import (
    EdgewiseError,
    OutputPathError,
    UnknownTaskError,
    UsageError,
    UserTaskError,
    one_line_warnings,
)
from ..outputs import check_output_paths, write_text
from .error_bars import add_bootstrap_arguments, report_bootstrap, run_sensitivity
from .options import _count, _finite_float, _integer, _non_negative_float, _positive_float, _positive_int
from .prompts import (
    PROMPT_METRICS,
    add_prompt_arguments,
    check_prompt_files,
    prompt_source_from,
    prompt_tasks_from,
    uses_prompts,
)
from .report import add_html_argument, add_report_parser, write_bench_html, write_diagnose_html, write_discover_html

# the ablations' names, known here without importing torch (patching's `Ablation` holds the same; tested)
ABLATION_NAMES = ("resample", "mean", "zero", "per-position-mean", "optimal")


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
    from ..suite.tasks import TracrData

    prompts = uses_prompts(args)
    check_output_paths({"--json": args.json})
    task = prompt_tasks_from(args).discovery if prompts else _load_task(args.task)
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
        write_text(args.json, json.dumps(record, indent=1))
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

    prompts = uses_prompts(args)
    _check_device(args.device)
    task = prompt_tasks_from(args).discovery if prompts else _load_task(args.task)
    task = _on_machine(task, args, task.graph(per_position=args.per_position).n_edges)
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


def _features_argument(parser: argparse.ArgumentParser, sets: str = "oracle | train | sae:DIR") -> None:
    parser.add_argument(
        "--features",
        type=_feature_set,
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


# A patched forward on a small graph is too little work for torch to share out: more threads only add overhead
# (tracr-reverse, 77 edges: the demo is no faster on 2 threads than on 1). So one thread per this many edges.
EDGES_PER_THREAD = 1000


def _machine_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds --threads and --device, the machine a command that runs a model runs it on."""
    parser.add_argument(
        "--threads",
        type=_positive_int,
        metavar="N",
        help=f"torch threads (default: one per {EDGES_PER_THREAD} edges of the graph, at least 1, as more only add "
        "overhead on small graphs, and at most the machine's cores)",
    )
    parser.add_argument(
        "--device", default="cpu", help="where the model and inputs live: cpu, cuda, cuda:1, mps (checked first)"
    )


def _check_device(name: str):
    """Returns `name` as a torch device after checking this machine has it; raises UsageError naming the devices it
    has. Imports torch, so it runs inside a command, never while parsing."""
    import torch

    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        device = None
    available = ["cpu"]
    if torch.cuda.is_available():
        available += ["cuda", *(f"cuda:{i}" for i in range(torch.cuda.device_count()))]
    if torch.backends.mps.is_available():
        available.append("mps")
    there = device is not None and (
        device.type == "cpu"
        or (device.type == "cuda" and torch.cuda.is_available() and (device.index or 0) < torch.cuda.device_count())
        or (device.type == "mps" and torch.backends.mps.is_available())
    )
    if not there:
        raise UsageError(f"--device {name!r} is not a device of this machine; it has {', '.join(available)}")
    return device


def _thread_count(requested: int | None, n_edges: int) -> int:
    """Returns the torch threads a command runs on: `requested`, else 1 per EDGES_PER_THREAD edges of the graph (at
    least 1), at most the cores this process may use."""
    if requested is not None:
        return requested
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cores, n_edges // EDGES_PER_THREAD))


def _use_threads(requested: int | None, n_edges: int) -> None:
    """Sets torch's threads (`_thread_count`) for the work that follows; `main` puts the old count back after."""
    import torch

    torch.set_num_threads(_thread_count(requested, n_edges))


def _on_machine(task, args: argparse.Namespace, n_edges: int):
    """Returns the task on --device, after setting torch's threads for a graph of `n_edges` (`_thread_count`)."""
    _use_threads(args.threads, n_edges)
    return task if args.device == "cpu" else task.to(args.device)


def _is_task_file(name: str) -> bool:
    """Returns whether `name` is a user's `FILE.py:FUNCTION` rather than a built-in task's name (get_task's rule)."""
    return name.endswith(".py") or ".py:" in name


def _check_task_name(name: str) -> None:
    """Raises UnknownTaskError, suggesting the closest, for a name that is neither a built-in task nor a task file;
    loads no model."""
    from ..suite.tasks import task_names

    if not _is_task_file(name) and name not in task_names():
        raise UnknownTaskError.for_name(name, task_names())


def _load_task(name: str, metric: str | None = None, held_out: bool = False):
    """Returns the task `name` (`get_task`; `held_out`: on its held-out inputs); a user's task file that fails, or whose
    function returns something other than a Task, raises UserTaskError with the user's own traceback."""
    from ..suite.tasks import get_task

    with _user_code(name):
        task = get_task(name, metric=metric, held_out=held_out)
    _check_is_task(name, task)
    return task


def _load_split(name: str):
    """Returns the task's discovery and evaluation splits (`task_split`), with `_load_task`'s rule for task files."""
    from ..suite.tasks import task_split

    with _user_code(name):
        split = task_split(name)
    _check_is_task(name, split.discovery)
    return split


@contextlib.contextmanager
def _user_code(name: str):
    """Runs the block; an exception raised in the user's task file `name` (FILE.py:FUNCTION), or a syntax error in
    it, becomes UserTaskError carrying the user's own traceback frames. edgewise's own refusals (no such file or
    function) pass unchanged."""
    if not _is_task_file(name):
        yield
        return
    path = Path(name.rpartition(":")[0] or name).resolve()
    try:
        yield
    except Exception as error:
        frames = traceback.extract_tb(error.__traceback__)
        first = next((i for i, frame in enumerate(frames) if Path(frame.filename).resolve() == path), None)
        in_file = isinstance(error, SyntaxError) and error.filename and Path(error.filename).resolve() == path
        if first is None and not in_file:
            raise
        shown = (
            ["Traceback (most recent call last):\n", *traceback.format_list(frames[first:])]
            if first is not None
            else []
        )
        shown += traceback.format_exception_only(type(error), error)
        summary = ": ".join([type(error).__name__, *(str(error).splitlines() or [])[:1]])
        raise UserTaskError(
            f"your task {name} failed with {summary} (its traceback follows; the error is in your code, not "
            "edgewise's)",
            "".join(shown).rstrip("\n"),
        ) from None


def _check_is_task(name: str, task: object) -> None:
    """Raises UserTaskError when a task file's function returned something other than an edgewise Task."""
    from ..tasks import Task

    if _is_task_file(name) and not isinstance(task, Task):
        raise UserTaskError(
            f"your task {name} returned a {type(task).__name__}, not an edgewise Task; return "
            "edgewise.tasks.Task(name, adapter, clean, corrupt, metric, scored_positions) (docs/any-model.md)"
        )


def _feature_set(text: str) -> str:
    """Returns `text` if it names a dictionary set (oracle, train, sae:DIR with DIR a folder), else raises
    ArgumentTypeError."""
    if text in ("oracle", "train"):
        return text
    if text.startswith("sae:") and len(text) > len("sae:"):
        if not Path(text[len("sae:") :]).is_dir():
            raise argparse.ArgumentTypeError(
                f"{text!r}: {text[len('sae:') :]} is not a folder; give sae:DIR, DIR holding SAELens folders"
            )
        return text
    raise argparse.ArgumentTypeError(f"unknown feature set {text!r}: use oracle, train or sae:DIR")


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

    hyperparameters = _hyperparameters(args.set)
    config = resolve_config(get_method(args.method), args.preset, hyperparameters)  # bad settings fail before work
    prompts = uses_prompts(args)
    if prompts and args.metric in (None, "logit-diff", "prob") and hasattr(config, "objective"):
        hyperparameters.setdefault("objective", "metric")  # attribution follows the file's answers, not the top token
    if not prompts:
        if args.metric in PROMPT_METRICS and args.metric != "kl":
            raise UsageError(f"--metric {args.metric} needs the answers of a prompts file (--model DIR --data FILE)")
        _check_task_name(args.task)
        if args.held_out:
            _check_held_out(args.task)
    check_output_paths(
        {
            "--json": args.json,
            "--circuit-out": args.circuit_out,
            "--bootstrap-json": args.bootstrap_json,
            "--html": args.html,
        }
    )
    _check_device(args.device)
    if prompts:
        split = prompt_tasks_from(args)
        if args.held_out and split.held_out is None:
            raise UsageError("--held-out scores on held-out rows: give --split FRACTION|COLUMN to hold some out")
        task = split.discovery
    else:
        task = _load_task(args.task, metric=args.metric)
    task = _on_machine(task, args, task.graph(per_position=args.per_position).n_edges)
    task.check_metric()  # a metric that is no distance from the full model fails before features and ablations
    if args.objective:
        task.with_objective(args.objective)  # an objective the task lacks fails before any work
    # the circuit is scored on the inputs the method fitted on, or with --held-out on the task's evaluation inputs
    if args.held_out:
        scored = (split.held_out if prompts else _load_task(args.task, metric=args.metric, held_out=True)).to(
            args.device
        )
    else:
        scored = task
    features = _task_features(task, args.features)
    if features is not None and scored is not task:  # scored on the dictionaries fitted to the discovery inputs
        scored.dictionaries[features] = task.dictionaries[features]
        if features in task.feature_ground_truth:
            scored.feature_ground_truth[features] = task.feature_ground_truth[features]
    graph = task.graph(per_position=args.per_position, features=features)
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
    scored_ablated = ablated if scored is task else task_ablation(scored, graph, args.ablation)
    truths = ground_truths(scored, graph, scored_ablated)
    run = RunEvaluation(scored, scores, scored_ablated, truths, circuit_size=args.top_k)
    print(f"{args.method} on {task.name} ({graph}, {args.ablation} ablation, seed {args.seed}): {scores.seconds:.2f} s")
    fitted = f"the {task.clean.shape[0]} discovery inputs"
    print(
        f"scored on the held-out inputs ({scored.clean.shape[0]} examples; the method fitted on {fitted})"
        if scored is not task
        else f"scored on {fitted}, which the method fitted on"
    )
    if truths:
        effective = truths["effective"]
        n_true = len(truths["compiler"])
        line = f"ROC AUC against the ground truth: {run.auroc('compiler'):.3f} (compiler's, {n_true} edges)"
        if run.auroc("effective") is not None:
            line += f", {run.auroc('effective'):.3f} (effective under {args.ablation}, {len(effective)} edges)"
        print(line)
    circuit = run.circuit
    interval = run.circuit_faithfulness_interval
    spread = "" if interval is None else f" [{interval[0]:.3f}, {interval[1]:.3f}] (95%, over inputs)"
    print(f"circuit ({circuit.description}): {len(circuit)} edges, faithfulness {run.circuit_faithfulness:.3f}{spread}")
    if args.objective:
        _print_objective(task.with_objective(args.objective), graph, ablated, circuit)
    ranked = scores.ranked()[: args.show]
    if ranked:
        print(f"top {len(ranked)} of {graph.n_edges} edges by score (--show N for more):")
    truth = truths.get("compiler")
    for edge, score in ranked:
        mark = "" if truth is None else ("  true" if edge in truth else "  -")
        kept = "  in circuit" if edge in circuit.edges else ""
        print(f"  {score:+.4g}  {edge.name}{mark}{kept}")
    stability = (
        report_bootstrap(args, task, scored, graph, run.circuit_size, hyperparameters) if args.bootstrap else None
    )
    if args.html:
        write_discover_html(args.html, run, stability)
    if args.circuit_out:
        circuit.save(args.circuit_out)
        print(
            f"wrote the circuit to {args.circuit_out} (check it with `edgewise diagnose {task.name} "
            f"--circuit {args.circuit_out}`)"
        )
    if args.json:
        print(f"wrote {args.json}")
    return 0


def _check_held_out(name: str) -> None:
    """Raises UsageError, before any work, for `--held-out` on a task without held-out inputs."""
    from ..suite.tasks import held_out_size, task_names

    if _is_task_file(name):
        raise UsageError(
            f"--held-out: {name} is a task from a file, whose function builds only the inputs it returns; drop "
            "--held-out (or return a task on other inputs from a second function and check the circuit with "
            "`edgewise diagnose FILE.py:OTHER --circuit FILE`)"
        )
    if not held_out_size(name):
        having = [n for n in task_names() if held_out_size(n)]
        raise UsageError(
            f"--held-out: {name} has no held-out inputs (every input of its form is used for discovery); drop "
            f"--held-out, or choose a task that has them: {', '.join(having[:6])}, ... (`edgewise tasks`, column "
            "held-out)"
        )


def _methods(args: argparse.Namespace) -> int:
    from ..methods import get_method, method_names, resolve_config

    names = [args.method] if args.method else method_names()
    for name in names:
        method = get_method(name)  # an unknown name: UnknownMethodError, listing the known ones
        tuned, published = method.config(), resolve_config(method, "published", {})
        print(f"{name}: {method.summary}")
        print(
            f"  circuit: {_rule_summary(method.circuit)}"
            + ("; it can minimise a task's objective instead (--objective)" if method.objectives else "")
        )
        notes = _field_notes(method.config)
        header = ("hyperparameter", "tuned", "published", "why this default")
        rows = [
            (
                f.name,
                _value_text(getattr(tuned, f.name)),
                _value_text(getattr(published, f.name)),
                notes.get(f.name, ""),
            )
            for f in dataclasses.fields(method.config)
        ]
        if not rows:
            print("  no hyperparameters")
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(3)]
        for row in [header, *rows] if rows else []:
            print(("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[3]).rstrip())
        print()
    print(
        "tuned: edgewise's defaults (--preset tuned); published: the method's authors' settings (--preset published, "
        "docs/presets.md); set one with `edgewise discover TASK --method M --set NAME=VALUE`"
    )
    return 0


def _value_text(value: object) -> str:
    """Returns a hyperparameter's value as `--set NAME=VALUE` takes it: true/false, none, numbers, text."""
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "none"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _rule_summary(rule) -> str:
    """Returns what a method's circuit rule keeps, from its docstring's first clause (`Returns the k best-scoring
    edges: ...` -> `the k best-scoring edges`)."""
    first = " ".join((rule.__doc__ or rule.__name__).strip().split("\n\n")[0].split())
    return first.removeprefix("Returns ").split(": ")[0].rstrip(".")


def _field_notes(config: type) -> dict[str, str]:
    """Returns each field's comment in the config dataclass's source, on one line: the comment after the field, else
    the comment lines just above it (the one-line reason STYLE.md asks of every hyperparameter)."""
    import inspect
    import io
    import tokenize

    try:
        source = inspect.getsource(config)
    except (OSError, TypeError):  # defined where no source is kept (an interactive session)
        return {}
    comments = {
        token.start[0]: token.string.lstrip("#").strip()
        for token in tokenize.generate_tokens(io.StringIO(source).readline)
        if token.type == tokenize.COMMENT
    }
    names = {field.name for field in dataclasses.fields(config)}
    notes, above, after_comment = {}, [], False
    for number, line in enumerate(source.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("#"):
            above = (above if after_comment else []) + [comments.get(number, "")]
            after_comment = True
            continue
        name = stripped.split(":")[0].strip()
        if name in names and line.startswith(" ") and ":" in stripped:
            notes[name] = comments.get(number) or " ".join(above)  # a comment above serves the fields right below it
            if number in comments:
                above = []
        else:
            above = []
        after_comment = False
    return notes


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
    from ..graph import Circuit, circuit_from_scores
    from ..interop import save_mib, to_mib
    from ..methods import method_names
    from ..suite.tasks import card_for

    _check_not_an_input({"--out": args.out}, {"SCORES.json": args.scores, "--circuit": args.circuit})
    check_output_paths({"--out": args.out})
    scores = _load_scores_strictly(args.scores)
    to_mib(scores)  # MIB's format holds the graph (not per position, no features), before any task is loaded
    task = _labelled_task(scores)
    if args.circuit:
        circuit = Circuit.load(args.circuit, task=scores.task or None)
    elif args.top_k:
        circuit = circuit_from_scores(scores, top_k=args.top_k)
    elif scores.method in method_names():
        circuit = _discovered_circuit(scores, task)
    else:
        circuit = None
    d_model = None if task is None else card_for(task.name).d_model  # the graph is checked to be the task's
    save_mib(to_mib(scores, circuit, d_model=d_model), args.out)
    kept = "no edges in_graph" if circuit is None else f"{len(circuit)} edges in_graph ({circuit.description})"
    print(f"wrote {args.out}: MIB circuit file of {scores.method} scores on {scores.task or 'an unnamed task'}, {kept}")
    return 0


def _load_scores_strictly(path: str):
    """Returns the edge scores saved at `path`, refusing (GraphMismatchError, naming them) scored edges that the
    file's graph does not hold, which loading alone would drop."""
    from ..errors import GraphMismatchError
    from ..graph import Edge, EdgeScores

    scores = EdgeScores.load(path)
    held = set(scores.graph.edges)
    unknown = [
        f"{w} -> {r}"
        for w, r, _ in json.loads(Path(path).read_text())["scores"]
        if Edge.from_endpoints(w, r) not in held
    ]
    if unknown:
        raise GraphMismatchError(
            f"{path} scores {len(unknown)} edges its graph does not hold: {', '.join(unknown[:5])}"
            f"{', ...' if len(unknown) > 5 else ''}; give scores written by `edgewise discover --json` (or remove them)"
        )
    return scores


def _labelled_task(scores):
    """Returns the built-in task the scores are labelled with, after checking that its graph is the scores' graph
    (the label alone is not trusted); None for scores of no built-in task."""
    from ..errors import GraphMismatchError
    from ..suite.tasks import task_names

    if scores.task not in task_names():
        return None
    task = _load_task(scores.task)
    graph = task.graph(per_position=scores.graph.per_position)
    if graph.edges != scores.graph.edges:
        theirs, ours = set(scores.graph.edges), set(graph.edges)
        differ = next((e.name for e in scores.graph.edges if e not in ours), None) or next(
            (e.name for e in graph.edges if e not in theirs), "the edges' order"
        )
        raise GraphMismatchError(
            f"the scores are labelled {scores.task!r}, but their graph ({scores.graph.n_edges} edges) is not that "
            f"task's ({graph.n_edges} edges; they differ at {differ}): fix the file's task label, or export scores "
            f"from `edgewise discover {scores.task} --json FILE`"
        )
    return task


def _sensitivity(args: argparse.Namespace) -> int:
    from ..methods import get_method, resolve_config
    from ..patching import Ablation

    args.hyperparameters = _hyperparameters(args.set)
    resolve_config(get_method(args.method), "tuned", args.hyperparameters)  # bad settings fail before any work
    kinds = tuple(dict.fromkeys(str(Ablation.parse(a)) for a in args.ablations))
    if len(kinds) < 2:
        raise UsageError(f"--ablations {','.join(args.ablations)}: give at least 2 distinct ablations to compare")
    _check_task_name(args.task)
    check_output_paths({"--json": args.json})
    _check_device(args.device)
    task = _load_task(args.task)
    task = _on_machine(task, args, task.graph().n_edges)
    task.check_metric()
    args.ablations = kinds
    return run_sensitivity(args, task)


def _discovered_circuit(scores, task):
    """Returns the circuit `edgewise discover` reports for these scores: the method's own rule, top-k methods sized
    by the effective truth under the scores' ablation (else DEFAULT_CIRCUIT_SIZE); a top-k method's scores of no
    built-in task raise UsageError, as the size is then unknown."""
    from ..evaluate import RunEvaluation
    from ..methods import get_method, method_circuit, top_k_circuit
    from ..patching import task_ablation

    if task is None:
        if get_method(scores.method).circuit is top_k_circuit:
            raise UsageError(
                f"these {scores.method} scores name no built-in task, so the size of its circuit (discover's rule: the "
                "effective truth's size, else 20) is unknown; give --top-k K or --circuit FILE"
            )
        return method_circuit(scores, scores.graph.n_edges)  # the method's own rule; k is not read
    graph = task.graph(per_position=scores.graph.per_position)
    scores = dataclasses.replace(scores, graph=graph)  # the same edges, now on a graph that patches
    return RunEvaluation(task, scores, task_ablation(task, graph, scores.ablation)).circuit


def _check_not_an_input(outputs: dict[str, str | None], inputs: dict[str, str | None]) -> None:
    """Raises OutputPathError when an output would overwrite one of the command's input files."""
    for flag, path in outputs.items():
        for source, given in inputs.items():
            if path is not None and given is not None and Path(path).resolve() == Path(given).resolve():
                raise OutputPathError(
                    f"{flag} {path} is the input {source}: writing it would destroy the input; give another path"
                )


def _import(args: argparse.Namespace) -> int:
    from ..interop import from_mib, load_mib

    _check_task_name(args.task)
    _check_not_an_input({"--out": args.out, "--circuit-out": args.circuit_out}, {"FILE": args.file})
    check_output_paths({"--out": args.out, "--circuit-out": args.circuit_out})
    record = load_mib(args.file)
    task = _load_task(args.task)
    scores, circuit = from_mib(record, task.graph(), method=args.method, task=task.name)
    scores.save(args.out)
    print(f"wrote {args.out}: {scores.graph.n_edges} edge scores of {task.name} from {args.file}")
    if args.circuit_out:
        circuit.save(args.circuit_out)
        print(f"wrote {args.circuit_out}: its {len(circuit)} in_graph edges")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from ..suite.tasks import ALL_TRACR_TASKS
    from .demo import run_demo

    _check_task_name(args.task)
    if args.task not in ALL_TRACR_TASKS:
        raise UsageError(
            f"the demo shows a compiled program and its true circuit, so it runs on tracr tasks only, not "
            f"{args.task!r}: choose one of {', '.join(ALL_TRACR_TASKS)}"
        )
    check_output_paths({}, folders={"--out": args.out})
    _check_device(args.device)
    task = _load_task(args.task)
    return run_demo(_on_machine(task, args, task.graph().n_edges), Path(args.out))


def _comma_list(text: str) -> tuple[str, ...]:
    """Returns the comma-separated names in `text`; none at all (`,`) raises ArgumentTypeError (a usage error)."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    if not names:
        raise argparse.ArgumentTypeError(f"{text!r} names nothing; give comma-separated names, e.g. eap,acdc")
    return names


def _comma_floats(text: str) -> tuple[float, ...]:
    """Returns the comma-separated finite numbers in `text`; argparse turns an ArgumentTypeError into a usage error."""
    return tuple(_finite_float(value) for value in _comma_list(text))


def _comma_ints(text: str) -> tuple[int, ...]:
    """Returns the comma-separated integers in `text`; argparse turns an ArgumentTypeError into a usage error."""
    return tuple(_integer(value) for value in _comma_list(text))


def _ablation_list(text: str) -> tuple[str, ...]:
    """Returns the comma-separated ablation names in `text`, each one of ABLATION_NAMES, or raises
    ArgumentTypeError."""
    names = _comma_list(text)
    for name in names:
        if name not in ABLATION_NAMES:
            raise argparse.ArgumentTypeError(f"unknown ablation {name!r}; choose from {', '.join(ABLATION_NAMES)}")
    return names


def _bench(args: argparse.Namespace) -> int:
    import time

    from ..graph import GraphKind
    from ..methods import PRESETS
    from ..suite.bench import full_sweep, graph_kind, quick_sweep, run_bench

    sweep = full_sweep() if args.full else quick_sweep()
    chosen = {name: getattr(args, name) for name in ("tasks", "methods", "ablations", "graphs", "seeds")}
    if args.preset is not None:
        chosen["presets"] = PRESETS if args.preset == "both" else (args.preset,)
    sweep = dataclasses.replace(sweep, **{name: value for name, value in chosen.items() if value is not None})
    source = prompt_source_from(args)
    if source is not None:  # the user's task, beside any --tasks
        sweep = dataclasses.replace(sweep, tasks=(*(args.tasks or ()), source.name), prompts=(source,))
    if args.features:
        kinds = (graph_kind(g) for g in sweep.graphs)
        sweep = dataclasses.replace(sweep, graphs=tuple(GraphKind(k.per_position, args.features) for k in kinds))
    sweep.runs()  # unknown names fail before any work
    check_output_paths({"--html": args.html}, folders={"--out": args.out})
    if args.ray is None:  # on Ray the cluster's nodes hold the devices; the executor checks them
        _check_device(args.device)
    if args.threads is not None:
        _use_threads(args.threads, 0)
    start = time.perf_counter()
    if args.ray is not None:
        from ..suite.bench import RayExecutor  # imports Ray only once entered: a missing Ray is named there

        executor = RayExecutor(args.ray or None)
    else:
        executor = None
    records = run_bench(
        sweep, args.out, progress=True, wait=args.wait, jobs=args.jobs, device=args.device, executor=executor
    )
    families = Path(args.out) / "families.md"
    if not args.no_plots:
        from ..suite.bench import family_summary, load_results, plot_bench, plot_families

        plot_bench(args.out)
        if families.exists():  # a checked read: a damaged results.json is named, entry and field, not a KeyError
            finished = load_results(Path(args.out) / "results.json")
            plot_families(family_summary(finished), Path(args.out) / "plots" / "families")
    print((Path(args.out) / "summary.md").read_text())
    if families.exists():
        print(families.read_text())
    print(
        f"wrote {Path(args.out) / 'results.json'} (every finished run in the folder): this sweep's {len(records)} "
        f"runs, {time.perf_counter() - start:.1f} s"
    )
    if args.html:
        write_bench_html(args.html, args.out)
    return 0


def _diagnose(args: argparse.Namespace) -> int:
    from ..diagnostics import ABLATIONS, diagnose, format_diagnosis
    from ..graph import Circuit, EdgeScores

    prompts = uses_prompts(args)
    if not prompts:
        _check_task_name(args.task)
    outputs = {"--json": args.json, "--html": args.html}
    _check_not_an_input(outputs, {"--circuit": args.circuit, "--scores": args.scores})
    check_output_paths(outputs)
    # a prompts file's task is named once built; diagnose checks the circuit's and scores' task against it then
    circuit = Circuit.load(args.circuit, task=args.task) if args.circuit else None
    scores = EdgeScores.load(args.scores, task=args.task) if args.scores else None
    _check_device(args.device)
    task = prompt_tasks_from(args).discovery if prompts else _load_task(args.task, metric=args.metric)
    per_position = (
        args.per_position
        or (circuit is not None and circuit.per_position)
        or (scores is not None and scores.graph.per_position)
    )
    task = _on_machine(task, args, task.graph(per_position=per_position).n_edges)
    features = _task_features(task, args.features)
    ablations = args.ablations or ((scores.ablation,) if scores is not None else ABLATIONS)
    diagnosis = diagnose(task, per_position, ablations, circuit, features=features, scores=scores)
    print(format_diagnosis(diagnosis))
    if args.json:
        write_text(args.json, json.dumps(diagnosis.to_dict(), indent=1))
        print(f"\nwrote {args.json}")
    if args.html:
        write_diagnose_html(args.html, task, diagnosis, scores)
    return 0


def _remove(args: argparse.Namespace) -> int:
    from ..graph import Circuit
    from ..interventions import (
        GivenCircuit,
        RemovalMaskConfig,
        RemovalSettings,
        TaskSplit,
        compare_removals,
        discovered_circuits,
        minus_retain,
    )
    from ..methods import get_method

    prompts = uses_prompts(args)
    _check_removal_options(args, prompts)
    for method in args.method or ():
        get_method(method)  # an unknown method fails before the ones before it train
    if prompts:
        check_prompt_files(args, args.retain_data or [])  # a bad retain file fails before the model loads
    else:
        for name in (args.task, *(args.retain or ())):
            _check_task_name(name)
    plot = None if args.plot is None else Path(args.plot)
    _check_not_an_input({"--json": args.json, "--plot": args.plot}, {"--circuit": args.circuit})
    check_output_paths(
        {
            "--json": args.json,
            "--plot (its PNG)": None if plot is None else plot.with_suffix(".png"),
            "--plot (its SVG)": None if plot is None else plot.with_suffix(".svg"),
        }
    )
    given = {"alpha": args.mask_alpha, "lambda_": args.mask_lambda, "steps": args.mask_steps}
    mask = RemovalMaskConfig(**{k: v for k, v in given.items() if v is not None}) if args.removal_mask else None
    # a prompts file's task is named after the file (prompt_tasks), so a circuit of another task fails before loading
    circuit = Circuit.load(args.circuit, task=Path(args.data).stem if prompts else args.task) if args.circuit else None
    _check_device(args.device)
    if prompts:
        forget = TaskSplit.from_prompt_tasks(prompt_tasks_from(args))
        retain = [
            TaskSplit.from_prompt_tasks(prompt_tasks_from(args, data, like=forget.discovery))
            for data in args.retain_data or ()
        ]
    else:
        forget = _load_split(args.task)
        retain = [_load_split(name) for name in args.retain or ()]
    graph = forget.discovery.graph(per_position=circuit.per_position if circuit is not None else args.per_position)
    _use_threads(args.threads, graph.n_edges)
    if args.device != "cpu":
        forget, *retain = (
            dataclasses.replace(
                split, discovery=split.discovery.to(args.device), evaluation=split.evaluation.to(args.device)
            )
            for split in (forget, *retain)
        )
    if circuit is not None:
        circuits, per_position = [GivenCircuit(circuit.description, circuit.edges)], circuit.per_position
    else:  # each method fits on the discovery inputs; its circuit follows the method's rule (discover's)
        per_position = args.per_position
        methods = [(m, {}) for m in args.method]
        fit = lambda task: discovered_circuits(  # noqa: E731
            task, methods, args.ablation, per_position, args.seed, (args.top_k,), progress=True
        )
        circuits = fit(forget.discovery)
        if args.subtract_retain:
            circuits += minus_retain(circuits, [fit(split.discovery) for split in retain])
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
        write_text(args.json, json.dumps(comparison.to_dict(), indent=1, allow_nan=False))
        print(f"wrote {args.json}")
    if args.plot:
        from ..report import plot_removals

        print("wrote " + ", ".join(str(p) for p in plot_removals(comparison, args.plot)))
    return 0


def _check_removal_options(args: argparse.Namespace, prompts: bool) -> None:
    """Raises UsageError for `remove` options that contradict each other or would do nothing, before any work
    (`prompts`: the forget task comes from --model and --data)."""
    if prompts and args.retain:
        raise UsageError(
            f"--retain {','.join(args.retain)}: built-in tasks run their own models, not {args.model}; give prompts "
            "files of behaviour to keep on this model with --retain-data FILE[,FILE]"
        )
    if not prompts and (args.retain_data or args.metric):
        flag = "--retain-data" if args.retain_data else "--metric"
        raise UsageError(
            f"{flag} describes prompts files on your own model: use it with --model DIR --data FILE (a built-in "
            "task keeps its own metric; its retain tasks are --retain NAMES)"
        )
    files = [Path(f).resolve() for f in (args.data, *(args.retain_data or ()))] if prompts else []
    if files and files[0] in files[1:]:
        raise UsageError(
            f"--retain-data names the forget file {args.data}: one file cannot be both removed and kept; drop it from "
            "--retain-data"
        )
    stems = [f.stem for f in files]  # each file's task is named after its stem, and measured under that name
    clash = next((f for i, f in enumerate(files) if f.stem in stems[:i]), None)
    if clash is not None:
        raise UsageError(
            f"--data and --retain-data name two files called {clash.stem} (or one twice: {clash}); the tasks are "
            "named after their files, so rename one"
        )
    if args.subtract_retain and not (args.method and (args.retain or args.retain_data)):
        raise UsageError(
            "--subtract-retain needs --method (the circuits to fit on each retain task too) and --retain (with "
            "--model/--data: --retain-data)"
        )
    for flag, value in (("--top-k", args.top_k), ("--per-position", args.per_position or None)):
        if value is not None and not args.method:
            raise UsageError(f"{flag} sizes the circuits that --method discovers; with --circuit, drop {flag}")
    mask_options = {"--mask-alpha": args.mask_alpha, "--mask-lambda": args.mask_lambda, "--mask-steps": args.mask_steps}
    for flag, value in mask_options.items():
        if value is not None and not args.removal_mask:
            raise UsageError(
                f"{flag} sets the removal mask, which runs only with --removal-mask: add it, or drop {flag}"
            )
    retain = list(args.retain or ())
    if args.task in retain:
        raise UsageError(
            f"--retain names the forget task {args.task}: one task cannot be both removed and kept; drop it from "
            "--retain"
        )
    twice = next((name for i, name in enumerate(retain) if name in retain[:i]), None)
    if twice is not None:
        raise UsageError(f"--retain names {twice} twice; name each retain task once")
    if args.method and len(set(args.method)) != len(args.method):
        raise UsageError(f"--method names a method twice ({','.join(args.method)}); name each method once")


def _measure_cell(measure) -> str:
    """Returns `0.31, 1.00 -> 0.42` (metric, accuracy before -> after) for an intervention's effect on one task."""
    accuracy = (
        "" if measure.accuracy_after is None else (f", {measure.accuracy_before:.2f} -> {measure.accuracy_after:.2f}")
    )
    return f"{measure.metric:.3g}{accuracy}"


class _DefaultsHelpFormatter(argparse.HelpFormatter):
    """Help that ends each option's line with its default, `(default: resample)`, unless the option has none (None,
    off) or its help already says what the default is."""

    def _get_help_string(self, action: argparse.Action) -> str:
        help_text = action.help or ""
        none = action.default is None or action.default is False or action.default == argparse.SUPPRESS  # not `in`: 0
        if none or "default" in help_text or not action.option_strings:
            return help_text
        return f"{help_text} (default: %(default)s)"


def build_parser() -> argparse.ArgumentParser:
    """Returns the parser of every `edgewise` subcommand.

    Returns:
        The parser; each subcommand's parsed arguments carry the function that runs it as `run`.
    """
    parser = argparse.ArgumentParser(
        prog="edgewise", description="Circuit discovery on edge graphs.", formatter_class=_DefaultsHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"edgewise {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("tasks", help="list the built-in tasks with model sizes and edge counts")
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    p.set_defaults(run=_tasks)
    p = sub.add_parser("graph", help="print a task's nodes, edges and ground-truth circuit")
    p.add_argument("task", nargs="?", help="a built-in task (`edgewise tasks`) or FILE.py:FUNCTION; or --model/--data")
    add_prompt_arguments(p)
    p.add_argument("--per-position", action="store_true", help="unroll the graph over sequence positions")
    p.add_argument("--json", metavar="FILE", help="write {nodes, edges, ground_truth} to FILE")
    _features_argument(p)
    p.add_argument("--all-edges", action="store_true", help="also print every edge")
    p.set_defaults(run=_graph)
    p = sub.add_parser("check", help="run the patching exactness checks on a task's model")
    p.add_argument("task", nargs="?", help="a built-in task (`edgewise tasks`) or FILE.py:FUNCTION; or --model/--data")
    add_prompt_arguments(p)
    p.add_argument("--per-position", action="store_true")
    p.add_argument("--float64", action="store_true", help="run the model in float64: no float32 rounding in the diffs")
    _features_argument(p)
    _machine_arguments(p)
    p.set_defaults(run=_check)
    p = sub.add_parser("discover", help="score every edge of a task's graph with one method; print the circuit")
    p.add_argument("task", nargs="?", help="a built-in task (`edgewise tasks`) or FILE.py:FUNCTION; or --model/--data")
    p.add_argument(
        "--method", default="edge-sp", help="edge-sp, node-sp, acdc, eap, ... (`edgewise methods` lists them)"
    )
    p.add_argument("--ablation", default="resample", choices=ABLATION_NAMES, help="what a removed edge carries")
    p.add_argument("--per-position", action="store_true", help="unroll the graph over sequence positions")
    _features_argument(p)
    p.add_argument("--seed", type=int, default=0, help="seeds the method's randomness (gate noise, random scores)")
    p.add_argument(
        "--preset",
        choices=["tuned", "published"],
        default="tuned",
        help="tuned: edgewise's tuned settings; published: the method's authors' settings (docs/presets.md)",
    )
    p.add_argument(
        "--top-k",
        type=_positive_int,
        metavar="K",
        help="size of the circuit of a method that only ranks edges (eap, exact, ...; default: the effective "
        "truth's size, else 20)",
    )
    p.add_argument("--show", type=_count, default=20, metavar="N", help="how many edges to print, best first")
    p.add_argument(
        "--held-out",
        action="store_true",
        help="score the circuit on the task's held-out inputs (`edgewise tasks` lists which tasks have them) "
        "instead of the discovery inputs the method fitted on",
    )
    p.add_argument("--set", action="append", metavar="NAME=VALUE", help="a hyperparameter, e.g. --set steps=500")
    p.add_argument(
        "--metric",
        choices=["kl", "mse", "l2", "logit-diff", "prob"],
        help="faithfulness metric (default: the task's own; a prompts file's: logit-diff)",
    )
    p.add_argument("--json", metavar="FILE", help="write {method, seconds, scores: [[writer, reader, score]]}")
    p.add_argument("--circuit-out", metavar="FILE", help="write the method's circuit (input of diagnose --circuit)")
    add_prompt_arguments(p)
    add_bootstrap_arguments(p)
    p.add_argument(
        "--objective",
        metavar="NAME",
        help="minimise one of the task's objectives instead of "
        "faithfulness (edge-sp, node-sp), e.g. tictactoe's worst-move",
    )
    add_html_argument(p)
    _machine_arguments(p)
    p.set_defaults(run=_discover)
    p = sub.add_parser(
        "sensitivity", help="run one method under several ablations; compare its circuits and score each under all"
    )
    p.add_argument("task", help="a built-in task (`edgewise tasks`) or FILE.py:FUNCTION")
    p.add_argument("--method", default="eap", help="the method (`edgewise methods` lists them)")
    p.add_argument(
        "--ablations",
        type=_ablation_list,
        default=("resample", "mean", "zero", "optimal"),
        help="comma-separated ablations (optimal: a constant per writer learned against the task's metric)",
    )
    p.add_argument("--top-k", type=_positive_int, default=20, metavar="K", help="size of a top-k method's circuits")
    p.add_argument("--seed", type=int, default=0, help="the method's seed")
    p.add_argument("--set", action="append", metavar="NAME=VALUE", help="a hyperparameter, e.g. --set steps=500")
    p.add_argument("--json", metavar="FILE", help="write the circuits, overlaps and faithfulness matrix")
    _machine_arguments(p)
    p.set_defaults(run=_sensitivity)
    p = sub.add_parser("methods", help="list the methods with their hyperparameters, defaults and presets")
    p.add_argument("method", nargs="?", help="show this method only")
    p.set_defaults(run=_methods)
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
    p.add_argument("--task", default="tracr-reverse", help="a tracr task")
    p.add_argument("--out", default="demo-output", help="folder for the plots and JSON")
    _machine_arguments(p)
    p.set_defaults(run=_demo)
    p = sub.add_parser("bench", help="run methods x tasks x ablations x seeds; write results.json, a summary, plots")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="3 small tasks x 5 methods, resample, plain (default)")
    size.add_argument("--full", action="store_true", help="every task and method, both graphs, 3 ablations, 3 seeds")
    p.add_argument("--out", required=True, help="results folder; a re-run into it skips finished runs")
    p.add_argument(
        "--tasks", type=_comma_list, help="comma-separated tasks, replacing the mode's (with --model/--data: beside it)"
    )
    p.add_argument("--methods", type=_comma_list, help="comma-separated methods, e.g. eap,random")
    p.add_argument("--ablations", type=_ablation_list, help="comma-separated ablations: resample, mean, zero, ...")
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
        type=_positive_int,
        help="runs at once, in worker processes (one per core; their "
        "times share the machine, and each record says how many ran beside it) (default: 1)",
    )
    p.add_argument(
        "--ray",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="run each (task, graph, ablation) group as a Ray task: on the cluster at ADDRESS (HOST:PORT of `ray "
        "start --head`, ray://HOST:10001), or without one on a local cluster; needs pip install 'edgewise[ray]'",
    )
    p.add_argument(
        "--threads",
        type=_positive_int,
        metavar="N",
        help="torch threads, shared among the --jobs workers (default: torch's, one per core)",
    )
    p.add_argument(
        "--device", default="cpu", help="where the models and inputs live: cpu, cuda, cuda:1, mps (checked first)"
    )
    add_html_argument(p)
    add_prompt_arguments(p)
    p.set_defaults(run=_bench)
    p = sub.add_parser(
        "diagnose", help="constant writers, the ground truth's minimal circuit per ablation, and what a circuit outputs"
    )
    p.add_argument("task", nargs="?", help="a built-in task (`edgewise tasks`) or FILE.py:FUNCTION; or --model/--data")
    add_prompt_arguments(p)
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
        type=_ablation_list,
        help="comma-separated ablations (default: resample,mean,zero; with --scores: the scores' ablation)",
    )
    p.add_argument("--per-position", action="store_true", help="diagnose the per-position graph")
    p.add_argument("--metric", choices=["kl", "mse", "l2"], help="faithfulness metric (default: the task's own)")
    _features_argument(p)
    p.add_argument("--json", metavar="FILE", help="write the diagnostics to FILE")
    add_html_argument(p)
    _machine_arguments(p)
    p.set_defaults(run=_diagnose)
    p = sub.add_parser(
        "remove",
        help="ablate a circuit and measure what the model lost (the task) and kept (--retain "
        "tasks), beside random edges of the same number",
    )
    p.add_argument("task", nargs="?", help="the forget task (a built-in task or FILE.py:FUNCTION); or --model/--data")
    add_prompt_arguments(p)
    p.add_argument(
        "--retain-data",
        type=_comma_list,
        metavar="FILES",
        help="with --model/--data: comma-separated prompts files of behaviour to keep, run on the same model and read "
        "with the same --column, --split and --metric",
    )
    p.add_argument(
        "--metric",
        choices=PROMPT_METRICS,
        help="with --model/--data: what each prompts file's task measures (default: logit-diff)",
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--circuit", metavar="FILE", help="a Circuit JSON (`edgewise discover --circuit-out`)")
    source.add_argument(
        "--method",
        type=_comma_list,
        help="discover each comma-separated method's circuit on the task's discovery inputs, e.g. acdc,eap,edge-sp",
    )
    p.add_argument(
        "--ablation",
        default="resample",
        choices=ABLATION_NAMES,
        help="what the removed edges carry",
    )
    p.add_argument("--retain", type=_comma_list, help="comma-separated tasks of the same model to keep")
    p.add_argument("--per-position", action="store_true", help="with --method: the per-position graph")
    p.add_argument(
        "--top-k",
        type=_positive_int,
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
    p.add_argument("--random-seeds", type=_count, default=3, help="random-edge baselines per circuit size (default 3)")
    p.add_argument(
        "--removal-mask",
        action="store_true",
        help="also a removal mask trained to forget the task and "
        "keep the --retain tasks (hard-concrete gates on every edge)",
    )
    p.add_argument("--mask-alpha", type=_non_negative_float, help="the mask's weight of the retain KL (default 1)")
    p.add_argument(
        "--mask-lambda",
        type=_non_negative_float,
        help="the mask's weight of the fraction of edges removed (default 0.1)",
    )
    p.add_argument("--mask-steps", type=_positive_int, help="Adam steps of the mask (default 200)")
    p.add_argument(
        "--task-vector",
        type=_comma_floats,
        metavar="ALPHAS",
        help="also task vectors: fine-tune a copy "
        "on the task, subtract alpha times the weight change, one row per comma-separated alpha",
    )
    p.add_argument("--gradient-ascent", action="store_true", help="also gradient ascent on the task (a copy)")
    p.add_argument("--edit-steps", type=_positive_int, default=100, help="Adam steps of the weight edits (default 100)")
    p.add_argument(
        "--edit-lr", type=_positive_float, default=1e-3, help="learning rate of the weight edits (default 1e-3)"
    )
    p.add_argument(
        "--relearn-steps",
        type=_count,
        default=0,
        help="fine-tune every intervened model this many steps "
        "on the task and report when its accuracy is back to 90%% of the full model's (default 0: no)",
    )
    p.add_argument(
        "--relearn-lr", type=_positive_float, default=1e-3, help="learning rate of relearning (default 1e-3)"
    )
    p.add_argument("--json", metavar="FILE", help="write every removal's measurements to FILE")
    p.add_argument("--plot", metavar="FILE", help="draw forget drop against retain kept, one point per intervention")
    _machine_arguments(p)
    p.set_defaults(run=_remove)
    add_report_parser(sub)
    for command in sub.choices.values():
        command.formatter_class = _DefaultsHelpFormatter
    return parser


@contextlib.contextmanager
def _command_settings():
    """Runs a command with edgewise's warnings printed on one line (`edgewise.errors.one_line_warnings`), then puts
    back the warning printer and torch's thread count (`--threads`), so a program that calls `main` keeps its own
    settings."""
    shown = warnings.showwarning
    torch = sys.modules.get("torch")  # not imported for this: commands that run no model never load torch
    threads = None if torch is None else torch.get_num_threads()
    warnings.showwarning = one_line_warnings(shown)
    try:
        yield
    finally:
        warnings.showwarning = shown
        if threads is not None:
            torch.set_num_threads(threads)


def main(argv: list[str] | None = None) -> int:
    """Runs one `edgewise` command; returns its exit status (2 for errors edgewise explains).

    Args:
        argv: the arguments after `edgewise`; None reads `sys.argv`.

    Returns:
        The command's exit status: 2 after printing an EdgewiseError's message to stderr (a user's task file that
        failed: the message, then the user's own traceback), 130 after Ctrl-C. Every file is written atomically, so an
        interrupted or failed command leaves no partial file.
    """
    try:
        with _command_settings():
            args = build_parser().parse_args(argv)
            return args.run(args)
    except UserTaskError as err:
        print(f"edgewise: error: {err}", file=sys.stderr)
        if err.user_traceback:
            print(err.user_traceback, file=sys.stderr)
        return 2
    except EdgewiseError as err:
        print(f"edgewise: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("edgewise: interrupted; no output file was left half-written", file=sys.stderr)
        return 130
