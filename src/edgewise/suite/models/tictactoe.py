"""TicTacToeNet: a miniature of KataGo's network (a conv stem, pre-activation residual blocks, a policy head and a
value head), whose residual trunk is a sum of writers for edgewise's edge graph.

The trunk is `stem(planes)` plus every block's branch, with nothing applied after an addition, so each reader sees
exactly the sum of the writers before it:

    writers  hook_stem, blocks.{i}.hook_out (block i's branch, before it is added)
    readers  blocks.{i}.hook_in (what block i's branch reads), hook_policy_in, hook_value_in (what each head reads)

`load_tictactoe()` loads the committed weights that `scripts/train_tictactoe.py` writes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from transformer_lens import HookedRootModule
from transformer_lens.hook_points import HookPoint

from .checkpoint import load_checkpoint, save_checkpoint

WEIGHTS_PATH = Path(__file__).resolve().parent / "weights" / "tictactoe.pt"
TRAIN_SCRIPT = "scripts/train_tictactoe.py"
# Finite, so a softmax gives illegal moves probability 0 while KL divergences between policies stay finite.
ILLEGAL_LOGIT = -1e9


@dataclass(frozen=True)
class TicTacToeConfig:
    """Shape of a TicTacToeNet and the seed of its initial weights; serialisable with `asdict`.

    Attributes:
        channels: the trunk's channels (the width of every writer).
        blocks: the number of residual blocks.
        value_width: hidden units of the value head's MLP.
        seed: seeds the initial weights, so a config names one network before training.
    """

    channels: int = 32
    blocks: int = 3
    value_width: int = 64
    seed: int = 0


class ResidualBlock(nn.Module):
    """Pre-activation block: returns x + conv2(relu(conv1(relu(x)))), hooking what the branch reads and writes.

    Args:
        channels: the trunk's channels, in and out (two 3x3 convolutions).
    """

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.hook_in = HookPoint()
        self.hook_out = HookPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Returns x plus the block's branch [batch, channels, 3, 3].

        Args:
            x: the trunk [batch, channels, 3, 3].

        Returns:
            The trunk after this block, same shape.
        """
        # The skip path carries x itself: patching hook_in changes what this branch reads, not the trunk.
        branch = self.conv2(torch.relu(self.conv1(torch.relu(self.hook_in(x)))))
        return x + self.hook_out(branch)


class TicTacToeNet(HookedRootModule):
    """Policy and action-value network on board_planes input (edgewise.suite.tasks.game.tictactoe).

    Args:
        cfg: the network's shape and the seed of its initial weights.
    """

    def __init__(self, cfg: TicTacToeConfig = TicTacToeConfig()):
        super().__init__()
        self.cfg = cfg
        width = cfg.channels
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            self.stem = nn.Conv2d(3, width, 3, padding=1)
            self.blocks = nn.ModuleList(ResidualBlock(width) for _ in range(cfg.blocks))
            self.policy_head = nn.Sequential(nn.ReLU(), nn.Conv2d(width, 1, 1), nn.Flatten())
            self.value_head = nn.Sequential(
                nn.ReLU(),
                nn.Conv2d(width, 2, 1),
                nn.Flatten(),
                nn.Linear(18, cfg.value_width),
                nn.ReLU(),
                nn.Linear(cfg.value_width, 9),
                nn.Tanh(),
            )
        self.hook_stem = HookPoint()
        self.hook_policy_in = HookPoint()
        self.hook_value_in = HookPoint()
        self.setup()

    def forward(self, planes: torch.Tensor) -> torch.Tensor:
        """Returns [batch, 2, 9] from planes [batch, 3, 3, 3]: row 0 the policy logits (ILLEGAL_LOGIT on occupied
        cells), row 1 each move's value for the mover in (-1, 1) (0 on occupied cells); cells row by row.

        Args:
            planes: the boards as `board_planes` encodes them [batch, 3, 3, 3].

        Returns:
            The masked policy logits and move values [batch, 2, 9].
        """
        occupied = (planes[:, 0] + planes[:, 1]).flatten(1) > 0  # [batch, 9]
        policy, value = self.heads(planes).unbind(1)
        return torch.stack([policy.masked_fill(occupied, ILLEGAL_LOGIT), value.masked_fill(occupied, 0.0)], 1)

    def heads(self, planes: torch.Tensor) -> torch.Tensor:
        """Returns the heads' outputs [batch, 2, 9] before occupied cells are masked: what the trunk computes, with
        no path from the input around it (edgewise's graph sees the trunk only).

        Args:
            planes: the boards [batch, 3, 3, 3].

        Returns:
            Row 0 the policy logits, row 1 the move values (tanh), unmasked [batch, 2, 9].
        """
        x = self.hook_stem(self.stem(planes))  # [batch, channels, 3, 3]
        for block in self.blocks:
            x = block(x)
        return torch.stack([self.policy_head(self.hook_policy_in(x)), self.value_head(self.hook_value_in(x))], 1)


def save_tictactoe(model: TicTacToeNet, path: Path = WEIGHTS_PATH) -> Path:
    """Returns `path` after saving the model's config and weights there, in the format load_tictactoe reads.

    Args:
        model: the network to save.
        path: the file to write; by default the committed weights.

    Returns:
        `path`.
    """
    return save_checkpoint(model, asdict(model.cfg), path)


def load_tictactoe(path: Path = WEIGHTS_PATH) -> TicTacToeNet:
    """Returns the trained TicTacToeNet saved at `path` (by default the committed weights), float32, in eval mode.

    Args:
        path: the saved file.

    Returns:
        The network.

    Raises:
        TrainedWeightsMissingError: no file at `path` (the message names the script that trains it).
    """
    return load_checkpoint(
        path,
        lambda config: TicTacToeNet(TicTacToeConfig(**config)),
        f"TicTacToeNet weights at {path}: run `python {TRAIN_SCRIPT}` (a few minutes on one CPU) to "
        "train the network and write them",
    )[0]
