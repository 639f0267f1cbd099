"""Weight-edit baselines of removal: the task-vector arithmetic against a direct computation on the state dicts,
fine-tuning and gradient ascent on a copy (the task's model untouched), and their measurement on the two-skill
model of test_removal."""

from __future__ import annotations

import pytest
import torch
from test_removal import _tasks

from edgewise.interventions import fine_tune, task_vector_model, weight_edit


def test_task_vector_is_theta_minus_alpha_times_the_fine_tuning_change():
    skill_a, _ = _tasks()
    model = skill_a.adapter.model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    tuned = fine_tune(skill_a, steps=5, lr=1e-2)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # tuned a copy
    theta, theta_tuned = model.state_dict(), tuned.model.state_dict()
    for alpha in (0.0, 0.5, -1.0):
        edited = task_vector_model(skill_a.adapter, tuned, alpha).model.state_dict()
        for name in theta:
            assert torch.allclose(edited[name], (1 + alpha) * theta[name] - alpha * theta_tuned[name], atol=1e-6)
    assert any(not torch.equal(theta[k], theta_tuned[k]) for k in theta)


def test_gradient_ascent_removes_skill_a_and_the_measure_is_the_edited_models_own():
    skill_a, skill_b = _tasks()
    ascended = fine_tune(skill_a, steps=30, lr=1e-2, ascend=True)
    edit = weight_edit(skill_a, ascended, retain=[skill_b], label="gradient ascent")
    with torch.no_grad():
        logits = ascended.model(skill_a.clean)  # the raw module: [batch, 4]
    by_hand = (logits.argmax(-1) == skill_a.answers[:, 0]).float().mean().item()
    assert edit.forget.accuracy_before == 1.0 and edit.forget.accuracy_after == pytest.approx(by_hand)
    assert by_hand < 0.5
    change = sum(((p - q) ** 2).sum() for p, q in zip(ascended.model.parameters(), skill_a.adapter.model.parameters()))
    assert edit.weight_change == pytest.approx(change.sqrt().item()) and edit.weight_change > 0
    assert edit.retain[0].task == "skill-B" and edit.retain[0].accuracy_before == 1.0


def test_cli_remove_adds_task_vectors_and_gradient_ascent_rows(tmp_path):
    import json

    from conftest import run_edgewise

    from edgewise.graph import Circuit, Edge

    Circuit(frozenset({Edge("A1.0", "Resid End")}), description="one head", task="multitask-sort").save(
        tmp_path / "c.json"
    )
    result = run_edgewise(
        "remove",
        "multitask-sort",
        "--circuit",
        str(tmp_path / "c.json"),
        "--retain",
        "multitask-shift",
        "--random-seeds",
        "0",
        "--task-vector",
        "0,1",
        "--gradient-ascent",
        "--edit-steps",
        "3",
        "--json",
        str(tmp_path / "r.json"),
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads((tmp_path / "r.json").read_text())["removals"]
    assert [r["label"] for r in rows] == [
        "one head",
        "task vector, alpha 0",
        "task vector, alpha 1",
        "gradient ascent, 3 steps",
    ]
    unchanged = rows[1]  # alpha 0 subtracts nothing: the model itself
    assert unchanged["weight_change"] == 0 and unchanged["forget"]["metric"] == pytest.approx(0, abs=1e-9)
    assert "|dw|" in result.stdout and rows[3]["retain"][0]["task"] == "multitask-shift"
