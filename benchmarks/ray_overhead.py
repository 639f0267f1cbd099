"""Ray's overhead on a bench: the same small sweep with `--jobs 2` (two worker processes) and on a local 2-CPU Ray
cluster, and the sweep's projected time on N Ray workers from the measured per-run times. Prints a table and writes
benchmarks/results/ray_overhead.json.

    jobs 2                 `run_bench(jobs=2)`: two worker processes, started inside the bench (as --jobs does)
    ray, new cluster       a local 2-CPU cluster started for the sweep (as --ray without an address does): its start
                           (ray.init and the version check, which starts one worker) apart, then the sweep
    ray, warm cluster      a second sweep on that cluster, whose workers have already imported torch and edgewise
    worker_s_per_run       2 x wall_s / runs: the worker-seconds one run costs, its group's task loading, ablation and
                           truths included
    ray_overhead_per_run_s worker_s_per_run on a new cluster minus with jobs (and with the start spread over the runs)
    projected_s[N]         start + max(the longest group, runs x worker_s_per_run / N) on a new cluster: this mix of
                           runs on N Ray workers, for this sweep's runs and for 500 (the families table's size); a
                           group's length is its runs' method and scoring seconds (its task loading left out)

Each round runs the three in turn, and the medians of --repeats rounds are reported.
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


def _ray_sweeps(folder: Path) -> tuple[float, float, float, list]:
    """Starts a local 2-CPU cluster, runs the sweep on it twice (its workers cold, then warm) and stops it; returns
    the start's seconds, both sweeps' and the first sweep's records."""
    import ray

    start = time.perf_counter()
    ray.init(num_cpus=2, _temp_dir=str(folder / "ray"), include_dashboard=False, log_to_driver=False)
    try:
        with RayExecutor():  # its version check, which starts a worker on the cluster this process started
            started = time.perf_counter() - start
        cold, records = _timed_bench(folder / "cold", executor=RayExecutor())
        warm, _ = _timed_bench(folder / "warm", executor=RayExecutor())
    finally:
        ray.shutdown()
    return started, cold, warm, records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="rounds of the three, alternating; medians reported")
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # no auth token written to the home folder
    torch.set_num_threads(2)  # the jobs' workers share it: one thread each, as Ray's one-CPU tasks run
    for task in SWEEP.tasks:
        get_task(task)  # fills the compile cache
    import ray

    times: dict[str, list[float]] = {name: [] for name in ("jobs", "start", "cold", "warm")}
    with tempfile.TemporaryDirectory(prefix="ew-ray-") as folder:
        for repeat in range(args.repeats):  # alternating, so that other load on the machine falls on all of them
            wall, records = _timed_bench(Path(folder) / f"jobs{repeat}", jobs=2)
            times["jobs"].append(wall)
            for name, value in zip(("start", "cold", "warm"), _ray_sweeps(Path(folder) / f"ray{repeat}")):
                times[name].append(value)
    median = {name: statistics.median(values) for name, values in times.items()}
    n = len(records)
    rows = {
        "jobs 2": {"wall_s": median["jobs"], "cluster_start_s": 0.0, "walls_s": times["jobs"]},
        "ray, new cluster": {"wall_s": median["cold"], "cluster_start_s": median["start"], "walls_s": times["cold"]},
        "ray, warm cluster": {"wall_s": median["warm"], "cluster_start_s": 0.0, "walls_s": times["warm"]},
    }
    for row in rows.values():
        row["worker_s_per_run"] = 2 * row["wall_s"] / n
    overhead = rows["ray, new cluster"]["worker_s_per_run"] - rows["jobs 2"]["worker_s_per_run"]
    overhead_with_start = overhead + 2 * median["start"] / n
    projected = {runs: _projection(median["cold"], median["start"], records, runs) for runs in (n, LARGE_SWEEP)}
    groups = len({(r.task, str(r.graph), str(r.ablation)) for r in records})
    print(f"{n} runs in {groups} groups; medians of {args.repeats} rounds")
    print(f"{'executor':<19}{'wall s':>8}{'start s':>9}{'worker s/run':>14}")
    for name, row in rows.items():
        print(f"{name:<19}{row['wall_s']:>8.1f}{row['cluster_start_s']:>9.1f}{row['worker_s_per_run']:>14.2f}")
    print(
        f"Ray's overhead per run over --jobs 2: {overhead:+.2f} worker-seconds; {overhead_with_start:+.2f} with the "
        "cluster's start spread over this sweep's runs"
    )
    print(
        f"projected on a new cluster, this sweep's mix of runs:\n{'runs':<8}"
        + "".join(f"{f'{w} workers':>13}" for w in WORKERS)
    )
    for runs, seconds in projected.items():
        print(f"{runs:<8}" + "".join(f"{seconds[w]:>12.1f}s" for w in WORKERS))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(
        json.dumps(
            {
                "sweep": {"tasks": SWEEP.tasks, "methods": SWEEP.methods, "runs": n, "groups": groups},
                "repeats": args.repeats,
                "rows": rows,
                "ray_overhead_per_run_s": overhead,
                "ray_overhead_per_run_with_start_s": overhead_with_start,
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
