"""Compressed tracr programs: a compiled program whose residual stream a learned projection squeezes into fewer
dimensions than it has labelled directions (models/compression.py), so its features are in superposition and no
longer basis-aligned. Node names, the circuit and the oracle features (each direction taken through the projection)
carry over from the compiled program; how often the compressed model still gives tracr's outputs is measured and
kept with it. Compressed programs are cached beside compiled ones, keyed by the program, the training settings and
the inputs trained on."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import torch

from edgewise.adapters import TransformerAdapter
from edgewise.errors import InvalidHyperparameterError
from edgewise.graph import NodeKind, feature_graph
from edgewise.models import Transformer

from ...models import CompressionConfig, compress_residual
from .compile import CACHE_FORMAT, CompiledProgram, cached_program
from .truth import node_weights

# A numerical output counts as tracr's when within this of it: the suite's numbers (fractions of at most 5 tokens,
# counts) lie at least 0.05 apart.
NUMERICAL_TOLERANCE = 0.02


@torch.no_grad()
def output_agreement(compiled: CompiledProgram, model: Transformer, sequences: list[list]) -> float:
    """Returns the fraction of the inputs' decided outputs where `model` gives the compiled program's: the same
    argmax for categorical outputs, within NUMERICAL_TOLERANCE for numbers. Decided: a scored position (neither BOS
    nor padding) where tracr's output is not a tie (shift's first positions, which aggregate nothing, are).

    Args:
        compiled: the compiled program, whose model is the reference.
        model: the model compared with it (e.g. its compressed model).
        sequences: input sequences of vocabulary values.

    Returns:
        The fraction of decided outputs that agree.

    Raises:
        InvalidTokensError: a sequence is too long or holds a value outside the vocabulary.
    """
    tokens = compiled.encode(sequences)
    return logits_agreement(compiled, tokens, model(tokens))


@torch.no_grad()
def logits_agreement(compiled: CompiledProgram, tokens: torch.Tensor, logits: torch.Tensor) -> float:
    """Returns the fraction of decided outputs on `tokens` [batch, pos] where `logits` [batch, pos, out] give the
    compiled program's output (see output_agreement).

    Args:
        compiled: the compiled program, whose model is the reference.
        tokens: the inputs [batch, pos].
        logits: the outputs compared [batch, pos, out].

    Returns:
        The fraction of decided outputs that agree.
    """
    reference = compiled.model(tokens)
    if compiled.categorical:
        same = reference.argmax(-1) == logits.argmax(-1)
    else:
        same = ((reference - logits).abs() <= NUMERICAL_TOLERANCE).all(-1)
    return same[decided_positions(compiled, tokens, reference)].float().mean().item()


def decided_positions(compiled: CompiledProgram, tokens: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Returns [batch, pos]: the scored positions where the compiled model's output `reference` decides a value (for
    categorical outputs, a top logit at least 0.5 above the next; tracr's are one-hot or ties).

    Args:
        compiled: the compiled program.
        tokens: the inputs [batch, pos].
        reference: the compiled model's outputs on them [batch, pos, out].

    Returns:
        A boolean mask [batch, pos]; for numerical outputs, every position that is neither BOS nor padding.
    """
    scored = (tokens != compiled.bos_id) & (tokens != compiled.pad_id)
    if not compiled.categorical:
        return scored
    top2 = reference.topk(2, dim=-1).values
    return scored & (top2[..., 0] - top2[..., 1] > 0.5)


def unread_directions(compiled: CompiledProgram) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Returns, per reader, the residual directions that earlier writers write but the reader does not read along
    a true feature edge (as dimension indices), with the reader's input weights [d_residual, k]: what compression
    must keep apart for the compiled circuit to stay the compressed model's.

    Args:
        compiled: the compiled program.

    Returns:
        (dimension indices, reader input weights) pairs, as `compress_residual` takes them in `apart`; readers whose
            weights are all zero are left out.
    """
    graph = feature_graph(
        TransformerAdapter(compiled.model).hook_groups(), None, "oracle", compiled.oracle_dictionaries()
    )
    truth = set(compiled.feature_ground_truth)
    dimension = {label: i for i, label in enumerate(compiled.residual_labels)}
    unread: dict[str, set[int]] = {}
    for edge in graph.edges:
        writer = graph.writer_node(edge.writer)
        if writer.kind is NodeKind.FEATURE and (edge.writer, edge.reader) not in truth:
            unread.setdefault(edge.reader, set()).add(dimension[compiled.writes[writer.component][writer.index]])
    pairs = [
        (torch.tensor(sorted(rows)), node_weights(compiled.model, graph.reader_node(reader), "reader"))
        for reader, rows in unread.items()
    ]
    return [(rows, weights) for rows, weights in pairs if weights.abs().amax() > 0]  # a reader that reads nothing


def max_overlap(projection: torch.Tensor) -> float:
    """Returns the largest |cosine| between two labelled directions after the projection (rows of it): 0 while
    they stay orthogonal, as in the compiled program; near 1 where two can barely be told apart.

    Args:
        projection: the projection [d_residual, d_compressed].

    Returns:
        The largest absolute cosine between two distinct rows.
    """
    rows = torch.nn.functional.normalize(projection, dim=-1)
    cosines = (rows @ rows.T).abs().fill_diagonal_(0)
    return cosines.max().item()


def compress_program(
    compiled: CompiledProgram,
    name: str,
    config: CompressionConfig,
    sequences: list[list],
    held_out: list[list] | None = None,
    cache_dir: Path | None = None,
    progress: bool = False,
) -> CompiledProgram:
    """Returns `compiled` with its residual stream compressed as `config` says, trained on `sequences` (from the
    cache when possible), named `name`; its `compression` records the dimensions, the final loss and the agreement
    with tracr's outputs on the training inputs and on `held_out` inputs (None when there are none).

    Args:
        compiled: the compiled program.
        name: the compressed program's name (and cache entry's task name).
        config: how the projection is trained.
        sequences: the input sequences it is trained on.
        held_out: other input sequences the agreement is also measured on; None: none.
        cache_dir: the cache folder; None: the default tracr cache.
        progress: show a progress bar while training.

    Returns:
        The compressed program: the compiled one's circuit and labels, with the compressed model, its projection
            and `compression` (`d_residual`, `d_compressed`, `n_directions`, `steps`, `final_loss`, `accuracy`,
            `held_out_accuracy`, `max_overlap`).

    Raises:
        InvalidHyperparameterError: a writer writes more directions than `config.d_compressed`, or
            `config.d_compressed` is not below the residual width.
    """
    widest = max(compiled.writes, key=lambda w: len(compiled.writes[w]))
    if config.d_compressed < len(compiled.writes[widest]):
        raise InvalidHyperparameterError(
            f"{name}: {widest} writes {len(compiled.writes[widest])} residual directions, more than d_compressed="
            f"{config.d_compressed} dimensions hold apart, so its oracle features would no longer be exact; compress "
            f"to at least {len(compiled.writes[widest])} dimensions"
        )
    key = hashlib.sha256(
        json.dumps(
            [compiled.fingerprint, dataclasses.asdict(config), repr(sequences), repr(held_out), CACHE_FORMAT]
        ).encode()
    ).hexdigest()[:16]

    def build() -> CompiledProgram:
        tokens = compiled.encode(sequences)
        scored = (tokens != compiled.bos_id) & (tokens != compiled.pad_id)
        result = compress_residual(compiled.model, tokens, scored, config, unread_directions(compiled), progress)
        report = {
            "d_residual": compiled.model.cfg.d_model,
            "d_compressed": config.d_compressed,
            "n_directions": len(compiled.residual_labels),
            "steps": config.steps,
            "final_loss": result.losses[-1],
            "accuracy": output_agreement(compiled, result.model, sequences),
            "held_out_accuracy": None if held_out is None else output_agreement(compiled, result.model, held_out),
            "max_overlap": max_overlap(result.projection),
        }
        return dataclasses.replace(
            compiled, name=name, model=result.model.eval(), projection=result.projection, compression=report
        )

    return cached_program(name, key, build, cache_dir)
