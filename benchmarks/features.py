"""Circuits over oracle features beside circuits over heads and MLPs, on every tracr task: each method's AUROC
against the feature-level effective truth (tracr's labelled residual directions as features, truth derived from the
compiler), and the same task's head/MLP graph for comparison (circuit size, faithfulness, edges to 95%).

A fixed sweep of `edgewise.suite.bench` (resumable): prints the summary table and writes
benchmarks/results/features/{results.json, summary.md}, with per-run files, ROC and faithfulness plots and circuit
diagrams (features labelled by their oracle names) beside them.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/features.py [--tasks tracr-reverse] [--methods edge-sp eap]
        [--ablations resample zero] [--graphs plain/oracle plain per-position/oracle] [--out DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edgewise.suite.bench import Sweep, plot_bench, run_bench, summary_markdown
from edgewise.suite.tasks.tracr import task_names

OUT = Path(__file__).parent / "results" / "features"
METHODS = ["edge-sp", "acdc", "eap", "random"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="*", default=task_names())
    parser.add_argument("--methods", nargs="*", default=METHODS)
    parser.add_argument("--ablations", nargs="*", default=["resample", "zero"])
    parser.add_argument("--graphs", nargs="*", default=["plain/oracle", "plain"])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    sweep = Sweep(tuple(args.tasks), tuple(args.methods), tuple(args.ablations), tuple(args.graphs))
    records = run_bench(sweep, args.out)
    plot_bench(args.out)
    print(summary_markdown(records))
    print(f"wrote {args.out / 'results.json'} and {args.out / 'summary.md'}")


if __name__ == "__main__":
    main()
