"""What a removal row removed, as typed data: a discovered circuit (its method, setting, rule, and whether it is less
the retain tasks' circuits), a circuit from a file, a circuit's nodes, random edges, a removal mask, a task vector or
gradient ascent. Each knows its row kind and computes its human label from its fields (`eap: top 20`, `random 20
edges (seed 0)`): the label is for files and screens; code reads the fields.

`removed_from_dict` reads these back from removal JSON; files written before the fields were stored carry only the
labels, and `removed_from_label` parses those, once, here and nowhere else."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import ClassVar, Union

from ..errors import EdgewiseError
from ..graph import Edge


class RemovalFileError(EdgewiseError, ValueError):
    """A removal record (JSON of `RemovalComparison.to_dict`) that cannot be read back."""


class RemovalKind(str, Enum):
    """The kind of a removal row; the value is the JSON's `kind` (a `str`, so `kind == "circuit"` holds)."""

    CIRCUIT = "circuit"
    NODES = "nodes"
    RANDOM = "random"
    REMOVAL_MASK = "removal mask"
    TASK_VECTOR = "task vector"
    GRADIENT_ASCENT = "gradient ascent"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class DiscoveredCircuit:
    """A circuit a method found on the forget task's discovery inputs, by its own rule.

    Attributes:
        method: the registered method's name (`eap`, `acdc`, `edge-sp`).
        setting: the hyperparameters given beyond the method's defaults, in order, as (name, value) pairs.
        rule: the rule that turned the scores into the circuit (`top 20`, `change >= 0.001`); "" where unknown.
        top_k: k of a top-k method's circuit; None for a method with a rule of its own (a threshold, gates).
        minus_retain: the circuit less the edges of the same method and setting's circuits on the retain tasks.
        edges: the circuit's edges.
    """

    kind: ClassVar[RemovalKind] = RemovalKind.CIRCUIT

    method: str
    setting: tuple[tuple[str, float], ...] = ()
    rule: str = ""
    top_k: int | None = None
    minus_retain: bool = False
    edges: frozenset[Edge] = frozenset()

    @property
    def label(self) -> str:
        """Returns `METHOD: SETTING, RULE[ minus retain circuits]`: the rule only where the setting does not already
        name the circuit (top-k methods, and methods at their defaults): `eap: top 20`, `acdc: threshold 0.1`."""
        setting = ", ".join(f"{name} {value:g}" for name, value in self.setting)
        rule = self.rule if self.top_k is not None or not setting else ""
        text = f"{self.method}: " + ", ".join(part for part in (setting, rule) if part)
        return text + (" minus retain circuits" if self.minus_retain else "")

    def to_dict(self) -> dict:
        """Returns the fields as JSON-ready data, without the edges (the row holds them)."""
        return {
            "kind": self.kind.value,
            "method": self.method,
            "setting": dict(self.setting),
            "rule": self.rule,
            "top_k": self.top_k,
            "minus_retain": self.minus_retain,
        }


@dataclass(frozen=True)
class GivenCircuit:
    """A circuit given as is (a circuit file), known by its description.

    Attributes:
        description: how the circuit was made, as its file says; "" reads as `circuit`.
        edges: the circuit's edges.
    """

    kind: ClassVar[RemovalKind] = RemovalKind.CIRCUIT

    description: str
    edges: frozenset[Edge] = frozenset()

    @property
    def label(self) -> str:
        """Returns the description, or `circuit` without one."""
        return self.description or "circuit"

    def to_dict(self) -> dict:
        """Returns the fields as JSON-ready data, without the edges (the row holds them)."""
        return {"kind": self.kind.value, "description": self.description}


RemovedCircuit = Union[DiscoveredCircuit, GivenCircuit]


@dataclass(frozen=True)
class CircuitNodes:
    """Every edge out of a circuit's nodes (node-level removal, `node_edges`).

    Attributes:
        circuit: the circuit whose nodes are removed.
    """

    kind: ClassVar[RemovalKind] = RemovalKind.NODES

    circuit: RemovedCircuit

    @property
    def label(self) -> str:
        """Returns `CIRCUIT LABEL, its nodes`."""
        return f"{self.circuit.label}, its nodes"

    def to_dict(self) -> dict:
        """Returns the fields as JSON-ready data: the circuit's without its edges."""
        return {"kind": self.kind.value, "circuit": self.circuit.to_dict()}


@dataclass(frozen=True)
class RandomEdges:
    """Edges drawn uniformly from the graph (`random_edges`): a circuit's size, no knowledge of the task.

    Attributes:
        size: how many edges.
        seed: the draw's seed.
    """

    kind: ClassVar[RemovalKind] = RemovalKind.RANDOM

    size: int
    seed: int

    @property
    def label(self) -> str:
        """Returns `random SIZE edges (seed SEED)`."""
        return f"random {self.size} edges (seed {self.seed})"

    def to_dict(self) -> dict:
        """Returns the fields as JSON-ready data."""
        return {"kind": self.kind.value, "size": self.size, "seed": self.seed}


@dataclass(frozen=True)
class RemovalMask:
    """The edges a removal mask trained to forget the task and keep the retain tasks removed (`learn_removal_mask`).

    Attributes:
        alpha: the weight of the retain tasks' term.
        lambda_: the weight of the sparsity term.
    """

    kind: ClassVar[RemovalKind] = RemovalKind.REMOVAL_MASK

    alpha: float
    lambda_: float

    @property
    def label(self) -> str:
        """Returns `removal mask (alpha ALPHA, lambda LAMBDA)`."""
        return f"removal mask (alpha {self.alpha:g}, lambda {self.lambda_:g})"

    def to_dict(self) -> dict:
        """Returns the fields as JSON-ready data."""
        return {"kind": self.kind.value, "alpha": self.alpha, "lambda_": self.lambda_}


@dataclass(frozen=True)
class TaskVector:
    """A copy of the model less alpha times its task vector on the forget task (`task_vector_model`).

    Attributes:
        alpha: how many times the task vector is subtracted.
    """

    kind: ClassVar[RemovalKind] = RemovalKind.TASK_VECTOR

    alpha: float

    @property
    def label(self) -> str:
        """Returns `task vector, alpha ALPHA`."""
        return f"task vector, alpha {self.alpha:g}"

    def to_dict(self) -> dict:
        """Returns the fields as JSON-ready data."""
        return {"kind": self.kind.value, "alpha": self.alpha}


@dataclass(frozen=True)
class GradientAscent:
    """A copy of the model after Adam steps away from the forget task's answers (`fine_tune(ascend=True)`).

    Attributes:
        steps: how many steps.
    """

    kind: ClassVar[RemovalKind] = RemovalKind.GRADIENT_ASCENT

    steps: int

    @property
    def label(self) -> str:
        """Returns `gradient ascent, STEPS steps`."""
        return f"gradient ascent, {self.steps} steps"

    def to_dict(self) -> dict:
        """Returns the fields as JSON-ready data."""
        return {"kind": self.kind.value, "steps": self.steps}


Removed = Union[DiscoveredCircuit, GivenCircuit, CircuitNodes, RandomEdges, RemovalMask, TaskVector, GradientAscent]


def _circuit_from_dict(record: dict, edges: frozenset[Edge]) -> RemovedCircuit:
    """Returns the circuit whose fields `DiscoveredCircuit.to_dict` or `GivenCircuit.to_dict` wrote."""
    if "method" in record:
        return DiscoveredCircuit(
            record["method"],
            tuple((name, value) for name, value in record["setting"].items()),
            record["rule"],
            record["top_k"],
            record["minus_retain"],
            edges,
        )
    return GivenCircuit(record["description"], edges)


def removed_from_dict(
    record: dict, edges: frozenset[Edge] = frozenset(), circuits: dict[str, RemovedCircuit] | None = None
) -> Removed:
    """Returns what a row removed, from the fields its `to_dict` wrote.

    Args:
        record: a row's `removed` record (`DiscoveredCircuit.to_dict()` and the like).
        edges: the row's edges: a circuit's own.
        circuits: the circuits read so far, by label: a node-level row takes its circuit (with the circuit's edges)
            from there.

    Returns:
        The typed description.

    Raises:
        RemovalFileError: the record's kind is unknown.
    """
    kind = _kind(record["kind"])
    if kind is RemovalKind.CIRCUIT:
        return _circuit_from_dict(record, edges)
    if kind is RemovalKind.NODES:
        circuit = _circuit_from_dict(record["circuit"], frozenset())
        return CircuitNodes((circuits or {}).get(circuit.label, circuit))
    if kind is RemovalKind.RANDOM:
        return RandomEdges(record["size"], record["seed"])
    if kind is RemovalKind.REMOVAL_MASK:
        return RemovalMask(record["alpha"], record["lambda_"])
    if kind is RemovalKind.TASK_VECTOR:
        return TaskVector(record["alpha"])
    return GradientAscent(record["steps"])


_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?|[-+]?inf|nan"
_OLD_LABELS = {  # the labels removal files carried before their rows stored fields
    RemovalKind.RANDOM: (re.compile(r"random (\d+) edges \(seed (\d+)\)"), lambda m: RandomEdges(*map(int, m))),
    RemovalKind.REMOVAL_MASK: (
        re.compile(rf"removal mask \(alpha ({_NUMBER}), lambda ({_NUMBER})\)"),
        lambda m: RemovalMask(*map(float, m)),
    ),
    RemovalKind.TASK_VECTOR: (re.compile(rf"task vector, alpha ({_NUMBER})"), lambda m: TaskVector(float(m[0]))),
    RemovalKind.GRADIENT_ASCENT: (re.compile(r"gradient ascent, (\d+) steps"), lambda m: GradientAscent(int(m[0]))),
}
_SETTING = re.compile(rf"([A-Za-z_]\w*) ({_NUMBER})")
_TOP_K = re.compile(r"top (\d+)")


def _kind(value: str) -> RemovalKind:
    """Returns the kind named `value`; raises RemovalFileError for an unknown one."""
    try:
        return RemovalKind(value)
    except ValueError:
        raise RemovalFileError(
            f"unknown removal kind {value!r}; the kinds are {', '.join(k.value for k in RemovalKind)}"
        ) from None


def _circuit_from_label(label: str, edges: frozenset[Edge]) -> RemovedCircuit:
    """Returns the circuit an old label names: `METHOD: SETTING, RULE[ minus retain circuits]` as
    `DiscoveredCircuit.label` writes it, anything else as a given circuit."""
    core = label.removesuffix(" minus retain circuits")
    if ": " not in core:
        return GivenCircuit(label, edges)
    method, rest = core.split(": ", 1)
    parts = rest.split(", ")
    setting = []
    while parts and (match := _SETTING.fullmatch(parts[0])) and match[1] != "top":
        setting.append((match[1], float(match[2])))
        parts.pop(0)
    rule = ", ".join(parts)
    top_k = _TOP_K.fullmatch(rule)
    return DiscoveredCircuit(
        method, tuple(setting), rule, None if top_k is None else int(top_k[1]), core != label, edges
    )


def removed_from_label(
    kind: str, label: str, edges: frozenset[Edge] = frozenset(), circuits: dict[str, RemovedCircuit] | None = None
) -> Removed:
    """Returns what a row of an old removal file removed, parsed from its kind and label (the one place labels are
    parsed: files written since carry the fields, `removed_from_dict`).

    Args:
        kind: the row's `kind`.
        label: the row's `label`, as the typed descriptions' `label` writes it.
        edges: the row's edges: a circuit's own.
        circuits: the circuits read so far, by label: a node-level row takes its circuit from there.

    Returns:
        The typed description, whose `label` is `label` again.

    Raises:
        RemovalFileError: the kind is unknown, or the label is not one that kind writes.
    """
    kind = _kind(kind)
    if kind is RemovalKind.CIRCUIT:
        return _circuit_from_label(label, edges)
    if kind is RemovalKind.NODES:
        circuit_label = label.removesuffix(", its nodes")
        return CircuitNodes((circuits or {}).get(circuit_label) or _circuit_from_label(circuit_label, frozenset()))
    pattern, build = _OLD_LABELS[kind]
    match = pattern.fullmatch(label)
    if match is None:
        raise RemovalFileError(f"{label!r} is not a {kind.value} row's label (e.g. {pattern.pattern!r})")
    return build(match.groups())
