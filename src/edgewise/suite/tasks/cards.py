"""Task cards: a built-in task's sizes (layers, heads, edges, ground truth, examples) without loading its model.

`edgewise tasks` lists cards. The first listing builds each task once and stores its card under the cache, keyed by
a hash of the code that defines tasks, models and graphs, so a change to any of them rebuilds the cards rather than
listing stale sizes. Each card is checked when read (its name is its file's, its fields are the card's and of their
types); one that is not (truncated, of another task, a folder in its place) is rebuilt with a CacheWarning naming the
file. Cards are written atomically (edgewise.outputs); a card store that cannot be written costs the next listing a
build, never this one.

A task that cannot be built here (its pretrained model's package is not installed) is remembered as unavailable,
with its reason, beside the cards (NAME.unavailable.json), until the code or the environment changes: the installed
distributions or the project-trained models' weights files (`environment_fingerprint`). A listing does not try it
again before then.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import sys
import types
import typing
import warnings
from dataclasses import MISSING, asdict, dataclass, fields
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING

from edgewise.cache import cache_root
from edgewise.errors import CacheWarning, OutputPathError, PretrainedModelMissingError
from edgewise.outputs import write_text

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


def unavailable_path(name: str, cache_dir: Path | None = None) -> Path:
    """Returns where the reason that task `name` cannot be built here is remembered, for the current code.

    Args:
        name: the task's name.
        cache_dir: the cache root; None: edgewise's (`cache_root`).

    Returns:
        The path `CACHE/cards/FINGERPRINT/NAME.unavailable.json`.
    """
    return card_path(name, cache_dir).with_name(f"{name}.unavailable.json")


def environment_fingerprint() -> str:
    """Returns a hash of what, besides edgewise's code, decides whether a task can be built here: the installed
    distributions (the names of the `.dist-info` and `.egg-info` folders on sys.path, which hold name and version)
    and the project-trained models' weights files (names, sizes and modification times). Installing a pretrained
    model's package, or writing a model's weights, changes it.

    Returns:
        The first 16 hex digits of the SHA-256 hash.
    """
    installed: set[str] = set()
    for entry in filter(None, sys.path):  # not "": the current folder, which changes from call to call
        try:
            installed.update(n for n in os.listdir(entry) if n.endswith((".dist-info", ".egg-info")))
        except OSError:  # a zip file, or a path that is not there
            continue
    digest = hashlib.sha256(json.dumps(sorted(installed)).encode())
    weights = Path(__file__).resolve().parents[1] / "models" / "weights"
    for path in sorted(weights.glob("*")) if weights.is_dir() else []:
        status = path.stat()
        digest.update(json.dumps([path.name, status.st_size, status.st_mtime_ns]).encode())
    return digest.hexdigest()[:16]


def store_card(task: "Task", cache_dir: Path | None = None) -> TaskCard:
    """Returns the task's card after writing it to the card store (atomically; warning, CacheWarning, where the store
    cannot be written).

    Args:
        task: the built task; `held_out_size` of its name gives the card's `n_held_out`.
        cache_dir: the cache root; None: edgewise's.

    Returns:
        The card.
    """
    from .registry import held_out_size

    card = card_of(task, held_out_size(task.name))
    _store(card_path(task.name, cache_dir), card.to_dict())
    return card


def card_for(name: str, cache_dir: Path | None = None) -> TaskCard:
    """Returns the card of built-in task `name`: the stored one, or one made by building the task. A stored card that
    does not check (see the module) is rebuilt with a CacheWarning naming its file.

    Args:
        name: a built-in task's name.
        cache_dir: the cache root; None: edgewise's.

    Returns:
        The card (stored, if it was made).

    Raises:
        UnknownTaskError: `name` is not a task.
        PretrainedModelMissingError: the task's pretrained model is not installed (and no card is stored); the
            reason is remembered and given again, without building the task, until the code or the environment
            changes.
    """
    from .registry import get_task

    path = card_path(name, cache_dir)
    card = _stored(path, lambda: _card_in(path, name))
    if card is not None:
        return card
    unavailable = unavailable_path(name, cache_dir)
    environment = environment_fingerprint()
    reason = _stored(unavailable, lambda: _reason_in(unavailable, name, environment))
    if reason is not None:
        raise PretrainedModelMissingError(reason)
    try:
        task = get_task(name)
    except PretrainedModelMissingError as error:
        _store(unavailable, {"name": name, "reason": str(error), "environment": environment})
        raise
    card = store_card(task, cache_dir)
    with contextlib.suppress(OSError):  # a stale entry left behind is never read: the card is found first
        unavailable.unlink(missing_ok=True)
    return card


class _UnusableEntry(Exception):
    """A card store entry that is there but cannot be served; the message says why, to complete "task card PATH"."""


_CARD_TYPES = typing.get_type_hints(TaskCard)
_REQUIRED = [f.name for f in fields(TaskCard) if f.default is MISSING and f.default_factory is MISSING]


def _stored(path: Path, load: typing.Callable):
    """Returns what `load` reads from the entry at `path`, or None where there is none or it cannot be served (then
    warning, CacheWarning, naming the file and why; a folder in the entry's place is set aside beside it)."""
    try:
        return load()
    except FileNotFoundError:
        return None
    except _UnusableEntry as problem:
        aside = path.with_name(f"{path.name}.damaged")
        if path.is_dir() and not aside.exists():
            with contextlib.suppress(OSError):  # another listing may have moved it first
                path.rename(aside)  # the rebuilt entry's atomic rename cannot replace a folder
        warnings.warn(f"task card {path} {problem}; building it again and replacing it", CacheWarning, stacklevel=4)
        return None


def _json_object(path: Path) -> dict:
    """Returns the JSON object stored at `path`; raises FileNotFoundError where there is none, and _UnusableEntry for
    a file that cannot be read, is not JSON or is not an object."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError) as error:  # a folder in its place: IsADirectoryError
        raise _UnusableEntry(f"cannot be read ({type(error).__name__}: {error.strerror or error})") from None
    try:
        stored = json.loads(text)
    except ValueError as error:
        raise _UnusableEntry(f"is not JSON (a truncated write? {error})") from None
    if not isinstance(stored, dict):
        raise _UnusableEntry(f"holds a JSON {type(stored).__name__}, not an object")
    return stored


def _card_in(path: Path, name: str) -> TaskCard:
    """Returns the card stored at `path`, checked: the card of task `name`, with the card's fields, each of its type."""
    stored = _json_object(path)
    if stored.get("name") != name:
        raise _UnusableEntry(f"holds the card of task {stored.get('name')!r}, not of {name!r}")
    unknown = sorted(set(stored) - set(_CARD_TYPES))
    if unknown:
        raise _UnusableEntry(f"has fields a task card does not have: {', '.join(unknown)}")
    missing = [field for field in _REQUIRED if field not in stored]
    if missing:
        raise _UnusableEntry(f"lacks the fields {', '.join(missing)}")
    wrong = [field for field, value in stored.items() if not _fits(value, _CARD_TYPES[field])]
    if wrong:
        raise _UnusableEntry(f"holds values of the wrong type in {', '.join(wrong)}")
    return TaskCard(**stored)


def _reason_in(path: Path, name: str, environment: str) -> str | None:
    """Returns the reason stored at `path` that task `name` cannot be built, or None where it was stored for another
    environment (so the task is tried again); raises FileNotFoundError where there is none, and _UnusableEntry for an
    entry that does not check."""
    stored = _json_object(path)
    if stored.get("name") != name or set(stored) != {"name", "reason", "environment"}:
        raise _UnusableEntry(f"is not the entry of unavailable task {name!r}: it holds {sorted(stored)}")
    if not isinstance(stored["reason"], str) or not isinstance(stored["environment"], str):
        raise _UnusableEntry("holds a reason or an environment that is not text")
    return stored["reason"] if stored["environment"] == environment else None


def _fits(value, hint) -> bool:
    """Returns whether a JSON value is of the type `hint` (`int`, `float | None`, `dict | None`); a whole number
    fits a float, a bool fits neither."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if isinstance(value, bool):
        return bool in options
    return any(isinstance(value, (int, float) if option is float else option) for option in options)


def _store(path: Path, entry: dict) -> None:
    """Writes `entry` as JSON to `path` atomically, or warns (CacheWarning) where it cannot be written."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, json.dumps(entry))
    except (OSError, OutputPathError) as error:
        warnings.warn(
            f"could not write task card {path} ({error}); it is built again next time. Make {path.parent} "
            "writable, or set EDGEWISE_CACHE",
            CacheWarning,
            stacklevel=3,
        )


def task_cards(cache_dir: Path | None = None) -> tuple[list[TaskCard], dict[str, str]]:
    """Returns the cards of every built-in task (building, once, each task without a stored card that checks) and,
    for tasks that cannot be built here (a pretrained model not installed), the reason, remembered until the code or
    the environment changes (see the module).

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
