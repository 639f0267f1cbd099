"""A task's rows drawn with replacement, for bootstraps over inputs: the task itself (`resampled_rows`, for refits)
or only its metric (`on_rows`, for figures taken again on outputs already computed). Every per-row field is drawn
with the rows, including tensors a metric is bound to with functools.partial; a metric that closes over per-row
data is refused, since drawing its rows would silently pair one row's outputs with another's data."""

from __future__ import annotations

import functools
from dataclasses import replace

import torch

from ..errors import UsageError
from ..tasks import Metric, Task


def resampled_rows(task: Task, generator: torch.Generator) -> Task:
    """Returns the task on a bootstrap resample of its rows: as many rows, drawn with replacement, each clean row with
    its own corrupted row and every per-row field (scored positions, answers, offered classes, answer values, and the
    rows a metric or objective is bound to).

    Args:
        task: the task whose rows to resample.
        generator: the random generator that draws them.

    Returns:
        The same task on the drawn rows.
    """
    n = task.clean.shape[0]
    rows = torch.randint(0, n, (n,), generator=generator)
    per_row = {
        name: getattr(task, name)[rows.to(getattr(task, name).device)]
        for name in ("clean", "corrupt", "scored_positions", "answers", "offered", "answer_values")
        if getattr(task, name) is not None
    }
    metric = on_rows(task.metric, rows, n)
    objectives = {name: on_rows(m, rows, n) for name, m in task.objectives.items()}
    return replace(task, **per_row, metric=metric, objectives=objectives)


def on_rows(metric: Metric, rows: torch.Tensor, n: int, positions: torch.Tensor | None = None) -> Metric:
    """Returns the metric on drawn rows (and, with `positions`, on those positions only): a metric bound to per-row
    tensors with functools.partial (a prompts file's answers, a game's legal moves) gets those tensors' rows drawn,
    and a bound metric's own bindings likewise; a metric bound to nothing per row is returned as it is.

    Args:
        metric: the task's metric or objective.
        rows: the drawn rows, indices into the batch [n].
        n: the batch's size: a bound tensor whose first axis has this length is per row.
        positions: the kept positions [pos] (bool), applied to per-row tensors' second axis; None keeps them all.

    Returns:
        The metric on the drawn rows.

    Raises:
        UsageError: the metric's function closes over a per-row tensor, which cannot be drawn: bind it with
            functools.partial.
    """
    fn = metric.fn
    if not isinstance(fn, functools.partial):
        for cell in getattr(fn, "__closure__", None) or ():
            value = cell.cell_contents
            if isinstance(value, Metric) or (isinstance(value, torch.Tensor) and value.shape[:1] == (n,)):
                raise UsageError(
                    f"metric {metric.name!r} closes over per-row data, so its rows cannot be drawn for a bootstrap: "
                    "bind per-row tensors (and inner metrics) with functools.partial instead of a closure"
                )
        return metric
    return Metric(metric.name, functools.partial(fn.func, *fn.args, **_bound_rows(fn.keywords, rows, n, positions)))


def _bound_rows(keywords: dict, rows: torch.Tensor, n: int, positions: torch.Tensor | None) -> dict:
    """Returns a partial's keywords with per-row tensors' rows (and positions) drawn, and bound metrics redrawn."""
    drawn = {}
    for name, value in keywords.items():
        if isinstance(value, Metric):
            value = on_rows(value, rows, n, positions)
        elif isinstance(value, torch.Tensor) and value.shape[:1] == (n,):
            value = value[rows.to(value.device)]
            if positions is not None and value.dim() > 1 and value.shape[1] == len(positions):
                value = value[:, positions.to(value.device)]
        drawn[name] = value
    return drawn
