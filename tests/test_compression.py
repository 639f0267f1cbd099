"""Residual-stream compression: folded weights against a hand-written hook patch of the original model, and the
compressed tracr tasks against RASP's own evaluation and the compiled model's labelled directions."""

import pytest
import torch
from conftest import random_transformer, tracr

from edgewise.errors import InvalidHyperparameterError, UnsupportedArchitectureError
from edgewise.models.compression import CompressionConfig, compress_residual, folded_state
from edgewise.models.transformer import Transformer


@torch.no_grad()
def test_folded_model_is_the_original_reading_a_projected_stream():
    """Compressed by W, a model computes what the original computes when every reader sees P x, P = W W^T: patch
    the original's q/k/v inputs, MLP inputs and final residual with P by hooks and compare."""
    model = random_transformer(normalization=False).double()  # float64: its large random logits amplify rounding
    projection = torch.randn(32, 12, generator=torch.Generator().manual_seed(3), dtype=torch.float64) / 12**0.5
    compressed = Transformer(type(model.cfg)(**{**model.cfg.to_dict(), "d_model": 12})).double().eval()
    compressed.load_state_dict(folded_state(model, projection))
    p = projection @ projection.T
    project = lambda value, hook: value @ p  # noqa: E731
    readers = [f"blocks.{layer}.{hook}" for layer in range(3) for hook in ("hook_q_input", "hook_k_input",
                                                                           "hook_v_input", "hook_mlp_in")]
    tokens = torch.randint(0, 20, (4, 9), generator=torch.Generator().manual_seed(0))
    with model.hooks(fwd_hooks=[(name, project) for name in readers + ["blocks.2.hook_resid_post"]]):
        expected = model(tokens)
    torch.testing.assert_close(compressed(tokens), expected, atol=1e-8, rtol=1e-8)


def test_compression_refuses_what_it_cannot_fold():
    tokens = torch.zeros(2, 3, dtype=torch.long)
    scored = torch.ones(2, 3, dtype=torch.bool)
    with pytest.raises(UnsupportedArchitectureError, match="LayerNorm"):
        compress_residual(random_transformer(), tokens, scored, CompressionConfig(8))
    with pytest.raises(InvalidHyperparameterError, match="d_compressed must lie in"):
        compress_residual(random_transformer(normalization=False), tokens, scored, CompressionConfig(32))
