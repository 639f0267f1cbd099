"""Task cards: a built-in task's sizes (layers, heads, edges, ground truth, examples) without loading its model.

`edgewise tasks` lists cards. The first listing builds each task once and stores its card under the cache, keyed by
a hash of the code that defines tasks, models and graphs, so a change to any of them rebuilds the cards rather than
listing stale sizes.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING

from edgewise.cache import cache_root
from edgewise.errors import PretrainedModelMissingError

if TYPE_CHECKING:
    from edgewise.tasks import Task

# what a card's numbers depend on
_DEFINING_PACKAGES = ("tasks", "models", "adapters", "graph", "features", "suite/tasks", "suite/models")


@dataclass(frozen=True)
class TaskCard:
    """One built-in task's sizes, as `edgewise tasks --json` prints them.

    Attributes:
        name: the task's name.
        n_layers: the model's layers.
        n_heads: the model's attention heads per layer.
        d_model: the model's residual width.
        n_edges: the edges of the task's plain graph.
        n_edges_per_position: each plain edge at every position.
        n_ground_truth_edges: the plain ground truth's edges, or None without a ground truth.
        n_examples: the discovery inputs (clean rows).
        metric: the task metric's name.
        description: the task's description.
        n_held_out: evaluation inputs kept apart from discovery; None: the task has no such split.
        compression: compressed tracr tasks: dimensions before and after, agreement with tracr.
        truth_measure: how the effective truth measures a removal (`logits` or `argmax`).
        truth_tolerance: what counts as no change (None: float noise, evaluate's OUTPUT_TOLERANCE).
    """

    name: str
    n_layers: int
    n_heads: int
    d_model: int
    n_edges: int
    n_edges_per_position: int
    n_ground_truth_edges: int | None
    n_examples: int
    metric: str
    description: str
    n_held_out: int | None = None
    compression: dict | None = None
    truth_measure: str = "logits"
    truth_tolerance: float | None = None

    def to_dict(self) -> dict:
        """Returns the card as JSON-ready data, one key per field."""
        return asdict(self)


def card_of(task: "Task", n_held_out: int | None = None) -> TaskCard:
    """Returns the card of a built task (its plain graph counts the edges).

    Args:
        task: the built task.
        n_held_out: its held-out inputs (`held_out_size`), or None.

    Returns:
        The card.
    """
    from .tracr.suite import TracrData

    describe = task.adapter.describe()
    n_edges = task.graph().n_edges
    return TaskCard(
        name=task.name,
        n_layers=describe["n_layers"],
        n_heads=describe["n_heads"],
        d_model=describe["d_model"],
        n_edges=n_edges,
        n_edges_per_position=n_edges * task.n_positions,
        n_ground_truth_edges=None if task.ground_truth is None else len(task.ground_truth),
        n_examples=task.clean.shape[0],
        metric=task.metric.name,
        description=task.description,
        n_held_out=n_held_out,
        compression=(task.family.compiled.compression or None) if isinstance(task.family, TracrData) else None,
        truth_measure=task.truth_measure,
        truth_tolerance=task.truth_tolerance,
    )


@functools.cache
def code_fingerprint() -> str:
    """Returns a hash of edgewise's version and of the source of the packages a card's numbers depend on; computed once
    a process (a listing asks it for every task).

    Returns:
        The first 16 hex digits of the SHA-256 hash.
    """
    digest = hashlib.sha256(version("edgewise").encode())
    root = Path(__file__).resolve().parents[2]  # the edgewise package
    for package in _DEFINING_PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def card_path(name: str, cache_dir: Path | None = None) -> Path:
    """Returns where the card of task `name` is stored for the current code.

    Args:
        name: the task's name.
        cache_dir: the cache root; None: edgewise's (`cache_root`).

    Returns:
        The path `CACHE/cards/FINGERPRINT/NAME.json`.
    """
    return (cache_root() if cache_dir is None else Path(cache_dir)) / "cards" / code_fingerprint() / f"{name}.json"


def store_card(task: "Task", cache_dir: Path | None = None) -> TaskCard:
    """Returns the task's card after writing it to the card store.

    Args:
        task: the built task; `held_out_size` of its name gives the card's `n_held_out`.
        cache_dir: the cache root; None: edgewise's.

    Returns:
        The card written.
    """
    from .registry import held_out_size

    card = card_of(task, held_out_size(task.name))
    path = card_path(task.name, cache_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(card.to_dict()))
    return card


def card_for(name: str, cache_dir: Path | None = None) -> TaskCard:
    """Returns the card of built-in task `name`: the stored one, or one made by building the task.

    Args:
        name: a built-in task's name.
        cache_dir: the cache root; None: edgewise's.

    Returns:
        The card (stored, if it was made).

    Raises:
        UnknownTaskError: `name` is not a task.
        PretrainedModelMissingError: the task's pretrained model is not installed (and no card is stored).
    """
    from .registry import get_task

    path = card_path(name, cache_dir)
    if path.exists():
        return TaskCard(**json.loads(path.read_text()))
    return store_card(get_task(name), cache_dir)


def task_cards(cache_dir: Path | None = None) -> tuple[list[TaskCard], dict[str, str]]:
    """Returns the cards of every built-in task (building, once, each task without a stored card) and, for tasks
    that cannot be built here (a pretrained model not installed), the reason.

    Args:
        cache_dir: the cache root; None: edgewise's.

    Returns:
        The cards in `task_names` order, and the reason per task name left out.
    """
    from .registry import task_names

    cards, unavailable = [], {}
    for name in task_names():
        try:
            cards.append(card_for(name, cache_dir))
        except PretrainedModelMissingError as err:
            unavailable[name] = str(err)
    return cards, unavailable
