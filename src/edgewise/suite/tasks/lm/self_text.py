"""SmolLM2-135M-Instruct on text it wrote itself: greedy continuations of hand-written neutral openings ("In the
kitchen,", "The old house stood", ...), scored by KL to the full model at every position after BOS. A retain task for
capability removal, built without any downloaded data.

What it measures: whether an intervened model still agrees with the full model on the full model's own greedy text,
i.e. its fluency and general next-token behaviour on ordinary English prose (accuracy, without `answers`, is the
share of positions where the top token is still the full model's). What it does not measure: knowledge, reasoning,
or any behaviour those few texts do not exercise; and greedy text is the model's most confident path, so it
is easier to keep than text a person wrote. Some continuations repeat themselves (a 135M model's greedy text loops),
so in-context copying is part of what is retained.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from edgewise.errors import InvalidHyperparameterError
from edgewise.tasks import METRICS, Task

from ...models import PretrainedModel, load_smollm2
from .prompts import PromptData, encode_equal_length, token_label

if TYPE_CHECKING:
    from transformer_lens import TransformerBridge

# Each opening is 4 tokens after BOS, so the batch grows without padding; none of their greedy continuations reaches
# an end-of-turn token within 24 tokens (openings whose continuation did, e.g. "The weather today is", are left out).
DISCOVERY_OPENINGS = (
    "In the kitchen,",
    "My favourite book is",
    "The old house stood",
    "Our garden has many",
    "The river flows past",
    "She opened the door",
    "The library was quiet",
    "The small village was",
)
HELD_OUT_OPENINGS = (
    "Every morning, I",
    "Last summer we went",
    "The baker makes fresh",
    "The football match was",
    "In the forest,",
    "My brother works as",
    "The mountain road is",
    "Our school has a",
)
TEXT_TOKENS = 24  # every text's length with BOS: 4 opening tokens and 19 the model chose


@torch.no_grad()
def greedy_continuation(bridge: "TransformerBridge", tokens: torch.Tensor, length: int) -> torch.Tensor:
    """Returns `tokens` [batch, pos] extended to [batch, length] by the bridge's top next token, one full forward per
    new token. No KV cache: with transformers 5.24, cached generation (`TransformerBridge.generate`, or the Hugging
    Face model with `past_key_values`) gave tokens the plain forward does not ("------...").

    Args:
        bridge: the model.
        tokens: the openings [batch, pos].
        length: the length to grow them to; `tokens` is returned unchanged if it is not longer than pos.

    Returns:
        The continued token ids [batch, length].
    """
    while tokens.shape[1] < length:
        tokens = torch.cat([tokens, bridge(tokens)[:, -1].argmax(-1, keepdim=True)], dim=1)
    return tokens


def smollm2_self_text_task(
    metric: str | None = None,
    n_tokens: int = TEXT_TOKENS,
    cache_dir: Path | None = None,
    loaded: PretrainedModel | None = None,
    held_out: bool = False,
) -> Task:
    """Returns SmolLM2-135M-Instruct on its own greedy continuations of 8 openings (`loaded`, or loaded from
    `cache_dir`), each text n_tokens long with BOS; the corrupted batch is the clean one rolled by one row (another
    text), the metric (default KL) at every position but BOS. `held_out`: 8 other openings. Generating is n_tokens - 5
    forwards of the growing batch: about 18 s for 24 tokens on 2 CPU cores.

    Args:
        metric: the name of a metric in `METRICS`; None: KL.
        n_tokens: each text's length with BOS.
        cache_dir: the folder of dequantised models, when `loaded` is None; None: the default cache.
        loaded: the model already loaded; None loads it.
        held_out: continue the held-out openings instead.

    Returns:
        The task, without `answers`; `family` a PromptData of the openings.

    Raises:
        PretrainedModelMissingError: the model is not cached and cannot be made.
        BatchShapeError: the openings do not tokenise to one length.
        InvalidHyperparameterError: `n_tokens` is no longer than the openings.
    """
    loaded = load_smollm2(cache_dir) if loaded is None else loaded
    openings = list(HELD_OUT_OPENINGS if held_out else DISCOVERY_OPENINGS)
    starts = encode_equal_length(loaded.tokenizer, openings, fix="every opening must be 4 tokens after BOS")
    if n_tokens <= starts.shape[1]:
        raise InvalidHyperparameterError(
            f"n_tokens={n_tokens} leaves the model nothing to write after the "
            f"{starts.shape[1]}-token openings; ask for more, e.g. {TEXT_TOKENS}"
        )
    clean = greedy_continuation(loaded.bridge, starts, n_tokens)
    scored = torch.ones_like(clean, dtype=torch.bool)
    scored[:, 0] = False  # BOS is the same in every text: resampling another text cannot change the output there
    return Task(
        name="smollm2-self-text",
        model=loaded.bridge,
        clean=clean,
        corrupt=clean.roll(1, dims=0),
        metric=METRICS[metric or "kl"],
        scored_positions=scored,
        bos_position=0,
        description=f"SmolLM2-135M-Instruct on its own greedy text ({len(openings)} {'held-out ' if held_out else ''}"
        f"openings continued to {n_tokens} tokens with BOS), scored at every position after BOS",
        pairing="corrupted text = the clean batch rolled by one row (another of the model's texts)",
        class_label=token_label(loaded.tokenizer),
        family=PromptData(openings, loaded.tokenizer),
    )
