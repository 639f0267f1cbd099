"""The induction-redundant task: a model trained with head dropout, whose two heads per role each do that role alone.
Path patching with the plain TransformerLens hooks of tests/test_induction.py (independent of edgewise.patching)
shows it: removing either previous-token head, or either induction head, keeps copying, and removing both heads of a
role destroys it; the 16-edge ground truth alone preserves copying and no edge outside it matters. The numbers
asserted on are in docs/induction.md ("A redundant induction model")."""

from __future__ import annotations

import pytest
from test_induction import CHANCE, all_edges, copying, patched_copying

from edgewise.diagnostics import diagnose, redundant_groups
from edgewise.patching import task_ablation
from edgewise.suite.tasks import get_task, task_names
from edgewise.suite.tasks.cards import card_for
from edgewise.suite.tasks.registry import held_out_size
from edgewise.suite.tasks.trained.induction import REDUNDANT_INDUCTION_CIRCUIT

ROLES = {"previous-token": ("A0.0", "A0.1"), "induction": ("A1.0", "A1.1")}
# Copying left with one head of a role removed. Measured: 1.000 for every head under mean ablation; under resample
# 0.92 for either induction head, 0.72 for either previous-token head, whose resampled output marks every key with a
# wrong previous token (one of the corrupted sequence), so the induction heads attend less to the true key: a removed
# copy falls silent only under mean ablation.
SINGLE_FLOOR = {
    ("mean", "previous-token"): 0.99,
    ("mean", "induction"): 0.99,
    ("resample", "previous-token"): 0.65,
    ("resample", "induction"): 0.9,
}


@pytest.fixture(scope="module")
def task():
    return get_task("induction-redundant")


def edges_out(task, *heads: str) -> set[tuple[str, str]]:
    """Returns every edge out of `heads`: removing them all replaces those heads' outputs in every reader."""
    return {(w, r) for w, r in all_edges(task.model.cfg) if w in heads}


def test_induction_redundant_is_built_in_and_copies(task, tmp_path):
    card = card_for("induction-redundant", tmp_path)
    assert (card.truth_measure, card.truth_tolerance, card.n_ground_truth_edges) == ("argmax", 0.05, 16)
    held_out = get_task("induction-redundant", held_out=True)
    assert "induction-redundant" in task_names() and held_out_size("induction-redundant") == 128
    assert {(e.writer, e.reader) for e in task.ground_truth_edges(task.graph())} == set(REDUNDANT_INDUCTION_CIRCUIT)
    assert len(REDUNDANT_INDUCTION_CIRCUIT) == 16
    accuracy, _ = copying(held_out, held_out.model(held_out.clean))
    assert accuracy > 0.99 and held_out.family.corrupt_accuracy < CHANCE


@pytest.mark.parametrize("kind", ["resample", "mean"])
@pytest.mark.parametrize("role", ROLES)
def test_either_head_of_a_role_suffices_and_removing_both_destroys_copying(task, kind, role):
    for head in ROLES[role]:
        accuracy, _ = patched_copying(task, kind, edges_out(task, head))
        assert accuracy > SINGLE_FLOOR[kind, role], head
    accuracy, kl = patched_copying(task, kind, edges_out(task, *ROLES[role]))
    assert accuracy < 0.25 and kl > 4  # measured: accuracy 0.05-0.21, KL 4.2-21


@pytest.mark.parametrize("kind", ["resample", "mean"])
def test_the_circuit_alone_preserves_copying_and_no_other_edge_matters(task, kind):
    circuit, edges = set(REDUNDANT_INDUCTION_CIRCUIT), all_edges(task.model.cfg)
    accuracy, kl = patched_copying(task, kind, edges - circuit)
    assert accuracy > 0.95 and kl < 0.3  # measured 1.000 and 0.000 (resample), 0.982 and 0.27 (mean)
    accuracy, kl = patched_copying(task, kind, circuit)
    assert accuracy < 2 * CHANCE and kl > 3  # measured 0.044 and 16.6 (resample), 0.037 and 3.4 (mean)
    for edge in sorted(edges - circuit):
        accuracy, kl = patched_copying(task, kind, {edge})
        assert accuracy > 0.99 and kl < 0.05, edge  # measured: accuracy >= 0.997, KL <= 0.01


def test_redundant_groups_name_the_two_roles_under_mean_ablation(task):
    """The task's truth measure (answers changed, not logits moved) sees what the path patching above shows: each
    role's two heads, either of which suffices."""
    graph = task.graph()
    groups = redundant_groups(task, graph, task_ablation(task, graph, "mean"))
    assert sorted(g.names for g in groups) == sorted(ROLES.values()) and all(g.suffice == 1 for g in groups)
    report = diagnose(task, ablations=("mean",)).to_dict()["ablations"]["mean"]
    assert sorted(g["description"] for g in report["redundant_groups"]) == [
        "A0.0 and A0.1 each suffice",
        "A1.0 and A1.1 each suffice",
    ]


def test_under_resample_no_previous_token_head_is_said_to_suffice_alone(task):
    """A resampled previous-token head writes a wrong previous token rather than falling silent (copying 0.65-0.72
    with one removed, SINGLE_FLOOR): no group may call either one enough."""
    graph = task.graph()
    groups = redundant_groups(task, graph, task_ablation(task, graph, "resample"))
    assert not any(g.suffice == 1 and set(g.names) & set(ROLES["previous-token"]) for g in groups)


def test_any_previous_token_head_with_any_induction_head_suffices_under_mean_ablation(task):
    """The heads of the two roles are fully connected: each previous-token head feeds both induction heads' keys."""
    for previous in ROLES["previous-token"]:
        for induction in ROLES["induction"]:
            chain = {("Resid Start", f"{previous}.{x}") for x in "QKV"} | {
                (previous, f"{induction}.K"),
                ("Resid Start", f"{induction}.Q"),
                ("Resid Start", f"{induction}.V"),
                (induction, "Resid End"),
            }
            accuracy, _ = patched_copying(task, "mean", all_edges(task.model.cfg) - chain)
            assert accuracy > 0.95, (previous, induction)  # measured 0.961-0.973
