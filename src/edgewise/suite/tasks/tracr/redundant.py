"""RASP programs with planted redundancy: one intermediate ("the previous token is x") computed by several heads
and combined so that the copies back each other up. With an OR of two copies, removing one copy by zero ablation
leaves the answer to the other; with a majority of three, any one copy may be resampled, zeroed or averaged away
and the other two outvote it. Each builder takes tracr's `lib` and `rasp` modules (imported by the caller)."""

from __future__ import annotations


def _is_x(rasp):
    """Returns 1 where the token is 'x', else 0 (numerical: what the copies' heads move)."""
    return rasp.numerical(rasp.Map(lambda t: 1 if t == "x" else 0, rasp.tokens)).named("is_x")


def _previous_is_x(rasp, is_x, query, copy: int):
    """Returns copy `copy` of "the previous token is x": its own head, reading is_x one position back."""
    previous = rasp.Select(rasp.indices, query, lambda k, q: k == q - 1).named(f"previous_{copy}")
    return rasp.numerical(rasp.Aggregate(previous, is_x, default=0)).named(f"prev_x_{copy}")


def _votes(rasp, copies: list):
    """Returns the sum of the copies (numerical: the number of copies that say yes)."""
    total = copies[0]
    for i, copy in enumerate(copies[1:], 1):
        total = rasp.numerical(rasp.LinearSequenceMap(total, copy, 1, 1)).named(f"votes_{i}")
    return total


def redundant_or(lib, rasp):
    """Returns "the previous token is x", computed by two heads and combined by an OR (votes > 0).

    Args:
        lib (module): tracr's `lib` (unused; every builder takes it).
        rasp (module): tracr's `rasp`.

    Returns:
        program (rasp.SOp): the categorical program `prev_is_x`.
    """
    is_x = _is_x(rasp)
    votes = _votes(rasp, [_previous_is_x(rasp, is_x, rasp.indices, i) for i in range(2)])
    return rasp.categorical(rasp.Map(lambda v: v > 0, votes)).named("prev_is_x")


def redundant_majority(lib, rasp):
    """Returns "the previous token is x", computed by three heads and combined by a majority vote (votes >= 2).

    Args:
        lib (module): tracr's `lib` (unused; every builder takes it).
        rasp (module): tracr's `rasp`.

    Returns:
        program (rasp.SOp): the categorical program `prev_is_x`.
    """
    is_x = _is_x(rasp)
    votes = _votes(rasp, [_previous_is_x(rasp, is_x, rasp.indices, i) for i in range(3)])
    return rasp.categorical(rasp.Map(lambda v: v >= 2, votes)).named("prev_is_x")


def redundant_backup(lib, rasp):
    """Returns "the previous token is x" from a head in layer 1 OR a backup head in layer 2 whose query reads the
    position through two MLPs: copies of different depth and shape, like IOI's backup name movers.

    Args:
        lib (module): tracr's `lib` (unused; every builder takes it).
        rasp (module): tracr's `rasp`.

    Returns:
        program (rasp.SOp): the categorical program `prev_is_x`.
    """
    is_x = _is_x(rasp)
    position = rasp.indices
    for step in range(2):  # simplify=False: tracr would fuse the two maps into one MLP
        position = rasp.categorical(rasp.Map(lambda i: i, position, simplify=False)).named(f"position_{step}")
    copies = [_previous_is_x(rasp, is_x, rasp.indices, 0), _previous_is_x(rasp, is_x, position, 1)]
    return rasp.categorical(rasp.Map(lambda v: v > 0, _votes(rasp, copies))).named("prev_is_x")
