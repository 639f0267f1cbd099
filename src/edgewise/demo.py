"""The demo run by README's first command: a task, its graph, its true circuit, a patching check, and plots."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .checks import run_checks
from .patching import patched_forward
from .report import plot_circuit, plot_edge_effects
from .tracr_tasks import get_task

ABLATIONS = ("resample", "mean", "zero")


@torch.no_grad()
def run_demo(task_name: str, out: Path) -> int:
    """Prints the demo and writes plots and demo.json under `out`; returns the exit code (1 if a check failed)."""
    task = get_task(task_name)
    compiled = task.extras["compiled"]
    graph = task.graph()
    cfg = task.model.cfg
    print(f"== task {task.name}: {task.description}")
    print(f"model: {cfg.n_layers} layers, {cfg.n_heads} head(s)/layer, d_model {cfg.d_model}, d_mlp {cfg.d_mlp}")
    print(f"data: {task.clean.shape[0]} clean inputs of {task.clean.shape[1]} tokens; {task.pairing}")
    print(f"metric: {task.metric.name} to the full model's outputs on non-BOS positions")
    full = task.full_logits()
    decoded = compiled.decode(full)
    for seq, answer in list(zip(task.extras["sequences"], decoded))[:3]:
        print(f"  {seq} -> {answer}")
    print(f"\n== graph: {graph}; per-position: {task.graph(per_position=True).n_edges} edges")
    truth = task.ground_truth_edges(graph)
    print(f"\n== ground-truth circuit derived from the compiler ({len(truth)} edges):")
    for e in sorted(truth, key=graph.edge_index):
        print(f"  {e.name}")

    print("\n== patching exactness (independent references)")
    checks = run_checks(task)
    for r in checks:
        print(f"  {'PASS' if r.passed else 'FAIL'}  diff {r.max_abs_diff:.1e} (patch moves logits {r.effect:.2g})  {r.name}")

    print(f"\n== faithfulness ({task.metric.name} to the full model; 0 = identical)")
    ordered = sorted(truth, key=graph.edge_index)
    summary, effects = {}, []
    for kind in ABLATIONS:
        ablated = task.ablation(graph, kind)
        loss = lambda mask: task.metric(patched_forward(task.model, graph, task.clean, ablated, mask), full,
                                        task.scored_positions).item()
        summary[kind] = {"ground_truth": loss(graph.mask_for(truth)), "empty": loss(torch.zeros(graph.n_edges))}
        effects.append([loss(graph.mask_for(truth - {e})) for e in ordered])
        print(f"  {kind:<9} ground truth {summary[kind]['ground_truth']:.4f}   empty circuit {summary[kind]['empty']:.4f}")
    needed = {kind: [e.name for e, v in zip(ordered, col) if v > 1e-6] for kind, col in zip(ABLATIONS, effects)}
    for kind in ABLATIONS:
        print(f"  edges whose removal from the true circuit changes the output under {kind}: {len(needed[kind])} of "
              f"{len(ordered)}: {', '.join(needed[kind])}")
    if len(needed["resample"]) < len(ordered):
        print("  -> under resample ablation a smaller circuit is as faithful: components whose output is the same on "
              "every input of the task carry nothing that resampling can remove.")

    out.mkdir(parents=True, exist_ok=True)
    files = plot_circuit(graph, truth, out / f"{task.name}-ground-truth", title=f"{task.name}: derived ground truth")
    files += plot_edge_effects(
        [e.name for e in ordered], list(ABLATIONS), [list(r) for r in zip(*effects)],
        out / f"{task.name}-edge-effects", title="metric after removing one true edge", label=task.metric.name,
    )
    record = {
        "task": task.name,
        "n_edges": graph.n_edges,
        "ground_truth": [e.endpoints() for e in ordered],
        "checks": [r.to_dict() for r in checks],
        "faithfulness": summary,
        "needed_edges": needed,
    }
    (out / "demo.json").write_text(json.dumps(record, indent=1))
    files.append(out / "demo.json")
    print("\nwrote " + ", ".join(str(f) for f in files))
    return 0 if all(r.passed for r in checks) else 1
