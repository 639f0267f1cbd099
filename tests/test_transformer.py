"""The edgewise Transformer against hand-written computations of the same architecture."""

import math

import torch
from conftest import random_transformer


def _manual_forward(model, tokens):
    """A from-scratch forward reading the weights directly (no hooks, no shared code with Transformer)."""
    cfg = model.cfg

    def ln(x, mod):
        if not cfg.normalization:
            return x
        x = x - x.mean(-1, keepdim=True)
        return x / (x.pow(2).mean(-1, keepdim=True) + 1e-5).sqrt() * mod.w + mod.b

    resid = model.W_E[tokens] + model.W_pos[: tokens.shape[1]]
    n = tokens.shape[1]
    for block in model.blocks:
        a = block.attn
        x = ln(resid, block.ln1)
        out = torch.zeros_like(resid) + a.b_O
        for h in range(cfg.n_heads):
            kv = h // (cfg.n_heads // cfg.n_kv_heads)
            q = x @ a.W_Q[h] + a.b_Q[h]
            k = x @ a.W_K[kv] + a.b_K[kv]
            v = x @ a.W_V[kv] + a.b_V[kv]
            scores = q @ k.transpose(-1, -2) / math.sqrt(cfg.d_head)
            scores = scores.masked_fill(torch.triu(torch.ones(n, n, dtype=torch.bool), 1), float("-inf"))
            out = out + scores.softmax(-1) @ v @ a.W_O[h]
        resid = resid + out
        x = ln(resid, block.ln2)
        resid = (
            resid + torch.nn.functional.gelu(x @ block.mlp.W_in + block.mlp.b_in) @ block.mlp.W_out + block.mlp.b_out
        )
    return ln(resid, model.ln_final) @ model.W_U + model.b_U


@torch.no_grad()
def test_forward_matches_manual_computation(random_model, random_batches):
    clean, _ = random_batches
    assert torch.allclose(random_model(clean), _manual_forward(random_model, clean), atol=1e-5)


@torch.no_grad()
def test_forward_without_gqa_or_layernorm_matches_manual_computation(random_batches):
    model = random_transformer(seed=3, n_kv_heads=None, normalization=False)
    clean, _ = random_batches
    ours, manual = model(clean), _manual_forward(model, clean)
    assert (ours - manual).abs().max() <= 1e-5 * manual.abs().max()  # without LayerNorm the logits reach 1e3


@torch.no_grad()
def test_per_head_results_sum_to_attention_output(random_model, random_batches):
    clean, _ = random_batches
    _, cache = random_model.run_with_cache(clean)
    for layer, block in enumerate(random_model.blocks):
        total = cache[f"blocks.{layer}.attn.hook_result"].sum(2) + block.attn.b_O
        assert torch.allclose(total, cache[f"blocks.{layer}.hook_attn_out"], atol=1e-6)


@torch.no_grad()
def test_padding_is_masked_out_of_attention(reverse):
    """A padded row gives the same outputs on its real positions as the unpadded row."""
    compiled = reverse.family.compiled
    short = compiled.encode([[1, 2, 3]])
    padded = compiled.encode([[1, 2, 3], [1, 2, 3, 1, 2]])[:1]
    assert padded.shape[1] == 6 and (padded[0, 4:] == compiled.pad_id).all()
    assert torch.allclose(compiled.model(padded)[:, :4], compiled.model(short), atol=1e-6)


def test_short_softmax_matches_torch_values_and_gradients():
    """The vectorised softmax for short rows (torch's own above 16) against torch.softmax, with causal -inf and
    padding -1e30 entries, in float64: values, first and second derivatives."""
    from edgewise.models.transformer import softmax

    generator = torch.Generator().manual_seed(0)
    for n in (1, 5, 6, 15, 16, 40):
        scores = torch.randn(3, 2, n, n, dtype=torch.float64, generator=generator)
        scores = scores.masked_fill(torch.triu(torch.ones(n, n, dtype=torch.bool), 1), float("-inf"))
        scores[0, 0, :, 0] = -1e30
        scores.requires_grad_(True)
        ours, theirs = softmax(scores), scores.softmax(-1)
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-15)
        weights = torch.randn(ours.shape, dtype=torch.float64, generator=generator)
        (ours_grad,) = torch.autograd.grad((ours * weights).sum(), scores, create_graph=True)
        (theirs_grad,) = torch.autograd.grad((theirs * weights).sum(), scores, create_graph=True)
        torch.testing.assert_close(ours_grad, theirs_grad, rtol=0, atol=1e-14)
        (ours_second,) = torch.autograd.grad(ours_grad.pow(2).sum(), scores)
        (theirs_second,) = torch.autograd.grad(theirs_grad.pow(2).sum(), scores)
        torch.testing.assert_close(ours_second, theirs_second, rtol=0, atol=1e-12)
