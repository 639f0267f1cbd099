"""Compressed tracr tasks: features in superposition on purpose, with their circuits known.

For each compressed task it measures (1) the compression: labelled directions -> dimensions, how often the
compressed model gives tracr's outputs, how far apart the directions stay; (2) how faithful the carried-over truth
is: the share of decided outputs (no tie in tracr's) that the compiler's circuit alone (every other edge ablated)
still gets right, per graph and ablation; (3) SAEs trained here on each writer's outputs: the fraction of oracle
directions they recover (best cosine >= 0.9); and then (4) a bench sweep: each method's AUROC against the truth
on head/MLP graphs, oracle feature graphs and trained-SAE feature graphs (trained features inherit the truth of the
oracle features they recover); and (5) interference: how many edges outside the designed circuit move the outputs alone
more than its weakest effective edge does. Prints the tables and writes benchmarks/results/compressed/{compression.json,
results.json, summary.md}.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/compressed.py [--tasks tracr-reverse-compressed]
        [--methods edge-sp eap] [--ablations resample zero] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from edgewise.evaluate import effective_ground_truth
from edgewise.evaluate.ground_truth import scored_change
from edgewise.features.sets import TRAINED, add_trained_features
from edgewise.patching import full_logits, patched_forward, task_ablation
from edgewise.suite.bench import Sweep, plot_bench, run_bench, summary_markdown
from edgewise.suite.tasks import get_task
from edgewise.suite.tasks.tracr.compile import CompiledProgram
from edgewise.suite.tasks.tracr.compressed import logits_agreement
from edgewise.suite.tasks.tracr.specs import COMPRESSED_TASKS
from edgewise.suite.tasks.tracr.suite import compile_spec
from edgewise.tasks import Task

OUT = Path(__file__).parent / "results" / "compressed"
METHODS = ["edge-sp", "acdc", "eap", "random"]
GRAPHS = ["plain", "plain/oracle", "plain/train"]


@torch.no_grad()
def circuit_agreement(task: Task, compiled: CompiledProgram, features: str | None, ablation: str) -> float:
    """Returns the share of decided outputs (scored positions where tracr's output is no tie) that the truth alone
    (every other edge ablated) gets right: the `compiled` (uncompressed) program's argmax, or its numbers."""
    graph = task.graph(features=features)
    keep = graph.mask_for(task.ground_truth_edges(graph))
    logits = patched_forward(task.model, graph, task.clean, task_ablation(task, graph, ablation), keep[None])[0]
    return logits_agreement(compiled, task.clean, logits)


@torch.no_grad()
def interference(task: Task, ablation: str) -> dict:
    """Returns, on the head/MLP graph, how much removing one edge alone (all others kept) moves the scored outputs:
    the largest move of an edge outside the designed circuit, the smallest of an effective-truth edge, and how many
    outside edges move them more than that smallest one."""
    graph = task.graph()
    ablated = task_ablation(task, graph, ablation)
    masks = torch.ones(graph.n_edges, graph.n_edges) - torch.eye(graph.n_edges)  # row e: every edge but e
    moved = scored_change(task, patched_forward(task.model, graph, task.clean, ablated, masks), full_logits(task))
    truth, effective = task.ground_truth_edges(graph), effective_ground_truth(task, graph, ablated)
    outside = [m for e, m in zip(graph.edges, moved.tolist()) if e not in truth]
    weakest = min(m for e, m in zip(graph.edges, moved.tolist()) if e in effective)
    return {
        "largest_outside_move": max(outside),
        "smallest_effective_move": weakest,
        "outside_above_weakest": sum(m > weakest for m in outside),
        "n_outside": len(outside),
    }


def compression_row(name: str, ablations: list[str]) -> dict:
    """Returns one task's compression, circuit-agreement and SAE-recovery figures."""
    task = get_task(name)
    row = dict(task.family.compiled.compression)
    report = add_trained_features(task, progress=True)
    compiled = compile_spec(COMPRESSED_TASKS[name].base)  # the uncompressed program: tracr's own outputs
    for features in (None, "oracle", TRAINED):
        for ablation in ablations:
            row[f"circuit_agreement_{features or 'plain'}_{ablation}"] = circuit_agreement(
                task, compiled, features, ablation
            )
    for ablation in ablations:
        row[f"interference_{ablation}"] = interference(task, ablation)
    recovered = [c >= 0.9 for r in report.values() for c in r.get("oracle_best_cosine", {}).values()]
    row["sae_recovered"] = sum(recovered) / len(recovered)
    row["sae_writers"] = report
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="*", default=list(COMPRESSED_TASKS))
    parser.add_argument("--methods", nargs="*", default=METHODS)
    parser.add_argument("--ablations", nargs="*", default=["resample", "zero"])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    rows = {name: compression_row(name, args.ablations) for name in args.tasks}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "compression.json").write_text(json.dumps(rows, indent=2, allow_nan=False))
    print(
        "| task | directions -> dims | agrees with tracr (discovery / held-out) | max overlap | truth alone agrees "
        "(plain, oracle, trained; " + ", ".join(args.ablations) + ") | oracle directions an SAE recovers |"
    )
    print("|---|---|---|---|---|---|")
    for name, r in rows.items():
        held_out = "-" if r["held_out_accuracy"] is None else f"{r['held_out_accuracy']:.3f}"
        agreement = "; ".join(
            ", ".join(f"{r[f'circuit_agreement_{g}_{a}']:.2f}" for a in args.ablations)
            for g in ("plain", "oracle", TRAINED)
        )
        print(
            f"| {name} | {r['n_directions']} -> {r['d_compressed']} | {r['accuracy']:.3f} / {held_out} | "
            f"{r['max_overlap']:.2f} | {agreement} | {r['sae_recovered']:.0%} |"
        )
    print(
        "\n| task | ablation | edges outside the designed circuit | of them moving outputs more than the weakest "
        "effective-truth edge | largest outside move | weakest effective move |"
    )
    print("|---|---|---|---|---|---|")
    for name, r in rows.items():
        for a in args.ablations:
            i = r[f"interference_{a}"]
            print(
                f"| {name} | {a} | {i['n_outside']} | {i['outside_above_weakest']} | {i['largest_outside_move']:.3g} "
                f"| {i['smallest_effective_move']:.3g} |"
            )
    records = run_bench(Sweep(tuple(args.tasks), tuple(args.methods), tuple(args.ablations), tuple(GRAPHS)), args.out)
    plot_bench(args.out)
    print(summary_markdown(records))
    print(f"wrote {args.out / 'compression.json'}, {args.out / 'results.json'} and {args.out / 'summary.md'}")


if __name__ == "__main__":
    main()
