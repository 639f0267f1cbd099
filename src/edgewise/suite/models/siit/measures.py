"""How well a low-level model implements its high-level model: accuracy (the same outputs), interchange-intervention
accuracy (IIA: the same outputs when an aligned node of both takes its value from another input) and strict IIA (the
high-level model's outputs when every non-aligned low-level head and MLP takes its value from another input)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from edgewise.models import Transformer

from .alignment import Alignment
from .interventions import intervened_logits, writer_outputs

# A numerical output agrees within this: half the smallest gap between two outputs of tracr-proportion (1/4, 1/3),
# so an agreeing output rounds to the high-level model's fraction.
NUMERIC_TOLERANCE = 0.04


@dataclass(frozen=True)
class SiitScores:
    """Accuracy, IIA and strict IIA of a low-level model on some inputs, as fractions of scored positions.

    Attributes:
        accuracy: the fraction of scored positions where the low-level model gives the high-level output.
        iia: the mean over aligned nodes of node_iia.
        strict_iia: the agreement with the high-level model when every non-aligned node is resampled at once.
        node_iia: high-level node name -> IIA of interventions on it.
    """

    accuracy: float
    iia: float
    strict_iia: float
    node_iia: dict[str, float]

    def to_dict(self) -> dict:
        """Returns the scores as a plain dict of the fields."""
        return asdict(self)


def agreement(
    low: torch.Tensor, high: torch.Tensor, scored: torch.Tensor, categorical: bool, tolerance: float = NUMERIC_TOLERANCE
) -> float:
    """Returns the fraction of scored positions ([batch, pos] bool) where the low-level logits [batch, pos, out] give
    the high-level output: the same argmax, or (numerical) every output within `tolerance`.

    Args:
        low: the low-level logits [batch, pos, out].
        high: the high-level logits [batch, pos, out].
        scored: the positions that count [batch, pos].
        categorical: compare argmaxes; False compares every output within `tolerance`.
        tolerance: how far a numerical output may be from the high-level one.

    Returns:
        The fraction of scored positions that agree.
    """
    if categorical:
        same = low.argmax(-1) == high.argmax(-1)
    else:
        same = ((low - high).abs() < tolerance).all(-1)
    return same[scored].float().mean().item()


def interchange_pairs(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns (base rows, source rows): every ordered pair of distinct rows of n.

    Args:
        n: the number of rows.

    Returns:
        Two index tensors [n * (n - 1)], base row i paired with source row i.
    """
    base, source = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    distinct = base != source
    return base[distinct], source[distinct]


@torch.no_grad()
def measure_siit(
    high: Transformer,
    low: Transformer,
    alignment: Alignment,
    tokens: torch.Tensor,
    scored: torch.Tensor,
    categorical: bool,
    tolerance: float = NUMERIC_TOLERANCE,
) -> SiitScores:
    """Returns the scores of `low` on `tokens` [batch, pos] (`scored` [batch, pos] marks the positions that count),
    interventions taken over every ordered pair of distinct inputs.

    Args:
        high: the high-level model.
        low: the low-level model.
        alignment: which low-level node implements each high-level one.
        tokens: the inputs [batch, pos].
        scored: the positions whose outputs count [batch, pos].
        categorical: outputs are categorical (argmax compared); False: numerical, compared within `tolerance`.
        tolerance: how far a numerical output may be from the high-level one.

    Returns:
        Accuracy on `tokens`; IIA per aligned node and their mean; strict IIA.
    """
    base_rows, source_rows = interchange_pairs(tokens.shape[0])
    base, source, positions = tokens[base_rows], tokens[source_rows], scored[base_rows]
    high_base = high(base)
    non_aligned = alignment.non_aligned(low.cfg)
    high_sources = writer_outputs(high, source, alignment.high_nodes)
    low_sources = writer_outputs(low, source, alignment.low_nodes + non_aligned)
    node_iia = {
        high_node.name: agreement(
            intervened_logits(low, base, {low_node: low_sources[low_node]}),
            intervened_logits(high, base, {high_node: high_sources[high_node]}),
            positions,
            categorical,
            tolerance,
        )
        for high_node, low_node in alignment.pairs
    }
    strict = intervened_logits(low, base, {node: low_sources[node] for node in non_aligned})
    return SiitScores(
        accuracy=agreement(low(tokens), high(tokens), scored, categorical, tolerance),
        iia=sum(node_iia.values()) / len(node_iia),
        strict_iia=agreement(strict, high_base, positions, categorical, tolerance),
        node_iia=node_iia,
    )
