"""Every method on the planted-redundancy tracr tasks: AUROC against the redundancy-aware effective truth and how
many copies of each redundant group the method's own circuit keeps whole (both, one, neither), per ablation.

A fixed sweep of `edgewise.suite.bench` (resumable): prints a method x setting table and writes
benchmarks/results/redundancy/{results.json, summary.md, redundancy.json}.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/redundancy.py [--ablations zero mean resample] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edgewise.methods import method_names
from edgewise.suite.bench import Sweep, copies_kept, markdown_table, run_bench

OUT = Path(__file__).parent / "results" / "redundancy"
TASKS = ("tracr-redundant-or", "tracr-redundant-majority", "tracr-redundant-backup")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ablations", nargs="*", default=["zero", "mean", "resample"])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    records = run_bench(Sweep(TASKS, tuple(method_names()), tuple(args.ablations)), args.out)
    settings = list(dict.fromkeys((r.task, str(r.ablation)) for r in records))
    cells = {(r.task, str(r.ablation), r.method): r for r in records}
    header = ["method", *(f"{task.removeprefix('tracr-redundant-')} {ablation}" for task, ablation in settings)]
    rows = []
    for method in method_names():
        row = [method]
        for task, ablation in settings:
            r = cells[task, ablation, method]
            kept = copies_kept(r)
            row.append(f"{r.figure('auroc', 'effective'):.3f}" + (f" ({kept})" if kept else ""))
        rows.append(row)
    table = markdown_table(header, rows)
    print("AUROC against the effective truth (copies of each redundant group the method's circuit keeps whole)\n")
    print(table)
    (args.out / "redundancy.json").write_text(
        json.dumps(
            [
                {
                    "task": t,
                    "ablation": a,
                    "method": m,
                    "auroc_effective": r.figure("auroc", "effective"),
                    "circuit_edges": r.figures.circuit_edges,
                    "circuit_faithfulness": r.figures.circuit_faithfulness,
                    "redundancy": r.redundancy,
                }
                for (t, a, m), r in cells.items()
            ],
            indent=1,
        )
    )
    print(f"wrote {args.out / 'results.json'}, {args.out / 'summary.md'} and {args.out / 'redundancy.json'}")


if __name__ == "__main__":
    main()
