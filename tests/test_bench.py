"""The benchmark runner: records against independent recomputation, resuming after an interrupted sweep, atomic
writes, the results folder's lock and results over every run in it, sweep validation, peak memory, circuit diagrams,
and the `edgewise bench` command line contract."""

import itertools
import json
import multiprocessing
import os
import re
import shutil
import time
import types
from pathlib import Path

import pytest
import torch
from conftest import run_edgewise

from edgewise import outputs
from edgewise.errors import (
    BenchFolderBusyError,
    BenchRunsFailedError,
    InvalidSweepError,
    OutputPathError,
    UnknownMethodError,
    UnknownTaskError,
)
from edgewise.evaluate import faithfulness
from edgewise.graph import Edge, EdgeScores, circuit_from_scores
from edgewise.patching import task_ablation
from edgewise.patching.allocator import keep_freed_memory
from edgewise.report import plots as report
from edgewise.suite.bench import PeakMemory, RunRecord, Sweep, family_summary, run_bench, runner, summary_markdown
from edgewise.suite.bench.lock import folder_lock
from edgewise.suite.tasks.tracr import get_task

SWEEP = Sweep(("tracr-shift",), ("eap", "random", "acdc"), seeds=(0, 1))  # 6 runs of well under a second each


def _counting_discover(monkeypatch, fail_at: int | None = None) -> list[tuple]:
    """Replaces the runner's `discover` by one that records (method, seed) per call and is interrupted (Ctrl-C) on
    call `fail_at`."""
    calls: list[tuple] = []
    real = runner.discover

    def discover(task, method, seed=0, **kwargs):
        calls.append((method, seed))
        if len(calls) == fail_at:
            raise KeyboardInterrupt("interrupted")
        return real(task, method, seed=seed, **kwargs)

    monkeypatch.setattr(runner, "discover", discover)
    return calls


def _leftovers(folder) -> list[str]:
    return [p.name for p in folder.rglob("*.tmp")]


def test_interrupted_sweep_resumes_without_repeating_finished_runs(tmp_path, monkeypatch):
    calls = _counting_discover(monkeypatch, fail_at=4)
    with pytest.raises(KeyboardInterrupt, match="interrupted"):
        run_bench(SWEEP, tmp_path, progress=False)
    order = [(m, s) for m in SWEEP.methods for s in SWEEP.seeds]  # one task, graph and ablation: methods, then seeds
    assert calls == order[:4]
    finished = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert len(finished) == 3 and not _leftovers(tmp_path) and not (tmp_path / "results.json").exists()
    before = {name: (tmp_path / "runs" / name).read_text() for name in finished}

    calls = _counting_discover(monkeypatch)
    records = run_bench(SWEEP, tmp_path, progress=False)
    assert calls == order[3:]  # the failed run and those after it, nothing else
    assert [(r.method, r.seed) for r in records] == order
    assert json.loads((tmp_path / "results.json").read_text()) == [r.to_json() for r in records]
    assert all((tmp_path / "runs" / name).read_text() == text for name, text in before.items())

    calls = _counting_discover(monkeypatch)
    assert run_bench(SWEEP, tmp_path, progress=False) == records and calls == []


def test_a_run_that_raised_is_done_again_and_its_failure_removed_once_it_finishes(tmp_path, monkeypatch):
    sweep = Sweep(("tracr-shift",), ("random", "eap"))
    real = runner.discover

    def discover(task, method, **kwargs):
        if method == "eap":
            raise RuntimeError("out of luck")
        return real(task, method, **kwargs)

    monkeypatch.setattr(runner, "discover", discover)
    with pytest.raises(BenchRunsFailedError, match="1 of 2 runs failed, .*RuntimeError: out of luck"):
        run_bench(sweep, tmp_path, progress=False)
    (failed,) = (tmp_path / "failed").iterdir()
    assert json.loads(failed.read_text())["error"] == "RuntimeError: out of luck"
    assert [r["method"] for r in json.loads((tmp_path / "results.json").read_text())] == ["random"]
    monkeypatch.setattr(runner, "discover", real)  # the cause fixed
    calls = _counting_discover(monkeypatch)
    assert [r.method for r in run_bench(sweep, tmp_path, progress=False)] == ["random", "eap"]
    assert calls == [("eap", 0)] and not failed.exists()


def test_a_write_interrupted_before_its_rename_leaves_no_file(tmp_path, monkeypatch):
    def fail(*args):
        raise OSError("disk full")

    # Only the writer's os: the tracr compile cache renames files too, and must not fail here.
    failing_os = types.SimpleNamespace(**{name: getattr(os, name) for name in dir(os) if not name.startswith("_")})
    failing_os.replace = fail
    monkeypatch.setattr(outputs, "os", failing_os)
    with pytest.raises(OutputPathError, match="could not write .*disk full"):
        run_bench(Sweep(("tracr-shift",), ("random",)), tmp_path, progress=False)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == [tmp_path / ".lock"]  # the lock's file stays, empty
    assert (tmp_path / ".lock").read_text() == ""
    monkeypatch.undo()
    assert len(run_bench(Sweep(("tracr-shift",), ("random",)), tmp_path, progress=False)) == 1


def test_stray_temporary_files_of_a_killed_process_are_removed(tmp_path):
    stray = tmp_path / "runs" / ".x.json.abc.tmp"
    stray.parent.mkdir(parents=True)
    stray.write_text("{half")
    run_bench(Sweep(("tracr-shift",), ("random",)), tmp_path, progress=False)
    assert not stray.exists()


def _hold_lock(folder, held, release, marker) -> None:
    """Holds `folder`'s bench lock until `release` is set, then writes `marker` and lets go."""
    with folder_lock(folder):
        held.set()
        release.wait(30)
        marker.write_text("released")


def _start_holder(folder, marker):
    """Returns a process holding `folder`'s bench lock, and the event that makes it let go."""
    context = multiprocessing.get_context("fork")  # the child inherits edgewise's modules: no 7 s of imports
    held, release = context.Event(), context.Event()
    process = context.Process(target=_hold_lock, args=(folder, held, release, marker), daemon=True)
    process.start()
    assert held.wait(30), "the holding process never took the lock"
    return process, release


def test_a_second_bench_into_a_held_folder_fails_naming_the_holder(tmp_path, monkeypatch):
    out = tmp_path / "out"
    holder, _ = _start_holder(out, tmp_path / "released")
    in_flight = out / "runs" / ".x.json.abc.tmp"  # the holder's temporary file: not the second bench's to remove
    in_flight.parent.mkdir()
    in_flight.write_text("{half")
    calls = _counting_discover(monkeypatch)
    names_holder = rf"{re.escape(str(out))} is in use by another bench: process {holder.pid} on host .+, since 20\d\d-"
    try:
        with pytest.raises(BenchFolderBusyError, match=names_holder) as error:
            run_bench(Sweep(("tracr-shift",), ("random",)), out, progress=False)
    finally:
        holder.kill()  # SIGKILL, as when a bench is killed: no clean-up of its own runs, the OS drops its lock
        holder.join()
    assert "wait=True" in str(error.value) and "--out" in str(error.value)
    assert calls == [] and in_flight.exists() and not (out / "results.json").exists()
    assert len(run_bench(Sweep(("tracr-shift",), ("random",)), out, progress=False)) == 1
    assert not in_flight.exists() and (out / ".lock").read_text() == ""


def test_a_waiting_bench_starts_once_the_holder_lets_go(tmp_path, monkeypatch):
    out, marker = tmp_path / "out", tmp_path / "released"
    holder, release = _start_holder(out, marker)
    told: list[str] = []

    def tell(message):
        told.append(message)
        release.set()  # only once the bench has found the folder held, so it must wait

    started: list[bool] = []
    real = runner.discover

    def discover(*args, **kwargs):
        started.append(marker.exists())
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "_tell_waiting", tell)
    monkeypatch.setattr(runner, "discover", discover)
    try:
        records = run_bench(Sweep(("tracr-shift",), ("random",)), out, progress=True, wait=True)
    finally:
        release.set()
        holder.join()
    assert started == [True] and len(records) == 1  # the run began after the holder was done, not before
    assert len(told) == 1 and f"in use by process {holder.pid} on host" in told[0]


def test_results_hold_every_finished_run_in_the_folder(tmp_path, monkeypatch):
    first = run_bench(Sweep(("tracr-shift",), ("random", "eap")), tmp_path, progress=False)
    random, eap = first
    (acdc,) = run_bench(Sweep(("tracr-shift",), ("acdc",)), tmp_path, progress=False)
    assert acdc.method == "acdc"
    # This sweep's run first, then the folder's others by key (eap before random), not in their sweep's order.
    assert json.loads((tmp_path / "results.json").read_text()) == [r.to_json() for r in (acdc, eap, random)]
    summary = (tmp_path / "summary.md").read_text()
    assert all(f"| tracr-shift | plain | resample | {m} | tuned | 1 |" in summary for m in ("random", "eap", "acdc"))

    calls = _counting_discover(monkeypatch)
    assert run_bench(Sweep(("tracr-shift",), ("random", "eap")), tmp_path, progress=False) == first and calls == []
    assert json.loads((tmp_path / "results.json").read_text()) == [r.to_json() for r in (random, eap, acdc)]


def test_hyperparameters_are_part_of_a_run_key(tmp_path):
    default = Sweep(("tracr-shift",), ("acdc",)).runs()[0]
    changed = Sweep(("tracr-shift",), ("acdc",), hyperparameters={"acdc": {"threshold": 0.5}}).runs()[0]
    assert default.hyperparameters["threshold"] == 1e-3 and changed.hyperparameters["threshold"] == 0.5
    assert default.key != changed.key
    run_bench(Sweep(("tracr-shift",), ("acdc",)), tmp_path, progress=False)
    records = run_bench(
        Sweep(("tracr-shift",), ("acdc",), hyperparameters={"acdc": {"threshold": 0.5}}), tmp_path, progress=False
    )
    assert len(list((tmp_path / "runs").iterdir())) == 2 and records[0].hyperparameters["threshold"] == 0.5


def test_record_matches_an_independent_recomputation(tmp_path):
    (run,) = run_bench(Sweep(("tracr-shift",), ("random",), ablations=("zero",), seeds=(3,)), tmp_path, progress=False)
    record = run.to_json()  # the record's one JSON form, as results.json holds it
    scores = EdgeScores.load(tmp_path / "scores" / f"{record['key']}.json")
    task = get_task("tracr-shift", held_out=True)  # methods fit on the discovery inputs, runs are scored on these
    assert record["evaluated_on"] == "held-out" and record["n_evaluation_inputs"] == 100
    graph = task.graph()
    truth = task.ground_truth_edges(graph)
    values = scores.scores.tolist()
    pairs = [
        (values[i], values[j])
        for i, j in itertools.product(range(8), range(8))
        if graph.edges[i] in truth and graph.edges[j] not in truth
    ]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in pairs)
    assert record["auroc"] == pytest.approx(wins / len(pairs))
    ablated = task_ablation(task, graph, "zero")
    f = [faithfulness(task, graph, ablated, set(circuit_from_scores(scores, top_k=k).edges)) for k in range(9)]
    assert record["edges_to_95"] == next(k for k, v in enumerate(f) if v >= 0.95)
    assert record["cpr"] == pytest.approx(sum((a + b) / 2 for a, b in zip(f, f[1:])) / 8, abs=1e-5)
    assert record["cmd"] == pytest.approx(sum((abs(1 - a) + abs(1 - b)) / 2 for a, b in zip(f, f[1:])) / 8, abs=1e-5)
    # Under zero ablation every compiler edge of tracr-shift carries information.
    assert record["n_true_edges"] == record["n_effective_edges"] == 4 and record["n_edges"] == 8
    assert record["seed"] == 3 and record["graph"] == "plain" and record["ablation"] == "zero"


@pytest.mark.parametrize(
    "sweep, error, message",
    [
        (Sweep(("tracr-shift",), ("eap",), graphs=("unrolled",)), InvalidSweepError, "unknown graph kind 'unrolled'"),
        (Sweep(("tracr-shfit",), ("eap",)), UnknownTaskError, "unknown task 'tracr-shfit'"),
        (Sweep(("tracr-shift",), ("eapp",)), UnknownMethodError, "unknown method 'eapp'"),
        (Sweep(("tracr-shift",), ("eap",), hyperparameters={"acdc": {}}), InvalidSweepError, "does not run"),
        (Sweep(("tracr-shift",), ()), InvalidSweepError, "lists no methods"),
    ],
)
def test_bad_sweeps_fail_before_anything_runs(sweep, error, message):
    with pytest.raises(error, match=message):
        sweep.runs()


def test_peak_memory_sees_a_known_allocation():
    keep_freed_memory()  # as after any patched forward: malloc keeps what is freed ...
    for _ in range(2):
        del_me = torch.ones(80 * 2**20 // 4)  # ... such as this, which the block below would reuse unseen
        del del_me
    with PeakMemory() as memory:
        block = torch.ones(64 * 2**20 // 4)  # 64 MiB, every page touched
        time.sleep(0.05)  # longer than the sampling interval, so the sampler sees it before it is freed
        del block
    assert 50 <= memory.peak_mib < 1000


def test_circuit_diagram_falls_back_to_matplotlib_without_dot(tmp_path, monkeypatch):
    monkeypatch.setattr(report.shutil, "which", lambda name: None)
    graph = get_task("tracr-shift").graph()
    written = report.draw_circuit(graph, {Edge("A0.0", "Resid End")}, tmp_path / "c", {Edge("A0.0", "Resid End")})
    assert sorted(p.name for p in written) == ["c.png", "c.svg"] and all(p.stat().st_size > 0 for p in written)


def test_circuit_dot_colours_true_found_and_missed_edges():
    graph = get_task("tracr-shift").graph()
    both, found_only, missed = Edge("A0.0", "Resid End"), Edge("MLP 0", "Resid End"), Edge("Resid Start", "A0.0.V")
    source = report.circuit_dot(graph, {both, found_only}, {both, missed})
    assert '"A0.0" -> "Resid End" [color=forestgreen, style=solid];' in source
    assert '"MLP 0" -> "Resid End" [color=darkorange, style=solid];' in source
    assert '"Resid Start" -> "A0.0":v [color=red, style=dashed];' in source  # the v input, apart from q and k
    assert '"A0.0" [shape=record, label="{A0.0|{<q> q|<k> k|<v> v}}"];' in source
    assert source.count("->") == 3


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_circuit_diagram_with_graphviz(tmp_path):
    graph = get_task("tracr-shift").graph()
    written = report.draw_circuit(graph, {Edge("A0.0", "Resid End")}, tmp_path / "c", {Edge("Resid Start", "A0.0.V")})
    assert all(p.stat().st_size > 0 for p in written) and (tmp_path / "c.dot").exists()


def test_cli_bench_contract(tmp_path):
    command = ["bench", "--quick", "--out", str(tmp_path), "--tasks", "tracr-shift", "--methods", "eap,random"]
    result = run_edgewise(*command)
    assert result.returncode == 0, result.stderr
    records = json.loads((tmp_path / "results.json").read_text())
    assert [(r["task"], r["graph"], r["method"], r["ablation"], r["seed"]) for r in records] == [
        ("tracr-shift", "plain", "eap", "resample", 0),
        ("tracr-shift", "plain", "random", "resample", 0),
    ]
    fields = {
        "hyperparameters",
        "auroc",
        "auroc_effective",
        "node_auroc",
        "node_auroc_effective",
        "cpr",
        "cmd",
        "edges_to_95",
        "seconds",
        "peak_memory_mib",
    }
    assert all(fields <= set(r) for r in records)
    assert records[0]["auroc_effective"] == 1.0  # EAP ranks tracr-shift's two effective edges first
    assert "| tracr-shift | plain | resample | eap | tuned | 1 |" in result.stdout
    assert "| tracr-shift | plain | resample | eap | tuned | 1 |" in (tmp_path / "summary.md").read_text()
    plots = tmp_path / "plots"
    for name in (
        "tracr-shift-plain-resample-roc",
        "tracr-shift-plain-resample-faithfulness",
        "circuits/tracr-shift-plain-resample-eap",
    ):
        assert (plots / f"{name}.png").stat().st_size > 0 and (plots / f"{name}.svg").stat().st_size > 0
    run_files = {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").iterdir()}
    again = run_edgewise(*command)
    assert again.returncode == 0 and {p: p.stat().st_mtime_ns for p in run_files} == run_files


def test_cli_bench_rejects_an_unknown_graph_kind(tmp_path):
    result = run_edgewise("bench", "--out", str(tmp_path), "--graphs", "unrolled")
    assert result.returncode == 2 and "unknown graph kind 'unrolled'" in result.stderr


def test_a_sweep_of_both_presets_records_and_summarises_each(tmp_path):
    sweep = Sweep(
        ("tracr-shift",), ("edge-sp",), presets=("tuned", "published"), hyperparameters={"edge-sp": {"steps": 3}}
    )
    tuned, published = (r.to_json() for r in run_bench(sweep, tmp_path, progress=False))
    assert (tuned["preset"], published["preset"]) == ("tuned", "published") and tuned["key"] != published["key"]
    assert tuned["hyperparameters"]["lr"] == 0.02 and published["hyperparameters"]["lr"] == 0.1
    assert tuned["hyperparameters"]["steps"] == published["hyperparameters"]["steps"] == 3
    summary = (tmp_path / "summary.md").read_text()
    assert "| edge-sp | tuned |" in summary and "| edge-sp | published |" in summary
    with pytest.raises(InvalidSweepError, match="unknown preset 'paper'"):
        Sweep(("tracr-shift",), ("eap",), presets=("paper",)).runs()


def test_cli_bench_into_a_held_folder_exits_2_naming_the_holder(tmp_path):
    from edgewise.suite.bench.lock import folder_lock

    with folder_lock(tmp_path):  # another open of the lock file conflicts, even in this process
        result = run_edgewise(
            "bench", "--out", str(tmp_path), "--tasks", "tracr-shift", "--methods", "random", "--no-plots"
        )
    assert result.returncode == 2 and "in use by another bench" in result.stderr and "--wait" in result.stderr


def test_cli_bench_on_oracle_feature_graphs(tmp_path):
    """`--features oracle` benches the feature graphs: records, summary rows and plots name the graph kind, and the
    truths are feature-level (tracr-shift's head/MLP truth projected back is the compiler's)."""
    result = run_edgewise(
        "bench", "--out", str(tmp_path), "--tasks", "tracr-shift", "--methods", "eap", "--features", "oracle"
    )
    assert result.returncode == 0, result.stderr
    (record,) = json.loads((tmp_path / "results.json").read_text())
    assert record["graph"] == "plain/oracle" and "+" in record["key"] and "/" not in record["key"]
    task = get_task("tracr-shift")
    graph = task.graph(features="oracle")
    assert record["n_edges"] == graph.n_edges > task.graph().n_edges
    assert {(graph.writer_node(w).component, r) for w, r in record["effective_ground_truth"]} <= set(task.ground_truth)
    assert "| tracr-shift | plain/oracle | resample | eap | tuned | 1 |" in result.stdout
    assert (tmp_path / "plots" / "circuits" / "tracr-shift-plain+oracle-resample-eap.png").stat().st_size > 0
    with pytest.raises(InvalidSweepError, match="unknown graph kind 'plain/sae'.*plain/oracle"):
        Sweep(("tracr-shift",), ("eap",), graphs=("plain/sae",)).runs()


def test_cli_bench_on_trained_sae_graphs(tmp_path):
    """`--features train` fits SAEs on the discovery inputs and scores on the held-out ones with the same features:
    each feature in the effective truth has a decoder row within cosine 0.9 of an oracle direction its writer writes
    that feeds the same reader, and the record carries the SAEs' report."""
    from edgewise.features.sets import TRAINED, add_trained_features

    result = run_edgewise(
        "bench",
        "--out",
        str(tmp_path),
        "--tasks",
        "tracr-shift",
        "--methods",
        "eap",
        "--ablations",
        "zero",
        "--features",
        "train",
    )
    assert result.returncode == 0, result.stderr
    (record,) = json.loads((tmp_path / "results.json").read_text())
    assert record["graph"] == "plain/train" and record["evaluated_on"] == "held-out"
    assert set(record["dictionaries"]) >= {"A0.0", "Resid Start"} and record["n_effective_edges"] >= 1
    task = get_task("tracr-shift")
    add_trained_features(task)  # cached: the same SAEs the bench trained
    graph, oracle = task.graph(features=TRAINED), task.graph(features="oracle")
    for feature, reader in record["effective_ground_truth"]:
        node = graph.writer_node(feature)
        trained = task.dictionaries[TRAINED][node.component]  # restricted to active features: find its row
        row = trained.decoder[trained.indices.index(node.index)]
        directions = task.dictionaries["oracle"][node.component]
        cosines = torch.nn.functional.normalize(directions.decoder, dim=-1) @ (row / row.norm())
        fed = {
            oracle.writer_node(f).part
            for f, r in task.feature_ground_truth["oracle"]
            if r == reader and f in oracle.writers and oracle.writer_node(f).component == node.component
        }
        assert any(c >= 0.9 and label in fed for c, label in zip(cosines.tolist(), directions.labels))


def test_bench_runs_a_declared_model_without_ground_truth(tmp_path, monkeypatch):
    """The game network (a declared CNN, no ground truth): faithfulness on its held-out positions, no AUROC. On its
    10-edge block graph (one node per block, not per channel), to keep the faithfulness curve cheap."""
    import functools

    from edgewise.suite.tasks.game import task as game

    monkeypatch.setattr(game, "tictactoe_task", functools.partial(game.tictactoe_task, channels=False))
    result = run_edgewise("bench", "--tasks", "tictactoe", "--methods", "random", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    (record,) = json.loads((tmp_path / "results.json").read_text())
    assert record.get("auroc") is None and record["n_effective_edges"] is None
    assert record["evaluated_on"] == "held-out" and record["n_evaluation_inputs"] == 256
    assert 0 < record["cpr"] < 1 and "| tictactoe | plain | resample | random |" in result.stdout
    assert (tmp_path / "plots" / "tictactoe-plain-resample-faithfulness.png").exists()


def test_a_preset_with_the_same_settings_is_not_run_twice():
    """exact and random have no published settings and ACDC's published threshold is edgewise's default: asked for
    under either preset they run once, as the tuned run; edge-sp's settings differ, so it runs under each."""
    runs = Sweep(("tracr-shift",), ("exact", "random", "acdc", "edge-sp"), presets=("tuned", "published")).runs()
    assert [(r.method, r.preset) for r in runs] == [
        ("exact", "tuned"),
        ("random", "tuned"),
        ("acdc", "tuned"),
        ("edge-sp", "tuned"),
        ("edge-sp", "published"),
    ]
    only = Sweep(("tracr-shift",), ("acdc", "edge-sp"), presets=("published",)).runs()
    assert [(r.method, r.preset) for r in only] == [("acdc", "tuned"), ("edge-sp", "published")]


def test_parallel_jobs_write_the_same_runs_as_one_process(tmp_path):
    """Two worker processes, one (task, graph, ablation) group each, write the scores and records one process
    writes (all but the times, and `jobs`, which says how many ran at once)."""
    sweep = Sweep(("tracr-shift", "tracr-hist"), ("eap", "acdc"))
    alone = [r.to_json() for r in run_bench(sweep, tmp_path / "alone", progress=False)]
    together = [r.to_json() for r in run_bench(sweep, tmp_path / "together", progress=False, jobs=2)]
    timing = {"seconds", "evaluation_seconds", "peak_memory_mib", "threads"}
    assert [{k: v for k, v in r.items() if k not in timing} for r in together] == [
        {**{k: v for k, v in r.items() if k not in timing}, "jobs": 2} for r in alone
    ]
    assert {r["jobs"] for r in alone} == {1}
    for record in alone:
        scores = [
            json.loads((tmp_path / folder / "scores" / f"{record['key']}.json").read_text())
            for folder in ("alone", "together")
        ]
        assert scores[0]["scores"] == scores[1]["scores"]
    with pytest.raises(InvalidSweepError, match="jobs=0"):
        run_bench(sweep, tmp_path / "none", progress=False, jobs=0)


def test_a_record_reads_back_from_its_json_and_from_files_written_before_presets():
    """RunRecord.from_json inverts to_json, and an old record (no preset, no evaluated_on, no cost fields, a field
    this version does not know) loads with the documented defaults and keeps the unknown field."""
    old = {
        "key": "k",
        "task": "tracr-shift",
        "graph": "plain/oracle",
        "method": "eap",
        "ablation": "zero",
        "seed": 1,
        "hyperparameters": {"absolute": True},
        "n_edges": 8,
        "auroc": 0.75,
        "node_auroc": None,
        "faithfulness_at_truth_size": 0.5,
        "auroc_effective": 1.0,
        "circuit_edges": 4,
        "cpr": 0.4,
        "legacy_note": "from 2026-11",
    }
    record = RunRecord.from_json(old)
    assert record.preset == "tuned" and record.evaluated_on == "discovery" and record.label == "eap"
    assert record.graph.features == "oracle" and not record.graph.per_position and record.ablation == "zero"
    assert record.figure("auroc") == 0.75 and record.figure("auroc", "effective") == 1.0
    assert record.figure("node_auroc", "effective") is None and record.figure("cpr") == 0.4
    assert record.other == {"legacy_note": "from 2026-11"}
    again = RunRecord.from_json(record.to_json())
    assert again == record and again.to_json() == record.to_json()
    assert {
        k: v
        for k, v in record.to_json().items()
        if v is not None and k not in ("preset", "evaluated_on", "circuit_rule", "redundancy", "jobs")
    } == {k: v for k, v in old.items() if v is not None}


def test_every_committed_results_file_loads_and_writes_back_unchanged():
    """The benchmark's committed results (written by earlier versions, some before presets or held-out splits) load
    as RunRecords and write back every field they hold, unchanged (fields added since are written with their
    defaults); only curves, which results.json no longer holds, are left out."""
    root = Path(__file__).resolve().parent.parent / "benchmarks" / "results"
    files = sorted(root.glob("*/results.json"))
    assert files
    for path in files:
        for fields in json.loads(path.read_text()):
            written = RunRecord.from_json(fields).to_json()
            assert {k: written.get(k, "lost") for k in fields if k != "curves"} == {
                k: v for k, v in fields.items() if k != "curves"
            }, path


def test_a_warm_started_run_is_its_own_row_beside_the_uniform_start():
    """edge-sp with init=eap and edge-sp's uniform start are two rows of the summary and of the families table; the
    published preset adds its own suffix."""
    base = {"task": "tracr-reverse", "graph": "plain", "ablation": "resample", "method": "edge-sp"}
    uniform = RunRecord.from_json({**base, "key": "a", "auroc_effective": 0.5, "hyperparameters": {"init": None}})
    warm = RunRecord.from_json({**base, "key": "b", "auroc_effective": 1.0, "hyperparameters": {"init": "eap"}})
    published = RunRecord.from_json({**base, "key": "c", "preset": "published", "hyperparameters": {"init": "eap"}})
    assert (uniform.label, warm.label, published.label) == (
        "edge-sp",
        "edge-sp (init eap)",
        "edge-sp (init eap) (published)",
    )
    summary = summary_markdown([uniform, warm])
    assert "| tracr-reverse | plain | resample | edge-sp | tuned |" in summary
    assert "| tracr-reverse | plain | resample | edge-sp (init eap) | tuned |" in summary
    assert family_summary([uniform, warm]).auroc == {"edge-sp": {"tracr": 0.5}, "edge-sp (init eap)": {"tracr": 1.0}}
