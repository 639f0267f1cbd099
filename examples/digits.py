"""The data both examples use: the 8x8 handwritten digits in data/digits.csv.gz (no download), split in two, and a
short training loop. Shared by residual_mlp.py and residual_cnn.py.

The file is the test set of the UCI "Optical Recognition of Handwritten Digits" data (E. Alpaydin and C. Kaynak,
1998; CC BY 4.0), 1797 images of 64 pixels in 0..16 and their digit, one per row: the copy scikit-learn ships as
`load_digits`, in the same order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from edgewise.tasks import METRICS, Task


def digits(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Returns (train images, train labels, test images, test labels); images [n, 1, 8, 8] scaled to [0, 1]."""
    rows = torch.tensor(np.loadtxt(Path(__file__).parent / "data" / "digits.csv.gz", delimiter=","))
    images = rows[:, :64].reshape(-1, 1, 8, 8).float() / 16
    labels = rows[:, 64].long()
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    train, test = order[:1200], order[1200:]
    return images[train], labels[train], images[test], labels[test]


def train(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, steps: int = 300, seed: int = 0) -> float:
    """Trains `model` (logits [n, 10]) with Adam on minibatches of 128; returns the last minibatch's loss."""
    torch.manual_seed(seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        batch = torch.randint(len(labels), (128,), generator=generator)
        loss = torch.nn.functional.cross_entropy(model(images[batch]), labels[batch])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    return loss.item()


@torch.no_grad()
def accuracy(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Returns the fraction of `images` whose top logit is their label."""
    return (model(images).argmax(-1) == labels).float().mean().item()


def other_digit(labels: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Returns, for each image, the index of a random image of another digit: the corrupted input that resample
    ablation pairs with it (so an ablated edge carries what another digit would have sent)."""
    generator = torch.Generator().manual_seed(seed)
    partner = torch.randperm(len(labels), generator=generator)
    for _ in range(100):
        same = labels[partner] == labels
        if not same.any():
            break
        partner[same] = torch.randint(len(labels), (int(same.sum()),), generator=generator)
    return partner


def digits_task(
    name: str,
    model: torch.nn.Module,
    declare: Callable[[torch.nn.Module, torch.Tensor], object],
    description: str,
    steps: int = 300,
    n_inputs: int = 200,
    seed: int = 0,
) -> Task:
    """Returns the digits task on `model` after training it: `n_inputs` test images, each paired with an image of
    another digit, KL to the full model's digit distribution; `declare(model, images)` gives the adapter."""
    train_x, train_y, test_x, test_y = digits(seed)
    train(model, train_x, train_y, steps, seed)
    clean, labels = test_x[:n_inputs], test_y[:n_inputs]
    return Task(
        name=name,
        model=declare(model, clean),
        clean=clean,
        corrupt=clean[other_digit(labels, seed)],
        metric=METRICS["kl"],
        scored_positions=torch.ones(len(clean), 1, dtype=torch.bool),
        description=f"{description} (test accuracy {accuracy(model, test_x, test_y):.1%})",
        pairing="each image paired with an image of another digit",
    )
