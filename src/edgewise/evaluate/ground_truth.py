"""Ground truths per ablation: the compiler's circuit minus the edges that carry nothing the metric sees under an
ablation on the task's data, redundancy-aware where copies of one computation back each other up. One definition,
used by the bench, `edgewise discover` and `edgewise diagnose` alike (docs/ground-truth.md, "One truth per
ablation" and "Redundancy-aware truth")."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from ..graph import Edge, Graph
from ..patching import AblatedOutputs, full_logits, patched_forward
from ..tasks import Task

# An edge carries nothing when removing it moves no scored output by more than this. tracr's float32 noise is ~1e-7;
# effects of ~1e-6 (reverse's half score on BOS, docs/ground-truth.md) count as none, as in ACDC's canonical circuits.
OUTPUT_TOLERANCE = 1e-5
MASKS_PER_FORWARD = 64  # removals patched in one forward: bounds memory at 64 x the batch
MAX_PAIRS = 4096  # partner search beyond this many pairs (91 free edges) keeps the derived circuit instead


@dataclass(frozen=True)
class EffectiveTruth:
    """The effective truth of one ablation and what it rests on: the edges each needed alone, and the partner pairs
    (each removable alone, not both) that make a redundant copy count.

    Attributes:
        edges: the effective truth's edges: `needed` when those alone keep the outputs, else `needed` plus every
            edge of `partners` when those do, else the whole derived circuit (`effective_truth`).
    """

    edges: frozenset[Edge]
    needed: frozenset[Edge]  # removing one of these alone from the derived circuit moves a scored output
    partners: tuple[tuple[Edge, Edge], ...]  # pairs whose joint removal moves one, neither's alone does


def truth_tolerance(task: Task, tolerance: float | None = None) -> float:
    """Returns `tolerance`, else the task's own truth tolerance, else OUTPUT_TOLERANCE.

    Args:
        task: the task whose `truth_tolerance` applies when `tolerance` is None.
        tolerance: the largest scored output change that counts as none; None: the task's, else OUTPUT_TOLERANCE.

    Returns:
        The tolerance to use.
    """
    if tolerance is not None:
        return tolerance
    return OUTPUT_TOLERANCE if task.truth_tolerance is None else task.truth_tolerance


def scored_change(task: Task, logits: torch.Tensor, full: torch.Tensor, measure: str | None = None) -> torch.Tensor:
    """Returns how far `logits` [n, batch, pos, out] moved from `full` over the task's scored positions, [n], by
    `measure` (None: the task's truth measure): "logits", the largest |output change|; "argmax", the fraction of
    scored positions whose argmax changed.

    Args:
        task: the task whose scored positions (and, with `measure` None, truth measure) apply.
        logits: the outputs to compare, `[n, batch, pos, out]`.
        full: the outputs they are compared with, `[batch, pos, out]` (or broadcastable to `logits`).
        measure: "logits" or "argmax"; None: the task's `truth_measure`.

    Returns:
        The change of each of the n outputs, `[n]`.
    """
    if (measure or task.truth_measure) == "argmax":
        flipped = logits.argmax(-1) != full.argmax(-1)
        return flipped[..., task.scored_positions].to(logits.dtype).mean(-1)
    return (logits - full).abs().amax(-1)[..., task.scored_positions].amax(-1)


def removal_changes(
    task: Task,
    graph: Graph,
    ablated: AblatedOutputs,
    circuit: set[Edge],
    removals: list[tuple[Edge, ...]],
    reference: torch.Tensor,
) -> list[float]:
    """Returns, per removal, the largest scored output change from `reference` of `circuit` without those edges.

    The change is `scored_change` by the task's truth measure: with "argmax", the fraction of scored positions whose
    argmax changed. Removals are patched `MASKS_PER_FORWARD` at a time.

    Args:
        task: the task whose model, clean batch and scored positions are used.
        graph: the graph whose edges `circuit` and the removals are.
        ablated: what an ablated edge carries.
        circuit: the edges kept before any removal.
        removals: the removals, each a tuple of edges taken out of `circuit` together.
        reference: the outputs the changes are measured from, `[batch, pos, out]` or `[1, batch, pos, out]`.

    Returns:
        One change per removal, in the order given.

    Raises:
        GraphMismatchError: an edge of `circuit` or of a removal is not in `graph`.
    """
    keep = graph.mask_for(circuit)
    changes: list[float] = []
    starts = range(0, len(removals), MASKS_PER_FORWARD)
    for start in tqdm(starts, desc="removals", unit="forward", leave=False, disable=len(starts) < 16):
        chunk = removals[start : start + MASKS_PER_FORWARD]
        masks = keep.repeat(len(chunk), 1)
        for row, edges in enumerate(chunk):
            masks[row, [graph.edge_index(e) for e in edges]] = 0
        changes += scored_change(
            task, patched_forward(task.model, graph, task.clean, ablated, masks), reference
        ).tolist()
    return changes


@torch.no_grad()
def effective_truth(
    task: Task, graph: Graph, ablated: AblatedOutputs, tolerance: float | None = None
) -> EffectiveTruth:
    """Returns the effective truth under this ablation on the task's data (docs/ground-truth.md):

    1. the derived circuit's edges whose removal alone moves a scored output of the circuit by more than
       `tolerance`, when those alone keep every scored output within `tolerance` of the circuit's;
    2. else, redundancy-aware: those edges plus every edge with a partner, an edge that is removable alone but not
       together with it (two copies of one computation: either suffices, so single removals find neither), when
       that keeps the outputs;
    3. else (or with more than MAX_PAIRS pairs to try) the derived circuit itself.

    Only scored positions count: an edge that moves only the BOS output (which no metric reads) carries nothing.
    Under resample ablation on tracr-reverse this is auto-circuit's 2-edge circuit; under zero ablation ACDC's 10.
    `tolerance` defaults to the task's `truth_tolerance`, else OUTPUT_TOLERANCE.

    Args:
        task: the task; it must have a ground truth for `graph` (`Task.knows_truth`).
        graph: the graph the truth is taken on (plain or per position, head/MLP or feature graph).
        ablated: the ablation the truth is taken under.
        tolerance: the largest scored output change that counts as none (`truth_tolerance`).

    Returns:
        The effective truth, with the edges each needed alone and the partner pairs it rests on.

    Raises:
        GraphMismatchError: the task has no ground truth for this kind of graph.
    """
    tolerance = truth_tolerance(task, tolerance)
    truth = sorted(task.ground_truth_edges(graph), key=graph.edge_index)
    # What the derived circuit alone computes: the full model's outputs on tracr (tested), and what removals are
    # measured against, so that in a compressed model, where the circuit alone is off by interference, an edge
    # counts by what it adds to the circuit
    alone = patched_forward(task.model, graph, task.clean, ablated, graph.mask_for(truth).unsqueeze(0))
    moved = removal_changes(task, graph, ablated, set(truth), [(e,) for e in truth], alone)
    needed = frozenset(e for e, m in zip(truth, moved) if m > tolerance)
    everything = EffectiveTruth(frozenset(truth), needed, ())
    if not needed and scored_change(task, alone, full_logits(task)).item() > tolerance:
        # A circuit that is far from the model and that no removal moves is missing what feeds it (a trained SAE's
        # matched truth without the inputs its features read): no edge can be told apart, so keep them all
        return everything

    def keeps_outputs(edges: frozenset[Edge]) -> bool:
        rest = patched_forward(task.model, graph, task.clean, ablated, graph.mask_for(edges).unsqueeze(0))
        return scored_change(task, rest, alone).item() <= tolerance

    if keeps_outputs(needed):
        return EffectiveTruth(needed, needed, ())
    free = [e for e in truth if e not in needed]
    pairs = list(itertools.combinations(free, 2))
    if len(pairs) > MAX_PAIRS:
        return everything
    partners = tuple(
        p for p, m in zip(pairs, removal_changes(task, graph, ablated, set(truth), pairs, alone)) if m > tolerance
    )
    with_copies = needed | {e for pair in partners for e in pair}
    return EffectiveTruth(with_copies, needed, partners) if partners and keeps_outputs(with_copies) else everything


def effective_ground_truth(
    task: Task, graph: Graph, ablated: AblatedOutputs, tolerance: float | None = None
) -> set[Edge]:
    """Returns the edges of the effective truth under this ablation (`effective_truth`): what AUROC is taken
    against.

    Args:
        task: the task; it must have a ground truth for `graph`.
        graph: the graph the truth is taken on.
        ablated: the ablation the truth is taken under.
        tolerance: the largest scored output change that counts as none (`truth_tolerance`).

    Returns:
        The effective truth's edges.

    Raises:
        GraphMismatchError: the task has no ground truth for this kind of graph.
    """
    return set(effective_truth(task, graph, ablated, tolerance).edges)
