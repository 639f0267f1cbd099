"""One removal comparison: every intervention on one forget task, measured alike. Circuits (edge-level, and
node-level: each circuit node's whole output) are ablated; random edges of each circuit's size, a removal mask
trained for the purpose, task vectors and gradient ascent are the baselines. Everything that trains (the methods
before, the mask, the weight edits, relearning) uses the discovery inputs; everything is measured on the held-out
inputs where the task has them. `edgewise remove` and benchmarks/removal.py print what this returns."""

from __future__ import annotations

import gc
from dataclasses import dataclass, field
from typing import Sequence

from tqdm.auto import tqdm

from ..evaluate import RunEvaluation, circuit_nodes, circuits_faithfulness
from ..graph import Edge, Graph
from ..methods import discover, get_method, top_k_circuit
from ..patching import task_ablation
from ..tasks import Task
from .relearning import Relearning, relearn
from .removal import Reference, Removal, random_edges, remove
from .removal_mask import RemovalMaskConfig, learn_removal_mask
from .weight_edits import WeightEdit, fine_tune, task_vector_model, weight_edit


@dataclass(frozen=True)
class TaskSplit:
    """A task's discovery inputs (what trains) and evaluation inputs (what is measured: held out where it can)."""

    discovery: Task
    evaluation: Task
    held_out: bool


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
    """One row: an intervention's effect, the forget-task faithfulness of the circuit it removed (circuits only:
    how good a circuit the method found), and how fast the capability came back."""

    kind: str  # circuit, nodes, random, removal mask, task vector, gradient ascent
    result: Removal | WeightEdit
    circuit_faithfulness: float | None = None
    relearning: Relearning | None = None

    def to_dict(self) -> dict:
        return {"kind": self.kind, **self.result.to_dict(), "circuit_faithfulness": self.circuit_faithfulness,
                "relearning": None if self.relearning is None else self.relearning.to_dict()}


@dataclass(frozen=True)
class RemovalComparison:
    """Every intervention on one forget task, with the retain tasks and the inputs they were measured on."""

    forget: str
    retain: tuple[str, ...]
    ablation: str
    measured_on: str
    rows: tuple[ComparedRemoval, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        return {"task": self.forget, "retain": list(self.retain), "ablation": self.ablation,
                "measured_on": self.measured_on, "removals": [row.to_dict() for row in self.rows]}


def discovered_circuits(task: Task, settings: Sequence[tuple[str, dict]], ablation: str = "resample",
                        per_position: bool = False, seed: int = 0, sizes: Sequence[int | None] = (None,),
                        progress: bool = False) -> dict[str, frozenset[Edge]]:
    """Returns the circuit of each (method, hyperparameters) setting fitted on the task's inputs, by label (`eap: top
    20`, `acdc: threshold 0.1`, `edge-sp: deterministic gate > 0.5`): each method's own rule, and for top-k methods
    one circuit per size in `sizes` (None: discover's default, the effective truth's size or 20)."""
    graph = task.graph(per_position)
    ablated = task_ablation(task, graph, ablation)
    circuits = {}
    for method, hyperparameters in settings:
        scores = discover(task, method, ablation, seed=seed, progress=progress, graph=graph, ablated=ablated,
                          **hyperparameters)
        setting = ", ".join(f"{k} {v:g}" for k, v in hyperparameters.items())
        top_k = get_method(method).circuit is top_k_circuit
        for k in sizes if top_k else (None,):
            circuit = RunEvaluation(task, scores, ablated, circuit_size=k).circuit
            rule = circuit.description.split(": ", 1)[-1] if top_k or not setting else ""
            circuits[f"{method}: " + ", ".join(part for part in (setting, rule) if part)] = frozenset(circuit.edges)
    return circuits


def minus_retain(circuits: dict[str, frozenset[Edge]], retain_circuits: Sequence[dict[str, frozenset[Edge]]]
                 ) -> dict[str, frozenset[Edge]]:
    """Returns each circuit less the edges of the retain tasks' circuits of the same label (the same method and
    setting, fitted on each retain task), as `LABEL minus retain circuits`: what the forget task uses alone. Labels
    some retain task lacks are left out."""
    return {f"{label} minus retain circuits": edges.difference(*(other[label] for other in retain_circuits))
            for label, edges in circuits.items() if all(label in other for other in retain_circuits)}


def node_edges(graph: Graph, edges: set[Edge] | frozenset[Edge]) -> frozenset[Edge]:
    """Returns every edge out of the nodes the edges touch (`circuit_nodes`: writers, and the heads and MLPs their
    readers feed), except the embeddings': node-level removal ablates whole components, and the input is every
    task's, so removing it would remove everything."""
    nodes = circuit_nodes(graph, edges)
    inputs = set(graph.input_writers)
    return frozenset(e for e in graph.edges if e.writer not in inputs and graph.edge_nodes(e)[0] in nodes)


def compare_removals(forget: TaskSplit, circuits: dict[str, set[Edge]], retain: list[TaskSplit] | tuple = (),
                     settings: RemovalSettings | None = None, progress: bool = False) -> RemovalComparison:
    """Returns each circuit's removal (by label) and every baseline the settings ask for, on the evaluation inputs;
    the retain tasks must run the forget task's model."""
    settings = settings or RemovalSettings()
    evaluation, graph = forget.evaluation, forget.evaluation.graph(settings.per_position)
    retained = [split.evaluation for split in retain]
    references = {t.name: Reference.of(t, t.graph(settings.per_position), settings.ablation)
                  for t in (evaluation, *retained)}
    ablate = lambda edges, label: remove(evaluation, edges, retained, settings.ablation,  # noqa: E731
                                         settings.per_position, label, references)
    faithful = circuits_faithfulness(evaluation, graph, references[evaluation.name].ablated, list(circuits.values()))
    rows = []
    for (label, edges), circuit_faithfulness in zip(circuits.items(), faithful):
        rows.append(ComparedRemoval("circuit", ablate(edges, label), circuit_faithfulness))
        if settings.nodes:
            rows.append(ComparedRemoval("nodes", ablate(node_edges(graph, edges), f"{label}, its nodes")))
    for size in sorted({len(edges) for edges in circuits.values()} - {0}):
        rows += [ComparedRemoval("random", ablate(random_edges(graph, size, seed), f"random {size} edges (seed "
                                                  f"{seed})")) for seed in range(settings.random_seeds)]
    if settings.removal_mask is not None:
        mask = learn_removal_mask(forget.discovery, [s.discovery for s in retain], settings.ablation,
                                  settings.per_position, settings.removal_mask, settings.seed, progress)
        rows.append(ComparedRemoval("removal mask", ablate(mask, f"removal mask (alpha {settings.removal_mask.alpha:g}"
                                                                 f", lambda {settings.removal_mask.lambda_:g})")))
    edits = {}
    if settings.task_vector:
        tuned = fine_tune(forget.discovery, settings.edit_steps, settings.edit_lr, seed=settings.seed)
        edits.update({f"task vector, alpha {alpha:g}": task_vector_model(forget.discovery.adapter, tuned, alpha)
                      for alpha in settings.task_vector})
        del tuned
        gc.collect()  # model copies sit in reference cycles (a bridge's): free the fine-tuned one now
    if settings.gradient_ascent:
        edits[f"gradient ascent, {settings.edit_steps} steps"] = fine_tune(
            forget.discovery, settings.edit_steps, settings.edit_lr, ascend=True, seed=settings.seed)
    rows += [ComparedRemoval("gradient ascent" if label.startswith("gradient") else "task vector",
                             weight_edit(evaluation, adapter, retained, label, references))
             for label, adapter in edits.items()]
    if settings.relearn_steps:
        rows = [_with_relearning(row, forget, edits, settings)
                for row in tqdm(rows, desc="relearning", disable=not progress, leave=False)]
    return RemovalComparison(evaluation.name, tuple(t.name for t in retained), settings.ablation,
                             "held-out" if forget.held_out else "discovery (the task has no held-out inputs)",
                             tuple(rows))


def _with_relearning(row: ComparedRemoval, forget: TaskSplit, edits: dict, settings: RemovalSettings
                     ) -> ComparedRemoval:
    """Returns the row with its relearning curve: the removed edges stay ablated, a weight edit relearns its copy."""
    edges = row.result.edges if isinstance(row.result, Removal) else frozenset()
    curve = relearn(forget.discovery, forget.evaluation, edges, settings.ablation, settings.per_position,
                    edits.get(row.result.label), settings.relearn_steps, settings.relearn_lr, row.result.label,
                    settings.seed)
    return ComparedRemoval(row.kind, row.result, row.circuit_faithfulness, curve)
