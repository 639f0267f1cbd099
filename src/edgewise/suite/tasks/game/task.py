"""The tic-tac-toe tasks: the project-trained policy/value network on solved positions, declared to edgewise through
its hook points, with objectives beyond faithfulness.

The graph's writers are the channels of the stem and of each residual block's branch (one node per channel, as a
transformer has one per head); its readers are each branch's input and the policy head's input. The value head is the
judge, not part of the graph: objectives score the policy's moves by the
*full* network's value head, as in the worst-move episode this task reproduces (a sparse mask that "makes the
network play its worst move" turned out to play one corner everywhere).

- `tictactoe`: every legal move is on offer;
- `tictactoe-no-corners`: the corners are off limits wherever another legal move exists, in the objectives and in
  what the behaviour check counts as the network's move (the fix: forbid the trivial answer, search again).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch

from edgewise.adapters import DeclaredAdapter
from edgewise.tasks import METRICS, Metric, Task

from ...models import ILLEGAL_LOGIT, load_tictactoe
from ..registry import GAME_POSITIONS as DISCOVERY_POSITIONS
from .tictactoe import tictactoe_dataset

CORNERS = (0, 2, 6, 8)


@dataclass(frozen=True)
class GameData:
    """A game task's own record (`task.family`): each row's board, and the full network's value of each move
    [batch, 1, 9], which judges the moves its objectives score.

    Attributes:
        boards: each row's board (tuples of 9 cells).
        judge: the full network's value of each move for the mover [batch, 1, 9].
    """

    boards: list
    judge: torch.Tensor


def _declaration(n_blocks: int) -> tuple[dict[str, str], dict[str, str]]:
    """Returns the writers and readers of the network's trunk: stem and branches write, branches and the policy
    head read."""
    writers = {"stem": "hook_stem", **{f"block {i}": f"blocks.{i}.hook_out" for i in range(n_blocks)}}
    readers = {**{f"block {i}": f"blocks.{i}.hook_in" for i in range(n_blocks)}, "policy": "hook_policy_in"}
    return writers, readers


def _policy(output: torch.Tensor) -> torch.Tensor:
    """Returns the policy logits [batch, 9] of the heads' output [batch, 2, 9]."""
    return output[:, 0]


def offered_moves(legal: torch.Tensor, forbidden: tuple[int, ...]) -> torch.Tensor:
    """Returns the moves on offer [n, 9]: the legal ones, less `forbidden` squares wherever another legal move
    exists (a position whose only legal moves are forbidden keeps them).

    Args:
        legal: the legal moves [n, 9] (bool).
        forbidden: the cells off limits (e.g. CORNERS).

    Returns:
        The moves on offer [n, 9] (bool).
    """
    allowed = legal.clone()
    allowed[:, list(forbidden)] = False
    return torch.where(allowed.any(-1, keepdim=True), allowed, legal)


def move_value_objective(name: str, judge: torch.Tensor, offered: torch.Tensor, sign: float = 1.0) -> Metric:
    """Returns the objective  sign * E_{move ~ policy on offer}[judge(move)],  averaged over scored positions:
    `judge` [batch, 1, 9] is the full network's value of each move, `offered` [batch, 1, 9] the moves the policy may
    play. sign +1: minimising it seeks the worst move by the network's own judgement.

    Args:
        name: the objective's name.
        judge: the full network's value of each move [batch, 1, 9].
        offered: the moves the policy may play [batch, 1, 9] (bool).
        sign: +1 (minimising seeks the worst move) or -1 (the best).

    Returns:
        The objective, as a Metric of (logits, reference, positions); the reference is not read.
    """

    # bound with partial, not a closure, so that a bootstrap can draw the per-row tensors' rows (on_rows)
    return Metric(name, partial(_move_value, judge=judge, offered=offered, sign=sign))


def _move_value(
    logits: torch.Tensor, reference: torch.Tensor, positions: torch.Tensor, *, judge, offered, sign: float
) -> torch.Tensor:
    """`move_value_objective`'s function: the policy's expected judged value over scored positions."""
    policy = logits.masked_fill(~offered.to(logits.device), ILLEGAL_LOGIT).softmax(-1)  # [..., batch, 1, 9]
    per_position = sign * (policy * judge.to(logits)).sum(-1)
    weights = positions.to(per_position.dtype)
    return (per_position * weights).sum((-1, -2)) / weights.sum()


def offered_metric(metric: Metric, offered: torch.Tensor) -> Metric:
    """Returns `metric` on the policy restricted to the moves on offer [batch, 1, 9] (others: ILLEGAL_LOGIT).

    Args:
        metric: the metric on policy logits.
        offered: the moves on offer [batch, 1, 9] (bool).

    Returns:
        A metric of the same name that masks both the logits and the reference before calling `metric`.
    """

    return Metric(metric.name, partial(_on_offered, metric=metric, offered=offered))


def _on_offered(
    logits: torch.Tensor, reference: torch.Tensor, positions: torch.Tensor, *, metric: Metric, offered
) -> torch.Tensor:
    """`offered_metric`'s function: `metric` with the moves not on offer masked out of logits and reference."""
    off = ~offered.to(logits.device)
    return metric(logits.masked_fill(off, ILLEGAL_LOGIT), reference.masked_fill(off, ILLEGAL_LOGIT), positions)


def tictactoe_no_corners_task(metric: str | None = None, held_out: bool = False, channels: bool = True) -> Task:
    """Returns `tictactoe` with the corners off limits wherever another legal move exists.

    Args:
        metric: the name of a metric in `METRICS` in place of KL; None keeps KL.
        held_out: build the task on its held-out positions.
        channels: one writer node per channel; False: one per block.

    Returns:
        The task (`tictactoe_task` with name `tictactoe-no-corners`).

    Raises:
        TrainedWeightsMissingError: the network's weights are not there.
    """
    return tictactoe_task(metric, held_out, channels, name="tictactoe-no-corners")


def tictactoe_task(
    metric: str | None = None, held_out: bool = False, channels: bool = True, name: str = "tictactoe"
) -> Task:
    """Returns a tic-tac-toe task: `DISCOVERY_POSITIONS` non-terminal positions (or as many others, `held_out`),
    each paired with another position for resample ablation, the KL of the policy over the moves on offer as
    faithfulness metric, and the objectives `worst-move` (minimise the full value head's value of the move played)
    and `best-move`. `channels`: one writer node per channel (320 edges); else one per block (10 edges).

    Args:
        metric: the name of a metric in `METRICS` in place of KL; None keeps KL. Either way it is taken over the
            moves on offer.
        held_out: build the task on the next `DISCOVERY_POSITIONS` positions of the same shuffle instead.
        channels: one writer node per channel; False: one per block.
        name: `tictactoe` (every legal move on offer) or `tictactoe-no-corners`.

    Returns:
        The task, its `family` a GameData with the boards and the judge.

    Raises:
        TrainedWeightsMissingError: the network's weights are not there.
    """
    forbidden = {"tictactoe": (), "tictactoe-no-corners": CORNERS}[name]
    data = tictactoe_dataset()
    order = torch.randperm(len(data.boards), generator=torch.Generator().manual_seed(0))
    rows = order[DISCOVERY_POSITIONS : 2 * DISCOVERY_POSITIONS] if held_out else order[:DISCOVERY_POSITIONS]
    partner = torch.roll(torch.arange(len(rows)), 1)  # each position paired with the next one drawn
    clean, corrupt = data.planes[rows], data.planes[rows][partner]
    model = load_tictactoe()
    writers, readers = _declaration(len(model.blocks))
    # The graph's outputs are the policy head's logits before occupied cells are masked: the mask reads the board
    # directly, around the trunk, so the metric, the objectives and the behaviour check apply it instead
    adapter = DeclaredAdapter(
        model,
        writers,
        readers,
        example_inputs=clean,
        split=list(writers) if channels else (),
        output=_policy,
        run=model.heads,
    )
    with torch.no_grad():
        judge = model(clean)[:, 1].unsqueeze(1)  # [batch, 1, 9]: the full network's value of each move
    offered = offered_moves(data.legal[rows], forbidden).unsqueeze(1)  # [batch, 1, 9]
    restriction = "" if not forbidden else ", no corners where another legal move exists"
    return Task(
        name=name,
        model=adapter,
        clean=clean,
        corrupt=corrupt,
        metric=offered_metric(METRICS[metric or "kl"], offered),
        scored_positions=torch.ones(len(rows), 1, dtype=torch.bool),
        description=f"tic-tac-toe policy of a residual CNN on {len(rows)} solved positions{restriction}",
        pairing="each position paired with another position of the game",
        objectives={
            label: move_value_objective(label, judge, offered, sign)
            for label, sign in (("worst-move", 1.0), ("best-move", -1.0))
        },
        offered=offered,
        answer_values=data.move_values[rows].unsqueeze(1),
        family=GameData([data.boards[i] for i in rows.tolist()], judge),
    )
