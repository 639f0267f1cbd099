"""Relearning on the hand-built two-skill model (tests/test_removal.py): the accuracy curve equals a hand-written
fine-tuning loop with the removed edge ablated by hooks; removed edges stay removed while the copy trains (with
every way out ablated, nothing comes back); and neither the task's model nor an edited copy changes."""

from __future__ import annotations

import copy

import pytest
import torch
from test_removal import _tasks

from edgewise.errors import InvalidHyperparameterError
from edgewise.graph import Edge
from edgewise.interventions import relearn


def _hand_relearning(task, steps: int, lr: float) -> list[float]:
    """Returns the accuracy after 0..steps Adam steps of a copy trained with branch a's output kept from the logits
    (edge a -> out zero-ablated by hooks: the output hook subtracts what branch a wrote)."""
    model = copy.deepcopy(task.adapter.model)
    written = {}

    def forward():
        hooks = [
            ("hook_a_out", lambda v, hook: written.__setitem__("a", v)),
            ("hook_out", lambda v, hook: v - written["a"]),
        ]
        return model.run_with_hooks(task.clean, fwd_hooks=hooks)

    answers = task.answers[:, 0]
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    curve = []
    for step in range(steps + 1):
        with torch.no_grad():
            curve.append((forward().argmax(-1) == answers).float().mean().item())
        if step < steps:
            loss = torch.nn.functional.cross_entropy(forward(), answers)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return curve


def test_relearning_follows_a_hand_written_loop_with_the_edge_ablated():
    skill_a, _ = _tasks()
    before = {k: v.clone() for k, v in skill_a.adapter.model.state_dict().items()}
    curve = relearn(skill_a, skill_a, {Edge("a", "out")}, ablation="zero", steps=12, lr=0.05)
    expected = _hand_relearning(skill_a, 12, 0.05)
    assert curve.accuracy[0] == 0.0 and expected[-1] >= 0.9  # the embedding's direct path can learn A
    assert max(abs(a - b) for a, b in zip(curve.accuracy, expected)) <= 1 / 32  # one input may flip in float noise
    assert curve.full_accuracy == 1.0 and curve.recovered_at == next(i for i, v in enumerate(expected) if v >= 0.9)
    assert all(torch.equal(before[k], v) for k, v in skill_a.adapter.model.state_dict().items())


def test_removed_edges_stay_removed_while_the_copy_trains():
    skill_a, _ = _tasks()
    graph = skill_a.graph()
    into_output = {e for e in graph.edges if e.reader == "out"}  # zero-ablated: the logits are 0 whatever the weights
    curve = relearn(skill_a, skill_a, into_output, ablation="zero", steps=5, lr=0.1)
    assert curve.accuracy == (0.0,) * 6 and curve.recovered_at is None  # a tie of all logits answers nothing


def test_a_weight_edited_copy_relearns_and_stays_as_it_was():
    skill_a, _ = _tasks()
    edited = copy.deepcopy(skill_a.adapter)
    with torch.no_grad():
        edited.model.a.weight.zero_()  # skill A's branch gone from the copy's weights
    kept = {k: v.clone() for k, v in edited.model.state_dict().items()}
    curve = relearn(skill_a, skill_a, adapter=edited, steps=3, lr=0.05)
    assert curve.accuracy[0] < 0.8 and len(curve.accuracy) == 4
    assert all(torch.equal(kept[k], v) for k, v in edited.model.state_dict().items())
    with pytest.raises(InvalidHyperparameterError, match="lr"):
        relearn(skill_a, skill_a, steps=3, lr=0.0)
