"""Every built-in task by name: the tracr suite (ground truth known by construction) and tasks on real pretrained
language models (no ground truth). The command line looks tasks up here."""

from __future__ import annotations

from .errors import UnknownTaskError
from .lm_tasks import LM_TASKS
from .task import Task


def task_names() -> list[str]:
    """Returns every built-in task's name: the tracr tasks, then the pretrained-LM tasks."""
    from .tracr_tasks import task_names as tracr_names

    return tracr_names() + list(LM_TASKS)


def get_task(name: str, metric: str | None = None) -> Task:
    """Returns the built-in task `name` (optionally with another metric); raises UnknownTaskError with a suggestion."""
    if name in LM_TASKS:
        return LM_TASKS[name](metric=metric)
    from .tracr_tasks import TRACR_TASKS, get_task as tracr_task

    if name in TRACR_TASKS:
        return tracr_task(name, metric=metric)
    raise UnknownTaskError.for_name(name, task_names())
