"""Tic-tac-toe solved exactly by memoised minimax, and the dataset of every position a network should play.

A board is a tuple of 9 cells, row by row: 0 empty, 1 X, 2 O. X moves first, so the player to move is X when both
have as many stones. Values are from the mover's side under perfect play by both: +1 win, 0 draw, -1 loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, Sequence

import torch

Board = tuple[int, ...]
EMPTY, X, O = 0, 1, 2
EMPTY_BOARD: Board = (EMPTY,) * 9
LINES = ((0, 1, 2), (3, 4, 5), (6, 7, 8), (0, 3, 6), (1, 4, 7), (2, 5, 8), (0, 4, 8), (2, 4, 6))


def to_move(board: Board) -> int:
    """Returns the player to move (X or O), counting stones.

    Args:
        board: the board.

    Returns:
        X when both have as many stones, else O.
    """
    return X if board.count(X) == board.count(O) else O


def winner(board: Board) -> int:
    """Returns X or O if that player has three in a line, else EMPTY.

    Args:
        board: the board.

    Returns:
        The winner, or EMPTY.
    """
    for a, b, c in LINES:
        if board[a] != EMPTY and board[a] == board[b] == board[c]:
            return board[a]
    return EMPTY


def is_terminal(board: Board) -> bool:
    """Returns whether the game is over: a line of three, or a full board.

    Args:
        board: the board.

    Returns:
        True when the game is over.
    """
    return winner(board) != EMPTY or EMPTY not in board


def legal_moves(board: Board) -> tuple[int, ...]:
    """Returns the empty cells, in order; none once the game is over.

    Args:
        board: the board.

    Returns:
        The cell indices of the legal moves.
    """
    if is_terminal(board):
        return ()
    return tuple(i for i, cell in enumerate(board) if cell == EMPTY)


def play(board: Board, move: int) -> Board:
    """Returns the board after the player to move takes cell `move` (assumed legal).

    Args:
        board: the board.
        move: the cell, 0 to 8.

    Returns:
        The new board.
    """
    return board[:move] + (to_move(board),) + board[move + 1 :]


@lru_cache(maxsize=None)
def position_value(board: Board) -> int:
    """Returns the value of `board` for the player to move: +1, 0 or -1 under perfect play.

    Args:
        board: the board.

    Returns:
        The value; -1 on a board already won (by the player who just moved), 0 on a full board.
    """
    if winner(board) != EMPTY:
        return -1  # the last move made the line, so the player to move has lost
    moves = legal_moves(board)
    if not moves:
        return 0
    return max(-position_value(play(board, m)) for m in moves)


def move_values(board: Board) -> dict[int, int]:
    """Returns {legal move: its value for the player to move}, each +1, 0 or -1 under perfect play afterwards.

    Args:
        board: the board.

    Returns:
        Each legal move's value; {} once the game is over.
    """
    return {m: -position_value(play(board, m)) for m in legal_moves(board)}


@lru_cache(maxsize=None)
def reachable_positions() -> tuple[Board, ...]:
    """Returns every board reachable from the empty one by legal play, terminal ones included, ply by ply and
    sorted within a ply (5478 boards).

    Returns:
        The boards (cached after the first call).
    """
    layer, found = [EMPTY_BOARD], [EMPTY_BOARD]
    while layer:
        layer = sorted({play(b, m) for b in layer for m in legal_moves(b)})
        found.extend(layer)
    return tuple(found)


def nonterminal_positions() -> tuple[Board, ...]:
    """Returns the reachable boards where the game is not over, in reachable_positions' order (4520 boards).

    Returns:
        The boards.
    """
    return tuple(b for b in reachable_positions() if not is_terminal(b))


def board_planes(boards: Iterable[Sequence[int]]) -> torch.Tensor:
    """Returns float planes [batch, 3, 3, 3] from the mover's side: 0 the mover's stones, 1 the opponent's, 2 ones
    (a constant plane, so a padded convolution sees where the board ends).

    Args:
        boards: boards of 9 cells each.

    Returns:
        The planes [batch, 3, 3, 3] (plane, row, column).
    """
    cells = torch.tensor([list(b) for b in boards], dtype=torch.long).reshape(-1, 9)  # [batch, 9]
    mover = torch.where((cells == X).sum(-1) == (cells == O).sum(-1), X, O).unsqueeze(-1)  # [batch, 1]
    opponent = (cells != EMPTY) & (cells != mover)
    planes = torch.stack([cells == mover, opponent, torch.ones_like(opponent)], 1)  # [batch, 3, 9]
    return planes.float().reshape(-1, 3, 3, 3)


@dataclass(frozen=True)
class TicTacToeDataset:
    """Every non-terminal position with its exact solution, rows in `nonterminal_positions` order.

    `move_values` holds each legal move's minimax value for the mover (+1, 0, -1) and 0 at illegal moves, so read it
    through `legal`.

    Attributes:
        planes: `board_planes` of `boards` [n, 3, 3, 3] (float).
        legal: the legal moves [n, 9] (bool).
        move_values: each move's minimax value for the mover [n, 9] (float), 0 where not legal.
        boards: the positions, in `nonterminal_positions` order.
    """

    planes: torch.Tensor
    legal: torch.Tensor
    move_values: torch.Tensor
    boards: tuple[Board, ...]

    @property
    def optimal(self) -> torch.Tensor:
        """Returns [n, 9] bool: the legal moves whose value is the position's value (the minimax-best moves)."""
        best = self.move_values.masked_fill(~self.legal, -2.0).amax(-1, keepdim=True)
        return self.legal & (self.move_values == best)


def tictactoe_dataset() -> TicTacToeDataset:
    """Returns the 4520 non-terminal positions with their planes, legal moves and minimax move values.

    Returns:
        The dataset, rows in `nonterminal_positions` order.
    """
    boards = nonterminal_positions()
    legal = torch.zeros(len(boards), 9, dtype=torch.bool)
    values = torch.zeros(len(boards), 9)
    for row, board in enumerate(boards):
        for move, value in move_values(board).items():
            legal[row, move] = True
            values[row, move] = value
    return TicTacToeDataset(board_planes(boards), legal, values, boards)
