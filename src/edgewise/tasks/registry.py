"""Every built-in task by name: the tracr suite (ground truth known by construction) and tasks on real pretrained
language models (no ground truth). The command line looks tasks up here; names are known without importing any
model code."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ..errors import UnknownTaskError
from .tracr.specs import ALL_TRACR_TASKS

if TYPE_CHECKING:
    from .task import Task

# task name -> (module under edgewise.tasks, factory taking metric=...)
LM_TASKS = {"smollm2-ioi": ("lm.ioi", "smollm2_ioi_task")}
LM_HELD_OUT = 24  # evaluation prompts of each LM task: as many as its discovery prompts, none of them repeated


def task_names() -> list[str]:
    """Returns every built-in task's name: the tracr tasks (compiled, then compressed), then the pretrained-LM
    tasks."""
    return list(ALL_TRACR_TASKS) + list(LM_TASKS)


def get_task(name: str, metric: str | None = None, held_out: bool = False) -> "Task":
    """Returns the built-in task `name` (optionally with another metric, or on its held-out evaluation inputs);
    raises UnknownTaskError with a suggestion, or for a held-out split the task does not have."""
    if name in LM_TASKS:
        module, factory = LM_TASKS[name]
        return getattr(importlib.import_module(f"{__package__}.{module}"), factory)(metric=metric, held_out=held_out)
    if name in ALL_TRACR_TASKS:
        from .tracr.suite import get_task as tracr_task

        return tracr_task(name, metric=metric, held_out=held_out)
    raise UnknownTaskError.for_name(name, task_names())


def held_out_size(name: str) -> int | None:
    """Returns how many held-out (evaluation) inputs task `name` has, or None without a held-out split; needs no
    model."""
    if name in LM_TASKS:
        return LM_HELD_OUT
    spec = ALL_TRACR_TASKS.get(name)
    return None if spec is None or spec.held_out is None else len(spec.held_out())
