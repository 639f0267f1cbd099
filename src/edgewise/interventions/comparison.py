"""One removal comparison: every intervention on one forget task, measured alike. Circuits (edge-level, and
node-level: each circuit node's whole output) are ablated; random edges of each circuit's size, a removal mask
trained for the purpose, task vectors and gradient ascent are the baselines. Everything that trains (the methods
before, the mask, the weight edits, relearning) uses the discovery inputs; everything is measured on the held-out
inputs where the task has them. `edgewise remove` and benchmarks/removal.py print what this returns. Every row
says what it removed as typed data (interventions/removed.py); its label is computed from that."""

from __future__ import annotations

import dataclasses
import gc
import math
from dataclasses import dataclass, field
from typing import Sequence

from tqdm.auto import tqdm

from ..adapters import Adapter
from ..evaluate import RunEvaluation, circuit_nodes, circuits_faithfulness
from ..graph import Edge, Graph
from ..methods import discover, get_method, top_k_circuit
from ..patching import task_ablation
from ..tasks import PromptTasks, Task
from .relearning import Relearning, relearn
from .removal import Reference, Removal, random_edges, remove
from .removal_mask import RemovalMaskConfig, learn_removal_mask
from .removed import (
    CircuitNodes,
    DiscoveredCircuit,
    GradientAscent,
    RandomEdges,
    RemovalKind,
    RemovalMask,
    Removed,
    RemovedCircuit,
    TaskVector,
    removed_from_dict,
    removed_from_label,
)
from .weight_edits import WeightEdit, fine_tune, task_vector_model, weight_edit


@dataclass(frozen=True)
class TaskSplit:
    """A task's discovery inputs (what trains) and evaluation inputs (what is measured: held out where it can)."""

    discovery: Task
    evaluation: Task
    held_out: bool

    @classmethod
    def from_prompt_tasks(cls, tasks: PromptTasks) -> "TaskSplit":
        """Returns the split of a prompts file's tasks (`edgewise.tasks.prompt_tasks`): the held-out rows are the
        evaluation inputs where the file was split, else the discovery rows are measured too.

        Args:
            tasks: the discovery task and, with `held_out`, the held-out one.

        Returns:
            The split, as `edgewise remove --model DIR --data FILE` compares removals on it.
        """
        held_out = tasks.held_out is not None
        return cls(tasks.discovery, tasks.held_out if held_out else tasks.discovery, held_out)


@dataclass(frozen=True)
class RemovalSettings:
    """What `compare_removals` runs beside the circuits, and how; every baseline is off unless asked for."""

    ablation: str = "resample"
    per_position: bool = False
    nodes: bool = False  # also each circuit's node-level removal
    random_seeds: int = 3  # random edges of each circuit's size, one draw per seed
    task_vector: tuple[float, ...] = ()  # one task-vector edit per alpha
    gradient_ascent: bool = False
    edit_steps: int = 100  # Adam steps of the weight edits
    edit_lr: float = 1e-3
    removal_mask: RemovalMaskConfig | None = None  # None: no removal mask
    relearn_steps: int = 0  # 0: no relearning
    relearn_lr: float = 1e-3
    seed: int = 0


@dataclass(frozen=True)
class ComparedRemoval:
    """One row: what was removed, the intervention's effect, the forget-task faithfulness of the circuit it removed
    (circuits only: how good a circuit the method found), and how fast the capability came back.

    Attributes:
        removed: what the row removed, typed: a circuit, its nodes, random edges, a removal mask, a weight edit.
        result: the measured effect: a `Removal` (ablated edges) or a `WeightEdit` (an edited copy).
        circuit_faithfulness: the removed circuit's faithfulness on the forget task; None for every other kind.
        relearning: the forget accuracy while a copy relearns; None without relearning.
    """

    removed: Removed
    result: Removal | WeightEdit
    circuit_faithfulness: float | None = None
    relearning: Relearning | None = None

    @property
    def kind(self) -> RemovalKind:
        """Returns the row's kind (circuit, nodes, random, removal mask, task vector, gradient ascent)."""
        return self.removed.kind

    @property
    def label(self) -> str:
        """Returns the row's label for files and screens (`eap: top 20`), computed from what it removed."""
        return self.removed.label

    def to_dict(self) -> dict:
        """Returns the row as JSON-ready data: its kind, the result's record (its `label` among it), the circuit's
        faithfulness (null where undefined), the relearning curve, and what was removed (`removed`: the fields,
        without edges)."""
        return {
            "kind": self.kind.value,
            **self.result.to_dict(),
            # NaN (undefined: the empty circuit loses nothing, as a signed metric can) is written as null, as JSON has
            # no NaN
            "circuit_faithfulness": None
            if self.circuit_faithfulness is None or math.isnan(self.circuit_faithfulness)
            else self.circuit_faithfulness,
            "relearning": None if self.relearning is None else self.relearning.to_dict(),
            "removed": self.removed.to_dict(),
        }

    @classmethod
    def from_dict(
        cls, record: dict, circuits: dict[str, RemovedCircuit] | None = None, n_graph_edges: int | None = None
    ) -> "ComparedRemoval":
        """Returns the row `to_dict` wrote; a row written before rows stored what they removed has it parsed from
        its kind and label (`removed_from_label`).

        Args:
            record: a record of `to_dict`.
            circuits: the comparison's circuits read so far, by label: a node-level row takes its circuit from here.
            n_graph_edges: the graph's size, for ablation rows written before they stored it.

        Returns:
            The row.

        Raises:
            RemovalFileError: the row's kind is unknown, or an old row's label is not one its kind writes.
        """
        if "weight_change" in record:
            result = WeightEdit.from_dict(record)
        else:
            result = Removal.from_dict(record, n_graph_edges)
        edges = result.edges if isinstance(result, Removal) else frozenset()
        if "removed" in record:
            removed = removed_from_dict(record["removed"], edges, circuits)
        else:
            removed = removed_from_label(record["kind"], record["label"], edges, circuits)
        relearning = None if record.get("relearning") is None else Relearning.from_dict(record["relearning"])
        return cls(removed, result, record.get("circuit_faithfulness"), relearning)


@dataclass(frozen=True)
class RemovalComparison:
    """Every intervention on one forget task, with the retain tasks and the inputs they were measured on.

    Attributes:
        forget: the forget task's name.
        retain: the retain tasks' names.
        ablation: the ablation removed edges carried (`resample`, `mean`, `zero`).
        measured_on: which inputs were measured: `held-out`, or the discovery inputs where there are none.
        rows: one per intervention, in the order they ran.
    """

    forget: str
    retain: tuple[str, ...]
    ablation: str
    measured_on: str
    rows: tuple[ComparedRemoval, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        """Returns the comparison as JSON-ready data (what `edgewise remove --json` writes); `from_dict` reads it."""
        return {
            "task": self.forget,
            "retain": list(self.retain),
            "ablation": self.ablation,
            "measured_on": self.measured_on,
            "removals": [row.to_dict() for row in self.rows],
        }

    @classmethod
    def from_dict(cls, record: dict) -> "RemovalComparison":
        """Returns the comparison `to_dict` wrote, also from files written before rows stored what they removed
        (benchmarks/results/removal/*.json); keys it does not know (a benchmark's `seconds`) are ignored.

        Args:
            record: a record of `to_dict`, e.g. `json.loads` of `edgewise remove --json`'s file.

        Returns:
            The comparison, its rows typed again.

        Raises:
            RemovalFileError: a row's kind is unknown, or an old row's label is not one its kind writes.
        """
        removals = record["removals"]
        # old ablation rows lack the graph's size; every row of a comparison is on one graph, so any non-empty
        # row's share of the graph gives it
        n_graph_edges = next(
            (round(r["n_edges"] / r["fraction_of_edges"]) for r in removals if r.get("fraction_of_edges")), None
        )
        circuits: dict[str, RemovedCircuit] = {}
        rows = []
        for removal in removals:
            row = ComparedRemoval.from_dict(removal, circuits, n_graph_edges)
            if row.kind is RemovalKind.CIRCUIT:
                circuits[row.label] = row.removed
            rows.append(row)
        return cls(record["task"], tuple(record["retain"]), record["ablation"], record["measured_on"], tuple(rows))


def discovered_circuits(
    task: Task,
    settings: Sequence[tuple[str, dict]],
    ablation: str = "resample",
    per_position: bool = False,
    seed: int = 0,
    sizes: Sequence[int | None] = (None,),
    progress: bool = False,
) -> list[DiscoveredCircuit]:
    """Returns the circuit of each (method, hyperparameters) setting fitted on the task's inputs: each method's own
    rule, and for top-k methods one circuit per size in `sizes`.

    Args:
        task: the task whose inputs the methods fit on (the discovery inputs).
        settings: (method, hyperparameters beyond its defaults) pairs; the values are numbers.
        ablation: the ablation the methods run with.
        per_position: fit on the per-position graph.
        seed: the methods' seed.
        sizes: k of the top-k methods' circuits, one circuit each (None: discover's default, the effective truth's
            size or 20).
        progress: show the methods' progress bars.

    Returns:
        The circuits, labelled like `eap: top 20`, `acdc: threshold 0.1`, `edge-sp: deterministic gate > 0.5`.
    """
    graph = task.graph(per_position)
    ablated = task_ablation(task, graph, ablation)
    circuits = []
    for method, hyperparameters in settings:
        scores = discover(
            task, method, ablation, seed=seed, progress=progress, graph=graph, ablated=ablated, **hyperparameters
        )
        top_k = get_method(method).circuit is top_k_circuit
        for k in sizes if top_k else (None,):
            evaluation = RunEvaluation(task, scores, ablated, circuit_size=k)
            circuit = evaluation.circuit
            # the rule is the part of the circuit's description after its method's name (`top 20`)
            rule = circuit.description.removeprefix(f"{scores.method}: ")
            circuits.append(
                DiscoveredCircuit(
                    method,
                    tuple(hyperparameters.items()),
                    rule,
                    evaluation.circuit_size if top_k else None,
                    edges=frozenset(circuit.edges),
                )
            )
    return circuits


def minus_retain(
    circuits: Sequence[DiscoveredCircuit], retain_circuits: Sequence[Sequence[DiscoveredCircuit]]
) -> list[DiscoveredCircuit]:
    """Returns each circuit less the edges of the retain tasks' circuits of the same method and setting (fitted on
    each retain task): what the forget task uses alone, labelled `LABEL minus retain circuits`.

    Args:
        circuits: the forget task's circuits (`discovered_circuits`).
        retain_circuits: each retain task's circuits, at the same settings.

    Returns:
        One circuit per forget circuit for which every retain task has a circuit of the same method, setting and
        rule; the others are left out.
    """

    def same(circuit: DiscoveredCircuit) -> DiscoveredCircuit:  # the circuit as its fields name it, less its edges
        return dataclasses.replace(circuit, edges=frozenset())

    by_setting = [{same(other): other.edges for other in circuits_of_task} for circuits_of_task in retain_circuits]
    return [
        dataclasses.replace(
            circuit, minus_retain=True, edges=circuit.edges.difference(*(other[same(circuit)] for other in by_setting))
        )
        for circuit in circuits
        if not circuit.minus_retain and all(same(circuit) in other for other in by_setting)
    ]


def node_edges(graph: Graph, edges: set[Edge] | frozenset[Edge]) -> frozenset[Edge]:
    """Returns every edge out of the nodes the edges touch (`circuit_nodes`: writers, and the heads and MLPs their
    readers feed), except the embeddings': node-level removal ablates whole components, and the input is every
    task's, so removing it would remove everything."""
    nodes = circuit_nodes(graph, edges)
    inputs = set(graph.input_writers)
    return frozenset(e for e in graph.edges if e.writer not in inputs and graph.edge_nodes(e)[0] in nodes)


def compare_removals(
    forget: TaskSplit,
    circuits: Sequence[RemovedCircuit],
    retain: Sequence[TaskSplit] = (),
    settings: RemovalSettings | None = None,
    progress: bool = False,
) -> RemovalComparison:
    """Returns each circuit's removal and every baseline the settings ask for, measured on the evaluation inputs.

    Args:
        forget: the forget task's inputs: the discovery ones train the mask and weight edits, the evaluation ones
            are measured.
        circuits: the circuits to remove (`discovered_circuits`, `minus_retain`, or a `GivenCircuit` of a file).
        retain: the retain tasks; they must run the forget task's model.
        settings: the baselines to run and how; None: `RemovalSettings()`, the circuits and three random draws.
        progress: show progress bars.

    Returns:
        The comparison: a row per circuit (and its nodes), per random draw of each circuit size, the removal mask,
        each task vector and gradient ascent, in that order.
    """
    settings = settings or RemovalSettings()
    evaluation, graph = forget.evaluation, forget.evaluation.graph(settings.per_position)
    retained = [split.evaluation for split in retain]
    references = {
        t.name: Reference.of(t, t.graph(settings.per_position), settings.ablation) for t in (evaluation, *retained)
    }

    def ablated(
        removed: Removed, edges: set[Edge] | frozenset[Edge], faithfulness: float | None = None
    ) -> ComparedRemoval:
        return ComparedRemoval(
            removed,
            remove(evaluation, edges, retained, settings.ablation, settings.per_position, removed.label, references),
            faithfulness,
        )

    faithful = circuits_faithfulness(
        evaluation, graph, references[evaluation.name].ablated, [circuit.edges for circuit in circuits]
    )
    rows = []
    for circuit, circuit_faithfulness in zip(circuits, faithful):
        rows.append(ablated(circuit, circuit.edges, circuit_faithfulness))
        if settings.nodes:
            rows.append(ablated(CircuitNodes(circuit), node_edges(graph, circuit.edges)))
    for size in sorted({len(circuit.edges) for circuit in circuits} - {0}):
        rows += [
            ablated(RandomEdges(size, seed), random_edges(graph, size, seed)) for seed in range(settings.random_seeds)
        ]
    if settings.removal_mask is not None:
        mask = learn_removal_mask(
            forget.discovery,
            [s.discovery for s in retain],
            settings.ablation,
            settings.per_position,
            settings.removal_mask,
            settings.seed,
            progress,
        )
        rows.append(ablated(RemovalMask(settings.removal_mask.alpha, settings.removal_mask.lambda_), mask))
    edits: dict[TaskVector | GradientAscent, Adapter] = {}
    if settings.task_vector:
        tuned = fine_tune(forget.discovery, settings.edit_steps, settings.edit_lr, seed=settings.seed)
        edits.update(
            {
                TaskVector(alpha): task_vector_model(forget.discovery.adapter, tuned, alpha)
                for alpha in settings.task_vector
            }
        )
        del tuned
        gc.collect()  # model copies sit in reference cycles (a bridge's): free the fine-tuned one now
    if settings.gradient_ascent:
        edits[GradientAscent(settings.edit_steps)] = fine_tune(
            forget.discovery, settings.edit_steps, settings.edit_lr, ascend=True, seed=settings.seed
        )
    rows += [
        ComparedRemoval(edit, weight_edit(evaluation, adapter, retained, edit.label, references))
        for edit, adapter in edits.items()
    ]
    if settings.relearn_steps:
        rows = [
            _with_relearning(row, forget, edits, settings)
            for row in tqdm(rows, desc="relearning", disable=not progress, leave=False)
        ]
    return RemovalComparison(
        evaluation.name,
        tuple(t.name for t in retained),
        settings.ablation,
        "held-out" if forget.held_out else "discovery (the task has no held-out inputs)",
        tuple(rows),
    )


def _with_relearning(
    row: ComparedRemoval, forget: TaskSplit, edits: dict[Removed, Adapter], settings: RemovalSettings
) -> ComparedRemoval:
    """Returns the row with its relearning curve: the removed edges stay ablated, a weight edit relearns its copy."""
    edges = row.result.edges if isinstance(row.result, Removal) else frozenset()
    curve = relearn(
        forget.discovery,
        forget.evaluation,
        edges,
        settings.ablation,
        settings.per_position,
        edits.get(row.removed),
        settings.relearn_steps,
        settings.relearn_lr,
        row.label,
        settings.seed,
    )
    return dataclasses.replace(row, relearning=curve)
