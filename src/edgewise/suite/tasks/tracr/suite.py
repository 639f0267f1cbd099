"""The tracr task suite: compiled RASP programs with clean/corrupted data, a metric and the derived circuit.

`tracr_task` turns any RASP program into a Task; the built-in suite is a list of calls to it. Resample pairing
everywhere: the corrupted batch is the clean batch permuted by a fixed random derangement (a single cycle,
Sattolo's algorithm), so no row is paired with itself and the corrupted inputs have the clean inputs' distribution.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from edgewise.errors import BatchShapeError, UnknownTaskError
from edgewise.tasks import METRICS, Task

from ...models import CompressionConfig
from .compile import CompiledProgram, compile_program
from .compressed import compress_program
from .specs import ALL_TRACR_TASKS, TRACR_TASKS, TracrSpec, all_or_sample


def derangement(n: int, seed: int = 0) -> list[int]:
    """Returns a random cyclic permutation of range(n): no element maps to itself (for n >= 2).

    Args:
        n: the length.
        seed: the seed of the random permutation.

    Returns:
        perm, a list where perm[i] is the index paired with i.
    """
    perm = list(range(n))
    rng = random.Random(seed)
    for i in range(n - 1, 0, -1):  # Sattolo: j < i gives a single n-cycle
        j = rng.randrange(i)
        perm[i], perm[j] = perm[j], perm[i]
    return perm


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

    Args:
        program (rasp.SOp): the RASP program's output SOp.
        vocab: the input values.
        max_seq_len: the longest input (BOS not counted).
        name: the task's name; its compiled model is cached under it.
        sequences: the inputs, each a list of values; None: every input of length `max_seq_len`, or `n` of them.
        n: the most inputs drawn when `sequences` is None.
        seed: the seed of the input sample and of the pairing.
        metric: a metric name (`kl`, `mse`, `l2`); None: as above.
        causal: compile with causal attention.
        cache_dir: the cache root for the compiled model; None: edgewise's.
        description: the task in a sentence.
        corruption: `derangement` or `shuffle`.

    Returns:
        The task, with plain, split-embedding and oracle-feature ground truths; `task.family` is a TracrData.

    Raises:
        BatchShapeError: fewer than 2 inputs, or an unknown `corruption`.
        UnknownTaskError: an unknown metric name.
    """
    compiled = compile_program(program, vocab, max_seq_len, name, causal=causal, cache_dir=cache_dir)
    sequences = all_or_sample(vocab, max_seq_len, n, seed) if sequences is None else sequences
    return compiled_task(compiled, sequences, seed, metric, description, corruption)


@dataclass(frozen=True)
class TracrData:
    """A tracr task's own record (`task.family`): the compiled (or compressed) program and the input sequences
    before encoding, row i of the clean batch being sequence i.

    Attributes:
        compiled: the compiled (or compressed) program.
        sequences: the clean inputs, each a list of values.
    """

    compiled: CompiledProgram
    sequences: list[list]


def value_label(values: list) -> "Callable[[int], str]":
    """Returns what names output class c of a compiled program: the value its compiler recorded for it.

    Args:
        values: the program's output values, indexed by class.

    Returns:
        c -> `str(values[c])`.
    """
    return lambda c: str(values[c])


def compiled_task(
    compiled: CompiledProgram,
    sequences: list[list],
    seed: int = 0,
    metric: str | None = None,
    description: str = "",
    corruption: str = "derangement",
) -> Task:
    """Returns the Task of a compiled (or compressed) program on `sequences`; see tracr_task.

    Args:
        compiled: the compiled program.
        sequences: the clean inputs, each a list of values.
        seed: the seed of the pairing.
        metric: a metric name; None: KL for categorical outputs, MSE for numerical ones.
        description: the task in a sentence.
        corruption: `derangement` or `shuffle`.

    Returns:
        The task.

    Raises:
        BatchShapeError: fewer than 2 sequences, or an unknown `corruption`.
        UnknownTaskError: an unknown metric name.
    """
    name = compiled.name
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
        dictionaries={"oracle": compiled.oracle_dictionaries()},
        feature_ground_truth={"oracle": list(compiled.feature_ground_truth)},
        class_label=value_label(compiled.output_values) if compiled.categorical else None,
        family=TracrData(compiled, sequences),
    )


def compile_spec(name: str, cache_dir: Path | None = None, progress: bool = False) -> CompiledProgram:
    """Returns the compiled (for a compressed task: compiled, then compressed) program of a built-in task, from the
    cache when possible.

    Args:
        name: a built-in tracr task's name.
        cache_dir: the cache root; None: edgewise's.
        progress: show the compression's training progress.

    Returns:
        The compiled program.

    Raises:
        UnknownTaskError: `name` is not a tracr task.
    """
    spec = _spec(name)
    if spec.compression is not None:
        base = TRACR_TASKS[spec.base]
        held_out = None if base.held_out is None else base.held_out()
        return compress_program(
            compile_spec(spec.base, cache_dir),
            name,
            CompressionConfig(**spec.compression),
            base.sequences(),
            held_out,
            cache_dir,
            progress,
        )
    return compile_program(spec.build_program(), set(spec.vocab), spec.max_seq_len, spec.name, cache_dir=cache_dir)


def get_task(
    name: str, metric: str | None = None, held_out: bool = False, cache_dir: Path | None = None, progress: bool = False
) -> Task:
    """Returns the built-in task `name`, optionally with another metric (e.g. ACDC's "l2") or on its held-out
    inputs (the evaluation split: inputs the discovery split does not hold; tracr-proportion: ACDC's second 50
    sequences); raises UnknownTaskError for unknown names and for a held-out split a task does not have.

    Args:
        name: a built-in tracr task's name.
        metric: a metric name in place of the task's own; None keeps it.
        held_out: build the task on its held-out inputs.
        cache_dir: the cache root; None: edgewise's.
        progress: show a compressed task's training progress.

    Returns:
        The task.

    Raises:
        UnknownTaskError: `name` is not a tracr task, or it has no held-out split while `held_out` is asked.
    """
    spec = _spec(name)
    if held_out and spec.held_out is None:
        raise UnknownTaskError(f"{name} has no held-out split: {spec.no_held_out}")
    return compiled_task(
        compile_spec(name, cache_dir, progress),
        spec.held_out() if held_out else spec.sequences(),
        metric=metric or spec.metric,
        description=spec.description + (" (held-out inputs)" if held_out else ""),
        corruption=spec.corruption,
    )


def _spec(name: str) -> TracrSpec:
    if name not in ALL_TRACR_TASKS:
        raise UnknownTaskError.for_name(name, list(ALL_TRACR_TASKS))
    return ALL_TRACR_TASKS[name]
