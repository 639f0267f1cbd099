"""Where a method goes wrong: for scores ranked against the effective truth, each true edge the method ranks below a
false one, with why (a redundant copy whose partner carries the same, a score at the method's resolution, a score
that disagrees with the edge's measured effect), and each false edge scored above a true one, with what it carries.
The measured effect of an edge is exact: its removal alone from the full model under the scores' ablation."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..evaluate import EffectiveTruth, removal_changes, roc_auc, truth_tolerance
from ..graph import ZERO_TOLERANCE, Edge, EdgeScores, ScoreTrajectory
from ..methods import hard_concrete
from ..patching import AblatedOutputs, full_logits
from ..tasks import Task
from .constant_writers import no_op_positions
from .redundancy import RedundantGroup

SHOWN_FALSE = 10  # false edges ranked above a true one that the report explains, best-ranked first


@dataclass(frozen=True)
class RankedEdge:
    """One edge as the method ranked it, with its measured effect and the reason it is where it should not be.

    Attributes:
        edge: the edge.
        rank: 1: the method's most important edge (ties keep graph order).
        score: as AUROC sees it: within ZERO_TOLERANCE of the largest |score|, zero.
        change_alone: the largest scored output change when only this edge is removed from the full model.
        reason: the reason in a few words (`redundant partner`, `below resolution`, `tied`, `needed only in the
            circuit`, `score disagrees with effect`; false edges: `carries signal`, `carries nothing`).
        detail: the reason in a sentence with the numbers behind it.
    """

    edge: Edge
    rank: int
    score: float
    change_alone: float
    reason: str
    detail: str

    def to_dict(self) -> dict:
        """Returns the ranked edge as JSON-ready data, the edge as its endpoints."""
        return {
            "edge": self.edge.endpoints(),
            "rank": self.rank,
            "score": self.score,
            "change_alone": self.change_alone,
            "reason": self.reason,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class MissReport:
    """The misses of one method's scores against the effective truth under the scores' ablation.

    Attributes:
        method: the scores' method.
        ablation: the scores' ablation.
        auroc: the scores' edge AUROC against the effective truth.
        n_true: the effective truth's size.
        missed: true edges ranked below the best-ranked false edge.
        false_high: false edges scored above the lowest true edge's score (at most SHOWN_FALSE).
    """

    method: str
    ablation: str
    auroc: float
    n_true: int
    missed: tuple[RankedEdge, ...]
    false_high: tuple[RankedEdge, ...]

    def to_dict(self) -> dict:
        """Returns the report as JSON-ready data."""
        return {
            "method": self.method,
            "ablation": self.ablation,
            "auroc": self.auroc,
            "n_true": self.n_true,
            "missed": [m.to_dict() for m in self.missed],
            "false_high": [f.to_dict() for f in self.false_high],
        }


def _copy_of(edge: Edge, groups: tuple[RedundantGroup, ...]) -> tuple[RedundantGroup, int] | None:
    """Returns the redundant group and copy index that hold the edge, or None."""
    for group in groups:
        for i, copy in enumerate(group.copies):
            if edge in copy:
                return group, i
    return None


def _missed_reason(
    edge: Edge,
    rank: dict[Edge, int],
    score: float,
    change: float,
    tolerance: float,
    groups: tuple[RedundantGroup, ...],
    first_false: tuple[Edge, int, float],
    ties: int,
) -> tuple[str, str]:
    """Returns why a true edge ranks below a false one; `ties` false edges have its score."""
    found = _copy_of(edge, groups)
    if found is not None:
        group, i = found
        others = [
            (min(rank[e] for e in c), name) for j, (c, name) in enumerate(zip(group.copies, group.names)) if j != i
        ]
        best_rank, best_name = min(others)
        partner = (
            f"the method ranks copy {best_name} higher (its best edge at rank {best_rank})"
            if best_rank < rank[edge]
            else "no other copy ranks higher"
        )
        return "redundant partner", (
            f"one edge of copy {group.names[i]} ({group.describe()}): removing it alone "
            f"changes the outputs by {change:.2g}, so a single-removal signal sees nothing; "
            f"{partner}"
        )
    false_edge, false_rank, false_score = first_false
    if score == 0 and change > tolerance:
        return "below resolution", (
            f"its score is zero at the method's resolution ({ZERO_TOLERANCE:g} of the largest "
            f"|score|), yet removing it alone changes the outputs by {change:.2g}"
        )
    if ties:
        return "tied", (
            f"score {score:.3g}, the same as {ties} false edges: the method cannot tell them apart (AUROC "
            f"counts ties one half), though removing it alone changes the outputs by {change:.2g}"
        )
    if change <= tolerance:
        return "needed only in the circuit", (
            f"removing it alone from the full model changes the outputs by "
            f"{change:.2g}: edges outside the truth carry the same, so its effect "
            "shows only once they are gone"
        )
    return "score disagrees with effect", (
        f"score {score:.3g}, below false edge {false_edge.name} (rank {false_rank}, "
        f"score {false_score:.3g}), though removing it alone changes the outputs "
        f"by {change:.2g}"
    )


def gate_story(trajectory: ScoreTrajectory, index: int) -> str:
    """Returns how one SP gate moved, in words: its log_alpha at five of the recorded steps, and when it last
    crossed the keep threshold (open: log_alpha > 0, the noise-free gate above 0.5).

    Args:
        trajectory: the scores' recorded gate values over training (SP's).
        index: the edge's index in the graph.

    Returns:
        One clause, e.g. `its gate's log_alpha 1.00 (step 0) -> ... -> -0.50 (step 900): closed since step 400`.
    """
    points = trajectory.of(index)
    shown = sorted({points[round(i * (len(points) - 1) / 4)] for i in range(5)})
    path = " -> ".join(f"{value:.2f} (step {step})" for step, value in shown)
    is_open = [value > hard_concrete.KEEP_THRESHOLD for _, value in points]
    crossings = [points[i][0] for i in range(1, len(points)) if is_open[i] != is_open[i - 1]]
    state = "open" if is_open[-1] else "closed"
    when = f"{state} since step {crossings[-1]}" if crossings else f"{state} throughout"
    return f"its gate's log_alpha {path}: {when}"


def _with_gate(reason: tuple[str, str], trajectory: ScoreTrajectory | None, index: int) -> tuple[str, str]:
    """Returns the reason with the edge's gate trajectory added, for scores that have one (SP's): when the gate
    closed tells an early decision from a late one."""
    return reason if trajectory is None else (reason[0], f"{reason[1]}; {gate_story(trajectory, index)}")


def _false_reason(edge: Edge, change: float, tolerance: float, no_op: dict[str, torch.Tensor]) -> tuple[str, str]:
    """Returns what a false edge ranked above a true one carries."""
    same = no_op[edge.writer]  # [pos]: where the writer's ablated value is its clean output
    constant = bool(same.all() if edge.position is None else same[edge.position])
    if change > tolerance:
        return "carries signal", (
            f"removing it alone changes the outputs by {change:.2g}, but the circuit does "
            "not need it: the truth's edges reproduce the outputs without it"
        )
    if constant:
        return "carries nothing", (
            f"its writer {edge.writer} outputs the same under this ablation as on the clean "
            "inputs, so ablating it replaces a value by itself"
        )
    return "carries nothing", (
        f"removing it alone changes the outputs by {change:.2g}: the method's score is not an effect the metric sees"
    )


@torch.no_grad()
def explain_misses(
    task: Task,
    scores: EdgeScores,
    ablated: AblatedOutputs,
    truth: EffectiveTruth,
    groups: tuple[RedundantGroup, ...] = (),
    tolerance: float | None = None,
) -> MissReport:
    """Returns the misses of `scores` against the effective truth `truth` (on the task's inputs, under `ablated`,
    the scores' ablation), each explained; `groups` are the truth's redundant groups.

    Args:
        task: the task the scores were found on.
        scores: the method's edge scores; their graph is the one examined.
        ablated: the scores' ablation, under which each edge's effect is measured.
        truth: the effective truth on the scores' graph under `ablated`.
        groups: the truth's redundant groups (`redundant_groups`), which explain missed copies; () for none.
        tolerance: the largest scored output change that counts as none; None: the task's (`truth_tolerance`).

    Returns:
        The report: the missed true edges and (at most SHOWN_FALSE) the false edges ranked high, each with its
        reason.
    """
    graph = scores.graph
    tolerance = truth_tolerance(task, tolerance)
    ranked = scores.ranked()
    rank = {e: i + 1 for i, (e, _) in enumerate(ranked)}
    value = dict(ranked)
    true = set(truth.edges)
    first_false = next(((e, rank[e], value[e]) for e, _ in ranked if e not in true), None)
    lowest_true = min((value[e] for e in true), default=0.0)
    missed = [e for e, _ in ranked if e in true and first_false is not None and rank[e] > first_false[1]]
    false_high = [e for e, _ in ranked if e not in true and value[e] > lowest_true][:SHOWN_FALSE]
    involved = missed + false_high
    changes = (
        dict(
            zip(
                involved,
                removal_changes(task, graph, ablated, set(graph.edges), [(e,) for e in involved], full_logits(task)),
            )
        )
        if involved
        else {}
    )
    no_op = no_op_positions(task, graph, ablated) if false_high else {}
    false_scores = [value[e] for e, _ in ranked if e not in true]
    gate = lambda e, reason: _with_gate(reason, scores.trajectory, graph.edge_index(e))  # noqa: E731
    missed_edges = tuple(
        RankedEdge(
            e,
            rank[e],
            value[e],
            changes[e],
            *gate(
                e,
                _missed_reason(
                    e, rank, value[e], changes[e], tolerance, groups, first_false, false_scores.count(value[e])
                ),
            ),
        )
        for e in missed
    )
    false_edges = tuple(
        RankedEdge(e, rank[e], value[e], changes[e], *gate(e, _false_reason(e, changes[e], tolerance, no_op)))
        for e in false_high
    )
    return MissReport(scores.method, scores.ablation, roc_auc(scores, true), len(true), missed_edges, false_edges)


def format_misses(report: MissReport) -> list[str]:
    """Returns the report's lines as `edgewise diagnose --scores` prints them.

    Args:
        report: the report of `explain_misses`.

    Returns:
        The lines, without newlines.
    """
    lines = [
        f"== where {report.method} goes wrong under {report.ablation} ablation: AUROC {report.auroc:.3f} against "
        f"the effective truth ({report.n_true} edges)"
    ]
    if not report.missed and not report.false_high:
        lines.append("  nowhere: every true edge ranks above every false one")
        return lines
    lines.append(f"  true edges ranked below a false one ({len(report.missed)}):")
    lines += [f"    #{m.rank:<4} {m.edge.name:<28} {m.reason}: {m.detail}" for m in report.missed]
    lines.append(
        f"  false edges scored above a true one: {len(report.false_high) or 'none'}"
        + (f" (the best {SHOWN_FALSE})" if len(report.false_high) == SHOWN_FALSE else "")
    )
    lines += [f"    #{f.rank:<4} {f.edge.name:<28} {f.reason}: {f.detail}" for f in report.false_high]
    return lines
