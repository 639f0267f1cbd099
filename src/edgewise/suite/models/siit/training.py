"""Strict interchange-intervention training (SIIT; Gupta et al. 2024, the `iit` library's StrictIITModelPair): each
step draws (base, source) input pairs and sums three losses of the low-level model, all towards the fixed high-level
model's outputs on the base inputs' scored positions:

    behaviour  low(base)                                         -> high(base)
    IIT        low(base, aligned node <- its value on source)    -> high(base, its high-level node <- value on source)
    strict     low(base, every non-aligned node <- on source)    -> high(base)

one aligned node drawn per step for IIT, as the library does. Categorical outputs are matched by cross-entropy to
the high-level argmax, numerical ones by squared error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from edgewise.models import Transformer

from .alignment import Alignment
from .interventions import intervened_logits, writer_outputs


@dataclass(frozen=True)
class SiitConfig:
    """Training settings; the defaults train a one-layer program in about a minute on one CPU thread.

    Attributes:
        seed: seeds the initial weights, the input pairs and the nodes intervened on.
        steps: training steps; the losses of the one-layer programs stop falling by then (docs/siit.md).
        batch_size: (base, source) pairs per step.
        learning_rate: Adam's peak rate, decayed to 0 by a cosine so the weights settle.
        init_std: the standard deviation of the random initial weights: 0.02 (GPT-2's) trains these small models
            slowly.
        behaviour_weight: the behaviour loss's weight (the three weights are the iit library's defaults).
        iit_weight: the IIT loss's weight.
        strict_weight: the strict loss's weight.
        strict_through_sources: the strict loss's gradient also reaches the non-aligned nodes through their outputs
            on the source inputs, so it can teach them to carry nothing: without it a program deeper than one layer
            did not train (docs/siit.md).
    """

    seed: int = 0
    steps: int = 1000
    batch_size: int = 64
    learning_rate: float = 3e-3
    init_std: float = 0.1
    behaviour_weight: float = 1.0
    iit_weight: float = 1.0
    strict_weight: float = 1.0
    strict_through_sources: bool = False


def output_loss(low: torch.Tensor, high: torch.Tensor, scored: torch.Tensor, categorical: bool) -> torch.Tensor:
    """Returns the loss of low-level logits [batch, pos, out] towards high-level ones on the scored positions:
    cross-entropy to the high-level argmax, or (numerical) the mean squared error.

    Args:
        low: the low-level logits [batch, pos, out].
        high: the high-level logits [batch, pos, out].
        scored: the positions that count [batch, pos].
        categorical: cross-entropy to the argmax; False: mean squared error.

    Returns:
        The loss, a scalar.
    """
    if categorical:
        return F.cross_entropy(low[scored], high[scored].argmax(-1))
    return (low[scored] - high[scored]).pow(2).mean()


def siit_losses(
    high: Transformer,
    low: Transformer,
    alignment: Alignment,
    base: torch.Tensor,
    source: torch.Tensor,
    scored: torch.Tensor,
    categorical: bool,
    node: int,
    strict_through_sources: bool = False,
) -> dict[str, torch.Tensor]:
    """Returns the behaviour, IIT (on aligned pair `node`) and strict losses of one batch of (base, source) tokens
    [batch, pos], scored on the base inputs' `scored` positions [batch, pos]; `strict_through_sources`: as in
    SiitConfig.

    Args:
        high: the high-level model (not trained).
        low: the low-level model being trained.
        alignment: which low-level node implements each high-level one.
        base: the base inputs [batch, pos].
        source: the source inputs [batch, pos].
        scored: the base inputs' positions that count [batch, pos].
        categorical: outputs are categorical (cross-entropy); False: numerical (squared error).
        node: the index into `alignment.pairs` of the pair the IIT loss intervenes on.
        strict_through_sources: let the strict loss's gradient reach the non-aligned nodes' source outputs.

    Returns:
        The losses by name: `behaviour`, `iit`, `strict`, each a scalar.
    """
    high_node, low_node = alignment.pairs[node]
    non_aligned = alignment.non_aligned(low.cfg)
    low_sources = writer_outputs(low, source, [low_node, *non_aligned], grad=strict_through_sources)
    low_sources[low_node] = low_sources[low_node].detach()  # IIT trains the base run only
    with torch.no_grad():
        high_base = high(base)
        high_source = writer_outputs(high, source, [high_node])
        high_intervened = intervened_logits(high, base, high_source)
    low_intervened = intervened_logits(low, base, {low_node: low_sources[low_node]})
    low_strict = intervened_logits(low, base, {n: low_sources[n] for n in non_aligned})
    return {
        "behaviour": output_loss(low(base), high_base, scored, categorical),
        "iit": output_loss(low_intervened, high_intervened, scored, categorical),
        "strict": output_loss(low_strict, high_base, scored, categorical),
    }


def train_siit(
    high: Transformer,
    low: Transformer,
    alignment: Alignment,
    tokens: torch.Tensor,
    scored: torch.Tensor,
    categorical: bool,
    cfg: SiitConfig,
    log_every: int = 250,
) -> Transformer:
    """Returns `low` trained by SIIT towards `high` on input pairs drawn from `tokens` [n, pos] (`scored` [n, pos]:
    the positions whose outputs count), from random weights of `cfg.init_std`; in eval mode. Prints the losses
    every `log_every` steps and at the last.

    Args:
        high: the high-level model (not trained).
        low: the low-level model; its weights are reinitialised.
        alignment: which low-level node implements each high-level one.
        tokens: the inputs the pairs are drawn from [n, pos].
        scored: the positions whose outputs count [n, pos].
        categorical: outputs are categorical (cross-entropy); False: numerical (squared error).
        cfg: the training settings.
        log_every: print the losses every this many steps.

    Returns:
        `low`, trained, in eval mode.
    """
    low.init_weights(cfg.seed, cfg.init_std)
    low.train()
    optimiser = torch.optim.Adam(low.parameters(), lr=cfg.learning_rate)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: 0.5 * (1 + math.cos(math.pi * step / cfg.steps))
    )
    generator = torch.Generator().manual_seed(cfg.seed)
    weights = {"behaviour": cfg.behaviour_weight, "iit": cfg.iit_weight, "strict": cfg.strict_weight}
    for step in range(cfg.steps):
        base, source = torch.randint(tokens.shape[0], (2, cfg.batch_size), generator=generator)
        node = int(torch.randint(len(alignment.pairs), (), generator=generator))
        losses = siit_losses(
            high,
            low,
            alignment,
            tokens[base],
            tokens[source],
            scored[base],
            categorical,
            node,
            cfg.strict_through_sources,
        )
        loss = sum(weights[name] * value for name, value in losses.items())
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        if step % log_every == 0 or step == cfg.steps - 1:
            parts = "  ".join(f"{name} {value.item():.4f}" for name, value in losses.items())
            print(f"step {step:5d}  {parts}", flush=True)
    return low.eval()
