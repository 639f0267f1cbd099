"""The cross-benchmark table: every method on every task family (the tracr suite, SIIT-trained models of its
programs, the trained induction models with verified circuits, the planted-redundancy tracr tasks), plain graph,
held-out inputs, under resample, mean and zero ablation; per method the mean AUROC against the effective truth on
each family, and Spearman's rank correlation of the methods between families.

A fixed sweep of `edgewise.suite.bench` (resumable): prints the table and writes
benchmarks/results/families/{results.json, summary.md, families.json, families.md} and docs/img/families.png.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/families.py [--ablations resample mean zero] [--skip TASK ...]
        [--preset tuned|published|both] [--methods M ...] [--init METHOD] [--out DIR] [--jobs N]

The summary covers every run in the output folder on the sweep's tasks, so sweeps of different methods or presets
add up.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edgewise.methods import PRESETS, method_names
from edgewise.suite.bench import RunRecord, Sweep, plot_families, run_bench
from edgewise.suite.bench.families import FAMILIES, family_markdown, family_summary

OUT = Path(__file__).parent / "results" / "families"
PLOT = Path(__file__).parent.parent / "docs" / "img" / "families"


def restore_runs(out: Path) -> None:
    """Writes back the run files of the folder's committed results.json that are missing (runs/ is not committed),
    without their curves, so that a sweep of other methods or settings adds its runs to the committed ones instead of
    replacing them in results.json."""
    results = out / "results.json"
    if not results.exists():
        return
    for fields in json.loads(results.read_text()):
        run = out / "runs" / f"{fields['key']}.json"
        if not run.exists():
            run.parent.mkdir(parents=True, exist_ok=True)
            run.write_text(json.dumps({**fields, "curves": {}}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ablations", nargs="*", default=["resample", "mean", "zero"])
    parser.add_argument("--skip", nargs="*", default=[], help="tasks to leave out (e.g. tracr-dyck2, for time)")
    parser.add_argument(
        "--preset",
        choices=("tuned", "published", "both"),
        default="tuned",
        help="edgewise's tuned defaults, the authors' published settings, or both (one row each)",
    )
    parser.add_argument("--methods", nargs="*", default=method_names(), help="methods to run (default: all)")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--jobs", type=int, default=1, help="runs at once, in worker processes (one per core)")
    parser.add_argument(
        "--init",
        metavar="METHOD",
        help="warm-start edge-sp and node-sp from this attribution method's scores (init=METHOD): their rows in the "
        "table read `edge-sp (init METHOD)`, beside the uniform start's rows from earlier sweeps into the folder",
    )
    parser.add_argument(
        "--summarise-only",
        action="store_true",
        help="run nothing: rewrite families.json, families.md and the plot from the folder's results.json",
    )
    args = parser.parse_args()
    tasks = tuple(t for family in FAMILIES.values() for t in family if t not in args.skip)
    presets = PRESETS if args.preset == "both" else (args.preset,)
    warm = {m: {"init": args.init} for m in args.methods if m in ("edge-sp", "node-sp")} if args.init else {}
    sweep = Sweep(tasks, tuple(args.methods), tuple(args.ablations), hyperparameters=warm, presets=presets)
    if not args.summarise_only:
        restore_runs(args.out)
        run_bench(sweep, args.out, jobs=args.jobs)
    # every run in the folder, of this sweep's tasks: sweeps of other methods or presets add up
    records = [RunRecord.from_json(fields) for fields in json.loads((args.out / "results.json").read_text())]
    summary = family_summary([r for r in records if r.task in tasks])
    table = family_markdown(summary)
    print(table)
    (args.out / "families.json").write_text(json.dumps(summary.to_dict(), indent=1))
    (args.out / "families.md").write_text(table)
    print(
        f"wrote {args.out / 'families.json'}, {args.out / 'families.md'} and "
        f"{', '.join(map(str, plot_families(summary, PLOT)))}"
    )


if __name__ == "__main__":
    main()
