"""Time and memory per edge-SP step on the largest feature graphs edgewise ships, with and without the attribution
pre-filter (EAP's top N edges get gates, the rest stay ablated), on the dense and on the sparse patching forward.

Each case runs edge-sp for a fixed number of steps on one thread and reports seconds per step and the process's
peak resident memory above its level before the run (sampled, approximate), plus the graph's size. Prints a table
and writes benchmarks/results/feature_scale.json.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/feature_scale.py [--steps 20]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from edgewise.methods import discover
from edgewise.patching import task_ablation
from edgewise.suite.bench.memory import PeakMemory
from edgewise.suite.tasks import get_task

OUT = Path(__file__).parent / "results" / "feature_scale.json"
CASES = [  # (task, per_position, candidates, patching): the largest oracle feature graphs, plain and per position
    ("tracr-dyck2", False, None, "dense"),
    ("tracr-dyck2", False, 500, "dense"),
    ("tracr-dyck2", False, 500, "sparse"),
    ("tracr-dyck2", True, None, "dense"),
    ("tracr-dyck2", True, 500, "dense"),
    ("tracr-dyck2", True, 500, "sparse"),
    ("tracr-sort-freq", True, None, "dense"),
]


def measure(task_name: str, per_position: bool, candidates: int | None, patching: str, steps: int) -> dict:
    """Returns one case's graph size, seconds per SP step and peak memory (MiB above the start)."""
    task = get_task(task_name)
    graph = task.graph(per_position=per_position, features="oracle")
    ablated = task_ablation(task, graph, "resample")
    discover(task, "edge-sp", graph=graph, ablated=ablated, steps=2)  # warm-up: first-call costs out of the timing
    with PeakMemory() as memory:
        start = time.perf_counter()
        discover(task, "edge-sp", graph=graph, ablated=ablated, steps=steps, candidates=candidates, patching=patching)
        seconds = time.perf_counter() - start
    return {
        "task": task_name,
        "per_position": per_position,
        "candidates": candidates,
        "patching": patching,
        "n_edges": graph.n_edges,
        "n_writers": len(graph.writers),
        "batch": list(task.clean.shape),
        "steps": steps,
        "seconds_per_step": seconds / steps,
        "peak_memory_mib": memory.peak_mib,
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    rows = [measure(*case, args.steps) for case in CASES]
    print("| task | graph | feature edges | writers | gated edges | patching | s / step | peak MiB |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        graph = "per-position" if r["per_position"] else "plain"
        print(
            f"| {r['task']} | {graph}/oracle | {r['n_edges']} | {r['n_writers']} | "
            f"{r['candidates'] or r['n_edges']} | {r['patching']} | {r['seconds_per_step']:.3f} | "
            f"{r['peak_memory_mib']:.0f} |"
        )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(rows, indent=2))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
