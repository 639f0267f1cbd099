"""Every method on every tracr task, plain and per-position graphs: AUROC against the compiler's ground truth and
against the effective ground truth under the ablation (the compiler's edges that change the outputs), faithfulness of
the top-k circuit at the effective truth's size, CPR/CMD, and the method's wall time.

A fixed sweep of `edgewise.suite.bench` (the same records, resumable): prints the summary table and writes
benchmarks/results/methods/{results.json, summary.md}, with per-run files and plots beside them.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/methods.py [--tasks tracr-reverse tracr-proportion]
        [--methods eap acdc] [--graphs plain] [--ablations resample] [--seeds 0 1 2] [--out DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edgewise.methods import method_names
from edgewise.suite.bench import GRAPH_KINDS, Sweep, run_bench, summary_markdown
from edgewise.suite.tasks.tracr import task_names

OUT = Path(__file__).parent / "results" / "methods"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="*", default=task_names())
    parser.add_argument("--methods", nargs="*", default=method_names())
    parser.add_argument("--graphs", nargs="*", default=list(GRAPH_KINDS))
    parser.add_argument("--ablations", nargs="*", default=["resample"])
    parser.add_argument("--seeds", nargs="*", type=int, default=[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    sweep = Sweep(tuple(args.tasks), tuple(args.methods), tuple(args.ablations), tuple(args.graphs), tuple(args.seeds))
    records = run_bench(sweep, args.out)
    print(summary_markdown(records))
    print(f"wrote {args.out / 'results.json'} and {args.out / 'summary.md'}")


if __name__ == "__main__":
    main()
