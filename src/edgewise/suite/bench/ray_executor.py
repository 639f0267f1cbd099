"""The bench on a Ray cluster: each (task, graph, ablation) group of a sweep is one Ray task.

A group's task asks for `cpus_per_run` CPUs (and one GPU where the bench's device is CUDA), rebuilds its task on the
worker from its name (the task cards and tracr's compile cache make this cheap; trained and pretrained weights load
there), and streams each run back as it finishes: a `FinishedRun` (the record, its curves and its scores as plain
data) or a `RunFailure`, never a tensor or a model. The driver, which holds the results folder and its lock, writes
each run's files atomically as it arrives, so a killed driver resumes without repeating a finished run.

A worker killed mid-group is retried by Ray (`max_retries`); a streamed task's retry delivers only the runs that
were not yet delivered, and the driver writes each key once. A group whose retries run out has its remaining runs
recorded as failed, with Ray's error. Each record says `executor: ray`, the Ray node's id, the threads it ran on
(`cpus_per_run`) and, as `jobs`, how many runs its node can run at once.

Before any run, entering the executor checks what would otherwise fail late: Ray installed, the address answering,
and every node's Ray, Python, torch and edgewise the driver's (each node is asked by a small pinned task).
"""

from __future__ import annotations

import dataclasses
import socket
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

from tqdm.auto import tqdm

from edgewise.errors import (
    ClusterResourcesError,
    ClusterUnreachableError,
    ClusterVersionError,
    RayNotInstalledError,
    one_line_warnings,
)

from .executors import Executor
from .runner import FinishedRun, RunFailure, run_group, run_groups, run_line, write_outcome
from .sweep import RunSpec

CONNECT_SECONDS = 5.0  # how long the address may take to answer before the bench calls it unreachable
PROBE_SECONDS = 300.0  # how long a node may take to start a worker and import edgewise for the version check


class RayExecutor(Executor):
    """Runs a bench's groups as Ray tasks (see the module).

    Attributes:
        address: the cluster's address (`HOST:PORT`, `ray://HOST:PORT`, `auto`); None: a local cluster. A process
            that has already called `ray.init` runs on that connection.
        num_cpus: a local cluster's CPUs (None: Ray's count, every core).
        temp_dir: a local cluster's folder for its sockets and logs (None: Ray's, /tmp/ray); keep it short, since
            unix socket paths hold about 107 characters.
        cpus_per_run: the CPUs (and torch threads) each group's task takes.
        max_retries: how often Ray starts a group again whose worker died.
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        num_cpus: int | None = None,
        temp_dir: str | Path | None = None,
        cpus_per_run: int = 1,
        max_retries: int = 3,
    ):
        self.address = address or None
        self.num_cpus = num_cpus
        self.temp_dir = temp_dir
        self.cpus_per_run = cpus_per_run
        self.max_retries = max_retries
        self._started = False
        self._slots: dict[str, int] = {}  # runs at once per node id

    def __enter__(self) -> "RayExecutor":
        """Connects to the cluster (or starts a local one) and checks its versions; see the module.

        Returns:
            The executor.

        Raises:
            RayNotInstalledError: Ray cannot be imported.
            ClusterUnreachableError: nothing answers at the address, or Ray there refuses the driver.
            ClusterVersionError: a node's Ray, Python, torch or edgewise differs from the driver's, or it cannot
                import edgewise.
        """
        ray = _import_ray()
        if self.address not in (None, "auto"):
            _check_reachable(self.address)
        if not ray.is_initialized():  # else this process's connection (Ray holds one per process) serves
            self._connect(ray)
        nodes = [node for node in ray.nodes() if node["Alive"]]
        slots = {node["NodeID"]: int(node["Resources"].get("CPU", 0)) // self.cpus_per_run for node in nodes}
        self._slots = {node: n for node, n in slots.items() if n}  # a head without CPUs runs no group
        try:
            _check_versions(ray, nodes)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        """Disconnects from the cluster, stopping a local one it started."""
        if self._started:
            import ray

            ray.shutdown()
            self._started = False

    def _connect(self, ray) -> None:
        """Starts a local cluster (no address) or joins the one at `address`; raises the module's errors."""
        try:
            if self.address is None:
                temp_dir = None if self.temp_dir is None else str(self.temp_dir)
                ray.init(num_cpus=self.num_cpus, _temp_dir=temp_dir, include_dashboard=False)
            else:
                ray.init(address=self.address)
        except (ConnectionError, RuntimeError) as error:
            if "version mismatch" in str(error).lower():
                raise ClusterVersionError(
                    f"the Ray cluster at {self.address} runs another Ray or Python than this driver (Ray "
                    f"{ray.__version__}, Python {sys.version.split()[0]}): {_first_line(error)}. Run the bench from a "
                    "machine (or the head node) with the cluster's versions, or install them here"
                ) from None
            if self.address is None:
                raise ClusterUnreachableError(
                    f"cannot start a local Ray cluster: {_first_line(error)}. See Ray's logs under its temp dir, or "
                    "start one with `ray start --head` and give its address"
                ) from None
            raise ClusterUnreachableError(
                f"cannot join the Ray cluster at {self.address}: {_first_line(error)}. Check the address that "
                "`ray start --head` printed (HOST:6379, or ray://HOST:10001 for Ray Client)"
            ) from None
        self._started = True

    def describe(self) -> str:
        """Returns `ray, N runs at once on M nodes`."""
        return f"ray, {sum(self._slots.values())} runs at once on {len(self._slots)} node(s)"

    def run(self, pending: list[RunSpec], out: Path, bar: tqdm, device: str) -> None:
        """Does the pending runs as one Ray task per group, writing each run's files as it arrives.

        Args:
            pending: the runs not yet finished in `out`.
            out: the results folder.
            bar: the progress bar over the sweep, updated per run.
            device: where the runs' models and inputs go; `cuda...` gives each task one GPU.

        Raises:
            ClusterResourcesError: `device` is CUDA and the cluster has no GPU (its tasks would wait forever).
        """
        import ray

        gpus = 1 if device.startswith("cuda") else 0
        if gpus and ray.cluster_resources().get("GPU", 0) < 1:
            raise ClusterResourcesError(
                f"--device {device}, but the Ray cluster has no GPU: start its nodes on GPU machines (`ray start` "
                "finds their GPUs, or give --num-gpus), or run on the CPU (--device cpu)"
            )
        remote = ray.remote(bench_group).options(
            num_cpus=self.cpus_per_run, num_gpus=gpus, max_retries=self.max_retries
        )
        # each GPU task sees its own GPU as `cuda` (Ray sets CUDA_VISIBLE_DEVICES)
        on_worker = "cuda" if gpus else device
        streams = {}
        for group in run_groups(pending).values():
            stream = remote.remote(group, on_worker, self.cpus_per_run)
            streams[id(stream)] = (stream, group)
        written: set[str] = set()
        while streams:
            (ready,), _ = ray.wait([stream for stream, _ in streams.values()], num_returns=1)
            group = streams[id(ready)][1]
            try:
                outcome = ray.get(next(ready))
            except StopIteration:
                del streams[id(ready)]
                continue
            except ray.exceptions.RayError as error:  # the group's retries ran out: its other runs fail with it
                del streams[id(ready)]
                for spec in group:
                    if spec.key not in written:
                        self._write(out, RunFailure.of(spec, error, self.name, None), written, bar)
                continue
            self._write(out, outcome, written, bar)

    def _write(self, out: Path, outcome: FinishedRun | RunFailure, written: set[str], bar: tqdm) -> None:
        """Writes a run's outcome once (a retried task could deliver it again) and moves the progress bar."""
        if outcome.key in written:
            return
        if isinstance(outcome, FinishedRun):
            record = dataclasses.replace(outcome.record, jobs=self._slots.get(outcome.record.node, 1))
            outcome = dataclasses.replace(outcome, record=record)
        write_outcome(out, outcome)
        written.add(outcome.key)
        bar.set_postfix_str(run_line(outcome))
        bar.update()


def bench_group(group: list[RunSpec], device: str, threads: int) -> Iterator[FinishedRun | RunFailure]:
    """A Ray worker's task: yields each run of one group as it finishes or fails (`run_group`), on `threads` torch
    threads; edgewise's warnings print on one line.

    Args:
        group: the group's runs.
        device: where the models and inputs go on this worker.
        threads: torch's threads (the task's CPUs).

    Yields:
        A FinishedRun or RunFailure per run, in order.
    """
    import ray
    import torch

    warnings.showwarning = one_line_warnings(warnings.showwarning)
    torch.set_num_threads(threads)
    yield from run_group(group, device, "ray", ray.get_runtime_context().get_node_id())


def versions() -> dict[str, str]:
    """Returns this process's Ray, Python, torch and edgewise versions, which driver and nodes must share.

    Returns:
        The versions by package name.
    """
    import ray
    import torch

    import edgewise

    return {
        "ray": ray.__version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "edgewise": edgewise.__version__,
    }


def _import_ray():
    """Returns the ray module, or raises RayNotInstalledError naming the extra to install."""
    try:
        import ray
    except ImportError:
        raise RayNotInstalledError(
            "the bench on Ray needs Ray, which is not installed: pip install 'edgewise[ray]' (on the driver and "
            "every node), or run without --ray (--jobs N runs on this machine's cores)"
        ) from None
    return ray


def _check_reachable(address: str) -> None:
    """Raises ClusterUnreachableError where nothing accepts a connection at the address's host and port."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ClusterUnreachableError(
            f"Ray cluster address {address!r} is not HOST:PORT: give the address `ray start --head` printed "
            "(HOST:6379, or ray://HOST:10001 for Ray Client), or none to start a local cluster"
        )
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_SECONDS).close()
    except OSError as error:
        raise ClusterUnreachableError(
            f"nothing answers at Ray cluster address {address} ({type(error).__name__}: {error}). Start the cluster "
            "there (`ray start --head --port PORT`) or check the address; without an address, --ray starts a local "
            "cluster"
        ) from None


def _check_versions(ray, nodes: list[dict]) -> None:
    """Asks each node, by a task pinned to it, for its versions; raises ClusterVersionError where one differs from
    the driver's or the node cannot import edgewise."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    probe = ray.remote(versions)
    refs = {
        node["NodeID"]: probe.options(
            num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
        ).remote()
        for node in nodes
    }
    mine = versions()
    for node, ref in refs.items():
        try:
            theirs = ray.get(ref, timeout=PROBE_SECONDS)
        except ray.exceptions.RayError as error:
            raise ClusterVersionError(
                f"Ray node {node} cannot run edgewise's bench: {_first_line(error)}. Install this edgewise with its "
                f"Ray extra on every node (pip install 'edgewise[ray]=={mine['edgewise']}')"
            ) from None
        differ = [
            f"{name} {theirs.get(name)} there, {version} here"
            for name, version in mine.items()
            if theirs.get(name) != version
        ]
        if differ:
            raise ClusterVersionError(
                f"Ray node {node} differs from this driver: {'; '.join(differ)}. Install the same versions on the "
                "driver and every node (records are comparable only from the same code)"
            )


def _first_line(error: BaseException) -> str:
    """Returns the first non-empty line of an error's message."""
    return next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)
