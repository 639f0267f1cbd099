"""Lazy package exports: a public name loads its module on first use, so importing a package (and the command line,
which imports `edgewise`) does not pay for torch, transformer-lens or jax until they are needed."""

from __future__ import annotations

import importlib
import sys
from typing import Callable


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """Returns the `__getattr__` and `__dir__` of `package` for `exports` (public name -> module, relative to the
    package); a name, once loaded, is stored in the package so later lookups are plain attribute reads."""

    def getattr_(name: str) -> object:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
        setattr(sys.modules[package], name, value)
        return value

    def dir_() -> list[str]:
        return sorted({*vars(sys.modules[package]), *exports})

    return getattr_, dir_
