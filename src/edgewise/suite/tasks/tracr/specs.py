"""The built-in tracr tasks as data: each one's RASP program (built on demand, so listing tasks needs no tracr or
jax), vocabulary, maximum length and inputs."""

from __future__ import annotations

import dataclasses
import itertools
import random
from dataclasses import dataclass
from typing import Callable

from .redundant import redundant_backup, redundant_majority, redundant_or


def all_or_sample(
    vocab, length: int, n: int, seed: int = 0, distinct: bool = False, exclude: list[list] | None = None
) -> list[list]:
    """Returns every sequence of `length` over `vocab` (but those in `exclude`) if there are at most n, else n
    distinct ones at random.

    Args:
        vocab (Iterable): the values a sequence holds (sorted by repr, so the result does not depend on set order).
        length: the sequences' length.
        n: the most sequences returned.
        seed: the seed of the random choice.
        distinct: only sequences without a repeated value (permutations).
        exclude: sequences to leave out (another split's).

    Returns:
        The sequences, each a list of values.
    """
    values = sorted(vocab, key=repr)
    pool = itertools.permutations(values, length) if distinct else itertools.product(values, repeat=length)
    excluded = {tuple(s) for s in exclude or []}
    pool = [list(s) for s in pool if tuple(s) not in excluded]
    return pool if len(pool) <= n else random.Random(seed).sample(pool, n)


def _held_out(
    discovery: Callable[[], list[list]], vocab, length: int, n: int = 100, distinct: bool = False
) -> Callable[[], list[list]]:
    """Returns the evaluation split of a task whose discovery inputs are `discovery()`: up to n other inputs of the
    same form, drawn with another seed."""
    return lambda: all_or_sample(vocab, length, n, seed=1, distinct=distinct, exclude=discovery())


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


def _brackets(pairs: list[str], length: int, n: int, exclude: list[list] | None = None) -> list[list]:
    """Returns all balanced strings plus random ones (none in `exclude`) up to n: random strings alone are almost
    never balanced. The balanced strings are too few to split, so a held-out split holds them again."""
    balanced = _balanced(pairs, length)
    tokens = {c for p in pairs for c in p}
    seed = 0 if exclude is None else 1
    rest = [s for s in all_or_sample(tokens, length, 10 * n, seed=seed, exclude=exclude) if s not in balanced]
    return balanced + rest[: max(0, n - len(balanced))]


@dataclass(frozen=True)
class TracrSpec:
    """How one built-in task is made: its RASP program, vocabulary, maximum length and data.

    Attributes:
        name: the task's name.
        program: (tracr.compiler.lib, tracr.rasp.rasp) -> the program's SOp.
        vocab: the input values.
        max_seq_len: the longest input (BOS not counted).
        sequences: () -> the discovery inputs.
        description: the task in a sentence.
        metric: the task's metric name; None: KL for categorical outputs, MSE for numerical ones.
        corruption: how corrupted inputs are made: `derangement` or `shuffle`.
        held_out: inputs kept apart for evaluating found circuits.
        no_held_out: why there is no held-out split, when there is none.
        compression: compressed tasks: CompressionConfig fields (`{"d_compressed": 16, ...}`).
        base: compressed tasks: the task whose program they compress.
    """

    name: str
    program: Callable[[object, object], object]
    vocab: frozenset
    max_seq_len: int
    sequences: Callable[[], list[list]]
    description: str
    metric: str | None = None
    corruption: str = "derangement"
    held_out: Callable[[], list[list]] | None = None
    no_held_out: str = ""
    compression: dict | None = None
    base: str = ""

    def build_program(self):
        """Returns the task's RASP program; imports tracr (and with it jax) only now.

        Returns:
            program (rasp.SOp): the program's output SOp.
        """
        from tracr.compiler import lib
        from tracr.rasp import rasp

        return self.program(lib, rasp)


def _sampled(name: str, program: Callable, vocab, description: str, distinct: bool = False) -> TracrSpec:
    """Returns a task on 100 random inputs of length 5 (every input when there are fewer), with 100 others (or all
    the rest) held out."""
    discovery = lambda: all_or_sample(vocab, 5, 100, distinct=distinct)  # noqa: E731
    return TracrSpec(
        name,
        program,
        frozenset(vocab),
        5,
        discovery,
        description,
        held_out=_held_out(discovery, vocab, 5, distinct=distinct),
    )


def _lengths_one_to_five(vocab, seed_offset: int = 0, exclude: list[list] | None = None) -> list[list]:
    """Returns up to 20 inputs of each length 1-5 (every one where there are fewer), none in `exclude`."""
    return sum((all_or_sample(vocab, n, 20, seed=n + seed_offset, exclude=exclude) for n in range(1, 6)), [])


def _specs() -> list[TracrSpec]:
    abc = frozenset("abc")
    wxyz = frozenset("wxyz")
    proportion = lambda: all_or_sample(wxyz, 4, 100)  # noqa: E731
    dyck2 = lambda: _brackets(["()", "{}"], 4, 100)  # noqa: E731
    return [
        TracrSpec(
            "tracr-reverse",
            lambda lib, rasp: lib.make_reverse(rasp.tokens).named("reverse"),
            frozenset({1, 2, 3}),
            5,
            lambda: [list(p) for p in itertools.permutations([1, 2, 3])],
            "reverse the sequence (ACDC's data: the 6 permutations of [1, 2, 3])",
            no_held_out="ACDC's data is every permutation of [1, 2, 3]; none is left to hold out",
        ),
        TracrSpec(
            "tracr-proportion",
            lambda lib, rasp: lib.make_frac_prevs(rasp.tokens == "x").named("frac_prevs"),
            wxyz,
            5,
            lambda: proportion()[:50],
            "fraction of tokens so far that are 'x' (ACDC's data: 50 random sequences of length 4, shuffled)",
            corruption="shuffle",
            held_out=lambda: proportion()[50:],  # ACDC's second 50
        ),
        _sampled(
            "tracr-hist",
            lambda lib, rasp: lib.make_hist().named("hist"),
            abc,
            "how often each token occurs in the sequence",
        ),
        _sampled(
            "tracr-sort",
            lambda lib, rasp: lib.make_sort_unique(rasp.tokens, rasp.tokens).named("sort"),
            set(range(1, 9)),
            "sort tokens with unique keys (5 distinct tokens of 8, so the sorted output varies)",
            distinct=True,
        ),
        _sampled(
            "tracr-sort-repeated",
            lambda lib, rasp: lib.make_sort(rasp.tokens, rasp.tokens, max_seq_len=5, min_key=1).named("sort"),
            {1, 2, 3},
            "sort tokens whose keys repeat (ties broken by position)",
        ),
        TracrSpec(
            "tracr-length",
            lambda lib, rasp: lib.make_length().named("length"),
            abc,
            5,
            lambda: _lengths_one_to_five(abc),
            "sequence length, on inputs of length 1 to 5 (padded)",
            # lengths 1 and 2 have 3 and 9 inputs, all used for discovery: the held-out inputs have lengths 3-5
            held_out=lambda: _lengths_one_to_five(abc, seed_offset=100, exclude=_lengths_one_to_five(abc)),
        ),
        _sampled(
            "tracr-pair-balance",
            lambda lib, rasp: lib.make_pair_balance(rasp.tokens, "(", ")").named("pair_balance"),
            frozenset("()a"),
            "fraction of open minus close brackets so far",
        ),
        TracrSpec(
            "tracr-dyck2",
            lambda lib, rasp: lib.make_shuffle_dyck2(),
            frozenset("(){}"),
            4,
            dyck2,
            "1 if the two bracket types are each balanced (shuffle-Dyck-2), else 0",
            held_out=lambda: _brackets(["()", "{}"], 4, 100, exclude=dyck2()),  # other unbalanced strings
        ),
        _sampled(
            "tracr-count",
            lambda lib, rasp: lib.make_count(rasp.tokens, "a"),
            abc,
            "number of 'a' tokens, at every position",
        ),
        _sampled(
            "tracr-detect-pattern",
            lambda lib, rasp: lib.detect_pattern(rasp.tokens, "abc"),
            abc,
            "1 where the pattern 'abc' ends, else 0",
        ),
        _sampled(
            "tracr-sort-freq",
            lambda lib, rasp: lib.make_sort_freq(5).named("sort_freq"),
            abc,
            "tokens sorted by how often they occur",
        ),
        _sampled(
            "tracr-shift",
            lambda lib, rasp: lib.shift_by(2, rasp.tokens).named("shift"),
            abc,
            "the sequence shifted right by two positions",
        ),
        _sampled(
            "tracr-redundant-or",
            redundant_or,
            wxyz,
            "whether the previous token is 'x', computed by two heads combined by an OR (redundant copies)",
        ),
        _sampled(
            "tracr-redundant-majority",
            redundant_majority,
            wxyz,
            "whether the previous token is 'x', computed by three heads combined by a majority vote",
        ),
        _sampled(
            "tracr-redundant-backup",
            redundant_backup,
            wxyz,
            "whether the previous token is 'x', from a layer-1 head OR a deeper backup head",
        ),
    ]


TRACR_TASKS: dict[str, TracrSpec] = {spec.name: spec for spec in _specs()}


def _compressed(base: str, d_compressed: int, residual_weight: float, steps: int) -> TracrSpec:
    """Returns the spec of task `base` with its residual stream compressed to `d_compressed` dimensions, the
    projection trained on the base task's discovery inputs for `steps` steps."""
    spec = TRACR_TASKS[base]
    return dataclasses.replace(
        spec,
        name=f"{base}-compressed",
        base=base,
        compression={"d_compressed": d_compressed, "residual_weight": residual_weight, "steps": steps},
        description=f"{spec.description}; residual stream compressed to {d_compressed} dimensions by a learned "
        "projection, so its features are in superposition",
    )


# Each compresses a program to a few more dimensions than its largest writer writes directions (so oracle features
# stay exact), with the fewest steps that keep every output tracr gives (2000 on reverse and detect-pattern, 1000 on
# shift); `edgewise tasks` and benchmarks/compressed.py report the agreement. Programs that do not compress so
# (hist, sort and sort-repeated lose outputs at 16, 24 and 20 dimensions) are left out.
COMPRESSED_TASKS: dict[str, TracrSpec] = {
    spec.name: spec
    for spec in (
        _compressed("tracr-reverse", 16, 1.0, 2000),
        _compressed("tracr-detect-pattern", 16, 0.1, 2000),
        _compressed("tracr-shift", 12, 0.1, 1000),
    )
}
ALL_TRACR_TASKS: dict[str, TracrSpec] = {**TRACR_TASKS, **COMPRESSED_TASKS}


def task_names() -> list[str]:
    """Returns the names of the built-in tracr tasks, compiled then compressed.

    Returns:
        The names, keys of ALL_TRACR_TASKS.
    """
    return list(ALL_TRACR_TASKS)
