"""Sparse patching: forward + backward time of `SparseMasking` (500 gated edges, every other edge ablated, as
subnetwork probing after an attribution pre-filter trains them) against the dense `patched_forward` with every edge
in the mask taking gradients, on tracr-dyck2's per-position oracle feature graph (28,620 edges), one CPU thread.
Beside them, the model's own forward + backward with the writers split into features (no patching): the floor any
patching forward pays. Prints a table and writes benchmarks/results/sparse_patching.json.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/sparse_patching.py [--repeats 15] [--gated 500]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

from edgewise.graph import node_outputs  # noqa: E402
from edgewise.patching import SparseMasking, patched_forward, task_ablation  # noqa: E402
from edgewise.suite.tasks import get_task  # noqa: E402

OUT = Path(__file__).parent / "results" / "sparse_patching.json"


def _median_seconds(*fns, repeats: int) -> list[float]:
    """Returns each fn's median wall time after one warm-up, the fns taking turns so drift falls on all alike."""
    times = [[] for _ in fns]
    for fn in fns:
        fn()
    for _ in range(repeats):
        for fn, own in zip(fns, times):
            start = time.perf_counter()
            fn()
            own.append(time.perf_counter() - start)
    return [statistics.median(own) for own in times]


def main(repeats: int, n_gated: int) -> dict:
    torch.set_num_threads(1)
    task = get_task("tracr-dyck2")
    graph = task.graph(per_position=True, features="oracle")
    ablated = task_ablation(task, graph, "resample")
    for p in task.model.parameters():
        p.requires_grad_(False)  # methods train masks, not weights
    gen = torch.Generator().manual_seed(0)
    gated = torch.randperm(graph.n_edges, generator=gen)[:n_gated]
    start = time.perf_counter()
    masking = SparseMasking(task.adapter, graph, ablated, gated, torch.zeros(graph.n_edges))
    build = time.perf_counter() - start
    gates = torch.rand(n_gated, generator=gen).requires_grad_(True)
    mask = masking.full_mask(gates.detach())

    def sparse():
        gates.grad = None
        masking.forward(task.clean, gates).pow(2).sum().backward()

    def dense():
        full = mask.clone().requires_grad_(True)
        patched_forward(task.adapter, graph, task.clean, ablated, full).pow(2).sum().backward()

    leaf = torch.zeros(1, requires_grad=True)
    first = next(g.hook for g in graph.groups if g.kind == "writer")

    def plain():
        def split(group):
            def hook(value, hook):
                node_outputs(group, graph.dictionaries, value)
                return value + leaf if group.hook == first else value  # a leaf, so that backward runs through

            return hook

        with task.adapter.hooks([(g.hook, split(g)) for g in graph.groups if g.kind == "writer"]):
            task.adapter.forward(task.clean).pow(2).sum().backward()

    t_sparse, t_dense, t_plain = _median_seconds(sparse, dense, plain, repeats=repeats)
    record = {
        "task": "tracr-dyck2",
        "graph": repr(graph),
        "n_edges": graph.n_edges,
        "n_gated": n_gated,
        "fixed": "every non-gated edge ablated (resample)",
        "batch": list(task.clean.shape),
        "threads": torch.get_num_threads(),
        "repeats": repeats,
        "build_s": build,
        "sparse_s": t_sparse,
        "dense_s": t_dense,
        "plain_s": t_plain,
        "sparse_over_dense": t_sparse / t_dense,
        "plain_over_dense": t_plain / t_dense,
        "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__,
    }
    print(f"{graph}, {n_gated} gated, batch {tuple(task.clean.shape)}, forward + backward, median of {repeats}")
    print(f"{'path':<40}{'ms':>10}{'/ dense':>10}")
    for name, t in [
        ("dense patched_forward (all edges)", t_dense),
        (f"SparseMasking ({n_gated} gated)", t_sparse),
        ("plain forward, writers split (floor)", t_plain),
    ]:
        print(f"{name:<40}{1000 * t:>10.1f}{t / t_dense:>10.2f}")
    print(f"SparseMasking build (once per run): {1000 * build:.1f} ms")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(record, indent=2) + "\n")
    return record


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--gated", type=int, default=500)
    args = parser.parse_args()
    main(args.repeats, args.gated)
