"""Residual-stream compression: a learned linear map W [d_model, d_compressed] folded into a transformer's weights, so
the compressed model keeps its computation in fewer dimensions than it has features (superposition on purpose).

As in tracr's CompressedTransformer (Lindner et al. 2023, section 5) the residual stream is x W, and every reader sees
x W W^T: embeddings and every writer's output weights are multiplied by W, every reader's input weights and the
unembedding by W^T. Only W is trained, on the model's own outputs and its residual stream after every layer, so each
labelled direction of the original keeps a direction (a row of W) in the compressed one, no longer orthogonal to the
others.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch.func import functional_call
from tqdm.auto import tqdm

from edgewise.errors import InvalidHyperparameterError, UnsupportedArchitectureError
from edgewise.models import Transformer


@dataclass(frozen=True)
class CompressionConfig:
    """How W is trained; the defaults compress tracr-reverse 41 -> 16 dimensions with every output kept.

    Attributes:
        d_compressed: the compressed residual stream's width, in [1, d_model).
        steps: Adam steps with cosine decay; the loss has flattened by then on the compressed tracr tasks.
        lr: the learning rate; W's entries are O(1 / sqrt(d)): large steps are fine early, the decay settles them.
        residual_weight: the weight of the per-layer residual reconstruction against the output loss.
        separation_weight: the weight of the interference penalty on what must stay apart (`apart` of
            `compress_residual`): 0.01 keeps tracr-reverse's compiled circuit faithful under resample ablation with
            every output kept; 1.0 costs outputs (33% kept).
        seed: W starts as d_compressed orthonormal columns drawn from this seed.
    """

    d_compressed: int
    steps: int = 3000
    lr: float = 1e-2
    residual_weight: float = 1.0
    separation_weight: float = 0.01
    seed: int = 0


@dataclass
class CompressedModel:
    """A compressed transformer, its projection (residual x -> x @ projection) and the training loss per step.

    Attributes:
        model: the compressed transformer (d_model = d_compressed), W folded into its weights.
        projection: W, the trained projection [d_model, d_compressed].
        losses: the training loss at each step.
    """

    model: Transformer
    projection: torch.Tensor
    losses: list[float] = field(default_factory=list)


def folded_state(model: Transformer, projection: torch.Tensor) -> dict[str, torch.Tensor]:
    """Returns the state dict of `model` compressed by `projection` [d_model, d_compressed]: writers' weights times
    W, readers' weights times W^T (differentiable in W).

    Args:
        model: the transformer to compress (without normalisation: the fold does not commute with LayerNorm).
        projection: W [d_model, d_compressed].

    Returns:
        The compressed state dict: `W_E`, `W_pos`, every writer's output weights and biases (`W_O`, `b_O`, `W_out`,
            `b_out`) times W; `W_Q`, `W_K`, `W_V`, `W_in` and `W_U` through W^T; the other entries as in `model`,
            detached.
    """
    w = projection
    state = {k: v.detach() for k, v in model.state_dict().items()}
    state["W_E"], state["W_pos"], state["W_U"] = state["W_E"] @ w, state["W_pos"] @ w, w.T @ state["W_U"]
    for layer in range(model.cfg.n_layers):
        attn, mlp = f"blocks.{layer}.attn.", f"blocks.{layer}.mlp."
        for reader in ("W_Q", "W_K", "W_V"):
            state[attn + reader] = torch.einsum("dc,hde->hce", w, state[attn + reader])
        for writer in (attn + "W_O", attn + "b_O", mlp + "W_out", mlp + "b_out"):
            state[writer] = state[writer] @ w
        state[mlp + "W_in"] = w.T @ state[mlp + "W_in"]
    return state


def compress_residual(
    model: Transformer,
    tokens: torch.Tensor,
    scored: torch.Tensor,
    config: CompressionConfig,
    apart: Sequence[tuple[torch.Tensor, torch.Tensor]] = (),
    progress: bool = False,
) -> CompressedModel:
    """Returns `model` with its residual stream compressed to `config.d_compressed` dimensions, W trained so the
    compressed model's outputs at the `scored` positions [batch, pos] and its residual stream after every layer
    (read back through W^T) match the original's on `tokens` [batch, pos] (mean squared error).

    `apart` holds (directions, reader weights) pairs: residual dimensions [n] and a reader's input weights
    [d_model, k] that see nothing of them in the original; the compressed stream lets them see |e_i W W^T R|, and
    that interference (the change it makes to the reader's pre-activations, per unit of the direction) is
    penalised, so what never reached a reader does not reach it after compression either (a circuit of the
    original stays a circuit of the compressed model).

    Args:
        model: the transformer to compress; without normalisation.
        tokens: the training inputs [batch, pos].
        scored: a boolean mask [batch, pos] of the positions whose outputs are matched.
        config: how W is trained.
        apart: (directions, reader weights) pairs whose interference is penalised; empty: no penalty.
        progress: show a progress bar over the training steps.

    Returns:
        The compressed model (in eval mode), the trained projection and the loss per step.

    Raises:
        UnsupportedArchitectureError: `model` has normalisation layers.
        InvalidHyperparameterError: `config.d_compressed` is not in [1, d_model).
    """
    cfg = model.cfg
    if cfg.normalization:
        raise UnsupportedArchitectureError(
            "residual compression folds W into the weights, which LayerNorm does not commute with; compress models "
            "without normalisation (tracr's)"
        )
    if not 0 < config.d_compressed < cfg.d_model:
        raise InvalidHyperparameterError(
            f"d_compressed must lie in [1, {cfg.d_model}) to compress a d_model="
            f"{cfg.d_model} residual stream; got {config.d_compressed}"
        )
    compressed = Transformer(dataclasses.replace(cfg, d_model=config.d_compressed)).eval()
    hooks = [f"blocks.{layer}.hook_resid_post" for layer in range(cfg.n_layers)]
    with torch.no_grad():
        target, cache = model.run_with_cache(tokens, names_filter=lambda name: name in hooks)
    generator = torch.Generator().manual_seed(config.seed)
    start = torch.linalg.qr(torch.randn(cfg.d_model, cfg.d_model, generator=generator))[0][:, : config.d_compressed]
    projection = torch.nn.Parameter(start)
    optimiser = torch.optim.Adam([projection], lr=config.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, config.steps)
    losses = []
    residuals: dict[str, torch.Tensor] = {}  # each step's residual stream after every layer, overwritten per step
    saves = [(name, lambda value, hook: residuals.__setitem__(hook.name, value)) for name in hooks]
    for _ in tqdm(
        range(config.steps),
        disable=not progress,
        desc=f"compressing {cfg.d_model} -> {config.d_compressed} dimensions",
        leave=False,
    ):
        with compressed.hooks(fwd_hooks=saves):
            logits = functional_call(compressed, folded_state(model, projection), (tokens,))
        output_loss = (logits - target).pow(2)[scored].mean()
        residual_loss = sum((residuals[h] @ projection.T - cache[h]).pow(2).mean() for h in hooks) / len(hooks)
        loss = output_loss + config.residual_weight * residual_loss
        if apart:
            overlap = projection @ projection.T  # [d_model, d_model]: what a reader sees of each direction
            leak = sum((overlap[rows] @ reader).pow(2).sum() for rows, reader in apart)
            loss = loss + config.separation_weight * leak / len(apart)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        losses.append(loss.item())
    projection = projection.detach()
    with torch.no_grad():
        compressed.load_state_dict(folded_state(model, projection))
    return CompressedModel(compressed, projection, losses)
