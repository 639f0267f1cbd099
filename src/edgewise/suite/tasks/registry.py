"""Every built-in task by name: the tracr suite (ground truth known by construction), tasks on real pretrained
language models (no ground truth), on a project-trained game network, and on project-trained transformers: induction
models whose circuit path patching verified (`induction`, `induction-redundant`), SIIT models of tracr programs whose
circuit training put in chosen heads (`siit-*`), and one model of four algorithms chosen by a task token
(`multitask-*`, for capability removal). The command line looks tasks up here; names are known without importing any
model code."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from edgewise.errors import UnknownTaskError

from .tracr.specs import ALL_TRACR_TASKS

if TYPE_CHECKING:
    from edgewise.interventions import TaskSplit
    from edgewise.tasks import Task

# task name -> (module under edgewise.suite.tasks, factory taking metric=...)
LM_TASKS = {
    "smollm2-ioi": ("lm.ioi", "smollm2_ioi_task"),
    "smollm2-capitals": ("lm.templated", "smollm2_capitals_task"),
    "smollm2-self-text": ("lm.self_text", "smollm2_self_text_task"),
}
# evaluation inputs of each LM task: as many as its discovery inputs, none of them repeated
LM_HELD_OUT = {"smollm2-ioi": 24, "smollm2-capitals": 24, "smollm2-self-text": 8}
# tasks on project-trained game networks (declared through their hook points), as (module, factory)
GAME_TASKS = {
    "tictactoe": ("game.task", "tictactoe_task"),
    "tictactoe-no-corners": ("game.task", "tictactoe_no_corners_task"),
}
GAME_POSITIONS = 256  # discovery positions of a game task, and as many other positions held out
# tasks on project-trained transformers with a verified circuit, as (module, factory)
TRAINED_TASKS = {
    "induction": ("trained.induction", "induction_task"),
    "induction-redundant": ("trained.induction", "induction_redundant_task"),
}
TRAINED_SEQUENCES = 128  # discovery sequences of a trained task, and as many others held out
# SIIT models of tracr programs (tasks.trained.siit), on their program's inputs: task name -> the tracr program
SIIT_TASKS = {
    f"siit-{program}": program for program in ("tracr-hist", "tracr-count", "tracr-shift", "tracr-redundant-or")
}
TRAINED_TASKS.update({name: ("trained.siit", "siit_task") for name in SIIT_TASKS})
# one model trained on four algorithms chosen by a task token (tasks.trained.multitask): forget one, retain the others
TRAINED_TASKS.update(
    {
        "multitask-reverse": ("trained.multitask", "multitask_reverse_task"),
        "multitask-sort": ("trained.multitask", "multitask_sort_task"),
        "multitask-count": ("trained.multitask", "multitask_count_task"),
        "multitask-shift": ("trained.multitask", "multitask_shift_task"),
    }
)


def task_names() -> list[str]:
    """Returns every built-in task's name: the tracr tasks (compiled, then compressed), the pretrained-LM tasks, the
    game tasks, the trained-transformer tasks.

    Returns:
        The names, in that order; no model is imported.
    """
    return list(ALL_TRACR_TASKS) + list(LM_TASKS) + list(GAME_TASKS) + list(TRAINED_TASKS)


def user_task(spec: str) -> "Task":
    """Returns the task that `FILE.py:FUNCTION` makes: a user's own model (docs/any-model.md) on the command line.
    The function takes no arguments and returns a Task.

    Args:
        spec: `FILE.py:FUNCTION`, the file's path and the name of a function it defines.

    Returns:
        What the function returns.

    Raises:
        UnknownTaskError: the file does not exist, or defines no function of that name.
    """
    path, _, function = spec.rpartition(":")
    if not Path(path).is_file():
        raise UnknownTaskError(
            f"{spec!r}: {path} is not a file; give FILE.py:FUNCTION, e.g. examples/residual_cnn.py:make_task"
        )
    sys.path.insert(0, str(Path(path).resolve().parent))  # the file's own imports of its neighbours
    module_spec = importlib.util.spec_from_file_location(Path(path).stem, path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    if not callable(getattr(module, function, None)):
        raise UnknownTaskError(
            f"{path} has no function {function!r}; it defines "
            f"{', '.join(n for n, v in vars(module).items() if callable(v) and not n.startswith('_'))}"
        )
    return getattr(module, function)()


def get_task(name: str, metric: str | None = None, held_out: bool = False) -> "Task":
    """Returns the built-in task `name` (optionally with another metric, or on its held-out evaluation inputs), or a
    user's task from `FILE.py:FUNCTION`; raises UnknownTaskError with a suggestion, or for a held-out split the task
    does not have.

    Args:
        name: a built-in task's name (`task_names`), or `FILE.py:FUNCTION`.
        metric: the name of a metric (`kl`, `mse`, `l2`) in place of the task's own; None keeps it.
        held_out: build the task on its held-out evaluation inputs instead of its discovery inputs.

    Returns:
        The task.

    Raises:
        UnknownTaskError: an unknown name (the message suggests the nearest), a task from a file given a metric or
            `held_out`, or a held-out split the task does not have.
    """
    if name.endswith(".py") or ".py:" in name:
        if metric is not None or held_out:
            raise UnknownTaskError(
                f"{name}: a task from a file has its own metric and inputs; drop --metric and "
                "held-out evaluation, or build them into the function"
            )
        return user_task(name)
    if name in LM_TASKS or name in GAME_TASKS or name in TRAINED_TASKS:
        module, factory = {**LM_TASKS, **GAME_TASKS, **TRAINED_TASKS}[name]
        program = {"program": SIIT_TASKS[name]} if name in SIIT_TASKS else {}  # one factory serves every SIIT task
        return getattr(importlib.import_module(f"{__package__}.{module}"), factory)(
            metric=metric, held_out=held_out, **program
        )
    if name in ALL_TRACR_TASKS:
        from .tracr.suite import get_task as tracr_task

        return tracr_task(name, metric=metric, held_out=held_out)
    raise UnknownTaskError.for_name(name, task_names())


def held_out_size(name: str) -> int | None:
    """Returns how many held-out (evaluation) inputs task `name` has, or None without a held-out split; needs no
    model.

    Args:
        name: a built-in task's name.

    Returns:
        The number of held-out inputs, or None (also for a name that is not a built-in task).
    """
    if name in LM_TASKS:
        return LM_HELD_OUT[name]
    if name in GAME_TASKS:
        return GAME_POSITIONS
    if name in SIIT_TASKS:
        return held_out_size(SIIT_TASKS[name])
    if name in TRAINED_TASKS:
        return TRAINED_SEQUENCES
    spec = ALL_TRACR_TASKS.get(name)
    return None if spec is None or spec.held_out is None else len(spec.held_out())


def task_split(name: str) -> "TaskSplit":
    """Returns the built-in task's discovery and evaluation splits, as `edgewise remove` compares removals on them: the
    evaluation split is the held-out one, or the discovery inputs for a task without held-out inputs.

    Args:
        name: a built-in task's name.

    Returns:
        The split: the discovery task, the evaluation task, and whether the evaluation inputs are held out.

    Raises:
        UnknownTaskError: `name` is not a task.
    """
    from edgewise.interventions import TaskSplit

    held_out = bool(held_out_size(name))
    return TaskSplit(get_task(name), get_task(name, held_out=True) if held_out else get_task(name), held_out)
