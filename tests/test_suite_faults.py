"""Faults of the suite's files and processes, made for real: a bench killed (SIGKILL, SIGTERM) while its workers run,
a stale folder lock, damaged run files, the bench files' mode, damaged task cards, and a task that cannot be built."""

import fcntl
import json
import multiprocessing
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from edgewise.errors import (
    BenchFileWarning,
    CacheWarning,
    PretrainedModelMissingError,
    RunFileError,
    StaleBenchLockWarning,
)
from edgewise.suite.bench import Sweep, load_results, plot_bench, run_bench, runner
from edgewise.suite.bench.lock import folder_lock
from edgewise.suite.tasks import registry
from edgewise.suite.tasks.cards import card_path, task_cards, unavailable_path

TINY = Sweep(("tracr-shift",), ("random",))  # one run of well under a second
TIMING = {"seconds", "evaluation_seconds", "peak_memory_mib", "threads"}


# --- a bench killed while its workers run -------------------------------------------------------------------------


def _running(process: psutil.Process) -> bool:
    """Returns whether the process runs: a zombie (dead, not yet reaped by whoever adopted it) does not."""
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _workers(parent: psutil.Process, n: int, timeout: float = 60) -> list[psutil.Process]:
    """Returns the parent's `n` bench workers (spawned interpreters), once they are all running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        workers = []
        for child in parent.children(recursive=True):
            try:
                if "spawn_main" in " ".join(child.cmdline()):
                    workers.append(child)
            except psutil.Error:
                continue
        if len(workers) == n:
            return workers
        time.sleep(0.05)
    raise AssertionError(f"the bench did not start {n} workers in {timeout} s")


@pytest.mark.parametrize(
    "kill, when",
    [(signal.SIGKILL, "starting"), (signal.SIGTERM, "starting"), (signal.SIGKILL, "running")],
    ids=["SIGKILL-starting", "SIGTERM-starting", "SIGKILL-running"],
)
def test_a_killed_bench_takes_its_workers_with_it(tmp_path, kill, when):
    """Two workers, each with far more runs than the test waits for; the bench is killed as soon as both exist
    (before they could be told to watch it), or once they have written a run. Every worker must be gone within
    seconds (none writes on into the folder, or waits forever for work), and the folder's lock is free for the next
    bench."""
    out = tmp_path / "out"
    script = f"""
        from edgewise.suite.bench import Sweep, run_bench
        many = Sweep(("tracr-shift", "tracr-hist"), ("eap", "acdc"), seeds=tuple(range(200)))
        run_bench(many, {str(out)!r}, progress=False, jobs=2)
    """
    bench = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script)], env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    workers: list[psutil.Process] = []
    try:
        workers = _workers(psutil.Process(bench.pid), 2)
        deadline = time.monotonic() + 120
        while when == "running" and not any(out.glob("runs/*.json")):
            assert time.monotonic() < deadline, "the workers wrote no run in 120 s"
            time.sleep(0.05)
        bench.send_signal(kill)
        assert bench.wait(30) == -kill
        deadline = time.monotonic() + 5
        while any(map(_running, workers)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [w.pid for w in workers if _running(w)] == [], "workers outlived their bench"
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait()
        for worker in workers:
            if _running(worker):
                worker.kill()
    with folder_lock(out):  # a new bench takes the folder at once: no BenchFolderBusyError, no stale lock
        assert json.loads((out / ".lock").read_text())["pid"] == os.getpid()


def test_a_worker_whose_parent_dies_ends_itself_where_the_kernel_cannot_tell_it(tmp_path):
    """The fallback of systems without PR_SET_PDEATHSIG: a worker told it is not on Linux polls its parent, and ends
    within a poll or two of the parent's death."""
    worker = """
        import os, sys, time
        sys.platform = "darwin"  # no prctl: only the parent-watching thread
        from edgewise.suite.bench.workers import die_with_parent
        die_with_parent(int(sys.argv[1]))
        print(os.getpid(), flush=True)
        time.sleep(60)
    """
    parent = f"""
        import os, subprocess, sys, time
        subprocess.Popen([sys.executable, "-c", {textwrap.dedent(worker)!r}, str(os.getpid())])
        time.sleep(60)
    """
    bench = subprocess.Popen([sys.executable, "-c", textwrap.dedent(parent)], stdout=subprocess.PIPE, text=True)
    orphan = psutil.Process(int(bench.stdout.readline()))  # the worker's line, through the parent's stdout
    try:
        bench.kill()
        bench.wait()
        deadline = time.monotonic() + 5
        while _running(orphan) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _running(orphan), "the worker outlived its parent"
    finally:
        if _running(orphan):
            orphan.kill()


def _hold_and_fork(folder: Path, orphan_file: Path, held) -> None:
    """Takes `folder`'s lock, forks a child that inherits it and outlives this process, and waits to be killed."""
    with folder_lock(folder):
        orphan = os.fork()
        if orphan == 0:
            time.sleep(60)
            os._exit(0)
        orphan_file.write_text(str(orphan))
        held.set()
        time.sleep(60)


def test_a_lock_held_on_by_a_dead_benchs_orphan_is_reclaimed(tmp_path):
    """The holder's forked child keeps the flock after the holder is killed: the lock names a dead process, yet is
    held. A new bench recognises it as stale, warns naming the dead holder, and takes the folder."""
    out, orphan_file = tmp_path / "out", tmp_path / "orphan"
    context = multiprocessing.get_context("fork")
    held = context.Event()
    holder = context.Process(target=_hold_and_fork, args=(out, orphan_file, held), daemon=True)
    holder.start()
    assert held.wait(30)
    orphan = int(orphan_file.read_text())
    try:
        holder.kill()
        holder.join()
        fd = os.open(out / ".lock", os.O_RDWR)
        with pytest.raises(BlockingIOError):  # the orphan holds the dead holder's lock
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.close(fd)
        with pytest.warns(StaleBenchLockWarning, match=rf"names process {holder.pid} on host .*no longer running"):
            with folder_lock(out):
                assert json.loads((out / ".lock").read_text())["pid"] == os.getpid()
    finally:
        os.kill(orphan, signal.SIGKILL)
    assert (out / ".lock").read_text() == ""


def test_a_waiting_bench_reclaims_the_lock_once_its_holder_dies_leaving_an_orphan(tmp_path):
    """The holder is alive when the bench starts to wait, and killed once it waits: the bench notices the lock has
    gone stale and takes the folder, instead of waiting for the orphan."""
    out, orphan_file = tmp_path / "out", tmp_path / "orphan"
    context = multiprocessing.get_context("fork")
    held = context.Event()
    holder = context.Process(target=_hold_and_fork, args=(out, orphan_file, held), daemon=True)
    holder.start()
    assert held.wait(30)
    orphan = int(orphan_file.read_text())
    told: list[str] = []

    def kill_holder(message: str) -> None:
        told.append(message)
        holder.kill()  # not joined: a zombie until the bench is in, which is as dead as a reaped holder

    start = time.monotonic()
    try:
        with pytest.warns(StaleBenchLockWarning, match=rf"names process {holder.pid} on host"):
            with folder_lock(out, wait=True, on_wait=kill_holder):
                assert time.monotonic() - start < 10  # not the orphan's 60 s
    finally:
        os.kill(orphan, signal.SIGKILL)
        holder.join()
    assert len(told) == 1 and f"in use by process {holder.pid}" in told[0]


# --- damaged run files, and the bench files' mode ------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """Returns a bench folder holding TINY's one finished run, written under umask 022, and its record's JSON."""
    out = tmp_path_factory.mktemp("finished")
    mask = os.umask(0o022)
    try:
        (record,) = run_bench(TINY, out, progress=False)
    finally:
        os.umask(mask)
    return out, record.to_json()


def test_bench_files_get_the_umasks_mode(finished):
    out, _ = finished
    files = [p for p in out.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {".lock", "results.json", "summary.md"} and len(files) == 5  # + run, scores
    assert {p.relative_to(out).as_posix(): oct(p.stat().st_mode & 0o777) for p in files} == {
        p.relative_to(out).as_posix(): "0o644" for p in files
    }


DAMAGE = {
    "truncated": lambda text: text[: len(text) // 2],
    "not JSON": lambda text: "<html>a proxy's error page</html>",
    "a JSON list": lambda text: "[1, 2]",
    "a field of the wrong type": lambda text: json.dumps({**json.loads(text), "seed": "zero"}),
    "a field missing": lambda text: json.dumps({k: v for k, v in json.loads(text).items() if k != "graph"}),
    "another run's record": lambda text: json.dumps({**json.loads(text), "key": "tracr-hist_plain_random"}),
}


@pytest.mark.parametrize("damage", DAMAGE.values(), ids=DAMAGE.keys())
def test_a_damaged_run_file_is_set_aside_and_redone(finished, tmp_path, monkeypatch, damage):
    out = tmp_path / "out"
    shutil.copytree(finished[0], out)
    (run,) = (out / "runs").glob("*.json")
    damaged = damage(run.read_text())
    run.write_text(damaged)
    calls = []
    real = runner.discover
    monkeypatch.setattr(runner, "discover", lambda *args, **kwargs: calls.append(args[1]) or real(*args, **kwargs))
    with pytest.warns(BenchFileWarning, match=re.escape(f"run file {run}")):
        (record,) = run_bench(TINY, out, progress=False)
    assert calls == ["random"]  # redone, once
    assert {k: v for k, v in record.to_json().items() if k not in TIMING} == {
        k: v for k, v in finished[1].items() if k not in TIMING
    }
    assert run.with_name(f"{run.name}.damaged").read_text() == damaged
    assert json.loads((out / "results.json").read_text()) == [record.to_json()]
    assert run_bench(TINY, out, progress=False) == [record] and calls == ["random"]  # whole again: not redone


def test_a_damaged_results_file_is_refused_naming_the_entry(finished, tmp_path):
    results = tmp_path / "results.json"
    shutil.copy(finished[0] / "results.json", results)
    (record,) = load_results(results)
    assert record.to_json() == finished[1]
    results.write_text(json.dumps([finished[1], {**finished[1], "n_edges": 2.5}]))
    with pytest.raises(RunFileError, match=rf"results file {re.escape(str(results))}, entry 1: field 'n_edges' holds"):
        load_results(results)
    results.write_text(json.dumps(finished[1]))
    with pytest.raises(RunFileError, match="holds an object, not a list of run records"):
        load_results(results)


def test_a_damaged_run_file_of_another_sweep_is_set_aside_and_left_out(finished, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(finished[0], out)
    other = out / "runs" / "tracr-hist_plain_eap_tuned_resample_seed0_0123456789.json"
    other.write_text('{"key": "tracr-hist_plain_eap')
    with pytest.warns(BenchFileWarning, match=rf"run file {re.escape(str(other))} is not JSON.*does not hold its run"):
        (record,) = run_bench(TINY, out, progress=False)
    assert [r["key"] for r in json.loads((out / "results.json").read_text())] == [record.key]
    assert not other.exists() and other.with_name(f"{other.name}.damaged").exists()


def test_plots_leave_out_a_run_whose_files_are_damaged(finished, tmp_path):
    """plot_bench reads the folder without its lock, so it sets nothing aside: it warns and draws the rest."""
    out = tmp_path / "out"
    shutil.copytree(finished[0], out)
    (scores,) = (out / "scores").glob("*.json")
    scores.write_text(scores.read_text()[:50])
    broken = out / "runs" / "tracr-hist_plain_eap_tuned_resample_seed0_0123456789.json"
    broken.write_text("[]")
    with pytest.warns(BenchFileWarning) as warned:
        plot_bench(out)
    said = [str(w.message) for w in warned if w.category is BenchFileWarning]
    assert len(said) == 2 and str(broken) in said[0] and str(scores) in said[1] and "no circuit diagram" in said[1]
    assert {p.name for p in (out / "plots").glob("*.png")} == {
        "tracr-shift-plain-resample-roc.png",
        "tracr-shift-plain-resample-faithfulness.png",
    }
    assert broken.exists()


# --- task cards ------------------------------------------------------------------------------------------------------

NAMES = ["tracr-shift", "tracr-hist"]


@pytest.fixture
def two_tasks(monkeypatch) -> list[str]:
    """Lists only two small tracr tasks, and counts the builds of each by name."""
    builds: list[str] = []
    real = registry.get_task

    def get_task(name, *args, **kwargs):
        builds.append(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(registry, "task_names", lambda: list(NAMES))
    monkeypatch.setattr(registry, "get_task", get_task)
    return builds


@pytest.fixture(scope="module")
def good_cards(tmp_path_factory):
    """Returns a card store holding the two tasks' cards, and the cards."""
    store = tmp_path_factory.mktemp("cards")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(registry, "task_names", lambda: list(NAMES))
        cards, unavailable = task_cards(store)
    assert [c.name for c in cards] == NAMES and unavailable == {}
    return store, cards


def _break_unknown_field(path: Path) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), "colour": "red"}))


def _break_into_a_folder(path: Path) -> None:
    path.unlink()
    path.mkdir()
    (path / "inside").write_text("something")


def _swap(path: Path) -> None:
    path.write_text(card_path(NAMES[1], path.parents[2]).read_text())  # tracr-shift's file holds tracr-hist's card


CARD_DAMAGE = {
    "truncated": (lambda path: path.write_text(path.read_text()[:40]), "is not JSON"),
    "an unknown field": (_break_unknown_field, "has fields a task card does not have: colour"),
    "a wrongly typed field": (
        lambda path: path.write_text(json.dumps({**json.loads(path.read_text()), "n_layers": "two"})),
        "wrong type in n_layers",
    ),
    "a folder in its place": (_break_into_a_folder, "cannot be read"),
    "another task's card": (_swap, "holds the card of task 'tracr-hist', not of 'tracr-shift'"),
}


@pytest.mark.parametrize("damage, says", CARD_DAMAGE.values(), ids=CARD_DAMAGE.keys())
def test_a_damaged_task_card_is_rebuilt_with_a_warning(good_cards, two_tasks, tmp_path, damage, says):
    store = tmp_path / "store"
    shutil.copytree(good_cards[0], store)
    path = card_path(NAMES[0], store)
    damage(path)
    with pytest.warns(CacheWarning, match=rf"task card {re.escape(str(path))} .*{re.escape(says)}"):
        cards, unavailable = task_cards(store)
    assert cards == good_cards[1] and unavailable == {}  # each task once, with its own sizes
    assert two_tasks == [NAMES[0]]  # the damaged card's task is built again, the other is not
    assert json.loads(path.read_text()) == good_cards[1][0].to_dict()  # rewritten whole
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    assert task_cards(store) == (good_cards[1], {}) and two_tasks == [NAMES[0]]  # whole again: nothing rebuilt


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_task_that_cannot_be_built_is_remembered_until_the_environment_changes(
    good_cards, two_tasks, tmp_path, monkeypatch
):
    """The builder raises for tracr-hist (as SmolLM2's tasks do while its package is missing): two listings build it
    once; after a package is installed (a new dist-info folder on sys.path) it is tried again, and listed once it
    builds."""
    store = tmp_path / "store"
    shutil.copytree(good_cards[0], store)
    card_path(NAMES[1], store).unlink()
    counting = registry.get_task
    missing = "tracr-hist's weights are not installed: run `pip install tracr-hist-weights`"

    def get_task(name, *args, **kwargs):
        if name == NAMES[1]:
            two_tasks.append(name)
            raise PretrainedModelMissingError(missing)
        return counting(name, *args, **kwargs)

    monkeypatch.setattr(registry, "get_task", get_task)
    for _ in range(2):
        assert task_cards(store) == ([good_cards[1][0]], {NAMES[1]: missing})
    assert two_tasks == [NAMES[1]]
    assert json.loads(unavailable_path(NAMES[1], store).read_text())["reason"] == missing

    site = tmp_path / "site"
    (site / "tracr_hist_weights-1.0.dist-info").mkdir(parents=True)
    monkeypatch.syspath_prepend(str(site))
    assert task_cards(store) == ([good_cards[1][0]], {NAMES[1]: missing})
    assert two_tasks == [NAMES[1], NAMES[1]]  # tried again under the new environment, then remembered again

    monkeypatch.setattr(registry, "get_task", counting)  # the weights arrive: it builds
    (site / "tracr_hist_weights-1.1.dist-info").mkdir()
    assert task_cards(store) == (good_cards[1], {})
    assert two_tasks == [NAMES[1], NAMES[1], NAMES[1]] and not unavailable_path(NAMES[1], store).exists()
