"""Wall time of each method on tracr-reverse (plain graph, 77 edges, resample ablation), the setting in which
auto-circuit 1.0.1 was timed on this machine: median of repeated runs after one warm-up, seeds 0.. in turn.
Prints a table and writes benchmarks/results/method_speed.json. Run it alone on a quiet machine:

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/method_speed.py [--repeats 5] [--task tracr-reverse] [--per-position]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
from pathlib import Path

import torch

from edgewise.methods import discover, method_names
from edgewise.tracr_tasks import get_task

OUT = Path(__file__).parent / "results" / "method_speed.json"
AUTO_CIRCUIT_SECONDS = {"acdc": 1.15, "eap": 0.04, "edge-sp": 4.6}  # auto-circuit 1.0.1, tracr-reverse, plain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="tracr-reverse")
    parser.add_argument("--per-position", action="store_true")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    task = get_task(args.task)
    rows = []
    print(f"{'method':<20}{'median s':>10}{'min s':>8}{'auto-circuit s':>16}{'speed-up':>10}")
    for method in method_names():
        discover(task, method, "resample", args.per_position, seed=0)  # warm-up: caches, allocator
        times = [discover(task, method, "resample", args.per_position, seed=s).seconds for s in range(args.repeats)]
        reference = AUTO_CIRCUIT_SECONDS.get(method) if args.task == "tracr-reverse" and not args.per_position else None
        median = statistics.median(times)
        rows.append({"method": method, "median_seconds": median, "min_seconds": min(times), "seconds": times,
                     "auto_circuit_seconds": reference, "speed_up": reference / median if reference else None})
        print(f"{method:<20}{median:>10.3f}{min(times):>8.3f}{reference or float('nan'):>16.2f}"
              f"{rows[-1]['speed_up'] or float('nan'):>10.1f}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "task": args.task, "graph": "per-position" if args.per_position else "plain", "ablation": "resample",
        "machine": platform.platform(), "processor": platform.processor(), "threads": torch.get_num_threads(),
        "results": rows,
    }, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
