"""Where edgewise keeps what it computes once: compiled tracr programs, dequantised pretrained weights, task cards."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """Returns $EDGEWISE_CACHE, or ~/.cache/edgewise."""
    return Path(os.environ.get("EDGEWISE_CACHE") or Path.home() / ".cache" / "edgewise")
