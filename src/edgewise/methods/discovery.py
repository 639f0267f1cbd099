"""`discover`: run one registered method on a task's graph under an ablation, with the checks around it (a finite
metric before, finite scores after, the model's weights frozen while it runs), and wrap its scores in EdgeScores."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from typing import Iterator

import torch

from ..errors import (
    InvalidHyperparameterError,
    NonFiniteMetricError,
    NonFiniteScoresError,
    UnknownMethodError,
    UnknownObjectiveError,
)
from ..graph import EdgeScores, Graph, ScoreTrajectory
from ..patching import AblatedOutputs, patched_forward, task_ablation
from ..tasks import METRICS, Metric, Task
from .hyperparameters import resolve_config
from .registry import METHODS, get_method, method_names


@torch.no_grad()
def check_metric(task: Task, graph: Graph, ablated: AblatedOutputs) -> None:
    """Raises NonFiniteMetricError when the task's metric is NaN or infinite on the full model against itself or on
    the fully ablated model, the two ends of every mask a method tries. It costs one forward with both masks.

    The full model's outputs come from the same masked forward (all ones), which equals the plain forward, so a
    metric that compares exact outputs sees zero distance there.

    Args:
        task: the task whose metric is checked, on its clean inputs.
        graph: the graph the method will mask.
        ablated: what ablated edges carry.

    Raises:
        NonFiniteMetricError: the metric is NaN or infinite at either end.
    """
    ends = torch.stack([torch.ones(graph.n_edges), torch.zeros(graph.n_edges)])  # [2, n_edges]: keep all, ablate all
    logits = patched_forward(task.adapter, graph, task.clean, ablated, ends)  # [2, batch, pos, vocab]
    cases = {
        "on the full model against itself": logits[0],
        f"on the fully ablated model ({ablated.kind} ablation of every edge)": logits[1],
    }
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
    NaN or infinite.

    Args:
        scores: a method's scores [n_edges].
        method: the method's name, for the message.
        config: the method's config dataclass, for the message.

    Raises:
        NonFiniteScoresError: a score is NaN or infinite.
    """
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
    nobody uses and leave `.grad` tensors on the task's model.

    Args:
        model: the model whose parameters are frozen; parameters that took no gradient before stay so after.

    Yields:
        Nothing; the parameters are frozen inside the `with` block.
    """
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

    Before the method runs, `Task.check_metric` makes sure the task's metric is 0 on the full model's own outputs
    (MetricNotZeroError), and `check_metric` that it (or the objective) is finite at both ends of the mask range
    (NonFiniteMetricError); after it, `check_scores` rejects NaN or infinite scores (NonFiniteScoresError).

    Args:
        task: the task: model, inputs and metric.
        method: a registered method's name (`method_names()`).
        ablation: the ablation edges carry when `ablated` is not given (`resample`, `zero`, `mean`,
            `per-position-mean`).
        per_position: score the per-position graph when `graph` is not given.
        seed: seeds torch's global generator before the method runs, and the method itself.
        progress: show the method's progress bar.
        graph: the graph to score; None: the task's plain or per-position graph.
        ablated: the ablated outputs; None: `ablation` recorded on `graph`.
        preset: `tuned` or `published` (see PRESETS).
        minimise: an objective to minimise in place of the faithfulness metric: one of the task's named objectives
            or a Metric; None: the task's metric. Only for methods registered with `objectives=True`.
        **hyperparameters (object): overrides of the config's fields, as values or command-line text.

    Returns:
        The scores [n_edges] (on the CPU) with the method, hyperparameters (and objective), seed, seconds, ablation
            and task recorded, and a training method's trajectory.

    Raises:
        UnknownMethodError: an unknown method, preset or hyperparameter name.
        InvalidHyperparameterError: a hyperparameter value that is not of its field's type or is out of range.
        UnknownObjectiveError: `minimise` given to a method that takes no objective, or naming no objective of
            the task.
        UnknownAblationError: an unknown `ablation`.
        MetricNotZeroError: the task's metric is not 0 on the full model's own outputs (so it is no distance from it).
        NonFiniteMetricError: the metric is NaN or infinite on the full or the fully ablated model.
        NonFiniteScoresError: the method returned NaN or infinite scores.
    """
    spec = get_method(method)
    config = resolve_config(spec, preset, hyperparameters)
    recorded = dataclasses.asdict(config)
    task.check_metric()  # the faithfulness metric, before an objective replaces it: evaluation still measures with it
    if minimise is not None:
        if not spec.objectives:
            takes = ", ".join(m.name for m in METHODS.values() if m.objectives)
            raise UnknownObjectiveError(
                f"{method} scores edges by faithfulness only and takes no objective; {takes} minimise one"
            )
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


def lambda_sweep(
    task: Task,
    lambdas: list[float],
    method: str = "edge-sp",
    ablation: str = "resample",
    per_position: bool = False,
    seed: int = 0,
    progress: bool = False,
    **hyperparameters,
) -> dict[float, EdgeScores]:
    """Returns the scores of one run per lambda (same seed and other hyperparameters), keyed by lambda.

    Args:
        task: the task.
        lambdas: the values of `lambda_` to run, one `discover` call each.
        method: `edge-sp` or `node-sp`.
        ablation: the ablation edges carry.
        per_position: score the per-position graph.
        seed: the seed of every run.
        progress: show each run's progress bar.
        **hyperparameters (object): the other hyperparameters, the same for every run; not `target_edges`.

    Returns:
        Each lambda's scores, keyed by lambda.

    Raises:
        UnknownMethodError: `method` has no `lambda_` hyperparameter (edge-sp and node-sp have).
        InvalidHyperparameterError: `target_edges` is set (it replaces lambda_).
    """
    swept = [
        m.name for m in map(get_method, method_names()) if "lambda_" in {f.name for f in dataclasses.fields(m.config)}
    ]
    if method not in swept:
        raise UnknownMethodError(f"lambda_sweep runs the methods with a lambda_ ({', '.join(swept)}), not {method!r}")
    if hyperparameters.get("target_edges") is not None:
        raise InvalidHyperparameterError("lambda_sweep varies lambda_; leave target_edges unset (it replaces lambda_)")
    return {
        lam: discover(task, method, ablation, per_position, seed, progress, lambda_=lam, **hyperparameters)
        for lam in lambdas
    }
