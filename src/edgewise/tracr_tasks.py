"""The tracr task suite: compiled RASP programs with clean/corrupted data, a metric and the derived circuit.

`tracr_task` turns any RASP program into a Task; the built-in suite is a list of calls to it. Resample pairing
everywhere: the corrupted batch is the clean batch permuted by a fixed random derangement (a single cycle,
Sattolo's algorithm), so no row is paired with itself and the corrupted inputs have the clean inputs' distribution.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from .errors import BatchShapeError, UnknownTaskError
from .metrics import METRICS
from .task import Task
from .tracr_compile import CompiledProgram, compile_program


def derangement(n: int, seed: int = 0) -> list[int]:
    """Returns a random cyclic permutation of range(n): no element maps to itself (for n >= 2)."""
    perm = list(range(n))
    rng = random.Random(seed)
    for i in range(n - 1, 0, -1):  # Sattolo: j < i gives a single n-cycle
        j = rng.randrange(i)
        perm[i], perm[j] = perm[j], perm[i]
    return perm


def all_or_sample(vocab, length: int, n: int, seed: int = 0, distinct: bool = False) -> list[list]:
    """Returns every sequence of `length` over `vocab` if there are at most n, else n distinct ones at random."""
    values = sorted(vocab, key=repr)
    pool = itertools.permutations(values, length) if distinct else itertools.product(values, repeat=length)
    pool = [list(s) for s in pool]
    return pool if len(pool) <= n else random.Random(seed).sample(pool, n)


def tracr_task(
    program,
    vocab: set,
    max_seq_len: int,
    name: str,
    sequences: list[list] | None = None,
    n: int = 100,
    seed: int = 0,
    metric: str | None = None,
    causal: bool = False,
    cache_dir: Path | None = None,
    description: str = "",
    corruption: str = "derangement",
) -> Task:
    """Returns a Task for a RASP program: compiled model, data, metric and ground truth derived by the compiler.

    Data defaults to every input of length `max_seq_len` (or `n` of them at random); inputs of different lengths are
    padded. Corrupted inputs are the clean batch permuted: by a derangement (default, no input paired with itself)
    or by a plain random shuffle (`corruption="shuffle"`, ACDC's rule for proportion, where a row may keep itself).
    The metric defaults to KL divergence for categorical outputs and MSE for numerical ones, scored on every
    non-BOS, non-padding position.
    """
    compiled = compile_program(program, vocab, max_seq_len, name, causal=causal, cache_dir=cache_dir)
    sequences = all_or_sample(vocab, max_seq_len, n, seed) if sequences is None else sequences
    if len(sequences) < 2:
        raise BatchShapeError(f"{name}: resample ablation pairs each input with another; give at least 2 sequences")
    if corruption not in ("derangement", "shuffle"):
        raise BatchShapeError(f"unknown corruption {corruption!r}; use 'derangement' or 'shuffle'")
    if metric is not None and metric not in METRICS:
        raise UnknownTaskError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    clean = compiled.encode(sequences)
    if corruption == "derangement":
        perm = derangement(len(sequences), seed)
    else:
        perm = torch.randperm(len(sequences), generator=torch.Generator().manual_seed(seed)).tolist()
    corrupt = clean[perm]
    scored = (clean != compiled.bos_id) & (clean != compiled.pad_id)
    metric_name = metric or ("kl" if compiled.categorical else "mse")
    return Task(
        name=name,
        model=compiled.model,
        clean=clean,
        corrupt=corrupt,
        metric=METRICS[metric_name],
        scored_positions=scored,
        ground_truth=list(compiled.ground_truth),
        ground_truth_split=list(compiled.ground_truth_split),
        bos_position=0,
        categorical=compiled.categorical,
        description=description,
        pairing=f"corrupted row i = clean row perm[i], perm a random {corruption} (seed {seed})",
        extras={"compiled": compiled, "sequences": sequences},
    )


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
    program: Callable[[], object]
    vocab: frozenset
    max_seq_len: int
    sequences: Callable[[], list[list]]
    description: str
    metric: str | None = None
    corruption: str = "derangement"
    held_out: Callable[[], list[list]] | None = None  # inputs kept apart for evaluating found circuits


def _specs() -> list[TracrSpec]:
    from tracr.compiler import lib
    from tracr.rasp import rasp

    abc = frozenset("abc")
    return [
        TracrSpec(
            "tracr-reverse",
            lambda: lib.make_reverse(rasp.tokens).named("reverse"),
            frozenset({1, 2, 3}),
            5,
            lambda: [list(p) for p in itertools.permutations([1, 2, 3])],
            "reverse the sequence (ACDC's data: the 6 permutations of [1, 2, 3])",
        ),
        TracrSpec(
            "tracr-proportion",
            lambda: lib.make_frac_prevs(rasp.tokens == "x").named("frac_prevs"),
            frozenset("wxyz"),
            5,
            lambda: all_or_sample(frozenset("wxyz"), 4, 100)[:50],
            "fraction of tokens so far that are 'x' (ACDC's data: 50 random sequences of length 4, shuffled)",
            corruption="shuffle",
            held_out=lambda: all_or_sample(frozenset("wxyz"), 4, 100)[50:],
        ),
        TracrSpec(
            "tracr-hist",
            lambda: lib.make_hist().named("hist"),
            abc,
            5,
            lambda: all_or_sample(abc, 5, 100),
            "how often each token occurs in the sequence",
        ),
        TracrSpec(
            "tracr-sort",
            lambda: lib.make_sort_unique(rasp.tokens, rasp.tokens).named("sort"),
            frozenset(range(1, 9)),
            5,
            lambda: all_or_sample(set(range(1, 9)), 5, 100, distinct=True),
            "sort tokens with unique keys (5 distinct tokens of 8, so the sorted output varies)",
        ),
        TracrSpec(
            "tracr-sort-repeated",
            lambda: lib.make_sort(rasp.tokens, rasp.tokens, max_seq_len=5, min_key=1).named("sort"),
            frozenset({1, 2, 3}),
            5,
            lambda: all_or_sample({1, 2, 3}, 5, 100),
            "sort tokens whose keys repeat (ties broken by position)",
        ),
        TracrSpec(
            "tracr-length",
            lambda: lib.make_length().named("length"),
            abc,
            5,
            lambda: sum((all_or_sample(abc, n, 20, seed=n) for n in range(1, 6)), []),
            "sequence length, on inputs of length 1 to 5 (padded)",
        ),
        TracrSpec(
            "tracr-pair-balance",
            lambda: lib.make_pair_balance(rasp.tokens, "(", ")").named("pair_balance"),
            frozenset("()a"),
            5,
            lambda: all_or_sample(frozenset("()a"), 5, 100),
            "fraction of open minus close brackets so far",
        ),
        TracrSpec(
            "tracr-dyck2",
            lambda: lib.make_shuffle_dyck2(),
            frozenset("(){}"),
            4,
            lambda: _brackets(["()", "{}"], 4, 100),
            "1 if the two bracket types are each balanced (shuffle-Dyck-2), else 0",
        ),
        TracrSpec(
            "tracr-count",
            lambda: lib.make_count(rasp.tokens, "a"),
            abc,
            5,
            lambda: all_or_sample(abc, 5, 100),
            "number of 'a' tokens, at every position",
        ),
        TracrSpec(
            "tracr-detect-pattern",
            lambda: lib.detect_pattern(rasp.tokens, "abc"),
            abc,
            5,
            lambda: all_or_sample(abc, 5, 100),
            "1 where the pattern 'abc' ends, else 0",
        ),
        TracrSpec(
            "tracr-sort-freq",
            lambda: lib.make_sort_freq(5).named("sort_freq"),
            abc,
            5,
            lambda: all_or_sample(abc, 5, 100),
            "tokens sorted by how often they occur",
        ),
        TracrSpec(
            "tracr-shift",
            lambda: lib.shift_by(2, rasp.tokens).named("shift"),
            abc,
            5,
            lambda: all_or_sample(abc, 5, 100),
            "the sequence shifted right by two positions",
        ),
    ]


TRACR_TASKS: dict[str, TracrSpec] = {spec.name: spec for spec in _specs()}


def task_names() -> list[str]:
    """Returns the names of the built-in tasks."""
    return list(TRACR_TASKS)


def compile_spec(name: str, cache_dir: Path | None = None) -> CompiledProgram:
    """Returns the compiled program of a built-in task (from the cache when possible)."""
    spec = _spec(name)
    return compile_program(spec.program(), set(spec.vocab), spec.max_seq_len, spec.name, cache_dir=cache_dir)


def get_task(name: str, metric: str | None = None, held_out: bool = False, cache_dir: Path | None = None) -> Task:
    """Returns the built-in task `name`, optionally with another metric (e.g. ACDC's "l2") or on its held-out
    inputs (tracr-proportion: ACDC's second 50 sequences); raises UnknownTaskError for unknown names."""
    spec = _spec(name)
    if held_out and spec.held_out is None:
        raise UnknownTaskError(f"{name} has no held-out split: its data is every input, or a fixed sample of them")
    return tracr_task(
        spec.program(),
        set(spec.vocab),
        spec.max_seq_len,
        spec.name,
        sequences=spec.held_out() if held_out else spec.sequences(),
        metric=metric or spec.metric,
        cache_dir=cache_dir,
        description=spec.description + (" (held-out inputs)" if held_out else ""),
        corruption=spec.corruption,
    )


def _spec(name: str) -> TracrSpec:
    if name not in TRACR_TASKS:
        raise UnknownTaskError.for_name(name, list(TRACR_TASKS))
    return TRACR_TASKS[name]
