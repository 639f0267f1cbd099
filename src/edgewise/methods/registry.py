"""The method registry: every method registers its function, hyperparameter dataclass, circuit rule and published
preset here under its name, so adding a method is adding one file to this package and no caller tests a method's
name.

A method is a function  (task, graph, ablated, config, seed, progress) -> scores [n_edges]  (higher = more
important), or (scores, ScoreTrajectory) for methods that train, registered with
`@register(name, ConfigDataclass, circuit=rule)`. The rule turns the method's scores into the circuit it reports
(subnetwork probing: its open gates; ACDC: the edges it kept; the others: the top k).
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from dataclasses import dataclass
from typing import Callable

import torch

from ..errors import UnknownMethodError
from ..graph import Circuit, EdgeScores, Graph, ScoreTrajectory, circuit_from_scores
from ..patching import AblatedOutputs
from ..tasks import Task

MethodFn = Callable[
    [Task, Graph, AblatedOutputs, object, int, bool], "torch.Tensor | tuple[torch.Tensor, ScoreTrajectory]"
]
CircuitRule = Callable[[EdgeScores, int], Circuit]  # (scores, k for methods without a circuit of their own)


def top_k_circuit(scores: EdgeScores, k: int) -> Circuit:
    """Returns the k best-scoring edges: the circuit of methods that only rank edges.

    Args:
        scores: the method's edge scores.
        k: how many edges to keep.

    Returns:
        The circuit of the top `k` edges (`circuit_from_scores`).
    """
    return circuit_from_scores(scores, top_k=k)


@dataclass(frozen=True)
class Method:
    """A registered method: its name, its hyperparameter dataclass (edgewise's tuned defaults), its function, the
    rule that turns its scores into the circuit it reports, and its authors' settings (the `published` preset).

    Attributes:
        name: the name it is registered under (`edge-sp`, `acdc`, ...).
        config: its hyperparameter dataclass, whose defaults are edgewise's tuned ones.
        run: the method's function (`MethodFn`).
        summary: one line on what it does: the first paragraph of the function's docstring.
        circuit: the rule that turns its scores into the circuit it reports.
        published: the authors' settings over the defaults (the `published` preset).
        objectives: it minimises the task's metric, so it can minimise a user objective in its place.
    """

    name: str
    config: type
    run: MethodFn
    summary: str
    circuit: CircuitRule = top_k_circuit
    published: dict = dataclasses.field(default_factory=dict)
    objectives: bool = False

    def scores(
        self, task: Task, graph: Graph, ablated: AblatedOutputs, seed: int = 0, progress: bool = False
    ) -> torch.Tensor:
        """Returns the method's scores [n_edges] under its default config, without `discover`'s checks and records:
        what a method that builds on another asks for (edge SP's attribution pre-filter).

        Args:
            task: the task whose metric the method measures.
            graph: the graph whose edges are scored.
            ablated: what ablated edges carry.
            seed: seeds torch's global generator first, as `discover` does.
            progress: show the method's progress bar.

        Returns:
            The scores [n_edges], without a training method's trajectory.
        """
        torch.manual_seed(seed)
        result = self.run(task, graph, ablated, self.config(), seed, progress)
        return result[0] if isinstance(result, tuple) else result


METHODS: dict[str, Method] = {}
# A preset names a set of hyperparameters: `tuned`, the config's defaults (edgewise's, tuned on the tracr suite);
# `published`, the method's authors' own settings (docs/presets.md), so tuning is not mistaken for method quality.
PRESETS = ("tuned", "published")


def register(
    name: str,
    config: type,
    circuit: CircuitRule = top_k_circuit,
    published: dict | None = None,
    objectives: bool = False,
) -> Callable[[MethodFn], MethodFn]:
    """Registers `fn` under `name` with the hyperparameter dataclass `config` and its circuit rule; `objectives`:
    the method minimises the task's metric, so `discover(minimise=...)` may put a user objective there.

    Args:
        name: the method's name; a later registration under the same name replaces the earlier.
        config: the method's hyperparameter dataclass.
        circuit: the rule that turns the method's scores into its circuit; the top k by default.
        published: the authors' settings over the config's defaults (the `published` preset); None: none.
        objectives: the method minimises the task's metric, so it may minimise a user objective instead.

    Returns:
        A decorator that registers the method function and returns it unchanged; the first paragraph of its
            docstring becomes the method's summary.
    """

    def add(fn: MethodFn) -> MethodFn:
        summary = " ".join((fn.__doc__ or "").strip().split("\n\n")[0].split())  # its first paragraph, one line
        METHODS[name] = Method(name, config, fn, summary, circuit, dict(published or {}), objectives)
        return fn

    return add


def _load_all() -> None:
    """Imports every module of the methods package, so each registers its methods."""
    package = importlib.import_module(__package__)
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{__package__}.{module.name}")


def method_names() -> list[str]:
    """Returns the registered methods' names, sorted.

    Returns:
        The names, after every module of the methods package has been imported (and so registered).
    """
    _load_all()
    return sorted(METHODS)


def get_method(name: str) -> Method:
    """Returns the registered method `name`, or raises UnknownMethodError listing the known ones.

    Args:
        name: a method's registered name.

    Returns:
        The method.

    Raises:
        UnknownMethodError: no method is registered under `name`.
    """
    _load_all()
    if name not in METHODS:
        raise UnknownMethodError(f"unknown method {name!r}; choose one of {', '.join(sorted(METHODS))}")
    return METHODS[name]


def preset_hyperparameters(method: Method, preset: str) -> dict:
    """Returns the hyperparameters a preset sets over the method's defaults ({} for `tuned`); raises
    UnknownMethodError for an unknown preset.

    Args:
        method: the method.
        preset: one of `PRESETS`: `tuned` (the config's defaults) or `published` (the authors' settings).

    Returns:
        The hyperparameters the preset sets, by field name (a copy).

    Raises:
        UnknownMethodError: `preset` is not one of `PRESETS`.
    """
    if preset not in PRESETS:
        raise UnknownMethodError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    return dict(method.published) if preset == "published" else {}


def method_circuit(scores: EdgeScores, k: int) -> Circuit:
    """Returns the circuit the scores' method reports (its registered rule); `k` sizes the top-k rule.

    Args:
        scores: edge scores; their `method` picks the rule.
        k: the circuit's size under the top-k rule; rules of methods with a circuit of their own ignore it.

    Returns:
        The circuit.

    Raises:
        UnknownMethodError: the scores' method is not registered.
    """
    return get_method(scores.method).circuit(scores, k)
