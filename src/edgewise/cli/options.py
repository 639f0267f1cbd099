"""Validators of command-line values, for argparse's `type=`: each returns the value or raises ArgumentTypeError
naming it, which argparse reports as a usage error (exit status 2) before any work."""

from __future__ import annotations

import argparse
import math


def _integer(text: str) -> int:
    """Returns `text` as an integer, or raises ArgumentTypeError naming it."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def _finite_float(text: str) -> float:
    """Returns `text` as a finite number; NaN and infinity raise ArgumentTypeError (a usage error)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    return _kept(value, math.isfinite(value), text, "is not a finite number; give a finite one")


def _kept(value, ok: bool, text: str, otherwise: str):
    """Returns `value` when `ok`, else raises ArgumentTypeError: `text` and what is wrong with it, with the fix."""
    if not ok:
        raise argparse.ArgumentTypeError(f"{text!r} {otherwise}")
    return value


def _positive_int(text: str) -> int:
    """Returns `text` as an integer >= 1; argparse turns the ArgumentTypeError into a usage error (exit status 2)."""
    value = _integer(text)
    return _kept(value, value >= 1, text, "is below 1; give a whole number of at least 1")


def _count(text: str) -> int:
    """Returns `text` as an integer >= 0 (0: none); argparse turns the ArgumentTypeError into a usage error."""
    value = _integer(text)
    return _kept(value, value >= 0, text, "is negative; give a whole number, 0 or more (0: none)")


def _at_least_two(text: str) -> int:
    """Returns `text` as an integer >= 2 (a number of refits to compare), or raises ArgumentTypeError."""
    value = _integer(text)
    return _kept(value, value >= 2, text, "is below 2; give a whole number of at least 2, e.g. 10")


def _positive_float(text: str) -> float:
    """Returns `text` as a finite number above 0 (a learning rate), or raises ArgumentTypeError."""
    value = _finite_float(text)
    return _kept(value, value > 0, text, "is not above 0; give a positive number, e.g. 1e-3")


def _non_negative_float(text: str) -> float:
    """Returns `text` as a finite number >= 0 (a loss weight), or raises ArgumentTypeError."""
    value = _finite_float(text)
    return _kept(value, value >= 0, text, "is negative; give a number, 0 or more")


def _share(text: str) -> float:
    """Returns `text` as a share in (0, 1], or raises ArgumentTypeError."""
    value = _finite_float(text)
    return _kept(value, 0 < value <= 1, text, "is not a share in (0, 1]; give one, e.g. 0.5")
