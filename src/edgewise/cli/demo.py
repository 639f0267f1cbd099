"""The demo run by README's first command: a tracr task and its true circuit, the patching checks, circuit discovery
with edge-level subnetwork probing (and ACDC and EAP beside it) under two ablations, the diagnosis that explains the
circuits found, and plots of all of it."""

from __future__ import annotations

import json
from pathlib import Path

from ..diagnostics import diagnose
from ..evaluate import RunEvaluation, ground_truths
from ..methods import discover
from ..outputs import write_text
from ..patching import full_logits, run_checks, task_ablation
from ..report import plot_circuit, plot_faithfulness_curves, plot_roc_curves
from ..tasks import Task

ABLATIONS = ("resample", "zero")  # the two that disagree most about reverse's circuit
METHODS = ("edge-sp", "acdc", "eap")


def _describe(task: Task) -> None:
    """Prints the task: model, data, metric, a few answers, graph and ground truth."""
    compiled = task.family.compiled  # a tracr task's (TracrData)
    cfg = task.model.cfg
    graph = task.graph()
    print(f"== task {task.name}: {task.description}")
    print(f"model: {cfg.n_layers} layers, {cfg.n_heads} head(s)/layer, d_model {cfg.d_model}, d_mlp {cfg.d_mlp}")
    print(f"data: {task.clean.shape[0]} clean inputs of {task.clean.shape[1]} tokens; {task.pairing}")
    print(f"metric: {task.metric.name} to the full model's outputs on non-BOS positions")
    for seq, answer in list(zip(task.family.sequences, compiled.decode(full_logits(task))))[:3]:
        print(f"  {seq} -> {answer}")
    truth = sorted(task.ground_truth_edges(graph), key=graph.edge_index)
    print(f"\n== graph: {graph}; per-position: {task.graph(per_position=True).n_edges} edges")
    print(f"ground-truth circuit derived from the compiler ({len(truth)} edges): {', '.join(e.name for e in truth)}")


def run_demo(task: Task, out: Path) -> int:
    """Prints the demo and writes plots and demo.json under `out`; returns the exit code (1 if a check failed).

    Args:
        task: a tracr task (`get_task`), on the device and threads the demo runs on.
        out: the folder for the plots and demo.json; created if missing.

    Returns:
        0 when every patching exactness check passed, else 1.

    Raises:
        GraphMismatchError: the task has no ground truth.
    """
    _describe(task)
    graph = task.graph()
    truth = task.ground_truth_edges(graph)

    print("\n== patching exactness (independent references)")
    checks = run_checks(task)
    for r in checks:
        verdict = "PASS" if r.passed else "FAIL"
        print(f"  {verdict}  diff {r.max_abs_diff:.1e} (patch moves logits {r.effect:.2g})  {r.name}")

    print(
        "\n== circuit discovery (each method's own circuit: edge-sp's open gates, the edges ACDC kept, EAP's top k "
        "with k = the effective truth's size)"
    )
    print(f"  {'ablation':<9}{'method':<9}{'edges':>6}{'AUROC':>7}{'eff.':>7}{'faithful':>9}{'seconds':>9}  circuit")
    out.mkdir(parents=True, exist_ok=True)
    files, runs = [], []
    for ablation in ABLATIONS:
        ablated = task_ablation(task, graph, ablation)
        truths = ground_truths(task, graph, ablated)
        evaluations = {
            m: RunEvaluation(
                task, discover(task, m, seed=0, progress=True, graph=graph, ablated=ablated), ablated, truths
            )
            for m in METHODS
        }
        for method, evaluation in evaluations.items():
            circuit = evaluation.circuit
            run = {
                "ablation": ablation,
                "method": method,
                "seconds": evaluation.scores.seconds,
                "circuit": [e.endpoints() for e in sorted(circuit.edges, key=graph.edge_index)],
                "auroc": evaluation.auroc("compiler"),
                "auroc_effective": evaluation.auroc("effective"),
                "faithfulness": evaluation.circuit_faithfulness,
            }
            runs.append(run)
            names = ", ".join(e.name for e in sorted(circuit.edges, key=graph.edge_index))
            print(
                f"  {ablation:<9}{method:<9}{len(circuit):>6}{run['auroc']:>7.3f}{run['auroc_effective']:>7.3f}"
                f"{run['faithfulness']:>9.3f}{run['seconds']:>9.2f}  {names}"
            )
        setting = f"{task.name}, {ablation} ablation"
        files += plot_circuit(  # against the edges that matter under this ablation, as the bench draws its circuits
            graph,
            set(evaluations["edge-sp"].circuit.edges),
            out / f"{task.name}-{ablation}-edge-sp-circuit",
            truths["effective"],
            title=f"edge-sp circuit vs the effective ground truth ({len(truths['effective'])} edges): {setting}",
        )
        files += plot_roc_curves(
            {
                "compiler's ground truth": {m: e.roc("compiler") for m, e in evaluations.items()},
                "effective ground truth": {m: e.roc("effective") for m, e in evaluations.items()},
            },
            out / f"{task.name}-{ablation}-roc",
            f"edge ROC: {setting}",
        )
        files += plot_faithfulness_curves(
            {m: e.faithfulness_curve for m, e in evaluations.items()},
            out / f"{task.name}-{ablation}-faithfulness",
            f"faithfulness: {setting}",
        )

    print("\n== why the circuits differ from the compiler's (edgewise diagnose " + task.name + " has the full report)")
    diagnosis = diagnose(task, ablations=ABLATIONS)
    constant = diagnosis.constant_writers
    if constant:
        print(f"  constant on every input of the task: {', '.join(w.writer for w in constant)}")
    for ablation, d in diagnosis.ablations.items():
        minimal = d.minimal
        if minimal is None or minimal.edges is None:
            print(f"  {ablation}: the ground truth is not faithful under this ablation")
            continue
        reasons: dict[str, int] = {}
        for removed in minimal.removed:
            reasons[removed.reason] = reasons.get(removed.reason, 0) + 1
        why = ", ".join(f"{n} {reason}" for reason, n in reasons.items()) or "nothing removable"
        print(
            f"  {ablation}: the minimal faithful circuit has {len(minimal.edges)} of {len(minimal.start)} true "
            f"edges; removed: {why}"
        )
    if constant:
        print(
            "  -> resample ablation swaps a constant writer's output for the same value, so no method can find "
            "those edges by resampling: a small circuit can be genuinely faithful."
        )

    record = {
        "task": task.name,
        "n_edges": graph.n_edges,
        "ground_truth": [e.endpoints() for e in sorted(truth, key=graph.edge_index)],
        "checks": [r.to_dict() for r in checks],
        "runs": runs,
        "diagnosis": diagnosis.to_dict(),
    }
    write_text(out / "demo.json", json.dumps(record, indent=1))  # atomic: a failed write leaves the previous file
    files.append(out / "demo.json")
    print("\nwrote " + ", ".join(str(f) for f in files if f.suffix != ".svg") + " (and SVGs)")
    return 0 if all(r.passed for r in checks) else 1
