"""Transformer: edgewise's own small decoder with TransformerLens hook names, for tracr and trained models.

Every head reads its own q, k and v input (a view of the residual stream, so patching one head's input never
touches another's), writes its own result, and every MLP reads `hook_mlp_in`: these are the readers and writers
of the edge graph. Grouped-query attention is native: k and v inputs exist once per key-value head. An attention-only
model (`attn_only`) has no MLP blocks, so its graph has no MLP nodes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

import torch
from torch import nn
from transformer_lens import HookedRootModule
from transformer_lens.hook_points import HookPoint

from ..errors import InvalidTokensError


@dataclass(frozen=True)
class TransformerConfig:
    """Shape and options of a Transformer; serialisable with `asdict`.

    Attributes:
        n_layers: number of blocks.
        d_model: width of the residual stream.
        n_heads: attention (query) heads per block.
        d_head: width of a head's queries, keys and values.
        d_mlp: width of the MLP's hidden layer.
        d_vocab: number of input token ids.
        d_vocab_out: number of logits per position.
        n_ctx: the longest sequence the position embedding covers.
        n_key_value_heads: key-value heads per block, for grouped-query attention (dividing n_heads); None: one k/v
            per query head.
        normalization: LayerNorm before attention, MLP and unembedding.
        attention_dir: `causal` (a query sees only earlier keys) or `bidirectional`.
        act_fn: the MLP's activation, `relu` or `gelu`.
        pad_token_id: keys holding this token are masked out of attention; None: no padding.
        attn_only: no MLP blocks (d_mlp is then unused): a trained induction model's shape.
    """

    n_layers: int
    d_model: int
    n_heads: int
    d_head: int
    d_mlp: int
    d_vocab: int
    d_vocab_out: int
    n_ctx: int
    n_key_value_heads: int | None = None
    normalization: bool = False
    attention_dir: Literal["causal", "bidirectional"] = "causal"
    act_fn: Literal["relu", "gelu"] = "relu"
    pad_token_id: int | None = None
    attn_only: bool = False

    @property
    def n_kv_heads(self) -> int:
        """Returns the number of key-value heads per block: n_key_value_heads, or n_heads when that is None."""
        return self.n_key_value_heads or self.n_heads

    def to_dict(self) -> dict:
        """Returns the config's fields by name (`dataclasses.asdict`)."""
        return asdict(self)


class LayerNorm(nn.Module):
    """LayerNorm over the last axis, with a hook on the normalisation scale as TransformerLens has."""

    def __init__(self, d_model: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.w = nn.Parameter(torch.ones(d_model))
        self.b = nn.Parameter(torch.zeros(d_model))
        self.hook_scale = HookPoint()
        self.hook_normalized = HookPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x - x.mean(-1, keepdim=True)
        scale = self.hook_scale((x.pow(2).mean(-1, keepdim=True) + self.eps).sqrt())
        return self.hook_normalized(x / scale) * self.w + self.b


class _ShortSoftmax(torch.autograd.Function):
    """Softmax over a short last axis from plain vectorised ops. torch's CPU kernel runs a slow per-row loop when
    the axis is shorter than its vector width (tracr's 5-6 positions: 3-4x slower than these ops, and the largest
    single cost of a tracr model's forward); from 16 on torch's kernel is faster."""

    @staticmethod
    def forward(ctx, scores: torch.Tensor) -> torch.Tensor:
        exp = (scores - scores.amax(-1, keepdim=True)).exp_()
        pattern = exp.div_(exp.sum(-1, keepdim=True))
        ctx.save_for_backward(pattern)
        return pattern

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (pattern,) = ctx.saved_tensors
        weighted = grad * pattern
        return weighted - pattern * weighted.sum(-1, keepdim=True)


def softmax(scores: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis, by the faster route for its length and device."""
    if scores.device.type == "cpu" and scores.shape[-1] < 16:
        return _ShortSoftmax.apply(scores)
    return scores.softmax(-1)


def per_head(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Returns each head's own projection x[:, :, h] @ weight[h]: [batch, pos, head, d_out] from x [batch, pos, head,
    d_in] and weight [head, d_in, d_out]. One batched product over heads with views around it: on tracr-sized models
    einsum's general route, whose permutes and reshapes are ops of their own, took about 30% longer."""
    b, p, h, d = x.shape
    return torch.bmm(x.reshape(b * p, h, d).transpose(0, 1), weight).transpose(0, 1).reshape(b, p, h, weight.shape[-1])


class Attention(nn.Module):
    """Multi-head attention whose inputs arrive already split per head: [batch, pos, head, d_model]."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.cfg = cfg
        h, kv, d, dh = cfg.n_heads, cfg.n_kv_heads, cfg.d_model, cfg.d_head
        self.W_Q = nn.Parameter(torch.empty(h, d, dh))
        self.W_K = nn.Parameter(torch.empty(kv, d, dh))
        self.W_V = nn.Parameter(torch.empty(kv, d, dh))
        self.W_O = nn.Parameter(torch.empty(h, dh, d))
        self.b_Q = nn.Parameter(torch.zeros(h, dh))
        self.b_K = nn.Parameter(torch.zeros(kv, dh))
        self.b_V = nn.Parameter(torch.zeros(kv, dh))
        self.b_O = nn.Parameter(torch.zeros(d))
        self.hook_q = HookPoint()
        self.hook_k = HookPoint()
        self.hook_v = HookPoint()
        self.hook_attn_scores = HookPoint()
        self.hook_pattern = HookPoint()
        self.hook_z = HookPoint()
        self.hook_result = HookPoint()

    def forward(
        self, q_in: torch.Tensor, k_in: torch.Tensor, v_in: torch.Tensor, key_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        q = self.hook_q(per_head(q_in, self.W_Q) + self.b_Q)  # [batch, pos, head, d_head]
        k = self.hook_k(per_head(k_in, self.W_K) + self.b_K)
        v = self.hook_v(per_head(v_in, self.W_V) + self.b_V)
        group = self.cfg.n_heads // self.cfg.n_kv_heads
        if group > 1:
            k = k.repeat_interleave(group, dim=2)
            v = v.repeat_interleave(group, dim=2)
        scores = q.transpose(1, 2) @ k.permute(0, 2, 3, 1) / math.sqrt(self.cfg.d_head)  # [batch, head, q, k]
        if self.cfg.attention_dir == "causal":
            n = scores.shape[-1]
            future = torch.triu(torch.ones(n, n, dtype=torch.bool, device=scores.device), 1)
            scores = scores.masked_fill(future, float("-inf"))
        if key_mask is not None:  # [batch, key_pos]: False at padding
            scores = scores.masked_fill(~key_mask[:, None, None, :], -1e30)
        scores = self.hook_attn_scores(scores)
        pattern = self.hook_pattern(softmax(scores))
        z = self.hook_z((pattern @ v.transpose(1, 2)).transpose(1, 2))  # [batch, pos, head, d_head]
        # Per-head results [batch, pos, head, d_model]: the head's own write to the residual stream.
        result = self.hook_result(per_head(z, self.W_O))
        return result.sum(2) + self.b_O


class MLP(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.W_in = nn.Parameter(torch.empty(cfg.d_model, cfg.d_mlp))
        self.b_in = nn.Parameter(torch.zeros(cfg.d_mlp))
        self.W_out = nn.Parameter(torch.empty(cfg.d_mlp, cfg.d_model))
        self.b_out = nn.Parameter(torch.zeros(cfg.d_model))
        self.act = nn.ReLU() if cfg.act_fn == "relu" else nn.GELU()
        self.hook_pre = HookPoint()
        self.hook_post = HookPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.hook_post(self.act(self.hook_pre(x @ self.W_in + self.b_in)))
        return hidden @ self.W_out + self.b_out


class Block(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.cfg = cfg
        self.ln1 = LayerNorm(cfg.d_model) if cfg.normalization else nn.Identity()
        self.ln2 = LayerNorm(cfg.d_model) if cfg.normalization and not cfg.attn_only else nn.Identity()
        self.attn = Attention(cfg)
        self.mlp = None if cfg.attn_only else MLP(cfg)
        self.hook_resid_pre = HookPoint()
        self.hook_q_input = HookPoint()
        self.hook_k_input = HookPoint()
        self.hook_v_input = HookPoint()
        self.hook_attn_out = HookPoint()
        self.hook_resid_mid = HookPoint()
        self.hook_mlp_in = HookPoint()
        self.hook_mlp_out = HookPoint()
        self.hook_resid_post = HookPoint()

    def forward(self, resid: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        resid = self.hook_resid_pre(resid)
        b, p, d = resid.shape
        # Views, not copies: a head's input is materialised only when a hook replaces it.
        q_in = self.hook_q_input(resid.unsqueeze(2).expand(b, p, self.cfg.n_heads, d))
        k_in = self.hook_k_input(resid.unsqueeze(2).expand(b, p, self.cfg.n_kv_heads, d))
        v_in = self.hook_v_input(resid.unsqueeze(2).expand(b, p, self.cfg.n_kv_heads, d))
        attn_out = self.hook_attn_out(self.attn(self.ln1(q_in), self.ln1(k_in), self.ln1(v_in), key_mask))
        resid = self.hook_resid_mid(resid + attn_out)
        if self.mlp is not None:
            resid = resid + self.hook_mlp_out(self.mlp(self.ln2(self.hook_mlp_in(resid))))
        return self.hook_resid_post(resid)


def check_tokens(tokens: torch.Tensor, d_vocab: int, n_ctx: int) -> None:
    """Raises InvalidTokensError unless `tokens` are integer ids [batch, pos] in [0, d_vocab) with pos <= n_ctx."""
    if not isinstance(tokens, torch.Tensor) or tokens.dim() != 2 or tokens.is_floating_point():
        shape = tuple(tokens.shape) if isinstance(tokens, torch.Tensor) else type(tokens).__name__
        raise InvalidTokensError(
            f"tokens must be an integer tensor [batch, pos]; got {shape} (add a batch axis with "
            "tokens[None] for one sequence)"
        )
    if tokens.shape[1] > n_ctx:
        raise InvalidTokensError(f"sequence length {tokens.shape[1]} exceeds the model's n_ctx={n_ctx}")
    if tokens.numel() and (tokens.min() < 0 or tokens.max() >= d_vocab):
        raise InvalidTokensError(
            f"token ids must lie in [0, {d_vocab}); got {tokens.min().item()}..{tokens.max().item()}"
        )


class Transformer(HookedRootModule):
    """A decoder-only transformer: tokens [batch, pos] -> logits [batch, pos, d_vocab_out].

    Built with weights from `init_weights()` (seed 0) and its hook points set up; load or copy trained weights in.

    Args:
        cfg: the model's shape and options.
    """

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.cfg = cfg
        self.W_E = nn.Parameter(torch.empty(cfg.d_vocab, cfg.d_model))
        self.W_pos = nn.Parameter(torch.empty(cfg.n_ctx, cfg.d_model))
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_final = LayerNorm(cfg.d_model) if cfg.normalization else nn.Identity()
        self.W_U = nn.Parameter(torch.empty(cfg.d_model, cfg.d_vocab_out))
        self.b_U = nn.Parameter(torch.zeros(cfg.d_vocab_out))
        self.hook_embed = HookPoint()
        self.hook_pos_embed = HookPoint()
        self.init_weights()
        self.setup()

    def init_weights(self, seed: int = 0, std: float = 0.02) -> None:
        """Fills every weight matrix with N(0, std^2); biases stay zero and LayerNorm scales one.

        Args:
            seed: seeds the generator the weights are drawn from, so the same seed gives the same weights.
            std: the standard deviation of the weights.
        """
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, param in self.named_parameters():
                if name.split(".")[-1].startswith("W"):
                    param.copy_(torch.randn(param.shape, generator=generator) * std)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Returns the logits [batch, pos, d_vocab_out] of token ids [batch, pos].

        Args:
            tokens: integer token ids [batch, pos] in [0, d_vocab), with pos <= n_ctx.

        Returns:
            The logits [batch, pos, d_vocab_out].

        Raises:
            InvalidTokensError: the tokens are not integer ids [batch, pos] in range, or the sequence is longer than
                n_ctx.
        """
        check_tokens(tokens, self.cfg.d_vocab, self.cfg.n_ctx)
        positions = torch.arange(tokens.shape[-1], device=tokens.device)
        pos_embed = self.W_pos[positions].expand(tokens.shape[0], -1, -1)
        resid = self.hook_embed(self.W_E[tokens]) + self.hook_pos_embed(pos_embed)
        key_mask = None if self.cfg.pad_token_id is None else tokens != self.cfg.pad_token_id
        for block in self.blocks:
            resid = block(resid, key_mask)
        return self.ln_final(resid) @ self.W_U + self.b_U
