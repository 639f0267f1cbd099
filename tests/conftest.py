"""Shared fixtures: built-in tracr tasks (compiled once, then cached on disk) and a random LayerNorm model."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from edgewise.transformer import Transformer, TransformerConfig

_TASKS: dict = {}


def tracr(name: str):
    """Returns the built-in task `name`, built once per test session."""
    from edgewise.tracr_tasks import get_task  # imports tracr and jax: only for the tests that use tracr tasks

    if name not in _TASKS:
        _TASKS[name] = get_task(name)
    return _TASKS[name]


@pytest.fixture(scope="session")
def reverse():
    return tracr("tracr-reverse")


@pytest.fixture(scope="session")
def proportion():
    return tracr("tracr-proportion")


def random_transformer(seed: int = 0, n_kv_heads: int | None = 2, normalization: bool = True) -> Transformer:
    """Returns a randomly initialised 3-layer model with LayerNorm, 4 query heads and (by default) GQA."""
    cfg = TransformerConfig(
        n_layers=3, d_model=32, n_heads=4, d_head=8, d_mlp=64, d_vocab=20, d_vocab_out=20, n_ctx=12,
        n_key_value_heads=n_kv_heads, normalization=normalization, act_fn="gelu",
    )
    model = Transformer(cfg)
    model.init_weights(seed=seed, std=0.3)
    with torch.no_grad():  # non-zero biases, so "what no writer produced" is tested too
        g = torch.Generator().manual_seed(seed + 1)
        for name, p in model.named_parameters():
            if name.split(".")[-1].startswith("b"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return model.eval()


@pytest.fixture(scope="session")
def random_model():
    return random_transformer()


@pytest.fixture(scope="session")
def random_batches():
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 20, (5, 9), generator=g), torch.randint(0, 20, (5, 9), generator=g)


def run_edgewise(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """Runs the command line as a user would, in a fresh interpreter."""
    return subprocess.run([sys.executable, "-m", "edgewise.cli", *args], capture_output=True, text=True, timeout=timeout)
