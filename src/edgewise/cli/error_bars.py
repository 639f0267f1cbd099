"""The command line's error bars: `discover --bootstrap N` (bootstrap stability of the method's circuit) and
`edgewise sensitivity` (the method under several ablations); `edgewise.evaluate` does the work."""

from __future__ import annotations

import argparse
import json

from ..outputs import write_text
from .options import _at_least_two, _share


def add_bootstrap_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds --bootstrap, --bootstrap-threshold and --bootstrap-json to discover."""
    group = parser.add_argument_group("bootstrap stability")
    group.add_argument(
        "--bootstrap",
        type=_at_least_two,
        metavar="N",
        help="refit the method on N bootstrap resamples of the discovery inputs (seeds SEED..SEED+N-1) and report "
        "each edge's selection frequency, the circuits' overlap and the consensus circuit",
    )
    group.add_argument(
        "--bootstrap-threshold",
        type=_share,
        default=0.5,
        metavar="F",
        help="the share of refits an edge needs to enter the consensus circuit",
    )
    group.add_argument(
        "--bootstrap-json", metavar="FILE", help="write selection_frequency, score_interval, stability and consensus"
    )


def report_bootstrap(args: argparse.Namespace, task, scored, graph, circuit_size: int, hyperparameters: dict):
    """Returns the bootstrap of `discover --bootstrap N` (a `Stability`), after printing its figures and writing
    --bootstrap-json.

    Args:
        args: the parsed command line (method, ablation, seed, preset, bootstrap options).
        task: the discovery task.
        scored: the task that scores the consensus (the held-out one with --held-out).
        graph: the graph the method ran on.
        circuit_size: k of a top-k method's circuits, as the run's own circuit took it.
        hyperparameters: the method's settings from --set.
    """
    from ..evaluate import bootstrap_stability

    result = bootstrap_stability(
        task,
        args.method,
        args.bootstrap,
        graph=graph,
        ablation=args.ablation,
        threshold=args.bootstrap_threshold,
        circuit_size=circuit_size,
        evaluation=None if scored is task else scored,
        seed=args.seed,
        preset=args.preset,
        **hyperparameters,
    )
    low, high = result.stability_interval
    sizes = [len(c) for c in result.circuits]
    print(
        f"bootstrap, {result.n_refits} refits on resampled discovery inputs: circuits of {min(sizes)}-{max(sizes)} "
        f"edges overlap {result.stability:.2f} (mean pairwise Jaccard; 95% interval {low:.2f}..{high:.2f}; 0.8 is "
        "a proposed bar for reporting a circuit)"
    )
    print(
        f"consensus circuit (edges in >= {result.threshold:g} of the refits): {len(result.consensus)} edges, "
        f"faithfulness {result.consensus_faithfulness:.3f} on the {result.evaluated_on} inputs"
    )
    frequent = sorted(
        ((float(f), graph.edges[i].name) for i, f in enumerate(result.selection_frequency.tolist()) if f > 0),
        key=lambda t: (-t[0], t[1]),
    )
    for frequency, name in frequent[: args.show]:
        print(f"  {frequency:4.0%}  {name}")
    for warning in result.warnings:
        print(f"warning: {warning}")
    if args.bootstrap_json:
        write_text(args.bootstrap_json, json.dumps(result.to_dict(), indent=1, allow_nan=False))
        print(f"wrote {args.bootstrap_json}")
    return result


def run_sensitivity(args: argparse.Namespace, task) -> int:
    """`edgewise sensitivity`: the method under each ablation, each circuit scored under every ablation.

    Args:
        args: the parsed command line (method, ablations, top_k, seed, set, json).
        task: the task.

    Returns:
        The exit status: 0.
    """
    from ..evaluate import DEPENDS_BELOW, ablation_sensitivity

    result = ablation_sensitivity(
        task,
        args.method,
        args.ablations,
        circuit_size=args.top_k,
        seed=args.seed,
        progress=True,
        **args.hyperparameters,
    )
    kinds = result.ablations
    print(f"{args.method} on {task.name} under {', '.join(kinds)} ablation")
    print("circuit sizes: " + ", ".join(f"{k} {len(result.circuits[k])}" for k in kinds))
    print("overlap (Jaccard): " + ", ".join(f"{pair} {v:.2f}" for pair, v in result.overlap.items()))
    width = max(len(k) for k in kinds) + 2
    print("faithfulness of the circuit found under (row) when scored under (column):")
    print(f"  {'':<{width}}" + "".join(f"{k:>{width}}" for k in kinds))
    for found in kinds:
        print(f"  {found:<{width}}" + "".join(f"{result.faithfulness[found][s]:>{width}.3f}" for s in kinds))
    verdict = "DEPENDS on the ablation" if result.depends_on_ablation else "does not depend on the ablation"
    print(f"membership {verdict} (two circuits overlapping below {DEPENDS_BELOW:g} count as depending)")
    if args.json:
        write_text(args.json, json.dumps(result.to_dict(), indent=1, allow_nan=False))
        print(f"wrote {args.json}")
    return 0
