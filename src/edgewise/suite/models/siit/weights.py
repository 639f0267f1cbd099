"""The committed weights of the SIIT models: one file per program, `weights/siit-<program>.pt`, holding the model's
config, its weights and its alignment, written by `scripts/train_siit.py` (with a `.json` record beside it)."""

from __future__ import annotations

from pathlib import Path

from edgewise.models import Transformer, TransformerConfig

from ..checkpoint import load_checkpoint, save_checkpoint
from .alignment import Alignment

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
TRAIN_SCRIPT = "scripts/train_siit.py"


def weights_path(program: str) -> Path:
    """Returns where the SIIT model of tracr program `program` (e.g. "tracr-hist") is stored.

    Args:
        program: the tracr program's task name.

    Returns:
        `weights/siit-<program>.pt` beside the other committed weights.
    """
    return WEIGHTS_DIR / f"siit-{program}.pt"


def save_siit(model: Transformer, alignment: Alignment, path: Path) -> Path:
    """Returns `path` after saving the model's config, weights and alignment there, as load_siit reads them.

    Args:
        model: the trained low-level model.
        alignment: its alignment.
        path: the file to write.

    Returns:
        `path`.
    """
    return save_checkpoint(model, model.cfg.to_dict(), path, alignment=alignment.to_dict())


def load_siit(program: str, path: Path | None = None) -> tuple[Transformer, Alignment]:
    """Returns the SIIT model of `program` (from `path`, by default the committed weights) in eval mode, and its
    alignment.

    Args:
        program: the tracr program's task name (e.g. "tracr-hist").
        path: the saved file; None: `weights_path(program)`.

    Returns:
        The model and its alignment.

    Raises:
        TrainedWeightsMissingError: no file at the path (the message names the script that trains it).
    """
    path = weights_path(program) if path is None else path
    model, saved = load_checkpoint(
        path,
        lambda config: Transformer(TransformerConfig(**config)),
        f"SIIT model weights for {program} at {path}: run `python {TRAIN_SCRIPT} "
        f"{program}` (a minute or two on one CPU) to train the model and write them",
    )
    return model, Alignment.from_dict(saved["alignment"])
