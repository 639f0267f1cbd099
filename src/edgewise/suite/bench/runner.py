"""The benchmark: methods x tasks x graphs x ablations x seeds, written to one results folder that a re-run resumes.

    DIR/runs/<key>.json     one finished run: its record plus its curves, written atomically
    DIR/scores/<key>.json   the run's EdgeScores
    DIR/failed/<key>.json   a run that raised: the run, its error and traceback, where it ran (removed once it
                            finishes on a re-run)
    DIR/results.json        every finished run in the folder (records without curves): this sweep's in sweep order,
                            then those that earlier sweeps into the folder left, by key
    DIR/summary.md          a Markdown table of means over seeds, of the same runs
    DIR/families.md         where the runs span two task families: mean AUROC per method and family, and the rank
                            correlation of the methods between families (families.py)
    DIR/plots/              ROC and faithfulness curves per task, graph and ablation; circuit diagrams (plain graphs)
    DIR/.lock               flock'd by the bench writing into the folder, naming it while it runs (lock.py);
                            .lock.reclaim, after a bench took over a stale lock
    DIR/runs/*.json.damaged run files that did not read back, set aside (their runs were done again)

Methods fit on a task's discovery inputs; each run is scored (faithfulness, CPR/CMD, the effective truth and the
AUROC against it) on the task's held-out inputs where it has them, and says so in `evaluated_on`.

A run's key holds its task, graph, method, ablation and seed, and a hash of its hyperparameters with the method's
defaults filled in, so changing a default reruns that method. A re-run skips every run whose record exists and reads
back whole; a damaged record (truncated, not JSON, of another run, a field missing or of the wrong type) is set aside
as runs/KEY.json.damaged with a BenchFileWarning naming it, and its run is done again. Every file is written through
edgewise.outputs (a temporary file, flushed, given the umask's mode, renamed), so an interrupted run leaves no
half-written file.

An executor runs the pending runs (executors.py): this machine's `LocalExecutor`, or a Ray cluster's
`RayExecutor` (ray_executor.py), whose workers send each run back for this process to write. Locally, `jobs` runs
several runs at once in worker processes (one per core suits this CPU-bound work), each writing its own files; a
record's `jobs` says how many ran beside each other, since they share the machine's cores and memory bandwidth and so
time more slowly than alone, and its `executor` and `node` say what ran it where. Workers die with the bench that
started them (killed, or ended by SIGTERM): none runs on into the folder without its lock, or waits forever for work.

A run that raises (its task, setting or method) is written to failed/ and the others go on; once all have run, the
bench raises BenchRunsFailedError naming them, and a re-run does them again. Ctrl-C stops the bench at once.

One bench at a time writes into a folder: a second raises BenchFolderBusyError naming the first, or with `wait`
waits for it, and then skips the runs the first finished. Sweeps into one folder add up: results.json and
summary.md cover every run there, while run_bench returns only its own sweep's records.
"""

from __future__ import annotations

import dataclasses
import json
import math
import multiprocessing
import os
import socket
import sys
import time
import traceback
import warnings
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from edgewise.diagnostics import RedundantGroup, redundant_groups
from edgewise.errors import (
    BenchFileWarning,
    BenchRunsFailedError,
    ExecutorConflictError,
    RunFileError,
    one_line_warnings,
)
from edgewise.evaluate import RunEvaluation, effective_truth, truths_from
from edgewise.features import TRAINED, add_trained_features
from edgewise.graph import Edge, EdgeScores, Graph, GraphKind
from edgewise.methods import discover
from edgewise.outputs import write_text
from edgewise.patching import AblatedOutputs, Ablation, faithfulness_loss, task_ablation
from edgewise.tasks import Task

from ..tasks import get_task, held_out_size
from .executors import Executor, LocalExecutor
from .families import family_markdown, family_summary
from .lock import folder_lock
from .memory import PeakMemory
from .records import RunRecord, load_run
from .summary import summary_markdown
from .sweep import RunSpec, Sweep, graph_kind
from .workers import die_with_parent


@dataclass(frozen=True)
class Setting:
    """What every run on one task, graph and ablation shares: the graph, the ablation's values on the discovery
    inputs (what methods fit), and the evaluation task with its ablation and truths (what runs are scored on).

    Attributes:
        graph: the graph every run of the setting scores.
        ablated: the ablation's values on the discovery inputs.
        evaluation_task: the task on its evaluation inputs (the discovery task where it has no held-out split).
        evaluation_ablated: the ablation's values on the evaluation inputs.
        truths: the truths by name (`compiler`, `effective`) on the evaluation inputs; {} without a ground truth.
        evaluated_on: `held-out`, or `discovery` for tasks without a held-out split.
        dictionary_report: trained features: each SAE's statistics and oracle recovery.
        redundancy: the effective truth's redundant copies, on the evaluation inputs.
    """

    graph: Graph
    ablated: AblatedOutputs
    evaluation_task: Task
    evaluation_ablated: AblatedOutputs
    truths: dict[str, set[Edge]]
    evaluated_on: str
    dictionary_report: dict | None = None
    redundancy: tuple[RedundantGroup, ...] = ()

    @classmethod
    def of(
        cls, task: Task, kind: "str | GraphKind", ablation: "str | Ablation", held_out: Task | None = None
    ) -> "Setting":
        """Returns the setting, scored on `held_out` (the task on its evaluation inputs) when given; the effective
        truth costs a patched forward per true edge (dyck2 per-position: 20 s; its partner search under zero
        ablation: minutes), so the bench builds it once for all the methods and seeds that share it.

        Args:
            task: the task on its discovery inputs.
            kind: the graph kind (`plain`, `per-position`, either with `/oracle` or `/train`).
            ablation: the ablation's name or value.
            held_out: the task on its evaluation inputs; None scores on the discovery inputs.

        Returns:
            The setting.

        Raises:
            InvalidSweepError: an unknown graph kind.
        """
        kind = graph_kind(kind)
        report = _trained_features(task, held_out) if kind.features == TRAINED else None
        graph = task.graph(per_position=kind.per_position, features=kind.features)
        ablated = task_ablation(task, graph, ablation)
        evaluation_task = task if held_out is None else held_out
        evaluation_ablated = ablated if held_out is None else task_ablation(held_out, graph, ablation)
        if not evaluation_task.knows_truth(graph):
            truths, groups = {}, ()
        else:
            effective = effective_truth(evaluation_task, graph, evaluation_ablated)
            truths = truths_from(evaluation_task, graph, effective)
            groups = tuple(redundant_groups(evaluation_task, graph, evaluation_ablated, effective))
        return cls(
            graph,
            ablated,
            evaluation_task,
            evaluation_ablated,
            truths,
            "discovery" if held_out is None else "held-out",
            report,
            groups,
        )


def _trained_features(task: Task, held_out: Task | None) -> dict:
    """Returns the report of the SAEs trained on the task's discovery inputs (once per task; cached on disk), after
    giving the held-out task the same dictionaries and matched truth, so runs are scored on the features they fit."""
    if TRAINED not in task.dictionary_reports:
        task.dictionary_reports[TRAINED] = add_trained_features(task)
    if held_out is not None:
        held_out.dictionaries[TRAINED] = task.dictionaries[TRAINED]
        if TRAINED in task.feature_ground_truth:
            held_out.feature_ground_truth[TRAINED] = task.feature_ground_truth[TRAINED]
    return task.dictionary_reports[TRAINED]


def run_one(task: Task, spec: RunSpec, setting: Setting | None = None) -> tuple[RunRecord, dict, EdgeScores]:
    """Returns one run's record, its curves (ROC edge and node level against both truths, faithfulness) and scores.

    The method fits on the task's (discovery) inputs; faithfulness, CPR/CMD and the effective truth are measured on
    the setting's evaluation inputs (held out where the task has them: `evaluated_on`). AUROC is taken against the
    compiler's ground truth and against the effective one (its edges that change the outputs under this ablation):
    under resample ablation most compiler edges carry nothing, which caps every method against the compiler's truth.
    Seconds and peak memory cover the method alone; evaluation is timed apart. `setting` is
    `Setting.of(task, spec.graph, spec.ablation)` (scored on the discovery inputs), built here when not given.

    Args:
        task: the task on its discovery inputs.
        spec: the run: method, hyperparameters, graph kind, ablation, seed.
        setting: the setting shared with the other runs on this task, graph and ablation; None builds it.

    Returns:
        The run's record, its curves as JSON-ready data by name (`faithfulness`, `roc`, `node_roc`,
        `roc_effective`, `node_roc_effective`; None where undefined), and the method's scores.
    """
    setting = setting or Setting.of(task, spec.graph, spec.ablation)
    on_cuda = next(task.adapter.model.parameters()).device.type == "cuda"
    with PeakMemory(on_cuda) as memory:
        scores = discover(
            task, spec.method, seed=spec.seed, graph=setting.graph, ablated=setting.ablated, **spec.hyperparameters
        )
    start = time.perf_counter()
    evaluation = RunEvaluation(setting.evaluation_task, scores, setting.evaluation_ablated, setting.truths)
    graph, effective = setting.graph, setting.truths.get("effective")  # None: a task without a ground truth
    figures = evaluation.figures()
    curve = evaluation.faithfulness_curve
    curves: dict = {"faithfulness": None if any(map(math.isnan, curve.faithfulness)) else curve.to_dict()}
    for truth in setting.truths:
        suffix = "" if truth == "compiler" else f"_{truth}"
        for level, roc in (("", evaluation.roc(truth)), ("node_", evaluation.node_roc(truth))):
            curves[f"{level}roc{suffix}"] = None if roc is None else roc.to_dict()
    record = RunRecord(
        spec.key,
        spec.task,
        spec.graph,
        spec.method,
        spec.preset,
        spec.ablation,
        spec.seed,
        spec.hyperparameters,
        graph.n_edges,
        setting.evaluated_on,
        setting.evaluation_task.clean.shape[0],
        None if effective is None else len(setting.truths["compiler"]),
        None if effective is None else len(effective),
        None if effective is None else [e.endpoints() for e in sorted(effective, key=graph.edge_index)],
        figures,
        [
            {**group.to_dict(), "copies_kept": group.copies_kept(set(evaluation.circuit.edges))}
            for group in setting.redundancy
        ],
        setting.dictionary_report,
        scores.seconds,
        time.perf_counter() - start,
        memory.peak_mib,
        memory.measure,
        "cuda" if on_cuda else "cpu",
        torch.get_num_threads(),
    )
    return record, curves, scores


def write_atomic(path: Path, text: str) -> None:
    """Writes `text` to `path` with edgewise.outputs.write_text (a temporary file beside it, flushed, given the
    umask's mode and renamed: `path` holds its old content or all of the new one), making missing folders first.

    Args:
        path: the file to write; missing folders are made.
        text: the file's new content.

    Raises:
        OutputPathError: the file cannot be written; the previous file is unchanged.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, text)


def _warm_up(task: Task) -> None:
    """Runs one masked forward, backward and Adam step, so that no method's time includes torch's one-time costs
    (the first Adam step of a process imports torch's compiler stack: about 1 s here)."""
    graph = task.graph()
    mask = torch.full((graph.n_edges,), 0.5, requires_grad=True)
    faithfulness_loss(task, graph, task_ablation(task, graph, "zero"), mask).backward()
    torch.optim.Adam([mask]).step()


@dataclass(frozen=True)
class FinishedRun:
    """A finished run as it travels from whoever ran it to the bench that writes it: plain data, no tensors.

    Attributes:
        record: the run's record, saying which executor and node ran it.
        curves: its curves by name, JSON-ready (see `run_one`).
        scores: its EdgeScores as JSON-ready data (`EdgeScores.to_dict`).
    """

    record: RunRecord
    curves: dict
    scores: dict

    @property
    def key(self) -> str:
        """Returns the run's key."""
        return self.record.key


@dataclass(frozen=True)
class RunFailure:
    """A run that raised, as written to DIR/failed/KEY.json: the run, the error and where it ran.

    Attributes:
        key: the run's key.
        spec: the run.
        error: the exception's type and message, `TypeName: message`.
        traceback: the formatted traceback.
        executor: `local` or `ray`.
        node: the host name (`local`) or Ray node id (`ray`) that ran it.
    """

    key: str
    spec: RunSpec
    error: str
    traceback: str
    executor: str
    node: str | None

    @classmethod
    def of(cls, spec: RunSpec, error: BaseException, executor: str, node: str | None) -> "RunFailure":
        """Returns the failure of `spec` that raised `error`.

        Args:
            spec: the run.
            error: what it raised.
            executor: what ran it.
            node: where it ran.

        Returns:
            The failure.
        """
        text = "".join(traceback.format_exception(error))
        return cls(spec.key, spec, f"{type(error).__name__}: {error}", text, executor, node)

    def to_json(self) -> dict:
        """Returns the failure as the JSON object of DIR/failed/KEY.json."""
        spec = self.spec
        return {
            "key": self.key,
            "task": spec.task,
            "graph": str(spec.graph),
            "method": spec.method,
            "preset": spec.preset,
            "ablation": str(spec.ablation),
            "seed": spec.seed,
            "hyperparameters": spec.hyperparameters,
            "error": self.error,
            "traceback": self.traceback,
            "executor": self.executor,
            "node": self.node,
        }


def run_group(
    group: list[RunSpec], device: str, executor: str, node: str | None, jobs: int = 1
) -> Iterator[FinishedRun | RunFailure]:
    """Yields each run of `group` in order once it finishes or fails: a failing run (its task, setting or method
    raising) is a RunFailure, and the others go on. Consecutive runs on one task share the loaded task and each
    (graph, ablation) its Setting, so a group of one task, graph and ablation builds them once.

    Args:
        group: the runs, task by task.
        device: where the models and inputs go (`cpu`, `cuda`, ...).
        executor: what runs them, for their records: `local` or `ray`.
        node: the machine that runs them, for their records.
        jobs: how many runs run beside these, for their records.

    Yields:
        A FinishedRun or a RunFailure per run, in `group`'s order.
    """
    task: Task | None = None  # runs come task by task, so one task (and its settings) at a time is kept
    held_out: Task | None = None
    settings: dict[tuple[str, str], Setting] = {}
    for spec in group:
        try:
            if task is None or task.name != spec.task:
                task = None  # a task that fails to load is tried again for its next run, which fails alike
                loaded, held_out = _tasks(spec, device)
                _warm_up(loaded)
                task, settings = loaded, {}
            if (spec.graph, spec.ablation) not in settings:
                settings[spec.graph, spec.ablation] = Setting.of(task, spec.graph, spec.ablation, held_out)
            record, curves, scores = run_one(task, spec, settings[spec.graph, spec.ablation])
        except Exception as error:  # the run fails, not the bench: the others go on (KeyboardInterrupt stops it)
            yield RunFailure.of(spec, error, executor, node)
            continue
        record = dataclasses.replace(record, jobs=jobs, executor=executor, node=node)
        yield FinishedRun(record, curves, scores.to_dict())


def _tasks(spec: RunSpec, device: str) -> tuple[Task, Task | None]:
    """Returns the run's task on its discovery inputs and on its held-out ones (None without), on `device`: built
    from its name, or from its model and prompts file."""
    if spec.source is not None:
        built = spec.source.tasks()
        discovery, held_out = built.discovery, built.held_out
    else:
        discovery = get_task(spec.task)
        held_out = get_task(spec.task, held_out=True) if held_out_size(spec.task) else None
    return discovery.to(device), None if held_out is None else held_out.to(device)


def write_outcome(out: Path, outcome: FinishedRun | RunFailure) -> None:
    """Writes a finished run's scores and then its record into `out` (a run counts as finished once its record
    exists, and then its scores do too), removing an earlier failure of it; or a failure to DIR/failed/KEY.json.

    Args:
        out: the results folder.
        outcome: the run's outcome.

    Raises:
        OutputPathError: a file cannot be written.
    """
    failed = out / "failed" / f"{outcome.key}.json"
    if isinstance(outcome, RunFailure):
        write_atomic(failed, json.dumps(outcome.to_json(), indent=1))
        return
    write_atomic(out / "scores" / f"{outcome.key}.json", json.dumps(outcome.scores, allow_nan=False))
    run = {**outcome.record.to_json(), "curves": outcome.curves}
    write_atomic(out / "runs" / f"{outcome.key}.json", json.dumps(run, allow_nan=False))
    failed.unlink(missing_ok=True)


def run_bench(
    sweep: Sweep,
    out: str | Path,
    progress: bool = True,
    wait: bool = False,
    jobs: int | None = None,
    device: str = "cpu",
    executor: Executor | None = None,
) -> list[RunRecord]:
    """Returns the sweep's records in sweep order, after running those not finished in `out` on `executor` (a
    damaged run file is set aside and its run done again, with a BenchFileWarning naming it) and writing
    results.json and summary.md there over every finished run in `out` (`plot_bench` draws its plots).
    Holds `out`'s lock throughout: raises BenchFolderBusyError if another bench holds it, or with `wait` waits for
    it to finish. A run that raises is written to DIR/failed/KEY.json with its error and the others go on; once
    all have run, BenchRunsFailedError names the failed ones (a re-run does them again).

    Args:
        sweep: what to run.
        out: the results folder; created if missing.
        progress: show a progress bar, and say so on stderr while waiting for the lock.
        wait: wait for another bench that holds `out` instead of raising.
        jobs: how many runs at once on this machine, each in its own worker process; None: 1, or the executor's.
        device: where the runs' models and inputs go (`cpu`, `cuda`, ...); records say which device ran.
        executor: what runs the runs (`LocalExecutor`, `RayExecutor`); None: `LocalExecutor(jobs)`.

    Returns:
        The sweep's RunRecords, in sweep order (finished earlier or now).

    Raises:
        InvalidSweepError: `jobs` is not a whole number >= 1, or the sweep is invalid (see `Sweep.runs`, which may
            raise its other errors too).
        ExecutorConflictError: both `jobs` and `executor` are given.
        BenchFolderBusyError: another bench holds `out` and `wait` is False.
        BenchRunsFailedError: runs raised; the others' results are written.
    """
    if executor is not None and jobs is not None:
        raise ExecutorConflictError(
            f"jobs={jobs!r} with the {executor.name} executor: jobs sets the worker processes of one machine; "
            "give one or the other (on the command line, --jobs or --ray)"
        )
    executor = executor or LocalExecutor(1 if jobs is None else jobs)
    out = Path(out)
    specs = sweep.runs()
    with executor, folder_lock(out, wait, on_wait=_tell_waiting if progress else None):
        # Only under the lock: before it, these could be the temporary files of a bench still writing.
        for stray in out.glob("**/.*.tmp"):  # left by a process killed mid-write, which no `except` could remove
            stray.unlink()
        keys = [s.key for s in specs]
        finished = _finished_records(out, keys)
        pending = [s for s in specs if s.key not in finished]
        with tqdm(
            total=len(specs),
            initial=len(specs) - len(pending),
            desc=f"bench ({executor.describe()})",
            unit="run",
            disable=not progress,
        ) as bar:
            executor.run(pending, out, bar, device)
        done = [s for s in pending if (out / "runs" / f"{s.key}.json").exists()]
        finished.update((s.key, load_run(out / "runs" / f"{s.key}.json")[0]) for s in done)
        records = [finished[key] for key in keys if key in finished]
        records += [finished[key] for key in sorted(set(finished) - set(keys))]
        write_atomic(out / "results.json", json.dumps([r.to_json() for r in records], indent=1, allow_nan=False))
        write_atomic(out / "summary.md", summary_markdown(records))
        families = family_summary(records)
        if len(families.families) > 1:  # the cross-benchmark table, once runs span two task families
            write_atomic(out / "families.md", family_markdown(families))
    failed = [s.key for s in pending if s.key not in finished]
    if failed:
        first = json.loads((out / "failed" / f"{failed[0]}.json").read_text())
        raise BenchRunsFailedError(
            f"{len(failed)} of {len(specs)} runs failed, first {failed[0]}: {first['error']}. Each failed run's "
            f"error and traceback are in {out / 'failed'}; the others' results are in {out / 'results.json'}. "
            "Fix the cause and run the bench again into the folder: it does only the failed runs"
        )
    return records[: len(specs)]


def _tell_waiting(message: str) -> None:
    """Prints why the bench has not started, where its progress bar would be."""
    print(message, file=sys.stderr, flush=True)


def run_locally(pending: list[RunSpec], out: Path, bar: tqdm, jobs: int, device: str = "cpu") -> None:
    """Runs the pending specs on this machine: in this process (`jobs` 1), or in `jobs` worker processes, one
    (task, graph, ablation) group per job (its task loads and its ablation and truths are computed once), each
    worker writing its runs' files itself; the lock stays here (spawned workers do not inherit it), and the workers
    die with this process (workers.py). The workers share this process's threads among them.

    Args:
        pending: the runs to do.
        out: the results folder.
        bar: the progress bar over the sweep, updated per run (one process) or per group (workers).
        jobs: how many runs at once.
        device: where the models and inputs go.
    """
    if jobs == 1 or len(pending) < 2:
        for outcome in run_group(pending, device, "local", socket.gethostname()):
            write_outcome(out, outcome)
            bar.set_postfix_str(run_line(outcome))
            bar.update()
        return
    groups = list(run_groups(pending).values())
    threads = max(1, torch.get_num_threads() // jobs)
    context = multiprocessing.get_context("spawn")  # a forked copy of torch's or jax's thread pools can hang
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
        futures = {pool.submit(_run_group, group, out, jobs, threads, device): group for group in groups}
        try:
            for future in as_completed(futures):
                future.result()
                group = futures[future]
                bar.set_postfix_str(f"{group[0].task} {group[0].graph} {group[0].ablation} done")
                bar.update(len(group))
        except BaseException:
            pool.shutdown(cancel_futures=True)  # the runs under way finish and are kept; no new one starts
            raise


def run_groups(pending: list[RunSpec]) -> dict[tuple[str, str, str], list[RunSpec]]:
    """Returns the pending runs by (task, graph, ablation), in sweep order: the groups that share a Setting.

    Args:
        pending: the runs.

    Returns:
        The runs of each group, by (task, graph kind, ablation).
    """
    groups: dict[tuple[str, str, str], list[RunSpec]] = {}
    for spec in pending:
        groups.setdefault((spec.task, str(spec.graph), str(spec.ablation)), []).append(spec)
    return groups


def run_line(outcome: FinishedRun | RunFailure) -> str:
    """Returns the progress bar's line for a run that just finished or failed.

    Args:
        outcome: the run's outcome.

    Returns:
        `TASK GRAPH ABLATION METHOD (PRESET) seed N done`, or `FAILED (error)` in place of `done`.
    """
    spec = outcome.spec if isinstance(outcome, RunFailure) else outcome.record
    line = f"{spec.task} {spec.graph} {spec.ablation} {spec.method} ({spec.preset}) seed {spec.seed}"
    return f"{line} FAILED ({outcome.error})" if isinstance(outcome, RunFailure) else f"{line} done"


def _run_group(group: list[RunSpec], out: Path, jobs: int, threads: int, device: str = "cpu") -> None:
    """A worker's job: runs one group of specs into `out` on `threads` threads, on `device`; edgewise's warnings
    print on one line, as the command line prints them."""
    warnings.showwarning = one_line_warnings(warnings.showwarning)
    torch.set_num_threads(threads)
    for outcome in run_group(group, device, "local", socket.gethostname(), jobs):
        write_outcome(out, outcome)


def _finished_records(out: Path, keys: list[str]) -> dict[str, RunRecord]:
    """Returns the record (without curves) of every run file in `out` that reads back whole, by key; each damaged
    one is renamed KEY.json.damaged (replacing an earlier one), with a BenchFileWarning naming it, so that its run is
    done again where `keys` (the sweep's) holds it."""
    finished = {}
    for path in sorted((out / "runs").glob("*.json")):
        try:
            record, _ = load_run(path)
        except RunFileError as error:
            aside = path.with_name(f"{path.name}.damaged")
            os.replace(path, aside)
            then = "its run is done again" if path.stem in keys else "this sweep does not hold its run, left out"
            warnings.warn(f"{error}; set aside as {aside.name}: {then}", BenchFileWarning, stacklevel=3)
            continue
        finished[record.key] = record
    return finished
