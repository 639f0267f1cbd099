"""Token batches of prompts for a pretrained language model's tokenizer: the discovery or held-out draw of a prompt
set, equal-length encoding (no padding, so every prompt's answer is at the same position) of clean and corrupted
prompts, one-token answers, and the last-position mask and answers of a next-token task."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import torch

from edgewise.errors import BatchShapeError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

HELD_OUT_SEED = 1  # the evaluation split's prompts: drawn with this seed, none of them a discovery prompt


@dataclass(frozen=True)
class PromptData:
    """A language-model task's own record (`task.family`): its prompts (or openings), the tokenizer that encoded
    them, and, for IOI, each prompt's answer ids [batch, (io, s)].

    Attributes:
        prompts: the prompts (dicts) or openings (strings), in batch order.
        tokenizer: the tokenizer that encoded them.
        answer_ids: IOI's (io, s) token ids per prompt [batch, 2]; None for the other tasks.
    """

    prompts: list
    tokenizer: "PreTrainedTokenizerBase"
    answer_ids: torch.Tensor | None = None


def token_label(tokenizer: "PreTrainedTokenizerBase") -> Callable[[int], str]:
    """Returns what names output class c of a language model: the token the tokenizer decodes it to, quoted.

    Args:
        tokenizer: the model's tokenizer.

    Returns:
        A function of a token id that returns the `repr` of its decoded text.
    """
    return lambda c: repr(tokenizer.decode([c]))


def prompt_split(draw: Callable[..., list[dict]], n: int, held_out: bool) -> list[dict]:
    """Returns the n discovery prompts `draw(n)` gives (seed 0), or with `held_out` n others: drawn with
    HELD_OUT_SEED, no discovery prompt repeated (`draw(n, seed=..., exclude=...)`).

    Args:
        draw: draws n prompts: `draw(n, seed=0, exclude=None)`, each prompt a dict with a `clean` key.
        n: the number of prompts.
        held_out: draw the held-out prompts instead of the discovery ones.

    Returns:
        The prompts.
    """
    prompts = draw(n)
    return draw(n, seed=HELD_OUT_SEED, exclude=prompts) if held_out else prompts


def encode_equal_length(tokenizer: "PreTrainedTokenizerBase", texts: list[str], fix: str) -> torch.Tensor:
    """Returns the texts' token ids [len(texts), pos], as the tokenizer encodes them (with its BOS); raises
    BatchShapeError naming a text of each length unless all have the same number of tokens, with `fix` as the way
    out (e.g. "every name must be one token").

    Args:
        tokenizer: the model's tokenizer.
        texts: the texts to encode.
        fix: what the error tells the user to do.

    Returns:
        The token ids [len(texts), pos].

    Raises:
        BatchShapeError: the texts tokenise to more than one length.
    """
    ids = [tokenizer(text).input_ids for text in texts]
    by_length = {len(row): text for row, text in zip(ids, texts)}
    if len(by_length) != 1:
        examples = "; ".join(f"{length} tokens: {text!r}" for length, text in sorted(by_length.items()))
        raise BatchShapeError(
            f"prompts tokenised to different lengths ({examples}); a batch without padding needs one length: {fix}"
        )
    return torch.tensor(ids)


def encode_pairs(
    tokenizer: "PreTrainedTokenizerBase", prompts: list[dict], fix: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns the clean and the corrupted prompts' token ids ([n, pos] each, one length for both: resample ablation
    pairs them row by row); raises BatchShapeError with `fix` as `encode_equal_length` does.

    Args:
        tokenizer: the model's tokenizer.
        prompts: dicts with `clean` and `corrupt` texts.
        fix: what the error tells the user to do.

    Returns:
        The clean token ids and the corrupted ones, row i of each from prompt i.

    Raises:
        BatchShapeError: the prompts tokenise to more than one length.
    """
    tokens = encode_equal_length(tokenizer, [p["clean"] for p in prompts] + [p["corrupt"] for p in prompts], fix)
    return tokens[: len(prompts)], tokens[len(prompts) :]


def one_token_id(tokenizer: "PreTrainedTokenizerBase", word: str) -> int:
    """Returns the token id of " word" (the word after a space, as it follows a prompt); raises BatchShapeError if it
    is more than one token, since an answer must fit the one position the metric scores.

    Args:
        tokenizer: the model's tokenizer.
        word: the answer, without the leading space.

    Returns:
        The token id.

    Raises:
        BatchShapeError: " word" is not exactly one token.
    """
    ids = tokenizer(" " + word, add_special_tokens=False).input_ids
    if len(ids) != 1:
        raise BatchShapeError(
            f"answer {word!r} is {len(ids)} tokens ({tokenizer.convert_ids_to_tokens(ids)}); a "
            "next-token answer must be one token: choose an entity whose answer is one token"
        )
    return ids[0]


def last_position_mask(tokens: torch.Tensor) -> torch.Tensor:
    """Returns [batch, pos] bool, True at the last position only: where a prompt's next token is its answer.

    Args:
        tokens: the prompts' token ids [batch, pos].

    Returns:
        The mask.
    """
    scored = torch.zeros_like(tokens, dtype=torch.bool)
    scored[:, -1] = True
    return scored


def last_position_answers(tokens: torch.Tensor, answer_ids: list[int]) -> torch.Tensor:
    """Returns [batch, pos] long: each prompt's answer id at the last position, -1 elsewhere (not scored): the
    `task.answers` that accuracy and the weight edits of capability removal read.

    Args:
        tokens: the prompts' token ids [batch, pos].
        answer_ids: each prompt's answer id.

    Returns:
        The answers [batch, pos].
    """
    answers = torch.full_like(tokens, -1)
    answers[:, -1] = torch.tensor(answer_ids)
    return answers
