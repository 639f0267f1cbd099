"""Every method on every tracr task: AUROC against the compiler's ground truth and against the effective ground truth
under the ablation (the compiler's edges that change the outputs; see README), faithfulness of the circuit at the
effective ground truth's size, and wall time. Prints a table and writes benchmarks/results/methods.json.

    .venv/bin/python benchmarks/methods.py [--tasks tracr-reverse tracr-proportion] [--methods eap acdc]
                                           [--per-position] [--ablation resample] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import torch

from edgewise.circuit import circuit_from_scores
from edgewise.evaluate import effective_ground_truth, faithfulness, roc_auc
from edgewise.methods import discover, method_names
from edgewise.tracr_tasks import get_task, task_names

OUT = Path(__file__).parent / "results" / "methods.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="*", default=task_names())
    parser.add_argument("--methods", nargs="*", default=method_names())
    parser.add_argument("--graphs", nargs="*", default=["plain", "per-position"])
    parser.add_argument("--ablation", default="resample")
    parser.add_argument("--seeds", nargs="*", type=int, default=[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    records = []
    print(f"{'task':<22}{'graph':<13}{'method':<20}{'seed':>5}{'AUROC':>7}{'eff.AUROC':>10}{'faithful@k':>11}"
          f"{'seconds':>9}")
    for name in args.tasks:
        task = get_task(name)
        for graph_kind in args.graphs:
            per_position = graph_kind == "per-position"
            for method in args.methods:
                for seed in args.seeds:
                    scores = discover(task, method, args.ablation, per_position, seed)
                    truth = task.ground_truth_edges(scores.graph)
                    ablated = task.ablation(scores.graph, args.ablation)
                    effective = effective_ground_truth(task, scores.graph, ablated)
                    circuit = circuit_from_scores(scores, top_k=len(effective))
                    record = {
                        "task": name, "graph": graph_kind, "method": method, "seed": seed,
                        "ablation": args.ablation, "n_edges": scores.graph.n_edges, "n_true": len(truth),
                        "n_effective": len(effective), "auroc": roc_auc(scores, truth),
                        "auroc_effective": roc_auc(scores, effective) if len(effective) < scores.graph.n_edges
                        else float("nan"),
                        "faithfulness_at_effective_size": faithfulness(task, scores.graph, ablated, set(circuit.edges)),
                        "seconds": scores.seconds, "hyperparameters": scores.hyperparameters,
                    }
                    records.append(record)
                    _write(args.out, records)  # after every run: an interrupted benchmark keeps what it measured
                    print(f"{name:<22}{graph_kind:<13}{method:<20}{seed:>5}{record['auroc']:>7.3f}"
                          f"{record['auroc_effective']:>10.3f}{record['faithfulness_at_effective_size']:>11.3f}"
                          f"{record['seconds']:>9.2f}", flush=True)
    print(f"wrote {args.out}")


def _write(path: Path, records: list[dict]) -> None:
    """Writes the records so far, atomically: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"machine": platform.platform(), "threads": torch.get_num_threads(),
                               "results": records}, indent=1))
    tmp.replace(path)


if __name__ == "__main__":
    main()
