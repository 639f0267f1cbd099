"""Sequences of four algorithmic tasks on one vocabulary, each selected by its own task token, for one model that
solves all four (the multitask model): ablating one task's circuit can then be measured on the other three.

A sequence is BOS, the task's token, N_INPUTS values x, SEP, then the task's N_INPUTS answers y:

    BOS  TASK  x_1 .. x_n  SEP  y_1 .. y_n        n = N_INPUTS, every x and y a value in 0 .. N_VALUES - 1

    reverse   y_i = x_{n+1-i}
    sort      y = x in ascending order
    count     y_i = how many times x_i occurs in x (1 .. n)
    shift     y_i = x_{i+1}, cyclically (y_n = x_1)

A model reads it left to right: at SEP and at y_1 .. y_{n-1} it predicts the next answer (teacher forcing), so those
are the scored positions, one per answer.
"""

from __future__ import annotations

import torch

from edgewise.errors import UnknownTaskError

N_VALUES = 8  # values 0..7; a count (1..N_INPUTS) is a value too, so every answer is one of them
N_INPUTS = 6
BOS = N_VALUES  # id 8, at position 0 of every sequence
SEP = N_VALUES + 1  # id 9, between the inputs and the answers
TASKS = ("reverse", "sort", "count", "shift")
TASK_TOKENS = {task: SEP + 1 + index for index, task in enumerate(TASKS)}  # ids 10..13, at position 1
D_VOCAB = SEP + 1 + len(TASKS)
SEQUENCE_LENGTH = 2 * N_INPUTS + 3
SEP_POSITION = 2 + N_INPUTS
SCORED = torch.arange(SEP_POSITION, SEQUENCE_LENGTH - 1)  # SEP and y_1 .. y_{n-1}: each predicts the next answer


def answers_of(task: str, inputs: torch.Tensor) -> torch.Tensor:
    """Returns [batch, N_INPUTS] long: task `task`'s answers y for `inputs` x [batch, N_INPUTS].

    Args:
        task: one of TASKS.
        inputs: the values x [batch, N_INPUTS].

    Returns:
        The answers y [batch, N_INPUTS].

    Raises:
        UnknownTaskError: `task` is not one of TASKS.
    """
    if task == "reverse":
        return inputs.flip(-1)
    if task == "sort":
        return inputs.sort(-1).values
    if task == "count":
        return (inputs.unsqueeze(-1) == inputs.unsqueeze(-2)).sum(-1)
    if task == "shift":
        return inputs.roll(-1, -1)
    raise UnknownTaskError.for_name(task, list(TASKS))


def random_inputs(n_rows: int, generator: torch.Generator) -> torch.Tensor:
    """Returns [n_rows, N_INPUTS] long: values drawn uniformly and independently (repeats allowed, so counts vary).

    Args:
        n_rows: the number of rows.
        generator: the random generator drawn from.

    Returns:
        The inputs, values in 0 .. N_VALUES - 1.
    """
    return torch.randint(N_VALUES, (n_rows, N_INPUTS), generator=generator)


def sequences(task: str, inputs: torch.Tensor) -> torch.Tensor:
    """Returns [batch, SEQUENCE_LENGTH] long: BOS, `task`'s token, `inputs` [batch, N_INPUTS], SEP, the answers.

    Args:
        task: one of TASKS.
        inputs: the values x [batch, N_INPUTS].

    Returns:
        The sequences.
    """
    rows = inputs.shape[0]
    return torch.cat(
        [
            torch.full((rows, 1), BOS),
            torch.full((rows, 1), TASK_TOKENS[task]),
            inputs,
            torch.full((rows, 1), SEP),
            answers_of(task, inputs),
        ],
        1,
    )


def mixed_sequences(n_rows: int, weights: tuple[float, ...], generator: torch.Generator) -> torch.Tensor:
    """Returns [n_rows, SEQUENCE_LENGTH] long: sequences on random inputs, each row's task drawn with probability
    proportional to its entry of `weights` (one per task of TASKS).

    Args:
        n_rows: the number of rows.
        weights: one non-negative weight per task of TASKS.
        generator: the random generator drawn from (inputs, then tasks).

    Returns:
        The sequences.
    """
    inputs = random_inputs(n_rows, generator)
    choice = torch.multinomial(torch.tensor(weights), n_rows, replacement=True, generator=generator)
    every = torch.stack([sequences(task, inputs) for task in TASKS])  # [task, batch, pos]
    return every[choice, torch.arange(n_rows)]


def scored_positions(n_rows: int) -> torch.Tensor:
    """Returns [n_rows, SEQUENCE_LENGTH] bool: True at SCORED, where the next token is an answer.

    Args:
        n_rows: the number of rows.

    Returns:
        The mask, the same in every row.
    """
    positions = torch.zeros(n_rows, SEQUENCE_LENGTH, dtype=torch.bool)
    positions[:, SCORED] = True
    return positions


def scored_answers(tokens: torch.Tensor) -> torch.Tensor:
    """Returns [batch, SEQUENCE_LENGTH] long: the answer predicted at each scored position (the next token), -1
    elsewhere.

    Args:
        tokens: full sequences [batch, SEQUENCE_LENGTH].

    Returns:
        The answers, -1 outside SCORED.
    """
    answers = torch.full_like(tokens, -1)
    answers[:, SCORED] = tokens[:, SCORED + 1]
    return answers


@torch.no_grad()
def answer_accuracy(model: torch.nn.Module, tokens: torch.Tensor, answers: torch.Tensor) -> float:
    """Returns how often the model's top token on `tokens` is `answers` [batch, pos] at the scored positions.

    Args:
        model: the model, on any device (the tokens are moved to it).
        tokens: the sequences [batch, SEQUENCE_LENGTH].
        answers: the answer at each position [batch, SEQUENCE_LENGTH] (`scored_answers`).

    Returns:
        The fraction of scored positions (SCORED) where the top token is the answer.
    """
    device = next(model.parameters()).device  # the shared model may have been moved by another task's `to`
    predicted = model(tokens.to(device))[:, SCORED].argmax(-1).cpu()
    return (predicted == answers[:, SCORED].cpu()).float().mean().item()
