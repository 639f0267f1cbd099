"""The multitask tasks: one trained model solves reverse, sort, count and shift, selected by a task token; the committed
weights reproduce the recorded held-out accuracies, the answers are checked against the task definitions written out
here by hand, each task's corruption breaks its answers, and the four tasks run one model object."""

from __future__ import annotations

import json

import pytest
import torch

from edgewise.suite.models.multitask import WEIGHTS_PATH, load_multitask
from edgewise.suite.tasks import get_task, task_names
from edgewise.suite.tasks.cards import card_for
from edgewise.suite.tasks.registry import held_out_size
from edgewise.suite.tasks.trained.algorithmic import N_INPUTS, N_VALUES, SCORED, TASKS, answers_of, sequences
from edgewise.suite.tasks.trained.multitask import task_accuracies

NAMES = [f"multitask-{task}" for task in TASKS]
RECORD = json.loads(WEIGHTS_PATH.with_suffix(".json").read_text())


@pytest.fixture(scope="module")
def tasks():
    return {name: get_task(name) for name in NAMES}


def by_hand(task: str, x: list[int]) -> list[int]:
    """Returns task `task`'s answers for the inputs `x`, written without tensors."""
    return {"reverse": x[::-1], "sort": sorted(x), "count": [x.count(v) for v in x], "shift": x[1:] + x[:1]}[task]


@pytest.mark.parametrize("task", TASKS)
def test_answers_match_the_definitions(task):
    inputs = torch.tensor([[3, 1, 3, 0, 7, 3], [5, 5, 2, 6, 2, 4]])
    assert answers_of(task, inputs).tolist() == [by_hand(task, row) for row in inputs.tolist()]
    tokens = sequences(task, inputs)
    assert (tokens[:, SCORED + 1] == answers_of(task, inputs)).all()  # each scored position predicts the next answer


def test_the_record_reproduces_on_held_out_sequences():
    measured = task_accuracies(load_multitask(), RECORD["held_out_seed"], RECORD["held_out_rows"])
    assert measured == RECORD["held_out_accuracy"]
    assert min(measured.values()) >= 0.97


@pytest.mark.parametrize("task", TASKS)
def test_the_model_gives_the_hand_written_answers(tasks, task):
    inputs = torch.randint(N_VALUES, (256, N_INPUTS), generator=torch.Generator().manual_seed(7))
    expected = torch.tensor([by_hand(task, row) for row in inputs.tolist()])
    with torch.no_grad():
        predicted = tasks[f"multitask-{task}"].model(sequences(task, inputs))[:, SCORED].argmax(-1)
    assert (predicted == expected).float().mean() >= 0.97


@pytest.mark.parametrize("name", NAMES)
def test_each_task_is_solved_and_its_corruption_breaks_it(tasks, name):
    task, held_out = tasks[name], get_task(name, held_out=True)
    assert task.family.accuracy >= 0.97 and held_out.family.accuracy >= 0.97
    assert task.family.corrupt_accuracy < 0.5  # against the clean answers: the corrupted inputs change them
    assert not torch.equal(task.clean, held_out.clean) and held_out_size(name) == held_out.clean.shape[0] == 128
    assert (task.clean[:, :2] == task.corrupt[:, :2]).all()  # BOS and the task token stay; the inputs change
    assert task.scored_positions.sum(1).eq(len(SCORED)).all() and task.ground_truth is None


def test_the_four_tasks_share_one_model(tasks):
    models = {id(task.model) for task in tasks.values()}
    assert len(models) == 1
    tokens = {name: task.clean[0, 1].item() for name, task in tasks.items()}
    assert len(set(tokens.values())) == len(NAMES)  # only the task token tells the model which task to do


def test_the_tasks_are_listed(tmp_path):
    assert set(NAMES) <= set(task_names())  # what `edgewise tasks` lists, each by its card
    cards = [card_for(name, tmp_path) for name in NAMES]
    assert all(card.n_layers == 2 and card.n_heads == 4 and card.n_held_out == 128 for card in cards)
    assert all(card.n_ground_truth_edges is None and card.metric == "kl" for card in cards)
