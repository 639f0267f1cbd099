"""What an edge-SP step costs on SmolLM2-135M: the masked forward + backward with every edge of the IOI heads/MLPs graph
gated (70,651 edges, the dense `patched_forward`), against the sparse forward (`SparseMasking`) with 20,000 edges gated
on the SAE-feature graph of the same model (473,209 edges: TopK SAEs on MLPs 6, 8 and 10 trained here, as in
benchmarks/ioi_features.py) and on the heads/MLPs graph, every other edge ablated, as SP after an attribution
pre-filter runs (the gated edges are EAP's top 20,000 on each graph). One CPU thread; the cases take turns, median of
`--repeats`. Prints a table and writes benchmarks/results/lm_step_cost.json.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/lm_step_cost.py [--repeats 5] [--gated 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

from edgewise.methods import discover  # noqa: E402
from edgewise.patching import SparseMasking, patched_forward, task_ablation  # noqa: E402
from edgewise.suite.bench import PeakMemory  # noqa: E402
from edgewise.suite.tasks import get_task  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from ioi_features import ioi_dictionaries  # noqa: E402

OUT = Path(__file__).parent / "results" / "lm_step_cost.json"


def _loss(logits: torch.Tensor) -> torch.Tensor:
    """A scalar of the logits that every case backpropagates (the step's cost does not depend on which)."""
    return logits[:, -1].logsumexp(-1).sum()


def main(repeats: int, n_gated: int) -> dict:
    torch.set_num_threads(1)
    task = get_task("smollm2-ioi")
    for p in task.model.parameters():
        p.requires_grad_(False)  # SP trains masks, not weights
    mlps = ["MLP 6", "MLP 8", "MLP 10"]
    dictionaries, _, _ = ioi_dictionaries(task, mlps, 40)
    task.dictionaries["sae-here"] = dictionaries
    heads = task.graph()
    features = task.graph(features="sae-here")
    cases, builds = {}, {}

    full = torch.full((heads.n_edges,), 0.9)
    heads_ablated = task_ablation(task, heads, "resample")

    def dense():
        mask = full.clone().requires_grad_(True)
        _loss(patched_forward(task.adapter, heads, task.clean, heads_ablated, mask)).backward()

    cases[f"heads/MLPs, dense, all {heads.n_edges} edges gated"] = dense
    for name, graph in (("features", features), ("heads/MLPs", heads)):
        ablated = heads_ablated if graph is heads else task_ablation(task, graph, "resample")
        top = discover(task, "eap", graph=graph, ablated=ablated).scores.abs().topk(n_gated).indices
        start = time.perf_counter()
        masking = SparseMasking(task.adapter, graph, ablated, top, torch.zeros(graph.n_edges))
        builds[name] = time.perf_counter() - start
        gates = torch.full((n_gated,), 0.9, requires_grad=True)

        def sparse(masking=masking, gates=gates):
            gates.grad = None
            _loss(masking.forward(task.clean, gates)).backward()

        cases[f"{name} ({graph.n_edges} edges), sparse, {n_gated} gated"] = sparse
    seconds, memory = {}, {}
    for label, fn in cases.items():  # warm-up, and each case's peak memory
        with PeakMemory() as peak:
            fn()
        memory[label] = peak.peak_mib
        seconds[label] = []
    for _ in range(repeats):
        for label, fn in cases.items():
            start = time.perf_counter()
            fn()
            seconds[label].append(time.perf_counter() - start)
    base = next(iter(cases))
    rows = [
        {
            "case": label,
            "seconds": statistics.median(times),
            "over_dense": statistics.median(times) / statistics.median(seconds[base]),
            "peak_memory_mib": memory[label],
        }
        for label, times in seconds.items()
    ]
    record = {
        "task": "smollm2-ioi",
        "batch": list(task.clean.shape),
        "heads_graph_edges": heads.n_edges,
        "feature_graph_edges": features.n_edges,
        "feature_mlps": mlps,
        "n_gated": n_gated,
        "gated": "EAP's top edges on each graph; every other edge ablated (resample)",
        "step": "masked forward + backward to the gates",
        "build_seconds": builds,
        "repeats": repeats,
        "rows": rows,
        "device": "cpu",
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "torch": torch.__version__,
    }
    print(f"smollm2-ioi, batch {tuple(task.clean.shape)}, forward + backward, median of {repeats}, one thread")
    print(f"{'case':<62}{'s':>8}{'/ dense':>9}{'peak MiB':>10}")
    for r in rows:
        print(f"{r['case']:<62}{r['seconds']:>8.2f}{r['over_dense']:>9.2f}{r['peak_memory_mib']:>10.0f}")
    print("SparseMasking build (once per run): " + ", ".join(f"{k} {v:.1f} s" for k, v in builds.items()))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(record, indent=2) + "\n")
    return record


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--gated", type=int, default=20000)
    args = parser.parse_args()
    main(args.repeats, args.gated)
