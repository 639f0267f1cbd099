"""The benchmark: methods x tasks x graphs x ablations x seeds, written to one results folder that a re-run resumes.

    DIR/runs/<key>.json     one finished run: its record plus its curves, written atomically
    DIR/scores/<key>.json   the run's EdgeScores
    DIR/results.json        the sweep's records in sweep order (without curves)
    DIR/summary.md          a Markdown table of means over seeds
    DIR/plots/              ROC and faithfulness curves per task, graph and ablation; circuit diagrams (plain graphs)

A run's key holds its task, graph, method, ablation and seed, and a hash of its hyperparameters with the method's
defaults filled in, so changing a default reruns that method. A re-run skips every run whose record exists; every
file is written through a temporary file and os.replace, so an interrupted run leaves no half-written file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import psutil
import torch
from tqdm.auto import tqdm

from .ablation import ABLATIONS, AblatedOutputs
from .circuit import circuit_from_scores
from .errors import DegenerateGroundTruthError, InvalidSweepError, UnknownAblationError, UnknownTaskError
from .evaluate import (
    FaithfulnessCurve,
    RocCurve,
    cmd,
    cpr,
    edges_to_reach,
    effective_ground_truth,
    faithfulness,
    faithfulness_curve,
    node_roc_curve,
    roc_curve,
)
from .graph import Edge
from .methods import discover, get_method, make_config, method_names
from .report import draw_circuit, markdown_table, plot_faithfulness_curves, plot_roc_curves
from .scores import EdgeScores
from .task import Task
from .tracr_tasks import get_task, task_names

GRAPH_KINDS = ("plain", "per-position")
FAITHFUL_LEVEL = 0.95  # the faithfulness a circuit must reach for `edges_to_95`


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: a method with all its hyperparameters, on a task's graph, under an ablation, with a seed."""

    task: str
    graph: str  # "plain" or "per-position"
    method: str
    ablation: str
    seed: int
    hyperparameters: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Returns the run's file stem: its fields, and a hash of its hyperparameters, which do not fit a name."""
        digest = hashlib.sha1(json.dumps(self.hyperparameters, sort_keys=True).encode()).hexdigest()[:10]
        return f"{self.task}_{self.graph}_{self.method}_{self.ablation}_seed{self.seed}_{digest}"


@dataclass(frozen=True)
class Sweep:
    """What a benchmark runs: every combination of its tasks, graphs, ablations, methods and seeds."""

    tasks: tuple[str, ...]
    methods: tuple[str, ...]
    ablations: tuple[str, ...] = ("resample",)
    graphs: tuple[str, ...] = ("plain",)
    seeds: tuple[int, ...] = (0,)
    hyperparameters: dict[str, dict] = field(default_factory=dict)  # per method: values replacing its defaults

    def runs(self) -> list[RunSpec]:
        """Returns the runs task by task (then graph, ablation, method, seed); raises for any unknown name before
        anything runs."""
        self._check()
        configs = {
            m: dataclasses.asdict(make_config(get_method(m), self.hyperparameters.get(m, {}))) for m in self.methods
        }
        return [
            RunSpec(task, graph, method, ablation, seed, configs[method])
            for task in self.tasks
            for graph in self.graphs
            for ablation in self.ablations
            for method in self.methods
            for seed in self.seeds
        ]

    def _check(self) -> None:
        for name, values in (("tasks", self.tasks), ("methods", self.methods), ("ablations", self.ablations),
                             ("graphs", self.graphs), ("seeds", self.seeds)):
            if not values:
                raise InvalidSweepError(f"the sweep lists no {name}; give at least one")
        unknown = [t for t in self.tasks if t not in task_names()]
        if unknown:
            known = ", ".join(task_names())
            raise UnknownTaskError(f"unknown task {unknown[0]!r}; the bench scores against a ground truth, so it runs "
                                   f"the tracr tasks: {known} (others: edgewise discover)")
        unknown = [a for a in self.ablations if a not in ABLATIONS]
        if unknown:
            raise UnknownAblationError(f"unknown ablation {unknown[0]!r}; choose from {', '.join(ABLATIONS)}")
        unknown = [g for g in self.graphs if g not in GRAPH_KINDS]
        if unknown:
            raise InvalidSweepError(f"unknown graph kind {unknown[0]!r}; choose from {', '.join(GRAPH_KINDS)}")
        unknown = sorted(set(self.hyperparameters) - set(self.methods))
        if unknown:
            raise InvalidSweepError(f"hyperparameters are set for {unknown[0]!r}, which the sweep does not run; add it "
                                    f"to the methods ({', '.join(self.methods)}) or drop its settings")


def quick_sweep() -> Sweep:
    """Returns the quick sweep, well under a minute on one CPU thread: three small tracr tasks, a method of each
    family plus the random baseline, resample ablation, plain graphs, one seed."""
    methods = ("edge-sp", "acdc", "eap", "eap-ig-inputs", "random")
    return Sweep(("tracr-reverse", "tracr-proportion", "tracr-sort"), methods)


def full_sweep() -> Sweep:
    """Returns the full sweep: every task and method, plain and per-position graphs, resample, mean and zero
    ablation, seeds 0, 1 and 2 (deterministic methods repeat their result, at their small cost)."""
    return Sweep(tuple(task_names()), tuple(method_names()), ("resample", "mean", "zero"), GRAPH_KINDS, (0, 1, 2))


class PeakMemory:
    """A context manager that measures the peak memory in use while it is open, above the level at entry: `peak_mib`.

    On CUDA it reads torch.cuda.max_memory_allocated. On CPU it samples the process's resident set size every
    `interval` seconds in a background thread, which is approximate: a spike shorter than the interval goes unseen,
    and memory the allocator kept from earlier work is reused without raising the resident set.
    """

    def __init__(self, cuda: bool = False, interval: float = 0.005):
        self.cuda, self.interval = cuda, interval
        self.peak_mib = 0.0
        self._stop = threading.Event()
        self._process = psutil.Process()

    @property
    def measure(self) -> str:
        """Returns what `peak_mib` measures, for the record."""
        return "cuda max_memory_allocated" if self.cuda else "process RSS, sampled (approximate)"

    def __enter__(self) -> "PeakMemory":
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._start = torch.cuda.memory_allocated()
        else:
            self._start = self._peak = self._process.memory_info().rss
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._peak = max(self._peak, self._process.memory_info().rss)

    def __exit__(self, *exc_info) -> None:
        if self.cuda:
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated()
        else:
            self._stop.set()
            self._thread.join()
            peak = max(self._peak, self._process.memory_info().rss)
        self.peak_mib = (peak - self._start) / 2**20


def _roc_or_none(
    curve_fn: Callable[[EdgeScores, set[Edge]], RocCurve], scores: EdgeScores, truth: set[Edge]
) -> RocCurve | None:
    """Returns the ROC curve, or None where the truth holds every edge (node) or none and no curve exists."""
    try:
        return curve_fn(scores, truth)
    except DegenerateGroundTruthError:
        return None


def _finite(value: float | None) -> float | None:
    """Returns the value, or None for NaN: strict JSON has no NaN."""
    return None if value is None or math.isnan(value) else value


@dataclass(frozen=True)
class Setting:
    """What every run on one task, graph and ablation is scored against: the ablation's values and both truths."""

    ablated: AblatedOutputs
    truths: dict[str, set[Edge]]  # record-field suffix -> truth: "" the compiler's, "_effective" the effective one

    @classmethod
    def of(cls, task: Task, graph_kind: str, ablation: str) -> "Setting":
        """Returns the setting; the effective truth costs a patched forward per true edge (dyck2 per-position: 20 s),
        so the bench builds it once for all the methods and seeds that share it."""
        graph = task.graph(per_position=graph_kind == "per-position")
        ablated = task.ablation(graph, ablation)
        return cls(ablated, {"": task.ground_truth_edges(graph),
                             "_effective": effective_ground_truth(task, graph, ablated)})


def run_one(task: Task, spec: RunSpec, setting: Setting | None = None) -> tuple[dict, dict, EdgeScores]:
    """Returns one run's record, its curves (ROC edge and node level against both truths, faithfulness) and scores.

    AUROC is taken against the compiler's ground truth and against the effective one (its edges that change the
    outputs under this ablation): under resample ablation most compiler edges carry nothing, which caps every method
    against the compiler's truth. Seconds and peak memory cover the method alone; evaluation is timed apart.
    `setting` is `Setting.of(task, spec.graph, spec.ablation)`, built here when not given.
    """
    on_cuda = next(task.model.parameters()).device.type == "cuda"
    with PeakMemory(on_cuda) as memory:
        scores = discover(task, spec.method, spec.ablation, spec.graph == "per-position", spec.seed,
                          **spec.hyperparameters)
    start = time.perf_counter()
    graph = scores.graph
    setting = setting or Setting.of(task, spec.graph, spec.ablation)
    ablated, truths = setting.ablated, setting.truths
    curve = faithfulness_curve(task, scores, ablated)
    needed = edges_to_reach(curve, FAITHFUL_LEVEL)
    record = {
        "key": spec.key, "task": spec.task, "graph": spec.graph, "method": spec.method, "ablation": spec.ablation,
        "seed": spec.seed, "hyperparameters": spec.hyperparameters, "n_edges": graph.n_edges,
        "n_true_edges": len(truths[""]), "n_effective_edges": len(truths["_effective"]),
        "effective_ground_truth": [e.endpoints() for e in sorted(truths["_effective"], key=graph.edge_index)],
    }
    curves: dict = {"faithfulness": None if any(map(math.isnan, curve.faithfulness)) else curve.to_dict()}
    for suffix, truth in truths.items():
        for level, curve_fn in (("", roc_curve), ("node_", node_roc_curve)):
            roc = _roc_or_none(curve_fn, scores, truth)
            record[f"{level}auroc{suffix}"] = None if roc is None else roc.auc
            curves[f"{level}roc{suffix}"] = None if roc is None else roc.to_dict()
    for suffix, truth in truths.items():  # the "faithfulness of the circuit at the ground truth's size"
        top = circuit_from_scores(scores, top_k=len(truth)).edges
        record[f"faithfulness_at_truth_size{suffix}"] = _finite(faithfulness(task, graph, ablated, set(top)))
    record.update({
        "cpr": _finite(cpr(curve)), "cmd": _finite(cmd(curve)), "edges_to_95": needed,
        "fraction_to_95": None if needed is None else needed / graph.n_edges,
        "seconds": scores.seconds, "evaluation_seconds": time.perf_counter() - start,
        "peak_memory_mib": memory.peak_mib, "memory_measure": memory.measure,
        "device": "cuda" if on_cuda else "cpu", "threads": torch.get_num_threads(),
    })
    return record, curves, scores


def write_atomic(path: Path, text: str) -> None:
    """Writes `text` to `path` through a temporary file beside it and os.replace: `path` holds its old content or
    all of the new one, never part of it, and the temporary file is removed if the write fails."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as f:
            f.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _warm_up(task: Task) -> None:
    """Runs one masked forward, backward and Adam step, so that no method's time includes torch's one-time costs
    (the first Adam step of a process imports torch's compiler stack: about 1 s here)."""
    graph = task.graph()
    mask = torch.full((graph.n_edges,), 0.5, requires_grad=True)
    task.faithfulness_loss(graph, task.ablation(graph, "zero"), mask).backward()
    torch.optim.Adam([mask]).step()


def run_bench(sweep: Sweep, out: str | Path, progress: bool = True, plots: bool = True) -> list[dict]:
    """Returns the sweep's records in sweep order, after running those not finished in `out` and writing
    results.json, summary.md and (with `plots`) the plots there."""
    out = Path(out)
    specs = sweep.runs()
    for stray in out.glob("**/.*.tmp"):  # left by a process killed mid-write, which no `except` could remove
        stray.unlink()
    pending = [s for s in specs if not (out / "runs" / f"{s.key}.json").exists()]
    task: Task | None = None  # runs come task by task, so one task (and its settings) at a time is kept
    settings: dict[tuple[str, str], Setting] = {}
    with tqdm(total=len(specs), initial=len(specs) - len(pending), desc="bench", unit="run",
              disable=not progress) as bar:
        for spec in pending:
            bar.set_postfix_str(f"{spec.task} {spec.graph} {spec.ablation} {spec.method} seed {spec.seed}")
            if task is None or task.name != spec.task:
                task, settings = get_task(spec.task), {}
                _warm_up(task)
            if (spec.graph, spec.ablation) not in settings:
                settings[spec.graph, spec.ablation] = Setting.of(task, spec.graph, spec.ablation)
            record, curves, scores = run_one(task, spec, settings[spec.graph, spec.ablation])
            # Scores first: a run counts as finished once its record exists, and then its scores do too.
            write_atomic(out / "scores" / f"{spec.key}.json", json.dumps(scores.to_dict()))
            write_atomic(out / "runs" / f"{spec.key}.json", json.dumps({**record, "curves": curves}))
            bar.update()
    finished = [json.loads((out / "runs" / f"{s.key}.json").read_text()) for s in specs]
    records = [{k: v for k, v in r.items() if k != "curves"} for r in finished]
    write_atomic(out / "results.json", json.dumps(records, indent=1))
    write_atomic(out / "summary.md", summary_markdown(records))
    if plots:
        plot_results(finished, out)
    return records


def _cell(values: list, digits: int = 3) -> str:
    """Returns the mean of the values (± their spread over seeds), counting how many exist when some are None."""
    present = [float(v) for v in values if v is not None]
    if not present:
        return "n/a"
    mean = sum(present) / len(present)
    text = f"{mean:.{digits}f}"
    if len(present) > 1:
        std = (sum((v - mean) ** 2 for v in present) / (len(present) - 1)) ** 0.5
        text += f" ± {std:.{digits}f}"
    return text if len(present) == len(values) else f"{text} ({len(present)}/{len(values)})"


_SUMMARY_COLUMNS = (  # (header, record field, digits)
    ("AUROC", "auroc", 3), ("AUROC eff.", "auroc_effective", 3), ("node AUROC", "node_auroc", 3),
    ("node AUROC eff.", "node_auroc_effective", 3), ("f at eff. size", "faithfulness_at_truth_size_effective", 3),
    ("CPR", "cpr", 3), ("CMD", "cmd", 3),
    ("edges to 95%", "edges_to_95", 1), ("seconds", "seconds", 2), ("peak MiB", "peak_memory_mib", 1),
)


def summary_markdown(records: list[dict]) -> str:
    """Returns the Markdown summary: one row per task, graph, ablation and method, with means over seeds."""
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault((r["task"], r["graph"], r["ablation"], r["method"]), []).append(r)
    rows = [[*key, str(len(rs)), *(_cell([r.get(name) for r in rs], digits) for _, name, digits in _SUMMARY_COLUMNS)]
            for key, rs in groups.items()]
    header = ["task", "graph", "ablation", "method", "seeds", *(h for h, _, _ in _SUMMARY_COLUMNS)]
    notes = (
        "AUROC: against the compiler's ground truth; eff.: against its edges that change the outputs under the "
        "ablation. Node AUROC: a node scores its best edge's score. f at eff. size: faithfulness of the top-k circuit, "
        "k the effective truth's size. CPR and CMD: MIB's areas under f and |1 - f| "
        "over the fraction of edges kept. Edges to 95%: the smallest top-k circuit with faithfulness >= 0.95 (runs "
        "that reach it, of all, in brackets). Seconds and peak MiB: the method alone; peak memory on CPU is the "
        "sampled rise of the process's resident set, approximate. Means ± standard deviation over seeds."
    )
    return f"# edgewise bench\n\n{notes}\n\n{markdown_table(header, rows)}"


def plot_results(finished: list[dict], out: Path) -> None:
    """Draws, per task, graph and ablation (first seed): ROC curves against both truths and faithfulness curves, one
    line per method; and per plain-graph run a diagram of its top-k circuit against the effective ground truth, k
    that truth's size."""
    groups: dict[tuple, list[dict]] = {}
    for r in finished:
        groups.setdefault((r["task"], r["graph"], r["ablation"]), []).append(r)
    for (task, graph, ablation), runs in groups.items():
        seed = min(r["seed"] for r in runs)
        runs = [r for r in runs if r["seed"] == seed]
        stem = f"{task}-{graph}-{ablation}"
        setting = f"{task}, {graph} graph, {ablation} ablation, seed {seed}"
        panels = {
            title: {r["method"]: RocCurve.from_dict(r["curves"][name]) for r in runs if r["curves"][name]}
            for title, name in (("compiler's ground truth", "roc"), ("effective ground truth", "roc_effective"))
        }
        plot_roc_curves(panels, out / "plots" / f"{stem}-roc", f"edge ROC: {setting}")
        plot_faithfulness_curves(
            {r["method"]: FaithfulnessCurve.from_dict(r["curves"]["faithfulness"]) for r in runs
             if r["curves"]["faithfulness"]},
            out / "plots" / f"{stem}-faithfulness", f"faithfulness: {setting}", FAITHFUL_LEVEL,
        )
        if graph != "plain":
            continue
        for r in runs:
            truth = {Edge.from_endpoints(w, rd) for w, rd in r["effective_ground_truth"]}
            if not truth:
                continue
            scores = EdgeScores.load(out / "scores" / f"{r['key']}.json")
            found = set(circuit_from_scores(scores, top_k=len(truth)).edges)
            draw_circuit(scores.graph, found, out / "plots" / "circuits" / f"{stem}-{r['method']}", truth,
                         f"{r['method']} on {setting}\ntop {len(truth)} edges vs the effective ground truth")
