"""Hard-concrete gates against closed forms derived here from the logistic CDF (Louizos et al. 2018, section 4)."""

import math

import pytest
import torch

from edgewise.methods import hard_concrete

# The published constants, typed in rather than imported, so the module's values are checked too.
BETA, GAMMA, ZETA = 2 / 3, -0.1, 1.1
N_SAMPLES = 200_000


def logistic_cdf(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def p_stretched_below(value: float, log_alpha: float) -> float:
    """P(s * (zeta - gamma) + gamma < value) for s = sigmoid((L + log_alpha) / beta), L ~ Logistic(0, 1)."""
    c = (value - GAMMA) / (ZETA - GAMMA)  # the s that maps to `value`
    return logistic_cdf(BETA * logit(c) - log_alpha)


def expected_gate(log_alpha: float, n: int = 400_000) -> float:
    """E[gate] by the midpoint rule over the uniform noise u."""
    u = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    s = torch.sigmoid((torch.log(u / (1 - u)) + log_alpha) / BETA)
    return (s * (ZETA - GAMMA) + GAMMA).clamp(0, 1).mean().item()


def test_published_constants():
    assert (hard_concrete.BETA, hard_concrete.GAMMA, hard_concrete.ZETA) == (BETA, GAMMA, ZETA)


@pytest.mark.parametrize("log_alpha", [-2.0, 0.0, math.log(5), 3.0])
def test_sampled_gates_match_the_closed_forms(log_alpha):
    gates = hard_concrete.sample_mask(
        torch.full((N_SAMPLES,), log_alpha, dtype=torch.float64), generator=torch.Generator().manual_seed(0)
    )[0]
    p_zero, p_one = p_stretched_below(0.0, log_alpha), 1 - p_stretched_below(1.0, log_alpha)
    tol = 4 * math.sqrt(0.25 / N_SAMPLES)  # four standard errors of a proportion, at worst
    assert (gates == 0).double().mean().item() == pytest.approx(p_zero, abs=tol)
    assert (gates == 1).double().mean().item() == pytest.approx(p_one, abs=tol)
    assert gates.mean().item() == pytest.approx(expected_gate(log_alpha), abs=tol)
    l0 = hard_concrete.expected_l0(torch.tensor(log_alpha, dtype=torch.float64)).item()
    assert l0 == pytest.approx(1 - p_zero, abs=1e-12)
    assert (gates > 0).double().mean().item() == pytest.approx(l0, abs=tol)


def test_gates_lie_in_the_unit_interval_and_carry_gradients():
    log_alpha = torch.linspace(-5, 5, 11, requires_grad=True)
    gates = hard_concrete.sample_mask(log_alpha, n_samples=50, generator=torch.Generator().manual_seed(1))
    assert gates.shape == (50, 11) and gates.min() >= 0 and gates.max() <= 1
    gates.sum().backward()
    assert (log_alpha.grad >= 0).all() and log_alpha.grad.sum() > 0  # a larger log_alpha opens a gate further


def test_deterministic_gate_and_its_threshold():
    log_alpha = torch.tensor([-10.0, hard_concrete.KEEP_THRESHOLD, math.log(5), 10.0], dtype=torch.float64)
    expected = [0.0, 0.5, 0.9, 1.0]  # sigmoid(log 5) = 5/6, stretched: 5/6 * 1.2 - 0.1 = 0.9
    assert hard_concrete.deterministic_mask(log_alpha).tolist() == pytest.approx(expected, abs=1e-12)
    assert hard_concrete.KEEP_THRESHOLD == pytest.approx(0.0, abs=1e-12)  # the stretch is symmetric about 1/2
    assert hard_concrete.log_alpha_for(0.9) == pytest.approx(math.log(5))  # ACDC's initialisation


def test_log_alpha_for_rejects_gates_outside_the_open_interval():
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        hard_concrete.log_alpha_for(1.0)
