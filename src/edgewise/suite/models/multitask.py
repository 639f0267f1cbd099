"""The multitask model: one small Transformer trained on four algorithmic tasks (reverse, sort, count, shift), the
task chosen by a token at position 1, so that removing one task's circuit can be measured on the other three.

`load_multitask()` loads the committed weights that `scripts/train_multitask.py` writes; the sequences are those of
edgewise.suite.tasks.trained.algorithmic, and docs/multitask.md describes the model and its training.
"""

from __future__ import annotations

from pathlib import Path

from edgewise.models import Transformer, TransformerConfig

from .checkpoint import load_checkpoint, save_checkpoint

WEIGHTS_PATH = Path(__file__).resolve().parent / "weights" / "multitask.pt"
TRAIN_SCRIPT = "scripts/train_multitask.py"


def save_multitask(model: Transformer, path: Path = WEIGHTS_PATH) -> Path:
    """Returns `path` after saving the model's config and weights there, in the format load_multitask reads.

    Args:
        model: the trained model.
        path: the file to write; by default the committed weights' path.

    Returns:
        `path`.
    """
    return save_checkpoint(model, model.cfg.to_dict(), path)


def load_multitask(path: Path = WEIGHTS_PATH) -> Transformer:
    """Returns the trained multitask Transformer saved at `path` (by default the committed weights), in eval mode.

    Args:
        path: the saved weights.

    Returns:
        The model, float32.

    Raises:
        TrainedWeightsMissingError: no file at `path`; the message names the script that trains the model.
    """
    return load_checkpoint(
        path,
        lambda config: Transformer(TransformerConfig(**config)),
        f"multitask model weights at {path}: run `python {TRAIN_SCRIPT}` (a few minutes on one "
        "CPU) to train the model and write them",
    )[0]
