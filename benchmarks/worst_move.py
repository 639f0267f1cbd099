"""The worst-move episode, reproduced on the tic-tac-toe network: edge-sp minimises the full value head's value of
the move the masked policy plays, then the behaviour check says what the mask does.

For each task (every legal move on offer; corners off limits), ablation and lambda: the mask's size, the objective
it reached, and on the held-out positions the true (minimax) value of the moves it plays beside the full network's
and the worst possible, with the share of its moves a fixed ranking of squares explains and the behaviour flags.
Prints a table, writes benchmarks/results/worst_move.json and a picture of where each network plays
(docs/img/worst-move-choices.png).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/worst_move.py [--lambdas 0.1,1,3] [--steps 200]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from edgewise.diagnostics.behaviour import behaviour_check
from edgewise.methods import discover, method_circuit
from edgewise.patching import task_ablation
from edgewise.report import plot_choice_maps
from edgewise.suite.tasks import get_task

OUT = Path(__file__).parent / "results" / "worst_move.json"
PICTURE = Path(__file__).parents[1] / "docs" / "img" / "worst-move-choices"
TASKS = ("tictactoe", "tictactoe-no-corners")


def worst_possible(task) -> float:
    """Returns the mean minimax value of the worst move on offer at each of the task's positions."""
    values, offered = task.answer_values, task.offered
    return values.masked_fill(~offered, float("inf")).amin(-1).mean().item()


def run(name: str, ablation: str, lam: float, steps: int) -> dict:
    """Returns one mask's record: found on the discovery positions, described on the held-out ones."""
    task, held_out = get_task(name), get_task(name, held_out=True)
    graph = task.graph()
    scores = discover(
        task,
        "edge-sp",
        graph=graph,
        ablated=task_ablation(task, graph, ablation),
        minimise="worst-move",
        lambda_=lam,
        steps=steps,
        n_samples=1,
    )
    circuit = set(method_circuit(scores, 1).edges)
    check = behaviour_check(held_out, graph, task_ablation(held_out, graph, ablation), circuit, "worst-move mask")
    full, mask = check.rows[0], check.rows[1]
    return {
        "task": name,
        "ablation": ablation,
        "lambda": lam,
        "steps": steps,
        "n_edges": graph.n_edges,
        "kept": len(circuit),
        "seconds": scores.seconds,
        "held_out_positions": held_out.clean.shape[0],
        "value_full": full.answer_value,
        "value_mask": mask.answer_value,
        "value_worst": worst_possible(held_out),
        "preference_full": full.preference_share,
        "preference_mask": mask.preference_share,
        "preference_order": list(mask.preference),
        "flags": list(mask.flags),
        "choices_full": full.distribution,
        "choices_mask": mask.distribution,
    }


def _shares(distribution: dict[str, float]) -> list[float]:
    return [distribution.get(str(square), 0.0) for square in range(9)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lambdas", default="0.1,1,3")
    parser.add_argument("--ablations", default="mean,zero")
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(1)
    records = []
    print(
        f"{'task':<22}{'ablation':<9}{'lambda':>7}{'kept':>10}{'value':>8}{'full':>7}{'worst':>7}"
        f"{'fixed pref.':>12}  flags"
    )
    for name in TASKS:
        for ablation in args.ablations.split(","):
            for lam in (float(x) for x in args.lambdas.split(",")):
                r = run(name, ablation, lam, args.steps)
                records.append(r)
                print(
                    f"{name:<22}{ablation:<9}{lam:>7g}{r['kept']:>5}/{r['n_edges']:<4}{r['value_mask']:>8.3f}"
                    f"{r['value_full']:>7.3f}{r['value_worst']:>7.3f}{r['preference_mask']:>12.0%}  "
                    f"{', '.join(r['flags']) or '-'}",
                    flush=True,
                )
    OUT.write_text(json.dumps({"runs": records}, indent=1))
    sparsest = {name: min((r for r in records if r["task"] == name), key=lambda r: r["kept"]) for name in TASKS}
    panels = {"full network": _shares(records[0]["choices_full"])}
    for name, r in sparsest.items():
        panels[f"{name}: {r['kept']}-edge mask\n({r['ablation']}, lambda {r['lambda']:g})"] = _shares(r["choices_mask"])
    plot_choice_maps(panels, (3, 3), PICTURE, "where the network plays (share of held-out positions)")
    print(f"wrote {OUT} and {PICTURE}.png")


if __name__ == "__main__":
    main()
