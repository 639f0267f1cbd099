"""The built-in tracr tasks as data: each one's RASP program (built on demand, so listing tasks needs no tracr or
jax), vocabulary, maximum length and inputs."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from typing import Callable


def all_or_sample(vocab, length: int, n: int, seed: int = 0, distinct: bool = False) -> list[list]:
    """Returns every sequence of `length` over `vocab` if there are at most n, else n distinct ones at random."""
    values = sorted(vocab, key=repr)
    pool = itertools.permutations(values, length) if distinct else itertools.product(values, repeat=length)
    pool = [list(s) for s in pool]
    return pool if len(pool) <= n else random.Random(seed).sample(pool, n)


def _balanced(pairs: list[str], length: int) -> list[list]:
    """Returns every balanced (shuffle-Dyck) string of `length` over the bracket `pairs`."""
    tokens = [c for p in pairs for c in p]
    out = []
    for s in itertools.product(tokens, repeat=length):
        depth = {p: 0 for p in pairs}
        ok = True
        for c in s:
            p = next(p for p in pairs if c in p)
            depth[p] += 1 if c == p[0] else -1
            ok &= depth[p] >= 0
        if ok and all(d == 0 for d in depth.values()):
            out.append(list(s))
    return out


def _brackets(pairs: list[str], length: int, n: int) -> list[list]:
    """Returns all balanced strings plus random ones up to n: random strings alone are almost never balanced."""
    balanced = _balanced(pairs, length)
    tokens = {c for p in pairs for c in p}
    rest = [s for s in all_or_sample(tokens, length, 10 * n) if s not in balanced]
    return balanced + rest[: max(0, n - len(balanced))]


@dataclass(frozen=True)
class TracrSpec:
    """How one built-in task is made: its RASP program, vocabulary, maximum length and data."""

    name: str
    program: Callable[[object, object], object]  # (tracr.compiler.lib, tracr.rasp.rasp) -> the program's SOp
    vocab: frozenset
    max_seq_len: int
    sequences: Callable[[], list[list]]
    description: str
    metric: str | None = None
    corruption: str = "derangement"
    held_out: Callable[[], list[list]] | None = None  # inputs kept apart for evaluating found circuits

    def build_program(self):
        """Returns the task's RASP program; imports tracr (and with it jax) only now."""
        from tracr.compiler import lib
        from tracr.rasp import rasp

        return self.program(lib, rasp)


def _specs() -> list[TracrSpec]:
    abc = frozenset("abc")
    return [
        TracrSpec(
            "tracr-reverse",
            lambda lib, rasp: lib.make_reverse(rasp.tokens).named("reverse"),
            frozenset({1, 2, 3}),
            5,
            lambda: [list(p) for p in itertools.permutations([1, 2, 3])],
            "reverse the sequence (ACDC's data: the 6 permutations of [1, 2, 3])",
        ),
        TracrSpec(
            "tracr-proportion",
            lambda lib, rasp: lib.make_frac_prevs(rasp.tokens == "x").named("frac_prevs"),
            frozenset("wxyz"),
            5,
            lambda: all_or_sample(frozenset("wxyz"), 4, 100)[:50],
            "fraction of tokens so far that are 'x' (ACDC's data: 50 random sequences of length 4, shuffled)",
            corruption="shuffle",
            held_out=lambda: all_or_sample(frozenset("wxyz"), 4, 100)[50:],
        ),
        TracrSpec(
            "tracr-hist",
            lambda lib, rasp: lib.make_hist().named("hist"),
            abc,
            5,
            lambda: all_or_sample(abc, 5, 100),
            "how often each token occurs in the sequence",
        ),
        TracrSpec(
            "tracr-sort",
            lambda lib, rasp: lib.make_sort_unique(rasp.tokens, rasp.tokens).named("sort"),
            frozenset(range(1, 9)),
            5,
            lambda: all_or_sample(set(range(1, 9)), 5, 100, distinct=True),
            "sort tokens with unique keys (5 distinct tokens of 8, so the sorted output varies)",
        ),
        TracrSpec(
            "tracr-sort-repeated",
            lambda lib, rasp: lib.make_sort(rasp.tokens, rasp.tokens, max_seq_len=5, min_key=1).named("sort"),
            frozenset({1, 2, 3}),
            5,
            lambda: all_or_sample({1, 2, 3}, 5, 100),
            "sort tokens whose keys repeat (ties broken by position)",
        ),
        TracrSpec(
            "tracr-length",
            lambda lib, rasp: lib.make_length().named("length"),
            abc,
            5,
            lambda: sum((all_or_sample(abc, n, 20, seed=n) for n in range(1, 6)), []),
            "sequence length, on inputs of length 1 to 5 (padded)",
        ),
        TracrSpec(
            "tracr-pair-balance",
            lambda lib, rasp: lib.make_pair_balance(rasp.tokens, "(", ")").named("pair_balance"),
            frozenset("()a"),
            5,
            lambda: all_or_sample(frozenset("()a"), 5, 100),
            "fraction of open minus close brackets so far",
        ),
        TracrSpec(
            "tracr-dyck2",
            lambda lib, rasp: lib.make_shuffle_dyck2(),
            frozenset("(){}"),
            4,
            lambda: _brackets(["()", "{}"], 4, 100),
            "1 if the two bracket types are each balanced (shuffle-Dyck-2), else 0",
        ),
        TracrSpec(
            "tracr-count",
            lambda lib, rasp: lib.make_count(rasp.tokens, "a"),
            abc,
            5,
            lambda: all_or_sample(abc, 5, 100),
            "number of 'a' tokens, at every position",
        ),
        TracrSpec(
            "tracr-detect-pattern",
            lambda lib, rasp: lib.detect_pattern(rasp.tokens, "abc"),
            abc,
            5,
            lambda: all_or_sample(abc, 5, 100),
            "1 where the pattern 'abc' ends, else 0",
        ),
        TracrSpec(
            "tracr-sort-freq",
            lambda lib, rasp: lib.make_sort_freq(5).named("sort_freq"),
            abc,
            5,
            lambda: all_or_sample(abc, 5, 100),
            "tokens sorted by how often they occur",
        ),
        TracrSpec(
            "tracr-shift",
            lambda lib, rasp: lib.shift_by(2, rasp.tokens).named("shift"),
            abc,
            5,
            lambda: all_or_sample(abc, 5, 100),
            "the sequence shifted right by two positions",
        ),
    ]


TRACR_TASKS: dict[str, TracrSpec] = {spec.name: spec for spec in _specs()}


def task_names() -> list[str]:
    """Returns the names of the built-in tracr tasks."""
    return list(TRACR_TASKS)
