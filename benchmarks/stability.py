"""Bootstrap stability of every method on every family: how much each method's circuit moves when it is refitted on
resamples of the same discovery inputs (mean pairwise Jaccard overlap, with a 95% interval), and how faithful the
consensus circuit (edges a majority of refits chose) is on held-out inputs.

Resumable: each (task, method, ablation) is one entry of the JSON, written as soon as it finishes; a rerun skips the
entries it finds. Prints a table and writes benchmarks/results/stability.json.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/stability.py [--refits 10] [--tasks ...] [--methods ...]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time
from datetime import date
from pathlib import Path

import torch

from edgewise.evaluate import bootstrap_stability
from edgewise.outputs import write_text
from edgewise.suite.tasks import get_task, held_out_size

OUT = Path(__file__).parent / "results" / "stability.json"
# a task per family, and the ablations each is run under (tracr: the goal's two)
SETTINGS = (
    ("tracr", "tracr-reverse", ("resample", "zero")),
    ("tracr", "tracr-proportion", ("resample", "zero")),
    ("tracr", "tracr-hist", ("resample", "zero")),
    ("tracr", "tracr-sort", ("resample", "zero")),
    ("siit", "siit-tracr-hist", ("resample",)),
    ("induction", "induction", ("resample",)),
    ("redundant", "tracr-redundant-or", ("resample",)),
    ("compressed", "tracr-reverse-compressed", ("resample",)),
    ("smollm2", "smollm2-ioi", ("resample",)),
)
METHODS = (
    "edge-sp",
    "edge-sp (init eap)",
    "edge-sp (lambda 0.03)",
    "node-sp",
    "acdc",
    "eap",
    "eap-ig-inputs",
    "eap-ig-activations",
)
# a variant: the method's name, then its settings (the families table's label for SP warm-started from EAP's scores)
VARIANTS = {
    "edge-sp (init eap)": ("edge-sp", {"init": "eap"}),
    # a weaker sparsity weight: at the default 0.1 two of eight seeds drop tracr-sort's chain under zero ablation
    "edge-sp (lambda 0.03)": ("edge-sp", {"lambda_": 0.03}),
}
# on SmolLM2's 70,651 edges ACDC and SP take hours per refit on a CPU: attribution only, fewer refits
LM_METHODS = ("eap", "eap-ig-inputs")
LM_REFITS = 5


def _commit() -> str | None:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() or None


def _entry(family: str, task_name: str, method: str, ablation: str, refits: int) -> dict:
    """Runs one bootstrap and returns its figures."""
    task = get_task(task_name)
    evaluation = get_task(task_name, held_out=True) if held_out_size(task_name) else None
    start = time.perf_counter()
    name, settings = VARIANTS.get(method, (method, {}))
    result = bootstrap_stability(task, name, refits, ablation=ablation, evaluation=evaluation, **settings)
    record = result.to_dict()
    return {
        "task": task_name,
        "family": family,
        "method": method,
        "ablation": ablation,
        "n_refits": refits,
        "n_edges": result.graph.n_edges,
        "stability": record["stability"]["mean_jaccard"],
        "interval": record["stability"]["interval"],
        "refit_circuit_sizes": record["refit_circuit_sizes"],
        "consensus_edges": len(record["consensus"]["edges"]),
        "consensus_faithfulness": record["consensus"]["faithfulness"],
        "evaluated_on": record["consensus"]["evaluated_on"],
        "seconds": time.perf_counter() - start,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--refits", type=int, default=10, help="bootstrap refits per entry (SmolLM2: 5)")
    parser.add_argument("--tasks", nargs="*", default=[t for _, t, _ in SETTINGS])
    parser.add_argument("--methods", nargs="*", default=list(METHODS))
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    done = json.loads(args.out.read_text()) if args.out.exists() else {"entries": []}
    have = {(e["task"], e["method"], e["ablation"]) for e in done["entries"]}
    done.update(
        date=date.today().isoformat(),
        commit=_commit(),
        machine=platform.platform(),
        torch=torch.__version__,
        threads=torch.get_num_threads(),
    )
    for family, task_name, ablations in SETTINGS:
        if task_name not in args.tasks:
            continue
        lm = task_name.startswith("smollm2")
        for method in args.methods:
            if lm and method not in LM_METHODS:
                continue
            for ablation in ablations:
                if (task_name, method, ablation) in have:
                    continue
                entry = _entry(family, task_name, method, ablation, LM_REFITS if lm else args.refits)
                done["entries"].append(entry)
                write_text(args.out, json.dumps(done, indent=1) + "\n")
                lo, hi = entry["interval"]
                print(
                    f"{task_name:<26} {method:<19} {ablation:<9} stability {entry['stability']:.2f} [{lo:.2f}, "
                    f"{hi:.2f}]  consensus {entry['consensus_edges']} edges, faithfulness "
                    f"{entry['consensus_faithfulness']:.2f} ({entry['evaluated_on']})  {entry['seconds']:.0f} s",
                    flush=True,
                )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
