"""The bench on a real Ray cluster: records the local runner also writes, a worker killed mid-run retried with each
run written once, failing runs recorded while the others go on, a two-node cluster joined by its address, and bad
input refused before any run. Ray writes only under the tests' temporary folder (its temp dir; auth disabled)."""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import psutil
import pytest
from conftest import run_edgewise, run_edgewise_process
from test_bench_prompts import _expected_scores, data_csv, gpt2_folder  # noqa: F401 (fixtures)

import edgewise
from edgewise.errors import (
    BenchRunsFailedError,
    ClusterResourcesError,
    ClusterUnreachableError,
    ClusterVersionError,
    ExecutorConflictError,
    RayNotInstalledError,
)
from edgewise.suite.bench import (
    PromptSource,
    RayExecutor,
    RunRecord,
    RunSpec,
    Sweep,
    load_run,
    run_bench,
    runner,
)

ray = pytest.importorskip("ray")

SWEEP = Sweep(("tracr-shift", "tracr-hist"), ("eap", "acdc"))  # two groups of two runs, seconds each
RAN = {"seconds", "evaluation_seconds", "peak_memory_mib", "jobs", "executor", "node"}  # where and how fast it ran
SOCKET_PATH = 62  # what Ray appends to its temp dir for a socket: /session_DATE_TIME_PID/sockets/plasma_store


def _short_folder(tmp_path_factory) -> Path:
    """Returns a folder for Ray's sockets and logs under the tests' temporary folder, or where that path is too long
    for a unix socket (about 107 characters), a fresh one in the system's temporary folder."""
    folder = tmp_path_factory.mktemp("ray")
    if len(str(folder)) + SOCKET_PATH < 100:
        return folder
    return Path(tempfile.mkdtemp(prefix="ew-ray-"))


@pytest.fixture(scope="module")
def ray_environment(tmp_path_factory):
    """Ray's settings for this file: no auth token written to the home folder, and Ray's folder."""
    before = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"
    yield _short_folder(tmp_path_factory)
    if before is None:
        del os.environ["RAY_AUTH_MODE"]
    else:
        os.environ["RAY_AUTH_MODE"] = before


@pytest.fixture(scope="module")
def cluster(ray_environment):
    """A local Ray cluster of 2 CPUs in this process, one for the file (it starts in seconds, not milliseconds)."""
    ray.init(num_cpus=2, _temp_dir=str(ray_environment), include_dashboard=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The sweep run by the local runner in this process: (its folder, its records as JSON)."""
    out = tmp_path_factory.mktemp("local")
    return out, [r.to_json() for r in run_bench(SWEEP, out, progress=False)]


def _ran_elsewhere_alike(records: list[dict], reference: list[dict]) -> None:
    """Asserts the records hold the reference's scores, truths and figures: all but where and how fast they ran."""
    assert [{k: v for k, v in r.items() if k not in RAN} for r in records] == [
        {k: v for k, v in r.items() if k not in RAN} for r in reference
    ]


def _scores(folder: Path, key: str) -> dict:
    return json.loads((folder / "scores" / f"{key}.json").read_text())["scores"]


def test_ray_writes_the_records_and_scores_of_the_local_runner(cluster, reference, tmp_path):
    local, expected = reference
    records = run_bench(SWEEP, tmp_path, progress=False, executor=RayExecutor())
    _ran_elsewhere_alike([r.to_json() for r in records], expected)
    node = ray.get_runtime_context().get_node_id()
    assert {(r.executor, r.node, r.threads, r.jobs) for r in records} == {("ray", node, 1, 2)}
    assert {r["executor"] for r in expected} == {"local"} and {r["node"] for r in expected} == {socket.gethostname()}
    for record in records:
        assert _scores(tmp_path, record.key) == _scores(local, record.key)
        assert load_run(tmp_path / "runs" / f"{record.key}.json")[0] == record
    assert json.loads((tmp_path / "results.json").read_text()) == [r.to_json() for r in records]
    assert run_bench(SWEEP, tmp_path, progress=False, executor=RayExecutor()) == records  # resumed: nothing to do


def test_a_record_without_executor_and_node_reads_back_and_writes_back_without_them(reference):
    _, expected = reference
    old = {k: v for k, v in expected[0].items() if k not in ("executor", "node")}
    record = RunRecord.from_json(old)
    assert (record.executor, record.node) == (None, None) and record.to_json() == old


def test_a_ray_worker_rebuilds_a_users_task_from_its_model_folder_and_prompts_file(
    cluster,
    gpt2_folder,  # noqa: F811
    data_csv,  # noqa: F811
    tmp_path,
):
    source = PromptSource(str(gpt2_folder), str(data_csv), held_out=1 / 3)
    sweep = Sweep((source.name,), ("eap",), prompts=(source,))
    (record,) = run_bench(sweep, tmp_path, progress=False, executor=RayExecutor())
    assert record.executor == "ray" and record.task == "ioi" and record.evaluated_on == "held-out"
    assert _scores(tmp_path, record.key) == _expected_scores(gpt2_folder, data_csv, "eap")


def _bench_workers() -> list[psutil.Process]:
    """Returns the Ray workers of this process's cluster that are running a bench group (Ray names them so)."""
    workers = []
    for process in psutil.Process().children(recursive=True):
        try:
            if process.cmdline()[:1] and process.cmdline()[0].startswith("ray::bench_group"):
                workers.append(process)
        except psutil.Error:
            continue
    return workers


def test_workers_killed_mid_group_are_retried_and_each_run_is_written_once(cluster, reference, tmp_path, monkeypatch):
    """Once the first run is written, every worker running a group is killed (SIGKILL): Ray starts the groups
    again, and the driver writes each run's record once, the same as the local runner's."""
    writes: list[Path] = []
    killed: list[int] = []
    real = runner.write_atomic

    def write_atomic(path, text):
        real(path, text)
        writes.append(Path(path))
        if path.parent.name == "runs" and not killed:
            for worker in _bench_workers():
                worker.kill()
                killed.append(worker.pid)

    monkeypatch.setattr(runner, "write_atomic", write_atomic)
    records = run_bench(SWEEP, tmp_path, progress=False, executor=RayExecutor())
    assert killed  # at least the group still running its second run
    _ran_elsewhere_alike([r.to_json() for r in records], reference[1])
    runs = [p.name for p in writes if p.parent.name == "runs"]
    assert sorted(runs) == sorted(f"{r.key}.json" for r in records)  # each once, none lost
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == sorted(runs)


DRIVER = """
import sys
from edgewise.suite.bench import RayExecutor, Sweep, run_bench
sweep = Sweep(("tracr-shift", "tracr-hist"), ("eap", "acdc"))
run_bench(sweep, sys.argv[1], progress=False, executor=RayExecutor(num_cpus=2, temp_dir=sys.argv[2]))
"""


def test_a_killed_driver_resumes_without_repeating_finished_runs(
    cluster, reference, tmp_path, tmp_path_factory, monkeypatch
):
    """A driver on its own local cluster is killed (SIGKILL) once its first run is written; a bench into the folder
    then does only the runs that had not been written, and the records are the local runner's."""
    out, folder = tmp_path / "out", _short_folder(tmp_path_factory)
    driver = subprocess.Popen([sys.executable, "-c", DRIVER, str(out), str(folder)])
    try:
        deadline = time.monotonic() + 300
        while not list((out / "runs").glob("*.json")) and driver.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        driver.kill()
        driver.wait()
    finally:
        _stop_nodes(folder)
    before = {p.name: p.read_text() for p in (out / "runs").glob("*.json")}
    assert 1 <= len(before) < 4 and not (out / "results.json").exists()
    writes: list[str] = []
    real = runner.write_atomic
    monkeypatch.setattr(runner, "write_atomic", lambda path, text: writes.append(Path(path).name) or real(path, text))
    records = run_bench(SWEEP, out, progress=False, executor=RayExecutor())
    _ran_elsewhere_alike([r.to_json() for r in records], reference[1])
    assert not set(before) & set(writes)  # the finished runs were not done again
    assert sorted(set(writes) & {f"{r.key}.json" for r in records}) == sorted(
        f"{r.key}.json" for r in records if f"{r.key}.json" not in before
    )
    assert all((out / "runs" / name).read_text() == text for name, text in before.items())


class _WithABrokenRun(Sweep):
    """SWEEP, and an EAP run whose hyperparameter EAP has no field for: it passes no sweep check (it is not one of
    the sweep's runs) and raises on whoever runs it."""

    def runs(self) -> list[RunSpec]:
        broken = RunSpec("tracr-shift", "plain", "eap", "resample", 0, {"no_such_setting": 1})
        return [*super().runs()[:2], broken, *super().runs()[2:]]


@pytest.mark.parametrize("how", ["one process", "jobs 2", "ray"])
def test_a_failing_run_is_recorded_and_the_others_go_on(cluster, reference, tmp_path, how):
    def options() -> dict:
        return {"one process": {}, "jobs 2": {"jobs": 2}, "ray": {"executor": RayExecutor()}}[how]

    broken = _WithABrokenRun(SWEEP.tasks, SWEEP.methods)
    key = broken.runs()[2].key
    with pytest.raises(BenchRunsFailedError, match=f"1 of 5 runs failed, first {key}: .*no_such_setting"):
        run_bench(broken, tmp_path, progress=False, **options())
    failure = json.loads((tmp_path / "failed" / f"{key}.json").read_text())
    assert failure["executor"] == ("ray" if how == "ray" else "local") and "no_such_setting" in failure["error"]
    assert "Traceback" in failure["traceback"] and failure["method"] == "eap" and failure["hyperparameters"]
    assert not (tmp_path / "runs" / f"{key}.json").exists()
    finished = json.loads((tmp_path / "results.json").read_text())
    _ran_elsewhere_alike(finished, reference[1])  # the four others, all there
    again = run_bench(SWEEP, tmp_path, progress=False, **options())
    assert [r.to_json() for r in again] == finished  # nothing redone


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _stop_nodes(folder: Path) -> None:
    """Kills the Ray processes of the nodes whose folder is `folder` (they name it) and their children, by id:
    `ray stop` would stop every Ray on this machine, this file's own cluster among them."""
    me = os.getpid()
    found = set()
    for process in psutil.process_iter(["cmdline"]):
        if process.pid != me and any(str(folder) in arg for arg in process.info["cmdline"] or ()):
            found.add(process)
            try:
                found.update(process.children(recursive=True))
            except psutil.Error:
                continue
    for process in found:
        try:
            process.kill()
        except psutil.Error:
            continue
    psutil.wait_procs(list(found), timeout=10)


def test_a_bench_joins_a_two_node_cluster_by_its_address(ray_environment, reference, tmp_path_factory):
    """`ray start --head` and a second `ray start --address` on loopback, one CPU each; `edgewise bench --ray
    HOST:PORT` runs the sweep there, as a user runs it (a fresh interpreter: this one holds its own cluster)."""
    folder = _short_folder(tmp_path_factory)
    ray_command = [str(Path(sys.executable).with_name("ray")), "start", "--num-cpus", "1", "--disable-usage-stats"]
    node = ["--node-ip-address", "127.0.0.1", "--temp-dir", str(folder)]
    address = f"127.0.0.1:{_free_port()}"
    out = tmp_path_factory.mktemp("two-nodes")
    try:
        for extra in (
            ["--head", "--port", address.split(":")[1]],
            ["--address", address],
        ):
            ports = ["--dashboard-agent-listen-port", str(_free_port()), "--include-dashboard", "false"]
            extra += ports if "--head" in extra else ports[:2]
            subprocess.run([*ray_command, *node, *extra], check=True, capture_output=True, timeout=120)
        result = run_edgewise_process(
            "bench", "--tasks", ",".join(SWEEP.tasks), "--methods", ",".join(SWEEP.methods), "--ray", address,
            "--out", str(out), "--no-plots",
        )  # fmt: skip
    finally:
        _stop_nodes(folder)
    assert result.returncode == 0, result.stderr
    records = json.loads((out / "results.json").read_text())
    _ran_elsewhere_alike(records, reference[1])
    assert {r["executor"] for r in records} == {"ray"} and {r["jobs"] for r in records} == {1}
    assert len({r["node"] for r in records}) == 2  # one CPU each: the two groups ran on the two nodes


def test_an_address_where_nothing_answers_fails_before_any_run(ray_environment, tmp_path):
    port = _free_port()  # closed again: nothing listens there
    with pytest.raises(ClusterUnreachableError, match=f"nothing answers at Ray cluster address 127.0.0.1:{port}"):
        run_bench(SWEEP, tmp_path, progress=False, executor=RayExecutor(f"127.0.0.1:{port}"))
    with pytest.raises(ClusterUnreachableError, match="'head-node' is not HOST:PORT"):
        run_bench(SWEEP, tmp_path, progress=False, executor=RayExecutor("head-node"))
    assert not (tmp_path / "runs").exists()


def test_ray_not_installed_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(RayNotInstalledError, match=r"pip install 'edgewise\[ray\]'"):
        run_bench(SWEEP, tmp_path, progress=False, executor=RayExecutor())
    result = run_edgewise("bench", "--tasks", "tracr-shift", "--methods", "eap", "--ray", "--out", str(tmp_path))
    assert result.returncode == 2 and "edgewise[ray]" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_a_node_with_another_edgewise_fails_before_any_run(cluster, monkeypatch, tmp_path):
    """The driver claims another version than the workers import: the node is named with both versions."""
    monkeypatch.setattr(edgewise, "__version__", "0.0.0-driver")
    with pytest.raises(ClusterVersionError, match=r"edgewise \S+ there, 0.0.0-driver here"):
        run_bench(SWEEP, tmp_path, progress=False, executor=RayExecutor())
    assert not (tmp_path / "runs").exists()


def test_rays_own_version_mismatch_is_named(ray_environment):
    """Ray refuses a driver of another Ray or Python with a RuntimeError; the bench names it and the fix."""

    def init(**kwargs):
        raise RuntimeError("Version mismatch: The cluster was started with:\n    Ray: 2.59.0\n    Python: 3.10.0")

    fake = types.SimpleNamespace(init=init, __version__=ray.__version__)
    with pytest.raises(ClusterVersionError, match="another Ray or Python than this driver.*Version mismatch"):
        RayExecutor("auto")._connect(fake)


def test_a_cuda_bench_on_a_cluster_without_gpus_fails_before_any_run(cluster, tmp_path):
    with pytest.raises(ClusterResourcesError, match="--device cuda, but the Ray cluster has no GPU"):
        run_bench(SWEEP, tmp_path, progress=False, device="cuda", executor=RayExecutor())
    assert not (tmp_path / "runs").exists()


def test_ray_with_jobs_is_refused(tmp_path):
    with pytest.raises(ExecutorConflictError, match="jobs=2 with the ray executor"):
        run_bench(SWEEP, tmp_path, progress=False, jobs=2, executor=RayExecutor())
    result = run_edgewise("bench", "--tasks", "tracr-shift", "--jobs", "2", "--ray", "--out", str(tmp_path))
    assert result.returncode == 2 and "--jobs or --ray" in result.stderr
    assert not (tmp_path / "runs").exists()
