"""Edge SP against attribution on a real language model: SmolLM2-135M's IOI heads/MLPs graph (70,651 edges).

Each method fits on the discovery prompts of `smollm2-ioi`; its scores are then scored on the held-out prompts (the
same graph, the held-out batch's resample ablation): MIB's faithfulness curve over circuit sizes (a log-spaced subset
of them), the edges a top-k circuit needs for 80%, 90% and 95% faithfulness, CPR and CMD, and for edge SP its own
circuit (the gates above 0.5) with its held-out faithfulness. Seconds and peak memory cover the method alone. Prints
a table and writes benchmarks/results/lm_sp.json and docs/img/lm-sp-faithfulness.{png,svg}.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/lm_sp.py [--steps 200] [--n-samples 1] [--sizes 41]
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/lm_sp.py --graph features [--candidates 20000]

Edge SP here runs one sample a step (auto-circuit's setting; the default 4 quadruples a step on this graph) for
`--steps` steps at edgewise's other defaults (lambda 0.1, lr 0.02, gates from 0.9), once from the uniform start and
once warm-started from EAP's scores (`init=eap`). With `--graph features` the graph is SmolLM2's SAE-feature graph
(TopK SAEs on MLPs 6, 8 and 10 trained here, as in benchmarks/ioi_features.py; 472,245 edges), where edge SP trains
gates on EAP's top `--candidates` edges (every other edge ablated) on the sparse forward, warm-started from EAP;
that run writes benchmarks/results/lm_sp_features.json and docs/img/lm-sp-features-faithfulness.{png,svg}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

from edgewise.evaluate import cmd, cpr, edges_to_reach, faithfulness, faithfulness_curve  # noqa: E402
from edgewise.methods import discover, method_circuit  # noqa: E402
from edgewise.patching import task_ablation  # noqa: E402
from edgewise.report import plot_faithfulness_curves  # noqa: E402
from edgewise.suite.bench import PeakMemory  # noqa: E402
from edgewise.suite.tasks import get_task  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from ioi_features import ioi_dictionaries  # noqa: E402

RESULTS = Path(__file__).parent / "results"
IMAGES = Path(__file__).parent.parent / "docs" / "img"
LEVELS = (0.8, 0.9, 0.95)


def runs(steps: int, n_samples: int, candidates: int | None, target: int | None) -> dict[str, tuple[str, dict]]:
    """Returns the runs by label: (method, hyperparameters); on the feature graph (candidates given), SP's one run,
    with the Lagrangian's target size when `target` is given."""
    sp = {"steps": steps, "n_samples": n_samples}
    if candidates:
        label = f"edge-sp (init eap, {candidates} candidates" + (f", target {target})" if target else ")")
        sparse = {**sp, "init": "eap", "candidates": candidates, "patching": "sparse"}
        return {
            "eap": ("eap", {}),
            "eap-ig-inputs": ("eap-ig-inputs", {}),
            label: ("edge-sp", {**sparse, "target_edges": target} if target else sparse),
        }
    return {
        "eap": ("eap", {}),
        "eap-ig-inputs": ("eap-ig-inputs", {}),
        "edge-sp": ("edge-sp", sp),
        "edge-sp (init eap)": ("edge-sp", {**sp, "init": "eap"}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--n-samples", type=int, default=1)
    parser.add_argument("--sizes", type=int, default=41, help="circuit sizes on each faithfulness curve")
    parser.add_argument("--graph", choices=["heads", "features"], default="heads")
    parser.add_argument("--candidates", type=int, default=20000, help="edges SP gates on the feature graph")
    parser.add_argument("--target-edges", type=int, help="the Lagrangian's circuit size for SP on the feature graph")
    args = parser.parse_args()
    task, held_out = get_task("smollm2-ioi"), get_task("smollm2-ioi", held_out=True)
    features = args.graph == "features"
    if features:
        dictionaries, _, _ = ioi_dictionaries(task, ["MLP 6", "MLP 8", "MLP 10"], 40)
        for t in (task, held_out):
            t.dictionaries["sae-here"] = dictionaries
    graph = task.graph(features="sae-here" if features else None)
    ablated = task_ablation(task, graph, "resample")
    held_out_ablated = task_ablation(held_out, graph, "resample")
    out = RESULTS / ("lm_sp_features.json" if features else "lm_sp.json")
    plot = IMAGES / ("lm-sp-features-faithfulness" if features else "lm-sp-faithfulness")
    results, curves = [], {}
    for label, (method, hyperparameters) in runs(
        args.steps, args.n_samples, features and args.candidates, args.target_edges
    ).items():
        with PeakMemory() as memory:
            scores = discover(task, method, graph=graph, ablated=ablated, progress=True, **hyperparameters)
        curve = faithfulness_curve(held_out, scores, held_out_ablated, n_sampled=args.sizes)
        curves[label] = curve
        row = {
            "label": label,
            "method": method,
            "hyperparameters": scores.hyperparameters,
            "seconds": scores.seconds,
            "peak_memory_mib": memory.peak_mib,
            **{f"edges_to_{round(level * 100)}": edges_to_reach(curve, level) for level in LEVELS},
            "cpr": cpr(curve),
            "cmd": cmd(curve),
        }
        if method == "edge-sp":  # SP's own circuit: its open gates
            circuit = method_circuit(scores, 0)
            row["circuit_edges"] = len(circuit)
            row["circuit_faithfulness"] = faithfulness(held_out, graph, held_out_ablated, set(circuit.edges))
        results.append(row)
        print(json.dumps(row), flush=True)
    record = {
        "task": "smollm2-ioi",
        "graph": str(graph),
        "graph_kind": "SAE features (MLPs 6, 8, 10; trained here)" if features else "heads/MLPs",
        "n_edges": graph.n_edges,
        "ablation": "resample",
        "discovery_prompts": task.clean.shape[0],
        "held_out_prompts": held_out.clean.shape[0],
        "curve_sizes": len(next(iter(curves.values())).sizes),
        "device": "cpu",
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "torch": torch.__version__,
        "results": results,
    }
    out.write_text(json.dumps(record, indent=1))
    plot_faithfulness_curves(curves, plot, f"smollm2-ioi, held-out prompts ({graph.n_edges} edges, resample)")
    print("| method | edges for 80% | 90% | 95% | CPR | CMD | own circuit (f) | seconds | peak MiB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        own = f"{r['circuit_edges']} ({r['circuit_faithfulness']:.2f})" if "circuit_edges" in r else "-"
        print(
            f"| {r['label']} | {r['edges_to_80']} | {r['edges_to_90']} | {r['edges_to_95']} | {r['cpr']:.3f} | "
            f"{r['cmd']:.3f} | {own} | {r['seconds']:.0f} | {r['peak_memory_mib']:.0f} |"
        )
    print(f"wrote {out} and {plot}.png/.svg")


if __name__ == "__main__":
    main()
