"""Reading and writing the graph stage's JSON files, with one error rule for all of them."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable, TypeVar

from ..outputs import write_text

T = TypeVar("T")


def load_json(path: str | Path, parse: Callable[[dict], T], error: type[Exception], expected: str) -> T:
    """Returns `parse` of the JSON at `path`; a missing, non-JSON or malformed file raises `error` naming the file
    and what it should be (`expected`)."""
    try:
        return parse(json.loads(Path(path).read_text()))
    except (OSError, ValueError, KeyError, TypeError) as cause:
        raise error(f"cannot read {path}: {cause!r}; give {expected}") from cause


def write_json(path: str | Path, record: dict, error: type[Exception], indent: int | None = None) -> None:
    """Writes `record` to `path` as strict JSON, atomically (a failed write leaves the previous file and raises
    OutputPathError): a NaN or infinite number, which Python's json would write as a bare NaN that strict readers
    reject, raises `error` naming where it sits in the record."""
    try:
        text = json.dumps(record, allow_nan=False, indent=indent)
    except ValueError:
        at = _non_finite_at(record)
        if at is None:  # a refusal of something else, which json's own message explains
            raise
        raise error(
            f"cannot write {path}: {at} is not a finite number, and JSON has no NaN or infinity; give a "
            "finite value there"
        ) from None
    write_text(path, text)


def _non_finite_at(value: object, where: str = "the record") -> str | None:
    """Returns where in `value` the first NaN or infinite float sits (`the record['scores'][3][2]`), or None."""
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{where} = {value}"
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        at = _non_finite_at(item, f"{where}[{key!r}]")
        if at is not None:
            return at
    return None
