"""Circuit-discovery methods: one module each, all with one signature, all in one registry.

A method is a function  (task, graph, ablated, config, seed, progress) -> scores [n_edges]  (higher = more
important) registered with `@register(name, ConfigDataclass)`. `discover` builds the graph and the ablation, runs
the method, and wraps its scores in EdgeScores. Adding a method is adding one file to this folder.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import time
from dataclasses import dataclass
from typing import Callable

import torch

from ..ablation import AblatedOutputs
from ..errors import EdgewiseError
from ..graph import Graph
from ..scores import EdgeScores
from ..task import Task

MethodFn = Callable[[Task, Graph, AblatedOutputs, object, int, bool], torch.Tensor]


class UnknownMethodError(EdgewiseError, ValueError):
    """A method name, or a hyperparameter, that the registry does not know."""


@dataclass(frozen=True)
class Method:
    """A registered method: its name, its hyperparameter dataclass (published defaults) and its function."""

    name: str
    config: type
    run: MethodFn
    summary: str


METHODS: dict[str, Method] = {}


def register(name: str, config: type) -> Callable[[MethodFn], MethodFn]:
    """Registers `fn` under `name` with the hyperparameter dataclass `config`."""

    def add(fn: MethodFn) -> MethodFn:
        METHODS[name] = Method(name, config, fn, (fn.__doc__ or "").strip().splitlines()[0])
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


def make_config(method: Method, hyperparameters: dict) -> object:
    """Returns the method's config with `hyperparameters` replacing defaults; unknown names raise."""
    fields = {f.name for f in dataclasses.fields(method.config)}
    unknown = sorted(set(hyperparameters) - fields)
    if unknown:
        raise UnknownMethodError(
            f"{method.name} has no hyperparameter {', '.join(unknown)}; it takes {', '.join(sorted(fields)) or 'none'}"
        )
    return method.config(**hyperparameters)


def discover(
    task: Task,
    method: str = "edge-sp",
    ablation: str = "resample",
    per_position: bool = False,
    seed: int = 0,
    progress: bool = False,
    **hyperparameters,
) -> EdgeScores:
    """Returns the method's score for every edge of the task's graph (plain or per-position)."""
    spec = get_method(method)
    config = make_config(spec, hyperparameters)
    graph = task.graph(per_position=per_position)
    ablated = task.ablation(graph, ablation)
    torch.manual_seed(seed)
    start = time.perf_counter()
    scores = spec.run(task, graph, ablated, config, seed, progress).cpu()  # scores live on the CPU, whatever ran
    seconds = time.perf_counter() - start
    return EdgeScores(graph, scores, method, dataclasses.asdict(config), seed, seconds, ablation, task.name)
