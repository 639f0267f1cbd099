"""The removal mask on the hand-built two-skill model (tests/test_removal.py): it removes skill A and keeps skill B,
and every edge it removes is one that, by brute force over every single-edge removal, takes A out and leaves B
alone; its suppression term is KL to the uniform distribution, computed here by hand."""

from __future__ import annotations

import math

import pytest
import torch
from test_removal import _tasks

from edgewise.errors import GraphMismatchError, InvalidHyperparameterError
from edgewise.interventions import RemovalMaskConfig, learn_removal_mask, remove
from edgewise.interventions.removal_mask import suppression


def test_suppression_is_kl_from_uniform_by_hand():
    skill_a, _ = _tasks()
    logits = torch.randn(32, 1, 4, generator=torch.Generator().manual_seed(0))
    by_hand = (
        sum(sum(0.25 * (math.log(0.25) - logits[i, 0].log_softmax(-1)[c].item()) for c in range(4)) for i in range(32))
        / 32
    )
    assert suppression(skill_a, logits).item() == pytest.approx(by_hand, rel=1e-5)
    assert suppression(skill_a, torch.zeros(32, 1, 4)).item() == pytest.approx(0.0, abs=1e-7)


def test_the_mask_removes_skill_a_keeps_b_and_removes_only_edges_that_do_that_alone():
    skill_a, skill_b = _tasks()
    before = {k: v.clone() for k, v in skill_a.adapter.model.state_dict().items()}
    removed = learn_removal_mask(skill_a, [skill_b], ablation="zero", config=RemovalMaskConfig(steps=150))
    graph = skill_a.graph()
    # brute force: which single edges take A out (accuracy <= chance) and keep B, measured with `remove` (checked
    # against hand-written ablations in tests/test_removal.py); by construction they are A's input and output
    removes_a_alone = {
        edge
        for edge in graph.edges
        if (r := remove(skill_a, {edge}, [skill_b], "zero")).forget.accuracy_after <= 0.5
        and r.retain[0].accuracy_after == 1.0
    }
    assert removes_a_alone == {e for e in graph.edges if (e.writer, e.reader) in {("embed", "a"), ("a", "out")}}
    assert removed and removed <= removes_a_alone
    result = remove(skill_a, removed, [skill_b], "zero")
    assert result.forget.accuracy_after == 0.0 and result.retain[0].accuracy_after == 1.0
    assert result.retain[0].metric == pytest.approx(0.0, abs=1e-9)
    assert all(torch.equal(before[k], v) for k, v in skill_a.adapter.model.state_dict().items())


def test_without_retain_tasks_and_a_large_lambda_the_mask_removes_nothing_it_does_not_need():
    skill_a, _ = _tasks()
    # a penalty far above the suppression's largest gain (KL to uniform here is below 3) keeps every gate open
    assert learn_removal_mask(skill_a, ablation="zero", config=RemovalMaskConfig(lambda_=100.0, steps=50)) == set()


def test_bad_settings_and_other_models_are_refused():
    skill_a, skill_b = _tasks()
    with pytest.raises(InvalidHyperparameterError, match="steps"):
        RemovalMaskConfig(steps=0)
    with pytest.raises(InvalidHyperparameterError, match="alpha"):
        RemovalMaskConfig(alpha=-1.0)
    other = _tasks()[1]
    with torch.no_grad():
        other.adapter.model.b.weight.mul_(2)
    with pytest.raises(GraphMismatchError, match="runs another model"):
        learn_removal_mask(skill_a, [other])
