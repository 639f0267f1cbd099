"""Sequences with a repeated random segment, on which a model can only predict by copying from context.

A sequence is BOS, a filler of distinct random tokens, a segment S of distinct random tokens (none in the filler),
then S again, ending the sequence:

    BOS  f_1 .. f_m  s_1 .. s_n  s_1 .. s_n        m = N_CONTENT - 2n,  n in SEGMENT_LENGTHS

The segment's length varies, so the offset back to a token's first occurrence does too: no fixed positional lookup
predicts the repeat, only finding the earlier occurrence of the current token and reading the token after it. Every
token before the repeat is distinct, so that earlier occurrence, and the answer, is unique.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

N_TOKENS = 24  # content tokens 0..23; enough that the 20 distinct tokens of a sequence leave chance at ~1/24
BOS = N_TOKENS  # the beginning-of-sequence token, id 24, at position 0 of every sequence
N_CONTENT = 20  # content positions after BOS
SEQUENCE_LENGTH = N_CONTENT + 1
SEGMENT_LENGTHS = range(4, 11)  # segment lengths drawn uniformly: offsets back to a first occurrence vary 4..10


@dataclass(frozen=True)
class RepeatedSegments:
    """A batch of repeated-segment sequences and where each one's segment starts.

    Attributes:
        tokens: the sequences [batch, SEQUENCE_LENGTH] (long).
        starts: the position of s_1 (its first occurrence) [batch].
        lengths: n, the segment's length [batch].
    """

    tokens: torch.Tensor
    starts: torch.Tensor
    lengths: torch.Tensor

    @property
    def predictable(self) -> torch.Tensor:
        """Returns [batch, pos] bool: the positions of the repeat whose next token is copied from the first
        occurrence (s_1 .. s_{n-1} of the second copy; the last position has no next token)."""
        positions = torch.arange(SEQUENCE_LENGTH)
        repeat = (self.starts + self.lengths).unsqueeze(1)  # [batch, 1]: the position of the second s_1
        return (positions >= repeat) & (positions < SEQUENCE_LENGTH - 1)

    @property
    def answers(self) -> torch.Tensor:
        """Returns [batch, pos] long: the copied token at each predictable position (the next token), -1 elsewhere."""
        return torch.where(self.predictable, next_tokens(self.tokens), -1)


def next_tokens(tokens: torch.Tensor) -> torch.Tensor:
    """Returns [batch, pos] long: the token after each position of `tokens` [batch, pos], -1 after the last.

    Args:
        tokens: the sequences [batch, pos].

    Returns:
        The next tokens.
    """
    return torch.cat([tokens[:, 1:], torch.full_like(tokens[:, :1], -1)], 1)


def _distinct_tokens(n_rows: int, n: int, generator: torch.Generator) -> torch.Tensor:
    """Returns [n_rows, n] long: n distinct content tokens per row, uniformly drawn."""
    return torch.rand(n_rows, N_TOKENS, generator=generator).argsort(-1)[:, :n]


def repeated_segments(n_rows: int, generator: torch.Generator) -> RepeatedSegments:
    """Returns `n_rows` sequences with a repeated segment, drawn from `generator`.

    Args:
        n_rows: the number of sequences.
        generator: the random generator drawn from (segment lengths, then tokens).

    Returns:
        The sequences with each one's segment start and length.
    """
    choices = torch.tensor(list(SEGMENT_LENGTHS))
    lengths = choices[torch.randint(len(choices), (n_rows,), generator=generator)]
    first = _distinct_tokens(n_rows, N_CONTENT - SEGMENT_LENGTHS.start, generator)  # filler and segment, distinct
    tokens = torch.full((n_rows, SEQUENCE_LENGTH), BOS)
    starts = 1 + N_CONTENT - 2 * lengths
    for row, (start, n) in enumerate(zip(starts.tolist(), lengths.tolist())):
        unique = first[row, : start - 1 + n]
        tokens[row, 1 : start + n] = unique
        tokens[row, start + n :] = unique[start - 1 :]
    return RepeatedSegments(tokens, starts, lengths)


def unrepeated_sequences(n_rows: int, generator: torch.Generator) -> torch.Tensor:
    """Returns [n_rows, SEQUENCE_LENGTH] long: BOS and N_CONTENT distinct tokens, so no token repeats and nothing
    can be copied.

    Args:
        n_rows: the number of sequences.
        generator: the random generator drawn from.

    Returns:
        The sequences.
    """
    return torch.cat([torch.full((n_rows, 1), BOS), _distinct_tokens(n_rows, N_CONTENT, generator)], 1)
