"""Tic-tac-toe is solved exactly (counts and hand-checked values), and the committed TicTacToeNet plays it as its
record says, with a residual trunk that is exactly the sum of its writers."""

import json

import pytest
import torch

from edgewise.errors import TrainedWeightsMissingError
from edgewise.suite.models.tictactoe import WEIGHTS_PATH, TicTacToeNet, load_tictactoe
from edgewise.suite.tasks.game.tictactoe import (
    EMPTY_BOARD,
    board_planes,
    legal_moves,
    move_values,
    nonterminal_positions,
    position_value,
    reachable_positions,
    tictactoe_dataset,
    winner,
)


@pytest.fixture(scope="module")
def dataset():
    return tictactoe_dataset()


@pytest.fixture(scope="module")
def net():
    return load_tictactoe()


def test_position_counts():
    assert len(reachable_positions()) == len(set(reachable_positions())) == 5478
    assert len(nonterminal_positions()) == 4520


def test_empty_board_is_a_draw_whatever_the_first_move():
    assert position_value(EMPTY_BOARD) == 0
    assert move_values(EMPTY_BOARD) == {m: 0 for m in range(9)}


def test_an_immediate_win_is_worth_one():
    board = (1, 1, 0, 2, 2, 0, 0, 0, 0)  # X to move: 2 wins at once; 5 only blocks O
    assert move_values(board)[2] == 1
    assert position_value(board) == 1
    assert winner((1, 1, 1, 2, 2, 0, 0, 0, 0)) == 1


def test_a_double_threat_loses_whatever_the_move():
    board = (
        1,
        1,
        0,
        1,
        2,
        0,
        0,
        0,
        2,
    )  # O to move; X threatens 2 (top row) and 6 (left column), and O cannot win first
    assert board in nonterminal_positions()
    assert move_values(board) == {m: -1 for m in (2, 5, 6, 7)}
    assert legal_moves((1, 1, 1, 2, 2, 0, 0, 0, 0)) == ()


def test_planes_are_from_the_movers_side():
    after_x = (1, 0, 0, 0, 0, 0, 0, 0, 0)  # O to move
    after_o = (1, 0, 0, 0, 2, 0, 0, 0, 0)  # X to move
    planes = board_planes([after_x, after_o]).reshape(2, 3, 9)
    assert planes.dtype == torch.float32
    assert planes[0, 0].sum() == 0 and planes[0, 1].tolist() == [1.0] + [0.0] * 8
    assert planes[1, 0].tolist() == [1.0] + [0.0] * 8 and planes[1, 1, 4] == 1 and planes[1, 1].sum() == 1
    assert (planes[:, 2] == 1).all()


def test_dataset_rows_match_the_solver(dataset):
    assert dataset.planes.shape == (4520, 3, 3, 3) and dataset.legal.shape == dataset.move_values.shape == (4520, 9)
    assert (dataset.move_values[~dataset.legal] == 0).all()
    row = dataset.boards.index((1, 1, 0, 2, 2, 0, 0, 0, 0))
    assert dataset.legal[row].nonzero().flatten().tolist() == [2, 5, 6, 7, 8]
    assert dataset.optimal[row].nonzero().flatten().tolist() == [2]


def test_loaded_network_reproduces_its_record(net, dataset):
    record = json.loads(WEIGHTS_PATH.with_suffix(".json").read_text())
    with torch.no_grad():
        output = net(dataset.planes)  # [4520, 2, 9]
    hits = sum(bool(dataset.optimal[i, int(output[i, 0].argmax())]) for i in range(len(dataset.boards)))
    legal = dataset.legal
    error = (output[:, 1][legal] - dataset.move_values[legal]).square().mean().item()
    assert hits / len(dataset.boards) == pytest.approx(record["measured"]["policy_optimal_move_accuracy"], abs=1e-6)
    assert error == pytest.approx(record["measured"]["move_value_mse"], abs=1e-6)
    assert hits / len(dataset.boards) >= 0.97
    assert (output[:, 0][~legal] == -1e9).all() and (output[:, 1][~legal] == 0).all()


def test_trunk_is_the_sum_of_its_writers(net, dataset):
    seen = {}
    handles = [
        net.hook_dict[name].register_forward_hook(lambda module, args, out, name=name: seen.__setitem__(name, out))
        for name in net.hook_dict
    ]
    try:
        with torch.no_grad():
            net(dataset.planes[:64])
    finally:
        for handle in handles:
            handle.remove()
    total = seen["hook_stem"]
    for i in range(net.cfg.blocks):
        torch.testing.assert_close(seen[f"blocks.{i}.hook_in"], total)
        total = total + seen[f"blocks.{i}.hook_out"]
    torch.testing.assert_close(seen["hook_policy_in"], total)
    torch.testing.assert_close(seen["hook_value_in"], total)


def test_hook_names():
    names = set(TicTacToeNet().hook_dict)
    assert {"hook_stem", "hook_policy_in", "hook_value_in", "blocks.0.hook_in", "blocks.2.hook_out"} <= names


def test_missing_weights_name_the_training_script(tmp_path):
    with pytest.raises(TrainedWeightsMissingError, match="scripts/train_tictactoe.py"):
        load_tictactoe(tmp_path / "absent.pt")
