"""Circuit-discovery methods: one module each, all with one signature, all in one registry.

A method is a function  (task, graph, ablated, config, seed, progress) -> scores [n_edges]  (higher = more
important) registered with `@register(name, ConfigDataclass, circuit=rule)`. The rule turns the method's scores into
the circuit it reports (subnetwork probing: its open gates; ACDC: the edges it kept; the others: the top k), so no
caller tests a method's name. `discover` runs a method on a graph and an ablation (built here unless the caller
passes its own), checks that the task's metric is finite before and the scores after, and wraps the scores in
EdgeScores. Adding a method is adding one file to this folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import math
import pkgutil
import time
import typing
from dataclasses import dataclass
from typing import Callable, Iterator

import torch

from ..errors import (EdgewiseError, InvalidHyperparameterError, NonFiniteMetricError, NonFiniteScoresError,
                      UnknownObjectiveError)
from ..graph import Circuit, EdgeScores, Graph, ScoreTrajectory, circuit_from_scores
from ..patching import AblatedOutputs, patched_forward, task_ablation
from ..tasks import METRICS, Metric, Task

MethodFn = Callable[[Task, Graph, AblatedOutputs, object, int, bool], torch.Tensor]
CircuitRule = Callable[[EdgeScores, int], Circuit]  # (scores, k for methods without a circuit of their own)


class UnknownMethodError(EdgewiseError, ValueError):
    """A method name, or a hyperparameter, that the registry does not know."""


def top_k_circuit(scores: EdgeScores, k: int) -> Circuit:
    """Returns the k best-scoring edges: the circuit of methods that only rank edges."""
    return circuit_from_scores(scores, top_k=k)


@dataclass(frozen=True)
class Method:
    """A registered method: its name, its hyperparameter dataclass (edgewise's tuned defaults), its function, the
    rule that turns its scores into the circuit it reports, and its authors' settings (the `published` preset)."""

    name: str
    config: type
    run: MethodFn
    summary: str
    circuit: CircuitRule = top_k_circuit
    published: dict = dataclasses.field(default_factory=dict)  # the authors' settings over the defaults (presets)
    objectives: bool = False  # minimises the task's metric, so it can minimise a user objective in its place


METHODS: dict[str, Method] = {}
# A preset names a set of hyperparameters: `tuned`, the config's defaults (edgewise's, tuned on the tracr suite);
# `published`, the method's authors' own settings (docs/presets.md), so tuning is not mistaken for method quality.
PRESETS = ("tuned", "published")


def register(name: str, config: type, circuit: CircuitRule = top_k_circuit,
             published: dict | None = None, objectives: bool = False) -> Callable[[MethodFn], MethodFn]:
    """Registers `fn` under `name` with the hyperparameter dataclass `config` and its circuit rule; `objectives`:
    the method minimises the task's metric, so `discover(minimise=...)` may put a user objective there."""

    def add(fn: MethodFn) -> MethodFn:
        METHODS[name] = Method(name, config, fn, (fn.__doc__ or "").strip().splitlines()[0], circuit,
                               dict(published or {}), objectives)
        return fn

    return add


def _load_all() -> None:
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


def method_names() -> list[str]:
    """Returns the registered methods' names, sorted."""
    _load_all()
    return sorted(METHODS)


def get_method(name: str) -> Method:
    """Returns the registered method `name`, or raises UnknownMethodError listing the known ones."""
    _load_all()
    if name not in METHODS:
        raise UnknownMethodError(f"unknown method {name!r}; choose one of {', '.join(sorted(METHODS))}")
    return METHODS[name]


def preset_hyperparameters(method: Method, preset: str) -> dict:
    """Returns the hyperparameters a preset sets over the method's defaults ({} for `tuned`); raises
    UnknownMethodError for an unknown preset."""
    if preset not in PRESETS:
        raise UnknownMethodError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    return dict(method.published) if preset == "published" else {}


def method_circuit(scores: EdgeScores, k: int) -> Circuit:
    """Returns the circuit the scores' method reports (its registered rule); `k` sizes the top-k rule."""
    return get_method(scores.method).circuit(scores, k)


def _field_types(config: type) -> dict[str, object]:
    hints = typing.get_type_hints(config)
    return {f.name: hints[f.name] for f in dataclasses.fields(config)}


def _convert(method: str, name: str, kind: object, value: object) -> object:
    """Returns `value` as the hyperparameter's declared type (strings from the command line are parsed), or raises
    InvalidHyperparameterError naming the value and what is allowed. NaN and infinities are never allowed."""
    allowed = [a for a in typing.get_args(kind) if a is not type(None)] or [kind]
    optional = type(None) in typing.get_args(kind)
    if optional and (value is None or (isinstance(value, str) and value.lower() == "none")):
        return None
    for target in allowed:
        try:
            if target is bool:
                if isinstance(value, bool):
                    return value
                if isinstance(value, str) and value.lower() in ("true", "false"):
                    return value.lower() == "true"
            elif target is int:
                if isinstance(value, int) and not isinstance(value, bool):
                    return value
                if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
                    return int(value)
            elif target is float and isinstance(value, (str, int, float)) and not isinstance(value, bool):
                if math.isfinite(float(value)):
                    return float(value)
            elif target is str and isinstance(value, str):
                return value
        except ValueError:
            continue
    names = " or ".join("an integer" if t is int else "a finite number" if t is float else "true/false" if t is bool
                        else "text" if t is str else getattr(t, "__name__", str(t)) for t in allowed)
    raise InvalidHyperparameterError(
        f"{method}: {name}={value!r} is not {names}{' (or none)' if optional else ''}"
    )


def resolve_config(method: Method, preset: str, hyperparameters: dict) -> object:
    """Returns the method's config under `preset`, with `hyperparameters` overriding it: what `discover` runs."""
    return make_config(method, {**preset_hyperparameters(method, preset), **hyperparameters})


def make_config(method: Method, hyperparameters: dict) -> object:
    """Returns the method's config with `hyperparameters` (values, or text from the command line) converted to each
    field's declared type and replacing the defaults; unknown names and unconvertible values raise."""
    types = _field_types(method.config)
    unknown = sorted(set(hyperparameters) - set(types))
    if unknown:
        raise UnknownMethodError(
            f"{method.name} has no hyperparameter {', '.join(unknown)}; it takes {', '.join(sorted(types)) or 'none'}"
        )
    return method.config(**{k: _convert(method.name, k, types[k], v) for k, v in hyperparameters.items()})


@torch.no_grad()
def check_metric(task: Task, graph: Graph, ablated: AblatedOutputs) -> None:
    """Raises NonFiniteMetricError when the task's metric is NaN or infinite on the full model against itself or on
    the fully ablated model, the two ends of every mask a method tries. It costs one forward with both masks.

    The full model's outputs come from the same masked forward (all ones), which equals the plain forward, so a
    metric that compares exact outputs sees zero distance there."""
    ends = torch.stack([torch.ones(graph.n_edges), torch.zeros(graph.n_edges)])  # [2, n_edges]: keep all, ablate all
    logits = patched_forward(task.adapter, graph, task.clean, ablated, ends)  # [2, batch, pos, vocab]
    cases = {"on the full model against itself": logits[0],
             f"on the fully ablated model ({ablated.kind} ablation of every edge)": logits[1]}
    for case, outputs in cases.items():
        value = torch.as_tensor(task.metric(outputs, logits[0], task.scored_positions))
        if not bool(torch.isfinite(value).all()):
            bad = value[~torch.isfinite(value)].flatten()[0].item()
            raise NonFiniteMetricError(
                f"task {task.name}: metric {task.metric.name!r} is {bad} {case}; every method measures masked "
                "outputs with it, so its scores would be NaN. Make the metric return a finite distance for any "
                f"outputs (guard divisions by zero and logs of 0) or use one of {', '.join(METRICS)}"
            )


def check_scores(scores: torch.Tensor, method: str, config: object) -> None:
    """Raises NonFiniteScoresError naming the method, its hyperparameters and how many of the scores [n_edges] are
    NaN or infinite."""
    bad = ~torch.isfinite(scores)
    if bool(bad.any()):
        raise NonFiniteScoresError(
            f"{method} with {dataclasses.asdict(config)} returned {int(bad.sum())} NaN or infinite scores of "
            f"{scores.numel()} edges, although the task's metric is finite on the full and the ablated model; a "
            "hyperparameter outside its working range (e.g. a too-large lr) or a metric that is NaN on partly "
            "ablated models does this: move the hyperparameter back towards its default, or fix the metric"
        )


@contextlib.contextmanager
def frozen_weights(model: torch.nn.Module) -> Iterator[None]:
    """Switches off the gradients of the model's parameters for the block, then restores each: every method
    differentiates with respect to masks only, and a backward that also computed weight gradients would do work
    nobody uses and leave `.grad` tensors on the task's model."""
    parameters = [p for p in model.parameters() if p.requires_grad]
    for p in parameters:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in parameters:
            p.requires_grad_(True)


def discover(
    task: Task,
    method: str = "edge-sp",
    ablation: str = "resample",
    per_position: bool = False,
    seed: int = 0,
    progress: bool = False,
    graph: Graph | None = None,
    ablated: AblatedOutputs | None = None,
    preset: str = "tuned",
    minimise: "str | Metric | None" = None,
    **hyperparameters,
) -> EdgeScores:
    """Returns the method's score for every edge of `graph` (default: the task's plain or per-position graph) under
    `ablated` (default: the named ablation recorded on that graph). Callers that evaluate the run pass the graph and
    ablation they built, so nothing is recorded twice. `preset` picks edgewise's tuned defaults or the authors'
    published settings (see PRESETS); `hyperparameters` override either.

    `minimise` (one of the task's named objectives, or a Metric) replaces the faithfulness metric as what the method
    minimises, for methods registered with `objectives=True` (edge-sp, node-sp): e.g. a sparse mask that makes a
    game network play its worst move. The scores record its name under hyperparameters["minimise"].

    Before the method runs, `check_metric` makes sure the task's metric is finite at both ends of the mask range
    (NonFiniteMetricError); after it, `check_scores` rejects NaN or infinite scores (NonFiniteScoresError)."""
    spec = get_method(method)
    config = resolve_config(spec, preset, hyperparameters)
    recorded = dataclasses.asdict(config)
    if minimise is not None:
        if not spec.objectives:
            takes = ", ".join(m.name for m in METHODS.values() if m.objectives)
            raise UnknownObjectiveError(f"{method} scores edges by faithfulness only and takes no objective; "
                                        f"{takes} minimise one")
        task = task.with_objective(minimise)
        recorded["minimise"] = task.metric.name
    graph = task.graph(per_position=per_position) if graph is None else graph
    ablated = task_ablation(task, graph, ablation) if ablated is None else ablated
    check_metric(task, graph, ablated)
    torch.manual_seed(seed)
    start = time.perf_counter()
    with frozen_weights(task.adapter.model):
        result = spec.run(task, graph, ablated, config, seed, progress)  # training methods add their trajectory
    scores, trajectory = result if isinstance(result, tuple) else (result, None)
    scores = scores.cpu()  # scores live on the CPU, whatever ran
    seconds = time.perf_counter() - start
    check_scores(scores, method, config)
    if trajectory is not None:
        trajectory = ScoreTrajectory(trajectory.steps, trajectory.values.detach().cpu().to(torch.float64))
    return EdgeScores(graph, scores, method, recorded, seed, seconds, ablated.kind, task.name, trajectory)
