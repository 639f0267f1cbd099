"""The induction model: a 2-layer attention-only Transformer trained to continue repeated random segments, whose
circuit (a previous-token head feeding an induction head's key) is verified in tests/test_induction.py; and its
redundant sibling, trained with head dropout so that two heads do each job, either of them alone
(tests/test_induction_redundant.py).

`load_induction()` loads the committed weights that `scripts/train_induction.py` writes
(`load_induction(REDUNDANT_WEIGHTS_PATH)`: those of `--redundant`); docs/induction.md describes the models, their
training and their circuits.
"""

from __future__ import annotations

from pathlib import Path

from edgewise.models import Transformer, TransformerConfig

from .checkpoint import load_checkpoint, save_checkpoint

WEIGHTS_PATH = Path(__file__).resolve().parent / "weights" / "induction.pt"
REDUNDANT_WEIGHTS_PATH = WEIGHTS_PATH.with_name("induction_redundant.pt")
TRAIN_SCRIPT = "scripts/train_induction.py"


def save_induction(model: Transformer, path: Path = WEIGHTS_PATH) -> Path:
    """Returns `path` after saving the model's config and weights there, in the format load_induction reads.

    Args:
        model: the trained model.
        path: the file to write; by default the committed weights' path.

    Returns:
        `path`.
    """
    return save_checkpoint(model, model.cfg.to_dict(), path)


def load_induction(path: Path = WEIGHTS_PATH) -> Transformer:
    """Returns the trained induction Transformer saved at `path` (by default the committed weights), in eval mode.

    Args:
        path: the saved weights.

    Returns:
        The model, float32.

    Raises:
        TrainedWeightsMissingError: no file at `path`; the message names the script that trains the model.
    """
    option = " --redundant" if path == REDUNDANT_WEIGHTS_PATH else ""
    return load_checkpoint(
        path,
        lambda config: Transformer(TransformerConfig(**config)),
        f"induction model weights at {path}: run `python {TRAIN_SCRIPT}{option}` (about a minute "
        "on one CPU) to train the model and write them",
    )[0]
