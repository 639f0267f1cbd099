"""Trains the 2-layer attention-only induction model on repeated random segments and writes the committed weights
and their record.

    OMP_NUM_THREADS=1 python scripts/train_induction.py              # induction.pt: one head per role
    OMP_NUM_THREADS=1 python scripts/train_induction.py --redundant  # induction_redundant.pt: two heads per role

Deterministic by seed on one CPU thread. Every step draws a fresh batch of repeated-segment sequences
(edgewise.suite.tasks.trained.sequences); the loss is the cross-entropy of the next token at the predictable positions
of the repeat only, so the model is trained on nothing but in-context copying, plus (once the copying circuit has
formed) a group-lasso penalty on each head's value and output weights. Without the penalty two heads share each role
(two previous-token heads feeding two induction heads); with it the heads that merely share a role fade to zero, so one
head per layer does each job and the circuit is unique (docs/induction.md). `--redundant` drops the penalty and instead
zeroes one head of each layer in half the sequences (head dropout), so that either head of a layer does its job alone:
each role gets a working backup. Writes src/edgewise/suite/models/weights/induction.pt (or induction_redundant.pt) and,
beside it, a .json record: config, training settings, and the measured accuracy on held-out sequences (drawn from
another seed) and on unrepeated ones.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass
from typing import Callable

import torch

from edgewise.models.transformer import Transformer, TransformerConfig
from edgewise.suite.models.induction import REDUNDANT_WEIGHTS_PATH, WEIGHTS_PATH, save_induction
from edgewise.suite.tasks.trained.induction import copying_accuracy
from edgewise.suite.tasks.trained.sequences import (
    N_TOKENS,
    SEQUENCE_LENGTH,
    next_tokens,
    repeated_segments,
    unrepeated_sequences,
)

MODEL = TransformerConfig(
    n_layers=2,
    d_model=32,
    n_heads=2,
    d_head=16,
    d_mlp=0,
    d_vocab=N_TOKENS + 1,
    d_vocab_out=N_TOKENS,
    n_ctx=SEQUENCE_LENGTH,
    attn_only=True,
)


@dataclass(frozen=True)
class TrainConfig:
    """Training settings; each default keeps one CPU thread around a minute."""

    seed: int = 0  # seeds the initial weights and every batch drawn
    steps: int = 3000  # copying is learned by step ~500; the steps after penalty_start prune the shared heads
    batch_size: int = 64
    learning_rate: float = 3e-3  # AdamW's peak rate, decayed to 0 by a cosine so the final weights settle
    weight_decay: float = 1e-2  # AdamW's, on every weight
    head_penalty: float = 1e-2  # group lasso: the sum over heads of |W_V| + |W_O| (Frobenius), pruning shared heads
    penalty_start: int = 1000  # the circuit forms by then; a penalty from step 0 kills every head on the plateau
    head_dropout: float = 0.0  # per layer and sequence, the chance that one head (drawn uniformly) is zeroed
    init_std: float = 0.1  # GPT-2's 0.02 had not learned to copy after 1500 steps (accuracy 0.35)
    held_out_seed: int = 12345  # the sequences the record's accuracies are measured on; training draws from `seed`
    held_out_rows: int = 2048


# Two heads per role, each able to do it alone: without the penalty both heads of a layer learn its role, and zeroing
# one of them in half the sequences makes each learn it completely (independent dropout of each head, p = 0.3, also
# zeroes both in 9% of sequences, which nothing can predict, and gave a noisier loss)
REDUNDANT = TrainConfig(head_penalty=0.0, head_dropout=0.5)


def copying_loss(model: Transformer, tokens: torch.Tensor, answers: torch.Tensor) -> torch.Tensor:
    """Returns the next-token cross-entropy at the positions where `answers` [batch, pos] holds a token (not -1)."""
    logits = model(tokens)
    return torch.nn.functional.cross_entropy(logits[answers >= 0], answers[answers >= 0])


def head_norms(model: Transformer) -> torch.Tensor:
    """Returns [layer, head]: |W_V| + |W_O| of every head (Frobenius norms), the group-lasso penalty's terms."""
    return torch.stack(
        [block.attn.W_V.flatten(1).norm(dim=1) + block.attn.W_O.flatten(1).norm(dim=1) for block in model.blocks]
    )


def measure(model: Transformer, held_out_seed: int, rows: int) -> dict[str, float]:
    """Returns the argmax accuracy on the predictable positions of held-out repeated sequences, and on the same
    positions of unrepeated sequences (chance: nothing there can be copied)."""
    generator = torch.Generator().manual_seed(held_out_seed)
    batch = repeated_segments(rows, generator)
    unrepeated = unrepeated_sequences(rows, generator)
    return {
        "held_out_accuracy": copying_accuracy(model, batch.tokens, batch.answers, batch.predictable),
        "unrepeated_accuracy": copying_accuracy(model, unrepeated, next_tokens(unrepeated), batch.predictable),
    }


def head_dropout_hooks(rows: int, p: float, generator: torch.Generator) -> list[tuple[str, Callable]]:
    """Returns hooks that, in each of `rows` sequences and in each layer, zero one head's output (drawn uniformly)
    with probability `p`: either head of a layer must then do the layer's job alone."""
    hooks = []
    for layer in range(MODEL.n_layers):
        dropped = torch.rand(rows, generator=generator) < p
        head = torch.randint(MODEL.n_heads, (rows,), generator=generator)
        keep = torch.ones(rows, 1, MODEL.n_heads, 1)  # [batch, pos, head, d_model], broadcast over pos and d_model
        keep[dropped, 0, head[dropped], 0] = 0
        hooks.append((f"blocks.{layer}.attn.hook_result", lambda result, hook, keep=keep: result * keep))
    return hooks


@torch.no_grad()
def ov_norms(model: Transformer) -> dict[str, float]:
    """Returns |W_V W_O| (Frobenius) of every head by name: how much a head can write at all (a pruned head: ~0)."""
    return {
        f"A{layer}.{head}": float(f"{norm:.3g}")
        for layer, block in enumerate(model.blocks)
        for head, norm in enumerate(torch.linalg.matrix_norm(block.attn.W_V @ block.attn.W_O).tolist())
    }


def train(cfg: TrainConfig) -> Transformer:
    """Returns the induction model (MODEL's shape) trained by AdamW on fresh batches, in eval mode."""
    model = Transformer(MODEL)
    model.init_weights(seed=cfg.seed, std=cfg.init_std)
    model.train()
    optimiser = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: 0.5 * (1 + math.cos(math.pi * step / cfg.steps))
    )
    generator = torch.Generator().manual_seed(cfg.seed)
    for step in range(cfg.steps):
        batch = repeated_segments(cfg.batch_size, generator)
        dropout = head_dropout_hooks(cfg.batch_size, cfg.head_dropout, generator) if cfg.head_dropout else []
        with model.hooks(fwd_hooks=dropout):
            loss = copying_loss(model, batch.tokens, batch.answers)
        penalised = cfg.head_penalty and step >= cfg.penalty_start
        penalty = cfg.head_penalty * head_norms(model).sum() if penalised else torch.zeros(())
        optimiser.zero_grad()
        (loss + penalty).backward()
        optimiser.step()
        schedule.step()
        if step % 250 == 0 or step == cfg.steps - 1:
            print(f"step {step:5d}  loss {loss.item():.4f}  penalty {penalty.item():.4f}", flush=True)
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description="train the induction model and write its weights and record")
    parser.add_argument(
        "--redundant",
        action="store_true",
        help="train induction-redundant (two heads per role, head dropout) instead of induction",
    )
    redundant = parser.parse_args().redundant
    cfg, path = (REDUNDANT, REDUNDANT_WEIGHTS_PATH) if redundant else (TrainConfig(), WEIGHTS_PATH)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    start = time.perf_counter()
    model = train(cfg)
    seconds = time.perf_counter() - start
    measured = measure(model, cfg.held_out_seed, cfg.held_out_rows)
    save_induction(model, path)
    record = {
        "config": MODEL.to_dict(),
        **asdict(cfg),
        "train_seconds": round(seconds, 1),
        "measured": measured,
        "ov_norms": ov_norms(model),
    }
    path.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
