"""Trains TicTacToeNet on every non-terminal tic-tac-toe position and writes the committed weights and their record.

    OMP_NUM_THREADS=1 python scripts/train_tictactoe.py

Deterministic by seed on one CPU thread. The loss is the policy's cross-entropy towards the minimax-best moves
(uniform over them) plus the mean squared error of the move values on legal moves. Writes
src/edgewise/suite/models/weights/tictactoe.pt and, beside it, tictactoe.json: config, training settings, and the
measured policy accuracy, move-value MSE and move-value sign accuracy over all 4520 positions.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, replace

import torch

from edgewise.suite.models.tictactoe import WEIGHTS_PATH, TicTacToeConfig, TicTacToeNet, save_tictactoe
from edgewise.suite.tasks.game.tictactoe import TicTacToeDataset, tictactoe_dataset


@dataclass(frozen=True)
class TrainConfig:
    """Training settings; each default keeps one CPU thread under about two minutes."""

    seed: int = 0  # seeds the initial weights and the minibatch order
    steps: int = 4000  # enough for the policy to play every position perfectly
    batch_size: int = 256  # about 18 steps per pass over the 4520 positions
    learning_rate: float = 3e-3  # Adam's peak rate, decayed to 0 by a cosine so the final weights settle


def training_loss(output: torch.Tensor, data: TicTacToeDataset, rows: torch.Tensor) -> torch.Tensor:
    """Returns the policy cross-entropy towards the uniform distribution over optimal moves plus the move-value MSE
    on legal moves, for the dataset rows `rows` and the network's output on them ([batch, 2, 9])."""
    optimal, legal = data.optimal[rows].float(), data.legal[rows]
    target = optimal / optimal.sum(-1, keepdim=True)
    policy_loss = -(target * torch.log_softmax(output[:, 0], -1)).sum(-1).mean()
    value_error = (output[:, 1] - data.move_values[rows]).square()
    return policy_loss + value_error[legal].mean()


@torch.no_grad()
def measure(model: TicTacToeNet, data: TicTacToeDataset) -> dict[str, float]:
    """Returns the policy's optimal-move accuracy (its argmax is a minimax-best move), the move-value MSE on legal
    moves and the move-value sign accuracy (a prediction's nearest of -1, 0, +1 is the true value) on every position."""
    output = model(data.planes)
    choice = output[:, 0].argmax(-1)
    legal = data.legal
    predicted, true = output[:, 1][legal], data.move_values[legal]
    return {
        "policy_optimal_move_accuracy": data.optimal[torch.arange(len(choice)), choice].float().mean().item(),
        "move_value_mse": (predicted - true).square().mean().item(),
        "move_value_sign_accuracy": (predicted.round() == true).float().mean().item(),
    }


def train(cfg: TrainConfig, data: TicTacToeDataset) -> TicTacToeNet:
    """Returns the network (TicTacToeConfig's default shape) trained by Adam on minibatches of `data`, in eval mode."""
    model = TicTacToeNet(replace(TicTacToeConfig(), seed=cfg.seed)).train()
    optimiser = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: 0.5 * (1 + math.cos(math.pi * step / cfg.steps))
    )
    order = torch.Generator().manual_seed(cfg.seed)
    batches: list[torch.Tensor] = []
    for step in range(cfg.steps):
        if not batches:
            batches = list(torch.randperm(len(data.boards), generator=order).split(cfg.batch_size))
        rows = batches.pop()
        loss = training_loss(model(data.planes[rows]), data, rows)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        if step % 500 == 0 or step == cfg.steps - 1:
            print(f"step {step:5d}  loss {loss.item():.4f}", flush=True)
    return model.eval()


def main() -> None:
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    cfg = TrainConfig()
    data = tictactoe_dataset()
    start = time.perf_counter()
    model = train(cfg, data)
    seconds = time.perf_counter() - start
    measured = measure(model, data)
    save_tictactoe(model, WEIGHTS_PATH)
    record = {
        "config": asdict(model.cfg),
        **asdict(cfg),
        "positions": len(data.boards),
        "train_seconds": round(seconds, 1),
        "measured": measured,
    }
    WEIGHTS_PATH.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
