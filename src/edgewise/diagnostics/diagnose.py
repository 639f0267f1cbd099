"""Validity diagnostics of a task, in one report: constant writers, the ground truth's faithfulness and minimal
circuit under each ablation, and what a circuit actually outputs; `edgewise diagnose TASK` prints and saves it.

The case that motivates it: on tracr-reverse every input has length 3, so the MLPs that compute `length` and
`opp_idx` output the same vector on every input. Resampling them changes nothing, and under resample ablation a
2-edge circuit (`Resid Start->A3.0.V`, `A3.0->Resid End`) is exactly as faithful as the compiler's 13 edges
(docs/diagnostics.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch

from ..errors import GraphMismatchError, InvalidHyperparameterError
from ..evaluate import (
    DEPENDS_BELOW,
    RECOVERED_LEVEL,
    ExampleFaithfulness,
    effective_truth,
    jaccard,
    per_example_faithfulness,
)
from ..graph import Circuit, EdgeScores, Graph
from ..methods import method_circuit
from ..patching import Ablation, task_ablation
from ..tasks import Task
from .behaviour import BehaviourCheck, BehaviourThresholds, OutputBehaviour, behaviour_check
from .constant_writers import WRITER_TOLERANCE, WriterVariation, constant_beyond_bos, writer_variation
from .minimal_circuit import OUTPUT_TOLERANCE, MinimalCircuit, minimal_circuit
from .misses import MissReport, explain_misses, format_misses
from .redundancy import RedundantGroup, redundant_groups

ABLATIONS = (Ablation.RESAMPLE, Ablation.MEAN, Ablation.ZERO)  # what `diagnose` compares unless told


@dataclass(frozen=True)
class DiagnosticsSettings:
    """Tolerances of the diagnostics (reasons beside OUTPUT_TOLERANCE, WRITER_TOLERANCE and BehaviourThresholds).

    Attributes:
        output_tolerance: faithful: every scored output within this of the full model's.
        writer_tolerance: constant: deviation <= this * (1 + the writer's largest |output|).
        behaviour: the behaviour check's thresholds.
        truth_tolerance: the effective truth's (its redundant copies', the misses it explains): None takes the
            task's truth_tolerance.

    Raises:
        InvalidHyperparameterError: a tolerance is negative or NaN.
    """

    output_tolerance: float = OUTPUT_TOLERANCE
    writer_tolerance: float = WRITER_TOLERANCE
    behaviour: BehaviourThresholds = field(default_factory=BehaviourThresholds)
    truth_tolerance: float | None = None

    def __post_init__(self):
        for name in ("output_tolerance", "writer_tolerance", "truth_tolerance"):
            value = getattr(self, name)
            if value is not None and not value >= 0:
                raise InvalidHyperparameterError(f"{name}={value} must be a number >= 0 (0 demands exact equality)")


@dataclass(frozen=True)
class AblationDiagnosis:
    """The ground truth's minimisation (None without a ground truth), its redundant copies and the behaviour check
    under one ablation.

    Attributes:
        ablation: the ablation's kind.
        minimal: the ground truth's minimal circuit, or None without a ground truth.
        behaviour: the behaviour check of the checked circuit.
        redundancy: the effective truth's redundant groups.
        copies_kept: per redundant group, the copies the checked circuit keeps whole.
        misses: where given scores (of this ablation) go wrong against the effective truth.
        per_example: the checked circuit's faithfulness on each input, or None where not measured.
        checked: the checked circuit's edges.
    """

    ablation: str
    minimal: MinimalCircuit | None
    behaviour: BehaviourCheck
    redundancy: tuple[RedundantGroup, ...] = ()
    copies_kept: tuple[int, ...] = ()
    misses: MissReport | None = None
    per_example: ExampleFaithfulness | None = None
    checked: frozenset = frozenset()

    def to_dict(self) -> dict:
        """Returns the diagnosis as JSON-ready data, edges in the graph's order."""
        m = self.minimal
        record: dict = {"ground_truth_faithful": None, "minimal_circuit": None, "removable": []}
        if m is not None:
            record = {
                "ground_truth_faithful": m.faithful,
                "ground_truth_loss": m.start_loss,
                "ground_truth_max_change": m.start_change,
                "ground_truth_size": len(m.start),
                "minimal_circuit": None if m.edges is None else [k.edge.endpoints() for k in m.kept],
                "minimal_circuit_loss": m.loss,
                "removable": [r.to_dict() for r in m.removed],
                "kept": [k.to_dict() for k in m.kept],
            }
        record["redundant_groups"] = [
            {**g.to_dict(), "description": g.describe(), "copies_kept": kept}
            for g, kept in zip(self.redundancy, self.copies_kept)
        ]
        record["misses"] = None if self.misses is None else self.misses.to_dict()
        record["per_example_faithfulness"] = None if self.per_example is None else self.per_example.to_dict()
        return {**record, "empty_loss": self.behaviour.rows[-1].loss, "behaviour": self.behaviour.to_dict()}


@dataclass(frozen=True)
class Diagnosis:
    """Every diagnostic of one task on one graph.

    Attributes:
        task: the task's name.
        graph: the graph diagnosed.
        metric: the task metric's name.
        settings: the tolerances used.
        bos_position: the task's BOS position, or None.
        writers: every writer's variation, constant or not.
        ablations: each ablation's diagnosis, by ablation kind.
        given_circuit: whether one circuit was given for every ablation (else each ablation checks its own).
    """

    task: str
    graph: Graph
    metric: str
    settings: DiagnosticsSettings
    bos_position: int | None
    writers: tuple[WriterVariation, ...]
    ablations: dict[str, AblationDiagnosis]
    given_circuit: bool = False

    @property
    def constant_writers(self) -> list[WriterVariation]:
        """Returns the writers constant on every input at some position other than BOS (see constant_beyond_bos)."""
        return constant_beyond_bos(list(self.writers), self.bos_position)

    @property
    def constant_only_at_bos(self) -> list[str]:
        """Returns the writers whose output is the same on every input at the BOS position only."""
        return [w.writer for w in self.writers if w.constant_positions == (self.bos_position,)]

    @property
    def ablation_overlap(self) -> dict[str, float]:
        """Returns the Jaccard overlap of the checked circuits of each pair of ablations (`a vs b`); empty when one
        circuit was given for all of them."""
        kinds = list(self.ablations)
        edges = {k: self.ablations[k].checked for k in kinds}
        if len(set(edges.values())) <= 1 and self.given_circuit:
            return {}
        return {f"{a} vs {b}": jaccard(edges[a], edges[b]) for i, a in enumerate(kinds) for b in kinds[i + 1 :]}

    def to_dict(self) -> dict:
        """Returns the diagnosis as JSON-ready data: the `edgewise diagnose --json` contract."""
        return {
            "task": self.task,
            "graph": {"n_edges": self.graph.n_edges, "per_position": self.graph.per_position},
            "metric": self.metric,
            "settings": asdict(self.settings),
            "bos_position": self.bos_position,
            "constant_writers": [w.to_dict() for w in self.constant_writers],
            "constant_only_at_bos": self.constant_only_at_bos,
            "ablations": {kind: a.to_dict() for kind, a in self.ablations.items()},
            "ablation_overlap": self.ablation_overlap,
            "depends_on_ablation": any(v < DEPENDS_BELOW for v in self.ablation_overlap.values()),
        }


def diagnose(
    task: Task,
    per_position: bool = False,
    ablations: tuple[str | Ablation, ...] = ABLATIONS,
    circuit: Circuit | None = None,
    settings: DiagnosticsSettings = DiagnosticsSettings(),
    features: str | None = None,
    scores: EdgeScores | None = None,
) -> Diagnosis:
    """Returns the task's diagnostics: its constant writers, and per ablation the ground truth's faithfulness,
    minimal circuit and redundant copies, plus a behaviour check of `circuit` (default: the method's circuit of
    `scores`, else that ablation's minimal circuit, or the ground truth where it is not faithful); on the graph split
    by the dictionary set `features` when given. With `scores`, the ablation they were found under also says where
    their method goes wrong (`explain_misses`).

    Args:
        task: the task to diagnose.
        per_position: diagnose the per-position graph.
        ablations: the ablations to compare, as names or Ablation values.
        circuit: the circuit whose behaviour to check; None: as above.
        settings: the tolerances.
        features: the task's dictionary set that splits the graph's writers; None: no features.
        scores: a method's scores on the same graph, whose misses to explain under their ablation.

    Returns:
        The diagnosis.

    Raises:
        UnknownAblationError: an unknown ablation name.
        GraphMismatchError: `scores` were found on another graph, or the task has no ground truth while `scores`
            are given or `circuit` is None, or `circuit` belongs to another task or graph, or the task lacks the
            `features` set.
    """
    ablations = tuple(Ablation.parse(kind) for kind in ablations)  # UnknownAblationError before any work
    graph = task.graph(per_position, features=features)
    knows_truth = task.knows_truth(graph)
    if scores is not None:
        if scores.graph != graph:
            raise GraphMismatchError(
                f"the scores' graph ({scores.graph.n_edges} edges) is not task {task.name}'s "
                f"{'per-position' if per_position else 'plain'} graph ({graph.n_edges} edges); "
                "diagnose them with the graph they were found on (--per-position, --features)"
            )
        if not knows_truth:
            raise GraphMismatchError(
                f"task {task.name} has no ground truth to rank the scores against; pass their "
                "circuit instead (`--circuit FILE`)"
            )
    if circuit is None and not knows_truth:
        raise GraphMismatchError(
            f"task {task.name} has no ground-truth circuit to minimise; pass the circuit whose "
            "behaviour to check (`--circuit FILE`)"
        )
    if circuit is not None:  # raise GraphMismatchError, naming the fix, for a circuit of another task or graph
        circuit.check_task(task.name)
        circuit.mask(graph)
    results = {}
    for kind in ablations:
        ablated = task_ablation(task, graph, kind)
        minimal, groups, misses = None, (), None
        if knows_truth:
            minimal = minimal_circuit(task, graph, ablated, None, settings.output_tolerance, settings.writer_tolerance)
            effective = effective_truth(task, graph, ablated, settings.truth_tolerance)
            groups = tuple(redundant_groups(task, graph, ablated, effective, settings.truth_tolerance))
            if scores is not None and scores.ablation == kind:
                misses = explain_misses(task, scores, ablated, effective, groups, settings.truth_tolerance)
        if circuit is not None:
            edges, label = set(circuit.edges), circuit.description or "given circuit"
        elif misses is not None:
            found = method_circuit(scores, len(effective.edges))
            edges, label = set(found.edges), f"{scores.method} circuit"
        elif minimal.edges is not None:
            edges, label = set(minimal.edges), "minimal circuit"
        else:
            edges, label = set(minimal.start), "ground truth"
        check = behaviour_check(task, graph, ablated, edges, label, settings.behaviour)
        per_example = per_example_faithfulness(task, graph, ablated, edges)
        results[kind] = AblationDiagnosis(
            kind,
            minimal,
            check,
            groups,
            tuple(g.copies_kept(edges) for g in groups),
            misses,
            per_example,
            frozenset(edges),
        )
    return Diagnosis(
        task.name,
        graph,
        task.metric.name,
        settings,
        task.bos_position,
        tuple(writer_variation(task, graph, settings.writer_tolerance)),
        results,
        circuit is not None,
    )


def _positions(positions: tuple[int, ...], all_positions: tuple[int, ...]) -> str:
    """Returns 'every position', or the positions as a list."""
    if positions == all_positions:
        return "every position"
    return ("position " if len(positions) == 1 else "positions ") + ", ".join(map(str, positions))


def _answers(row: OutputBehaviour, categorical: bool, shown: int = 4) -> str:
    """Returns a row's answer distribution in a few words: the top classes' shares, or mean, std and range."""
    d = row.distribution
    if not categorical:
        return f"mean {d['mean']:.3g}, std {d['std']:.3g}, {d['min']:.3g}..{d['max']:.3g}"
    top = ", ".join(f"{label} {share:.0%}" for label, share in list(d.items())[:shown])
    return top + (f", +{len(d) - shown} more" if len(d) > shown else "")


def _writer_lines(diagnosis: Diagnosis) -> list[str]:
    """Returns the constant-writers section; writers that are zero everywhere share one line."""
    lines = [
        f"== constant writers: output the same on every input (clean and corrupted), within "
        f"{diagnosis.settings.writer_tolerance:g} x (1 + largest |output|)"
    ]
    empty = []
    for w in diagnosis.constant_writers:
        evaluated = tuple(sorted(w.constant_positions + w.varying_positions))
        if w.zero_positions == evaluated:
            empty.append(w.writer)
            continue
        text = _positions(w.constant_positions, evaluated)
        if w.varying_positions:
            text += f" (varies at {', '.join(map(str, w.varying_positions))})"
        if w.zero_positions:
            text += "; zero at " + _positions(w.zero_positions, evaluated)
        lines.append(f"  {w.writer:<12} {text}")
    if empty:
        lines.append(f"  zero at every position (they write nothing on these inputs): {', '.join(empty)}")
    if not diagnosis.constant_writers:
        lines.append("  none")
    if diagnosis.constant_only_at_bos:
        lines.append(
            f"  constant only at the BOS position {diagnosis.bos_position}: "
            + ", ".join(diagnosis.constant_only_at_bos)
        )
    return lines


def _ablation_lines(diagnosis: Diagnosis, a: AblationDiagnosis) -> list[str]:
    """Returns one ablation's section: ground truth, minimal circuit with reasons, behaviour table."""
    metric, m = diagnosis.metric, a.minimal
    lines = [f"== {a.ablation} ablation"]
    if m is not None:
        verdict = "faithful" if m.faithful else f"NOT faithful (max output change {m.start_change:.3g})"
        lines.append(
            f"  ground truth ({len(m.start)} edges): {verdict}, {metric} {m.start_loss:.3g} "
            f"(empty circuit: {a.behaviour.rows[-1].loss:.3g})"
        )
    if m is not None and m.edges is not None:
        lines.append(f"  minimal circuit: {len(m.edges)} edges, {metric} {m.loss:.3g}; removing one of them gives")
        lines += [
            f"    {k.edge.name:<28} {metric} {k.loss_without:.3g}, max output change {k.change_without:.2g}"
            + ("  (redundant: removable alone from the ground truth)" if k.redundant else "")
            for k in m.kept
        ]
        lines.append(f"  removed from the ground truth: {len(m.removed)} edges")
        lines += [f"    {r.edge.name:<28} {r.reason}: {r.detail}" for r in m.removed]
    if a.redundancy:
        lines.append(
            "  redundant copies (removing a copy alone changes nothing, removing all but the sufficient ones "
            "breaks the task; the effective truth keeps every copy):"
        )
        lines += [
            f"    {g.describe()}; the {a.behaviour.rows[1].label} keeps {kept} of {len(g.copies)}"
            for g, kept in zip(a.redundancy, a.copies_kept)
        ]
    rows = a.behaviour.rows
    width = max(len(row.label) for row in rows) + 2
    lines.append(f"  behaviour of the {rows[1].label} on the task's inputs:")
    valued = rows[0].answer_value is not None
    lines.append(
        f"    {'':<{width}}{'edges':>6}{metric:>10}{'agree':>7}{'value' if valued else '':>7}  {'answers':<40} flags"
    )
    for row in rows:
        value = f"{row.answer_value:>7.3f}" if valued else ""
        lines.append(
            f"    {row.label:<{width}}{row.n_edges:>6}{row.loss:>10.3g}{row.agreement:>7.2f}{value}  "
            f"{_answers(row, a.behaviour.categorical):<40} {', '.join(row.flags) or '-'}"
        )
    if valued:
        lines.append("    value: the mean true value of the answers (a game's minimax value of the chosen moves)")
    if a.per_example is not None:
        lines += _per_example_lines(a.per_example, rows[1].label)
    if a.misses is not None:
        lines += format_misses(a.misses)
    return lines


def _per_example_lines(f: ExampleFaithfulness, label: str, shown: int = 3) -> list[str]:
    """Returns the per-input faithfulness of the checked circuit: quartiles, share recovered, the worst inputs."""
    q = f.quantiles()
    undefined = int(torch.isnan(f.values).sum())
    line = (
        f"  faithfulness of the {label} per input: median {q['median']:.3g}, quartiles {q['q25']:.3g}..{q['q75']:.3g}, "
        f"min {q['min']:.3g}; {f.share_recovered():.0%} of inputs recovered to >= {RECOVERED_LEVEL:g}"
    )
    if undefined:
        line += f" ({undefined} inputs left out: the ablation does not change them)"
    worst = ", ".join(f"row {i} ({f.values[i].item():.3g})" for i in f.worst(shown))
    return [line, f"    worst inputs: {worst}" if worst else "    worst inputs: none (no input is changed)"]


def format_diagnosis(diagnosis: Diagnosis) -> str:
    """Returns the diagnosis as the text report `edgewise diagnose` prints.

    Args:
        diagnosis: the diagnosis of `diagnose`.

    Returns:
        The report, lines joined by newlines.
    """
    kind = ("per-position" if diagnosis.graph.per_position else "plain") + (
        f", {diagnosis.graph.features} features" if diagnosis.graph.features else ""
    )
    lines = [
        f"{diagnosis.task}: {diagnosis.graph.n_edges} edges ({kind} graph), metric {diagnosis.metric}; faithful "
        f"= every scored output within {diagnosis.settings.output_tolerance:g} of the full model's",
        "",
    ]
    lines += _writer_lines(diagnosis)
    for a in diagnosis.ablations.values():
        lines += [""] + _ablation_lines(diagnosis, a)
    overlap = diagnosis.ablation_overlap
    if overlap:
        depends = any(v < DEPENDS_BELOW for v in overlap.values())
        lines += [
            "",
            "== does the circuit depend on the ablation? overlap (Jaccard) of each ablation's checked circuit: "
            + ", ".join(f"{pair} {v:.2f}" for pair, v in overlap.items()),
            f"  {'DEPENDS on the ablation' if depends else 'does not depend on the ablation'} "
            f"(a pair below {DEPENDS_BELOW:g} counts as depending)",
        ]
    return "\n".join(lines)
