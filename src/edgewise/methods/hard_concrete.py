"""The hard-concrete distribution (Louizos, Welling & Kingma 2018): stochastic gates in [0, 1] with mass at 0 and 1.

A gate with parameter log_alpha draws s = sigmoid((logit(u) + log_alpha) / beta), u ~ Uniform(0, 1), stretches it to
(gamma, zeta) and clamps it to [0, 1]. The stretch puts probability mass exactly on 0 and 1, and P(gate > 0) has a
closed form, so the expected number of open gates (the L0 norm) is differentiable in log_alpha. Subnetwork probing
and Edge Pruning both use the published constants below.
"""

from __future__ import annotations

import math

import torch

BETA = 2 / 3  # temperature: how close to binary a sample is
GAMMA = -0.1  # left end of the stretch interval (< 0, so a gate can be exactly 0)
ZETA = 1.1  # right end of the stretch interval (> 1, so a gate can be exactly 1)

_EPS = 1e-6  # keeps logit(u) finite


def sample_mask(log_alpha: torch.Tensor, n_samples: int = 1, generator: torch.Generator | None = None) -> torch.Tensor:
    """Returns hard-concrete gates [n_samples, *log_alpha.shape] in [0, 1], differentiable in log_alpha.

    Args:
        log_alpha: the gates' parameters, any shape.
        n_samples: independent draws of every gate.
        generator: the generator of the uniform noise (drawn on the CPU); None: torch's global one.

    Returns:
        The sampled gates [n_samples, *log_alpha.shape], on log_alpha's device and in its dtype.
    """
    u = torch.rand((n_samples, *log_alpha.shape), generator=generator, dtype=log_alpha.dtype)
    u = u.to(log_alpha.device).clamp(_EPS, 1 - _EPS)
    s = torch.sigmoid((torch.log(u) - torch.log1p(-u) + log_alpha) / BETA)
    return (s * (ZETA - GAMMA) + GAMMA).clamp(0.0, 1.0)


def deterministic_mask(log_alpha: torch.Tensor) -> torch.Tensor:
    """Returns the noise-free gates clamp(sigmoid(log_alpha) * (zeta - gamma) + gamma, 0, 1), shaped as log_alpha.

    Args:
        log_alpha: the gates' parameters, any shape.

    Returns:
        The gates, shaped as log_alpha.
    """
    return (torch.sigmoid(log_alpha) * (ZETA - GAMMA) + GAMMA).clamp(0.0, 1.0)


def expected_l0(log_alpha: torch.Tensor) -> torch.Tensor:
    """Returns P(gate > 0) = sigmoid(log_alpha - beta * log(-gamma / zeta)) per gate: the expected L0 norm's terms.

    Args:
        log_alpha: the gates' parameters, any shape.

    Returns:
        The probability that each gate is open, shaped as log_alpha; their sum is the expected L0 norm.
    """
    return torch.sigmoid(log_alpha - BETA * math.log(-GAMMA / ZETA))


def log_alpha_for(deterministic_value: float) -> float:
    """Returns the log_alpha whose deterministic gate equals `deterministic_value` (strictly between 0 and 1).

    ACDC's subnetwork probing starts every gate at 0.9, which is log_alpha = log 5.

    Args:
        deterministic_value: the gate value, strictly between 0 and 1.

    Returns:
        log_alpha such that `deterministic_mask(log_alpha)` is `deterministic_value`.

    Raises:
        ValueError: `deterministic_value` is not strictly between 0 and 1.
    """
    if not 0.0 < deterministic_value < 1.0:
        raise ValueError(f"a deterministic gate value must lie strictly between 0 and 1, got {deterministic_value}")
    p = (deterministic_value - GAMMA) / (ZETA - GAMMA)
    return math.log(p / (1 - p))


# The deterministic gate crosses 0.5 here (0 for the published, symmetric stretch): a gate is kept above it.
KEEP_THRESHOLD = log_alpha_for(0.5)
