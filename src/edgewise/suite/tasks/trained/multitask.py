"""The multitask tasks: one project-trained transformer solving reverse, sort, count and shift (the task chosen by a
token), one Task per algorithm on that shared model: `multitask-reverse`, `multitask-sort`, `multitask-count`,
`multitask-shift`. Removing the circuit found for one of them (the forget task) can be measured on the other three
(the retain tasks), which run the same model object.

No ground truth is known: the model was trained, not compiled, and its circuits have not been verified. The metric is
KL divergence: at a scored position the full model puts nearly all its mass on the answer, so KL(full || patched) is
about -log p_patched(answer), the loss of the behaviour itself, with no second "wrong" token to choose.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from edgewise.models import Transformer
from edgewise.tasks import METRICS, Task

from ...models import load_multitask
from ..registry import TRAINED_SEQUENCES
from .algorithmic import (
    N_INPUTS,
    TASKS,
    answer_accuracy,
    random_inputs,
    scored_answers,
    scored_positions,
    sequences,
)

DISCOVERY_SEED = 1  # the training script draws its batches from seed 0 and measures on seed 12345
HELD_OUT_SEED = 2


@dataclass(frozen=True)
class MultitaskData:
    """A multitask task's own record (`task.family`): the model's accuracy on the clean inputs and on the corrupted
    ones (against the clean answers), and the other tasks of the same model (what a removal should retain).

    Attributes:
        accuracy: the model's answer accuracy on the clean inputs.
        corrupt_accuracy: its accuracy on the corrupted inputs, against the clean answers.
        retain_tasks: the names of the model's other tasks (`multitask-<task>`).
    """

    accuracy: float
    corrupt_accuracy: float
    retain_tasks: tuple[str, ...]


@functools.cache
def shared_multitask_model() -> Transformer:
    """Returns the committed multitask model, loaded once a process: every multitask Task holds this same object.

    Returns:
        The model, in eval mode.

    Raises:
        TrainedWeightsMissingError: the model's weights are not there.
    """
    return load_multitask()


def task_accuracies(model: torch.nn.Module, seed: int, rows: int) -> dict[str, float]:
    """Returns each task's argmax accuracy (to 4 places) on the answers of `rows` sequences drawn from `seed`.

    Args:
        model: the multitask model.
        seed: seeds the generator the inputs are drawn from, task after task.
        rows: sequences per task.

    Returns:
        Accuracy by task name (TASKS).
    """
    generator = torch.Generator().manual_seed(seed)
    accuracies = {}
    for task in TASKS:
        tokens = sequences(task, random_inputs(rows, generator))
        accuracies[task] = round(answer_accuracy(model, tokens, scored_answers(tokens)), 4)
    return accuracies


def multitask_task(task_name: str, metric: str | None = None, held_out: bool = False) -> Task:
    """Returns task `multitask-<task_name>` (one of TASKS) on the shared multitask model: TRAINED_SEQUENCES sequences
    of that algorithm on random inputs (`held_out`: as many others, from another seed), each paired with the same
    algorithm on freshly drawn inputs; scored where the answers are predicted, by KL unless `metric` names another.

    Args:
        task_name: one of TASKS.
        metric: the name of a metric in `METRICS`; None: KL.
        held_out: draw the sequences from HELD_OUT_SEED instead of DISCOVERY_SEED.

    Returns:
        The task, without ground truth; `answers` the correct answer at each scored position (-1 elsewhere),
            `family` a MultitaskData.

    Raises:
        TrainedWeightsMissingError: the multitask model's weights are not there.
    """
    generator = torch.Generator().manual_seed(HELD_OUT_SEED if held_out else DISCOVERY_SEED)
    clean = sequences(task_name, random_inputs(TRAINED_SEQUENCES, generator))  # an unknown name fails here
    corrupt = sequences(task_name, random_inputs(TRAINED_SEQUENCES, generator))
    model = shared_multitask_model()
    answers = scored_answers(clean)
    return Task(
        name=f"multitask-{task_name}",
        model=model,
        clean=clean,
        corrupt=corrupt,
        metric=METRICS[metric or "kl"],
        scored_positions=scored_positions(TRAINED_SEQUENCES),
        ground_truth=None,
        bos_position=0,
        description=f"{task_name} of {N_INPUTS} values by a trained 2-layer transformer that also solves "
        f"{', '.join(t for t in TASKS if t != task_name)}, selected by a task token "
        f"({TRAINED_SEQUENCES} {'held-out ' if held_out else ''}sequences)",
        pairing=f"row i's corrupted sequence: the same task token, {N_INPUTS} inputs drawn afresh and their own "
        f"{task_name} answers (teacher forced), so the answers row i is scored on change",
        answers=answers,  # [batch, pos]: the correct answer at each scored position, -1 elsewhere
        family=MultitaskData(
            answer_accuracy(model, clean, answers),
            answer_accuracy(model, corrupt, answers),
            tuple(f"multitask-{t}" for t in TASKS if t != task_name),
        ),
    )


def multitask_reverse_task(metric: str | None = None, held_out: bool = False) -> Task:
    """Returns the multitask-reverse task (see `multitask_task`).

    Args:
        metric: the name of a metric in `METRICS` in place of KL; None keeps KL.
        held_out: build the task on its held-out sequences.

    Returns:
        The task.

    Raises:
        TrainedWeightsMissingError: the multitask model's weights are not there.
    """
    return multitask_task("reverse", metric, held_out)


def multitask_sort_task(metric: str | None = None, held_out: bool = False) -> Task:
    """Returns the multitask-sort task (see `multitask_task`).

    Args:
        metric: the name of a metric in `METRICS` in place of KL; None keeps KL.
        held_out: build the task on its held-out sequences.

    Returns:
        The task.

    Raises:
        TrainedWeightsMissingError: the multitask model's weights are not there.
    """
    return multitask_task("sort", metric, held_out)


def multitask_count_task(metric: str | None = None, held_out: bool = False) -> Task:
    """Returns the multitask-count task (see `multitask_task`).

    Args:
        metric: the name of a metric in `METRICS` in place of KL; None keeps KL.
        held_out: build the task on its held-out sequences.

    Returns:
        The task.

    Raises:
        TrainedWeightsMissingError: the multitask model's weights are not there.
    """
    return multitask_task("count", metric, held_out)


def multitask_shift_task(metric: str | None = None, held_out: bool = False) -> Task:
    """Returns the multitask-shift task (see `multitask_task`).

    Args:
        metric: the name of a metric in `METRICS` in place of KL; None keeps KL.
        held_out: build the task on its held-out sequences.

    Returns:
        The task.

    Raises:
        TrainedWeightsMissingError: the multitask model's weights are not there.
    """
    return multitask_task("shift", metric, held_out)
