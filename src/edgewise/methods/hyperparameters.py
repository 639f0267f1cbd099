"""Hyperparameters: a method's config from a preset and overrides, with values (or text from the command line)
converted to each field's declared type; unknown names and unconvertible values raise before any work starts."""

from __future__ import annotations

import dataclasses
import math
import typing

from ..errors import InvalidHyperparameterError, UnknownMethodError
from .registry import Method, preset_hyperparameters


def _field_types(config: type) -> dict[str, object]:
    hints = typing.get_type_hints(config)
    return {f.name: hints[f.name] for f in dataclasses.fields(config)}


def _convert(method: str, name: str, kind: object, value: object) -> object:
    """Returns `value` as the hyperparameter's declared type (strings from the command line are parsed), or raises
    InvalidHyperparameterError naming the value and what is allowed. NaN and infinities are never allowed."""
    allowed = [a for a in typing.get_args(kind) if a is not type(None)] or [kind]
    optional = type(None) in typing.get_args(kind)
    if optional and (value is None or (isinstance(value, str) and value.lower() == "none")):
        return None
    for target in allowed:
        try:
            if target is bool:
                if isinstance(value, bool):
                    return value
                if isinstance(value, str) and value.lower() in ("true", "false"):
                    return value.lower() == "true"
            elif target is int:
                if isinstance(value, int) and not isinstance(value, bool):
                    return value
                if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
                    return int(value)
            elif target is float and isinstance(value, (str, int, float)) and not isinstance(value, bool):
                if math.isfinite(float(value)):
                    return float(value)
            elif target is str and isinstance(value, str):
                return value
        except ValueError:
            continue
    names = " or ".join(
        "an integer"
        if t is int
        else "a finite number"
        if t is float
        else "true/false"
        if t is bool
        else "text"
        if t is str
        else getattr(t, "__name__", str(t))
        for t in allowed
    )
    raise InvalidHyperparameterError(f"{method}: {name}={value!r} is not {names}{' (or none)' if optional else ''}")


def resolve_config(method: Method, preset: str, hyperparameters: dict) -> object:
    """Returns the method's config under `preset`, with `hyperparameters` overriding it: what `discover` runs.

    Args:
        method: the registered method.
        preset: `tuned` or `published` (see `PRESETS`).
        hyperparameters: overrides by field name: values, or text from the command line.

    Returns:
        An instance of the method's config dataclass.

    Raises:
        UnknownMethodError: an unknown preset, or a name the config has no field for.
        InvalidHyperparameterError: a value that cannot be converted to its field's type, or that the config
            rejects.
    """
    return make_config(method, {**preset_hyperparameters(method, preset), **hyperparameters})


def make_config(method: Method, hyperparameters: dict) -> object:
    """Returns the method's config with `hyperparameters` (values, or text from the command line) converted to each
    field's declared type and replacing the defaults; unknown names and unconvertible values raise.

    Text is parsed: `true`/`false` for booleans, integers, finite numbers, and `none` for optional fields; NaN and
    infinities are never accepted.

    Args:
        method: the registered method.
        hyperparameters: values by field name; fields not named keep their defaults.

    Returns:
        An instance of the method's config dataclass.

    Raises:
        UnknownMethodError: a name the config has no field for.
        InvalidHyperparameterError: a value that cannot be converted to its field's type, or that the config
            rejects.
    """
    types = _field_types(method.config)
    unknown = sorted(set(hyperparameters) - set(types))
    if unknown:
        raise UnknownMethodError(
            f"{method.name} has no hyperparameter {', '.join(unknown)}; it takes {', '.join(sorted(types)) or 'none'}"
        )
    return method.config(**{k: _convert(method.name, k, types[k], v) for k, v in hyperparameters.items()})
