"""Reading the graph stage's JSON files, with one error rule for all of them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, TypeVar

T = TypeVar("T")


def load_json(path: str | Path, parse: Callable[[dict], T], error: type[Exception], expected: str) -> T:
    """Returns `parse` of the JSON at `path`; a missing, non-JSON or malformed file raises `error` naming the file
    and what it should be (`expected`)."""
    try:
        return parse(json.loads(Path(path).read_text()))
    except (OSError, ValueError, KeyError, TypeError) as cause:
        raise error(f"cannot read {path}: {cause!r}; give {expected}") from cause
