"""Faithfulness metrics: how far a patched model's outputs are from the full model's, on the scored positions.

Every metric returns a distance (0 = identical to the full model, larger = less faithful), averaged over the
batch and the scored positions, keeping any leading mask dimension: [n_masks] for logits [n_masks, batch, pos, v].
A metric of your own is a `Metric(name, fn)`; it must be 0 when the logits are the reference (`Task.check_metric`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ..errors import InvalidMetricError, UnknownMetricError


def _masked_mean(per_position: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Returns the mean of [..., batch, pos] over batch and the positions where `positions` [batch, pos] is True."""
    weights = positions.to(per_position.dtype)
    return (per_position * weights).sum((-1, -2)) / weights.sum()


def kl_divergence(logits: torch.Tensor, reference: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Returns KL(softmax(reference) || softmax(logits)): the full model's distribution is the target.

    Args:
        logits: the patched model's outputs [..., batch, pos, classes] (any leading mask dimensions).
        reference: the full model's outputs [batch, pos, classes], broadcast against `logits`.
        positions: [batch, pos] bool: the scored positions.

    Returns:
        The distance averaged over the batch and the scored positions, one per leading mask dimension ([] without).
    """
    ref_logp = reference.log_softmax(-1)
    per_position = (ref_logp.exp() * (ref_logp - logits.log_softmax(-1))).sum(-1)
    return _masked_mean(per_position, positions)


def mean_squared_error(logits: torch.Tensor, reference: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Returns the squared difference of the outputs, summed over output dimensions (one for numerical tasks).

    Args:
        logits: the patched model's outputs [..., batch, pos, out] (any leading mask dimensions).
        reference: the full model's outputs [batch, pos, out], broadcast against `logits`.
        positions: [batch, pos] bool: the scored positions.

    Returns:
        The distance averaged over the batch and the scored positions, one per leading mask dimension ([] without).
    """
    return _masked_mean((logits - reference).pow(2).sum(-1), positions)


def l2_distance(logits: torch.Tensor, reference: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Returns the Euclidean distance between output vectors. (ACDC's tracr "l2" is the mean squared difference,
    without the root: `mse` here; docs/presets.md.) Its gradient at distance 0 is taken as 0, not sqrt's NaN, so
    gradient methods and SP can train on it.

    Args:
        logits: the patched model's outputs [..., batch, pos, out] (any leading mask dimensions).
        reference: the full model's outputs [batch, pos, out], broadcast against `logits`.
        positions: [batch, pos] bool: the scored positions.

    Returns:
        The distance averaged over the batch and the scored positions, one per leading mask dimension ([] without).
    """
    squared = (logits - reference).pow(2).sum(-1)
    positive = squared > 0
    return _masked_mean(torch.where(positive, squared, torch.ones_like(squared)).sqrt() * positive, positions)


@dataclass(frozen=True)
class Metric:
    """A named distance between patched and reference logits on the scored positions; calling it calls `fn`.

    Attributes:
        name: the metric's name, as records and the command line carry it (`kl`, `mse`, `l2`, an objective's name).
        fn: (logits, reference, positions) -> the distance, as `kl_divergence` takes and returns them.
    """

    name: str
    fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise InvalidMetricError(f"a Metric's name must be a non-empty string, got {self.name!r}")
        if not callable(self.fn):
            raise InvalidMetricError(
                f"Metric {self.name!r}: fn must be a function (logits, reference, positions) -> distance, got "
                f"{type(self.fn).__name__} {self.fn!r}"
            )

    def __call__(self, logits: torch.Tensor, reference: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return self.fn(logits, reference, positions)


class MetricsByName(dict):
    """A dict of metrics by name whose lookup of an unknown name raises UnknownMetricError listing the known ones."""

    def __missing__(self, name):
        import difflib

        close = difflib.get_close_matches(str(name), list(self), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UnknownMetricError(
            f"unknown metric {name!r}.{hint} Known metrics: {', '.join(self)}; for another distance pass "
            "Metric(name, fn) with fn(logits, reference, positions) -> distance"
        )


METRICS = MetricsByName(
    kl=Metric("kl", kl_divergence),
    mse=Metric("mse", mean_squared_error),
    l2=Metric("l2", l2_distance),
)
