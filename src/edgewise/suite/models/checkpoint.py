"""Committed weights of project-trained models: one file per model holding its config and its state dict, so tests
and the bench load a trained model instead of retraining it."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from edgewise.errors import TrainedWeightsMissingError
from edgewise.outputs import atomic_path


def save_checkpoint(model: torch.nn.Module, config: dict, path: Path, **fields: object) -> Path:
    """Returns `path` after saving the model's `config` (what rebuilds it), its weights and any other `fields` (plain
    data, e.g. an alignment) there.

    Args:
        model: the model whose state dict is saved.
        config: what rebuilds the model (plain data).
        path: the file to write; missing folders are made.
        **fields: other plain data saved beside them.

    Returns:
        `path`.

    Raises:
        OutputPathError: the file cannot be written; the previous file is unchanged.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:  # an interrupted save leaves the previous weights, not a truncated file
        torch.save({"config": config, "state_dict": model.state_dict(), **fields}, temporary)
    return path


def load_checkpoint(path: Path, build: Callable[[dict], torch.nn.Module], missing: str) -> tuple[torch.nn.Module, dict]:
    """Returns `build(config)` with the weights saved at `path` (float32, in eval mode) and the other fields saved
    with them; raises TrainedWeightsMissingError saying `missing` (which model, and the command that writes the
    file) when absent.

    Args:
        path: the saved file.
        build: config -> the model, untrained.
        missing: what the error says is missing, and how to write it.

    Returns:
        The model, and the other fields saved with it by name.

    Raises:
        TrainedWeightsMissingError: no file at `path`.
    """
    if not path.is_file():
        raise TrainedWeightsMissingError(f"no {missing}")
    saved = torch.load(path, map_location="cpu", weights_only=True)
    model = build(saved.pop("config"))
    model.load_state_dict(saved.pop("state_dict"))
    return model.float().eval(), saved
