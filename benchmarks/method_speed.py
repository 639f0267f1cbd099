"""Wall time of each method on tracr-reverse (plain graph, 77 edges, resample ablation), the setting in which
auto-circuit 1.0.1 was timed on this machine: median of repeated runs after one warm-up, seeds 0.. in turn.
Prints a table and writes benchmarks/results/method_speed[-TASK-DEVICE].json. Run it alone on a quiet machine:

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/method_speed.py [--repeats 5] [--task tracr-reverse] [--per-position]
                                                                  [--device cuda] [--methods eap edge-sp]

`--task random-6l` is a random 6-layer d256 LayerNorm+GQA model (1936 edges, 32 prompts of 16 tokens, KL on the
last token): no tracr needed, for GPU timings.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
from pathlib import Path

import torch
from patching_overhead import random_case  # benchmarks/ is the script's folder, so it is on the path

from edgewise.methods import discover, method_names
from edgewise.tasks import METRICS, Task

OUT = Path(__file__).parent / "results" / "method_speed.json"
AUTO_CIRCUIT_SECONDS = {"acdc": 1.15, "eap": 0.04, "edge-sp": 4.6}  # auto-circuit 1.0.1, tracr-reverse, plain


def random_6l_task() -> Task:
    """Returns the random 6-layer task (see the module docstring): patching_overhead's random model and tokens."""
    model, clean, corrupt = random_case(rows=32, length=16)
    scored = torch.zeros(32, 16, dtype=torch.bool)
    scored[:, -1] = True
    return Task("random-6l", model, clean, corrupt, METRICS["kl"], scored)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="tracr-reverse")
    parser.add_argument("--per-position", action="store_true")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--methods", nargs="*", default=method_names())
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.task == "random-6l":
        task = random_6l_task()
    else:
        from edgewise.suite.tasks import get_task

        task = get_task(args.task)
    task = task.to(args.device)
    out = args.out or (
        OUT
        if (args.task, args.device) == ("tracr-reverse", "cpu")
        else OUT.with_name(f"method_speed-{args.task}-{args.device}.json")
    )
    rows = []
    print(f"{'method':<20}{'median s':>10}{'min s':>8}{'auto-circuit s':>16}{'speed-up':>10}")
    for method in args.methods:
        discover(task, method, "resample", args.per_position, seed=0)  # warm-up: caches, allocator
        times = [discover(task, method, "resample", args.per_position, seed=s).seconds for s in range(args.repeats)]
        reference = AUTO_CIRCUIT_SECONDS.get(method) if args.task == "tracr-reverse" and not args.per_position else None
        median = statistics.median(times)
        rows.append(
            {
                "method": method,
                "median_seconds": median,
                "min_seconds": min(times),
                "seconds": times,
                "auto_circuit_seconds": reference,
                "speed_up": reference / median if reference else None,
            }
        )
        print(
            f"{method:<20}{median:>10.3f}{min(times):>8.3f}{reference or float('nan'):>16.2f}"
            f"{rows[-1]['speed_up'] or float('nan'):>10.1f}",
            flush=True,
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    gpu = torch.cuda.get_device_name() if args.device.startswith("cuda") else None
    out.write_text(
        json.dumps(
            {
                "task": args.task,
                "graph": "per-position" if args.per_position else "plain",
                "ablation": "resample",
                "device": args.device,
                "gpu": gpu,
                "machine": platform.platform(),
                "processor": platform.processor(),
                "threads": torch.get_num_threads(),
                "results": rows,
            },
            indent=1,
        )
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
