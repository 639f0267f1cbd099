"""Capability removal on the multitask testbed: does a method that finds better circuits also remove better?

For each forget task (default multitask-sort; the other three multitask skills are retained), every discovery method
fits on the discovery inputs at a few settings (top-k methods at several k, ACDC at several thresholds, SP at
several lambdas), and the fast ones also on the retain tasks, for each circuit less the retain circuits' edges; each
circuit, its node-level version, random edges of each size, a removal mask, task vectors and
gradient ascent are then measured on held-out inputs, and every intervened model relearns for a few steps. Prints a
table per forget task and the rank correlation, over the circuits, of their faithfulness on the forget task with
their selectivity (share of the forget task removed minus share of the retain tasks lost); writes
benchmarks/results/removal/{FORGET.json, summary-TESTBED.md} and the forget-vs-retain plot
docs/img/removal-FORGET.png. `--testbed smollm2` forgets IOI on SmolLM2-135M and retains capitals and the model's own
text (attribution methods only: ACDC and SP are hours on 70,651 edges on this CPU).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/removal.py [--testbed multitask|smollm2] [--forget TASK ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import torch

from edgewise.interventions import (
    ComparedRemoval,
    DiscoveredCircuit,
    RandomEdges,
    RemovalComparison,
    RemovalKind,
    RemovalMaskConfig,
    RemovalSettings,
    TaskSplit,
    compare_removals,
    discovered_circuits,
    minus_retain,
)
from edgewise.report import plot_removals
from edgewise.report.removal_plots import removal_point
from edgewise.suite.bench import markdown_table
from edgewise.suite.bench.families import spearman
from edgewise.suite.tasks import task_split

OUT = Path(__file__).parent / "results" / "removal"
IMAGES = Path(__file__).parent.parent / "docs" / "img"
SKILLS = ("multitask-reverse", "multitask-sort", "multitask-count", "multitask-shift")


@dataclass(frozen=True)
class Testbed:
    """One model's tasks (forget one, retain the others), the method settings whose circuits go in, and the
    baselines' settings."""

    tasks: tuple[str, ...]
    settings: tuple[tuple[str, dict], ...]  # (method, hyperparameters beyond the defaults): one circuit each
    top_k: tuple[int, ...]  # circuit sizes of the top-k methods
    specific: frozenset[str]  # methods fast enough to run on the retain tasks too, for circuits less theirs
    removal: RemovalSettings


TESTBEDS = {
    "multitask": Testbed(
        SKILLS,
        (
            ("acdc", {}),
            ("acdc", {"threshold": 1e-2}),
            ("acdc", {"threshold": 1e-1}),
            ("edge-sp", {}),
            ("edge-sp", {"lambda_": 1.0}),
            ("edge-sp", {"lambda_": 10.0}),
            ("node-sp", {}),
            *((method, {}) for method in ("eap", "eap-ig-inputs", "eap-ig-activations", "exact")),
        ),
        (10, 20, 40),
        frozenset({"acdc", "eap", "eap-ig-inputs", "eap-ig-activations"}),
        RemovalSettings(
            nodes=True,
            random_seeds=3,
            task_vector=(1.0, 2.0, 4.0),
            gradient_ascent=True,
            removal_mask=RemovalMaskConfig(),
            relearn_steps=10,
        ),
    ),
    # 70,651 edges on the CPU: the attribution methods only (ACDC and SP take hours here), fewer and smaller steps
    # for everything that trains, and a pretrained LM's learning rate for the weight edits and relearning
    "smollm2": Testbed(
        ("smollm2-ioi", "smollm2-capitals", "smollm2-self-text"),
        (("eap", {}), ("eap-ig-inputs", {})),
        (100, 1000, 10000),
        frozenset({"eap"}),
        RemovalSettings(
            random_seeds=1,
            task_vector=(1.0, 2.0),
            gradient_ascent=True,
            edit_steps=20,
            edit_lr=1e-4,
            removal_mask=RemovalMaskConfig(steps=40, lr=0.1),
            relearn_steps=3,
            relearn_lr=1e-4,
        ),
    ),
}


def circuits_of(
    testbed: Testbed, forget: TaskSplit, retain: list[TaskSplit], ablation: str, seed: int
) -> list[DiscoveredCircuit]:
    """Returns every method x setting's forget circuit and, for the fast methods, the same circuit less the edges of
    the retain tasks' circuits at the same setting (what is the forget task's alone), all on discovery inputs."""
    start = time.perf_counter()
    circuits = discovered_circuits(forget.discovery, testbed.settings, ablation, seed=seed, sizes=testbed.top_k)
    print(f"  {forget.discovery.name}: {len(circuits)} circuits, {time.perf_counter() - start:.1f} s", flush=True)
    specific = [s for s in testbed.settings if s[0] in testbed.specific]
    shared = [
        discovered_circuits(split.discovery, specific, ablation, seed=seed, sizes=testbed.top_k) for split in retain
    ]
    return [*circuits, *minus_retain(circuits, shared)]


def selectivity(row: ComparedRemoval) -> float | None:
    """Returns forget removed - retain lost (1 = the forget task gone, every retain task kept), or None."""
    point = removal_point(row)
    return None if point is None else point[1] - (1 - point[0])


def _relearned(rows: list[ComparedRemoval]) -> str:
    """Returns the steps the slowest of the rows took to relearn: `3`, `> 10` (not within the curve), `-` (none)."""
    if rows[0].relearning is None:
        return "-"
    recovered = [row.relearning.recovered_at for row in rows]
    return f"> {len(rows[0].relearning.accuracy) - 1}" if None in recovered else str(max(recovered))


def _table_row(label: str, rows: list[ComparedRemoval]) -> list[str]:
    """Returns the table's cells for one intervention, or for the mean of random draws of one size (`rows`)."""
    mean = lambda values: sum(values) / len(values)  # noqa: E731  (the point is linear in the accuracies after)
    faithful = "" if rows[0].circuit_faithfulness is None else f"{rows[0].circuit_faithfulness:.3f}"
    return [
        label,
        rows[0].result.size.replace("|", "\\|"),
        faithful,
        f"{mean([row.result.forget.accuracy_after for row in rows]):.3f}",
        f"{mean([m.accuracy_after for row in rows for m in row.result.retain]):.3f}",
        f"{mean([selectivity(row) for row in rows]):+.3f}",
        _relearned(rows),
    ]


def table(comparison: RemovalComparison) -> str:
    """Returns the Markdown table of one forget task's interventions, random draws averaged per size."""
    header = [
        "intervention",
        "size",
        "circuit faithfulness",
        f"{comparison.forget} acc. after",
        "retain acc. after (mean)",
        "selectivity",
        "relearned in",
    ]
    rows, draws = [], {}
    for row in comparison.rows:
        if isinstance(row.removed, RandomEdges):
            draws.setdefault(row.removed.size, []).append(row)
        else:
            rows.append(_table_row(row.label, [row]))
    rows += [
        _table_row(f"random {size} edges (mean of {len(same)} draws)", same) for size, same in sorted(draws.items())
    ]
    return markdown_table(header, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--testbed", choices=TESTBEDS, default="multitask")
    parser.add_argument("--forget", nargs="*", help="forget tasks, one comparison each (default: the testbed's first)")
    parser.add_argument("--ablation", default="resample")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    torch.set_num_threads(1)
    testbed = TESTBEDS[args.testbed]
    settings = dataclasses.replace(testbed.removal, ablation=args.ablation, seed=args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    summary = [
        f"Capability removal on the {args.testbed} testbed (`benchmarks/removal.py --testbed {args.testbed}`, "
        f"{date.today()}, {platform.machine()} CPU, torch {torch.__version__}, {args.ablation} ablation, "
        f"held-out inputs; weight edits: {settings.edit_steps} Adam steps at lr {settings.edit_lr:g}; "
        f"relearning: {settings.relearn_steps} Adam steps at lr {settings.relearn_lr:g}, recovered = 90% of "
        "the full model's accuracy).\n"
    ]
    for name in args.forget or testbed.tasks[:1]:
        if name not in testbed.tasks:
            parser.error(f"{name} is not a task of the {args.testbed} testbed: {', '.join(testbed.tasks)}")
        print(f"forget {name}: discovering circuits", flush=True)
        forget = task_split(name)
        retain = [task_split(other) for other in testbed.tasks if other != name]
        start = time.perf_counter()
        circuits = circuits_of(testbed, forget, retain, args.ablation, args.seed)
        comparison = compare_removals(forget, circuits, retain, settings, progress=True)
        record = {**comparison.to_dict(), "seconds": time.perf_counter() - start}
        (args.out / f"{name}.json").write_text(json.dumps(record, indent=1, allow_nan=False))
        plot_removals(comparison, IMAGES / f"removal-{name}.png")
        circuit_rows = [r for r in comparison.rows if r.kind is RemovalKind.CIRCUIT]
        rho = spearman([r["circuit_faithfulness"] for r in circuit_rows], [selectivity(r) for r in circuit_rows])
        text = (
            f"### forget {name}\n\n{table(comparison)}\nSpearman's rank correlation over the "
            f"{len(circuit_rows)} circuits, circuit faithfulness vs selectivity: "
            f"{'undefined' if rho is None else f'{rho:+.2f}'}\n"
        )
        print(text, flush=True)
        summary.append(text)
    (args.out / f"summary-{args.testbed}.md").write_text("\n".join(summary))
    print(f"wrote {args.out}/summary-{args.testbed}.md, the JSON per forget task and docs/img/removal-*.png")


if __name__ == "__main__":
    main()
