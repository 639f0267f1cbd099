"""Ray's overhead on a bench: the same small sweep with `--jobs 2` (two worker processes) and on a local 2-CPU Ray
cluster, and the sweep's projected time on N Ray workers from the measured per-run times. Prints a table and writes
benchmarks/results/ray_overhead.json.

    wall_s                 the sweep's wall time, the median of --repeats alternating sweeps: the bench's own, after
                           the cluster is up (Ray), or from the start (jobs: its workers start inside it)
    cluster_start_s        Ray only: starting the local cluster and checking its versions (once per bench)
    worker_s_per_run       2 x wall_s / runs: the worker-seconds one run costs, its group's task loading, ablation and
                           truths included
    ray_overhead_per_run_s worker_s_per_run on Ray minus with jobs: what Ray adds to each run (scheduling, records
                           sent back), less what it saves: its workers start once with the cluster and are reused,
                           while --jobs starts its worker processes (and they import torch) inside every bench
    projected_s[N]         cluster_start_s + max(the longest group, runs x worker_s_per_run / N): this mix of runs on
                           N Ray workers, for this sweep's runs and for 500 (the families table's size)

Run it on a quiet machine: other work on the cores inflates both timings (the JSON keeps the load average at the
end). The tasks' compile caches are filled first, so neither side pays tracr's compiler.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import torch

from edgewise.suite.bench import RayExecutor, Sweep, run_bench
from edgewise.suite.tasks import get_task

OUT = Path(__file__).parent / "results" / "ray_overhead.json"
SWEEP = Sweep(("tracr-shift", "tracr-hist", "tracr-reverse", "tracr-sort"), ("eap", "acdc", "random"))
WORKERS = (1, 2, 8, 32, 128)
LARGE_SWEEP = 500  # runs: the families table's size


def _commit() -> str | None:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() or None


def _timed_bench(out: Path, **options) -> tuple[float, list]:
    start = time.perf_counter()
    records = run_bench(SWEEP, out, progress=False, **options)
    return time.perf_counter() - start, records


def _projection(wall_s: float, cluster_start_s: float, records: list, runs: int) -> dict[int, float]:
    """Returns the projected seconds on N workers of `runs` runs of this sweep's mix (see the module)."""
    per_run = 2 * wall_s / len(records)
    groups: dict[tuple, float] = {}
    for r in records:  # a group runs on one worker: no sweep finishes before its longest group
        key = (r.task, str(r.graph), str(r.ablation))
        groups[key] = groups.get(key, 0.0) + (r.seconds or 0.0) + (r.evaluation_seconds or 0.0)
    longest = max(groups.values())
    return {n: cluster_start_s + max(longest, runs * per_run / n) for n in WORKERS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="sweeps per executor, alternating; medians reported")
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # no auth token written to the home folder
    torch.set_num_threads(2)  # the jobs' workers share it: one thread each, as Ray's one-CPU tasks run
    for task in SWEEP.tasks:
        get_task(task)  # fills the compile cache
    import ray

    walls: dict[str, list[float]] = {"jobs 2": [], "ray, 2 CPUs": []}
    with tempfile.TemporaryDirectory(prefix="ew-ray-") as folder:
        start = time.perf_counter()
        ray.init(num_cpus=2, _temp_dir=str(Path(folder) / "ray"), include_dashboard=False, log_to_driver=False)
        with RayExecutor():  # its version check, which starts a worker on the cluster this process started
            cluster_start = time.perf_counter() - start
        try:
            for repeat in range(args.repeats):  # alternating, so that other load on the machine falls on both
                wall, jobs_records = _timed_bench(Path(folder) / f"jobs{repeat}", jobs=2)
                walls["jobs 2"].append(wall)
                wall, ray_records = _timed_bench(Path(folder) / f"ray{repeat}", executor=RayExecutor())
                walls["ray, 2 CPUs"].append(wall)
        finally:
            ray.shutdown()
    n = len(jobs_records)
    rows = {
        name: {
            "wall_s": statistics.median(times),
            "walls_s": times,
            "cluster_start_s": cluster_start if name.startswith("ray") else 0.0,
            "worker_s_per_run": 2 * statistics.median(times) / n,
        }
        for name, times in walls.items()
    }
    overhead = rows["ray, 2 CPUs"]["worker_s_per_run"] - rows["jobs 2"]["worker_s_per_run"]
    ray_wall = rows["ray, 2 CPUs"]["wall_s"]
    projected = {runs: _projection(ray_wall, cluster_start, ray_records, runs) for runs in (n, LARGE_SWEEP)}
    groups = len({(r.task, str(r.graph), str(r.ablation)) for r in jobs_records})
    print(f"{n} runs in {groups} groups, median of {args.repeats} sweeps each")
    print(f"{'executor':<14}{'wall s':>9}{'start s':>9}{'worker s/run':>14}")
    for name, row in rows.items():
        print(f"{name:<14}{row['wall_s']:>9.1f}{row['cluster_start_s']:>9.1f}{row['worker_s_per_run']:>14.2f}")
    print(
        f"Ray's overhead per run: {overhead:+.2f} worker-seconds, and {cluster_start:.1f} s once to start the cluster"
    )
    print(f"{'runs':<8}" + "".join(f"{f'{w} workers':>13}" for w in WORKERS))
    for runs, seconds in projected.items():
        print(f"{runs:<8}" + "".join(f"{seconds[w]:>12.1f}s" for w in WORKERS))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(
        json.dumps(
            {
                "sweep": {"tasks": SWEEP.tasks, "methods": SWEEP.methods, "runs": n},
                "repeats": args.repeats,
                "rows": rows,
                "ray_overhead_per_run_s": overhead,
                "projected_s": {str(runs): {str(w): s for w, s in by.items()} for runs, by in projected.items()},
                "machine": platform.platform(),
                "cpus": os.cpu_count(),
                "load_average": os.getloadavg(),
                "python": platform.python_version(),
                "torch": torch.__version__,
                "ray": ray.__version__,
                "commit": _commit(),
                "date": datetime.date.today().isoformat(),
            },
            indent=1,
        )
    )
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
