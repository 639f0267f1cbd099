"""The tic-tac-toe tasks: the declared network passes the patching checks, the worst-move objective is the value the
full network's value head gives the moves the policy plays (computed here from the plain model), edge-sp reaches the
best circuit an exhaustive search over the 10-edge block graph finds, and the behaviour check flags that circuit as a
fixed ranking of squares, with corners allowed and forbidden."""

from __future__ import annotations

import itertools

import pytest
import torch

from edgewise.diagnostics.behaviour import behaviour_check
from edgewise.methods import discover, method_circuit
from edgewise.patching import patched_forward, task_ablation
from edgewise.patching.checks import run_checks
from edgewise.suite.tasks import get_task, task_names
from edgewise.suite.tasks.game.task import CORNERS, tictactoe_no_corners_task, tictactoe_task


@pytest.fixture(scope="module")
def blocks():
    return tictactoe_task(channels=False)


def test_game_tasks_are_built_in_with_a_held_out_split():
    assert {"tictactoe", "tictactoe-no-corners"} <= set(task_names())
    task, held_out = get_task("tictactoe"), get_task("tictactoe", held_out=True)
    assert task.graph().n_edges == 320 and len(task.graph().writers) == 128
    seen = {tuple(b) for b in task.family.boards}
    assert not seen & {tuple(b) for b in held_out.family.boards}


def test_patching_checks_pass_on_the_declared_network(blocks):
    assert all(r.passed for r in run_checks(blocks))


@torch.no_grad()
def test_worst_move_objective_is_the_full_value_heads_value_of_the_policys_moves(blocks):
    model = blocks.model.model
    out = model(blocks.clean)  # [batch, 2, 9]: policy logits, move values
    legal = blocks.clean[:, :2].sum(1).flatten(1) == 0
    expected = (out[:, 0].masked_fill(~legal, -float("inf")).softmax(-1) * out[:, 1]).sum(-1).mean()
    policy = blocks.adapter.forward(blocks.clean)  # the heads before masking: the objective masks
    assert blocks.objectives["worst-move"](policy, policy, blocks.scored_positions) == pytest.approx(
        expected.item(), abs=1e-5
    )
    assert blocks.objectives["best-move"](policy, policy, blocks.scored_positions) == pytest.approx(
        -expected.item(), abs=1e-5
    )


def test_sparse_worst_move_mask_is_the_exhaustive_best_and_is_flagged_a_fixed_ranking(monkeypatch):
    """With corners forbidden, on 128 positions (benchmarks/worst_move.py runs both tasks on the channel graph)."""
    from edgewise.suite.tasks.game import task as game

    monkeypatch.setattr(game, "DISCOVERY_POSITIONS", 128)
    task = tictactoe_no_corners_task(channels=False)
    assert task.clean.shape[0] == 128
    graph = task.graph()
    ablated = task_ablation(task, graph, "mean")
    objective = task.objectives["worst-move"]
    every = torch.tensor(list(itertools.product([0.0, 1.0], repeat=graph.n_edges)))  # all 1024 circuits
    with torch.no_grad():
        values = torch.cat(
            [
                objective(
                    patched_forward(task.adapter, graph, task.clean, ablated, every[i : i + 128]),
                    None,
                    task.scored_positions,
                )
                for i in range(0, len(every), 128)
            ]
        )
    scores = discover(task, "edge-sp", graph=graph, ablated=ablated, minimise="worst-move", lambda_=0.0, n_samples=1)
    circuit = set(method_circuit(scores, 1).edges)
    reached = values[int(graph.mask_for(circuit) @ (2 ** torch.arange(graph.n_edges - 1, -1, -1.0)))]
    assert reached <= values.min() + 0.02 and values.min() < values[-1] - 0.2  # far below the full network's
    check = behaviour_check(task, graph, ablated, circuit, "worst-move mask")
    full, mask = check.rows[0], check.rows[1]
    assert mask.answer_value < full.answer_value - 0.2  # it does play worse moves, by the game's own values
    assert any(f.startswith("fixed preference") for f in mask.flags) and full.preference_share < 0.8
    if task.name == "tictactoe-no-corners":  # the ranking plays the allowed squares first
        assert set(mask.preference[:4]).isdisjoint({str(c) for c in CORNERS})


def test_diagnose_reports_move_values_and_flags_on_the_game(blocks):
    from edgewise.diagnostics import diagnose, format_diagnosis
    from edgewise.graph import Circuit

    report = diagnose(blocks, ablations=("mean",), circuit=Circuit(frozenset(), task=blocks.name))
    text = format_diagnosis(report)
    assert "value" in text and "fixed preference" in text  # the empty circuit plays the mean board's ranking
