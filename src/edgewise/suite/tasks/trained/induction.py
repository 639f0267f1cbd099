"""The induction tasks: project-trained 2-layer attention-only transformers continuing repeated random segments, with
the circuits that path patching verified as their ground truths: `induction` (one head per role) and
`induction-redundant` (two heads per role, either of them enough).

The metric is KL divergence: at a predictable position the full model puts nearly all its mass on the copied token,
so KL(full || patched) is about -log p_patched(copied token), the loss of the copying behaviour itself; it needs no
second "wrong" token, which a logit difference would, and the uniformly random corruptions offer no natural one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from edgewise.tasks import METRICS, Task

from ...models import REDUNDANT_WEIGHTS_PATH, load_induction
from ..registry import TRAINED_SEQUENCES
from .sequences import N_CONTENT, next_tokens, repeated_segments, unrepeated_sequences

DISCOVERY_SEED = 1  # the training script draws its batches from seed 0
HELD_OUT_SEED = 2

# The circuit, as found and verified by path patching with hand-written hooks in tests/test_induction.py (numbers in
# docs/induction.md): previous-token head A0.1 reads the token (V) and matches positions (Q, K); induction head A1.0
# finds the earlier occurrence of its query token among keys that A0.1 wrote "my previous token" into, reads the
# token after it (V) and writes it out. Heads A0.0 and A1.1 were pruned in training. Removing any one of the five
# content edges (resample ablation) or of the two position edges (mean ablation; resample keeps positions) destroys
# copying; keeping only these seven preserves it under both.
INDUCTION_CIRCUIT = [
    ("Resid Start", "A0.1.Q"),
    ("Resid Start", "A0.1.K"),
    ("Resid Start", "A0.1.V"),
    ("A0.1", "A1.0.K"),
    ("Resid Start", "A1.0.Q"),
    ("Resid Start", "A1.0.V"),
    ("A1.0", "Resid End"),
]

# The redundant model's circuit, verified the same way in tests/test_induction_redundant.py (numbers in
# docs/induction.md): both roles, each held by two heads. Previous-token heads A0.0 and A0.1 each read the token (V)
# and match positions (Q, K), and each writes into the keys of both induction heads A1.0 and A1.1, which each read the
# token after the match (V) and write it out. Removing either head of a layer keeps most of the copying (all of it under
# mean ablation); removing both destroys it.
REDUNDANT_INDUCTION_CIRCUIT = [
    *[("Resid Start", f"A0.{head}.{x}") for head in (0, 1) for x in "QKV"],
    *[(f"A0.{previous}", f"A1.{induction}.K") for previous in (0, 1) for induction in (0, 1)],
    *[("Resid Start", f"A1.{head}.{x}") for head in (0, 1) for x in "QV"],
    *[(f"A1.{head}", "Resid End") for head in (0, 1)],
]


@dataclass(frozen=True)
class CopyingData:
    """An induction task's own record (`task.family`): where each row's repeated segment starts and how long it is,
    and the model's copying accuracy on the clean and on the corrupted inputs.

    Attributes:
        segment_starts: the position of each row's first segment token [batch].
        segment_lengths: each row's segment length [batch].
        accuracy: the copying accuracy on the clean inputs.
        corrupt_accuracy: the accuracy of predicting the next token of the corrupted inputs at the same positions.
    """

    segment_starts: torch.Tensor
    segment_lengths: torch.Tensor
    accuracy: float
    corrupt_accuracy: float


@torch.no_grad()
def copying_accuracy(
    model: torch.nn.Module, tokens: torch.Tensor, answers: torch.Tensor, positions: torch.Tensor
) -> float:
    """Returns how often the model's top next token is `answers` [batch, pos] at `positions` [batch, pos].

    Args:
        model: the model.
        tokens: the inputs [batch, pos].
        answers: the expected next token at each position [batch, pos].
        positions: the positions that count [batch, pos] (bool).

    Returns:
        The fraction of those positions where the top token is the answer.
    """
    return (model(tokens).argmax(-1) == answers)[positions].float().mean().item()


def induction_task(metric: str | None = None, held_out: bool = False) -> Task:
    """Returns the induction task (see `copying_task`) on the model with one head per role.

    Args:
        metric: the name of a metric in `METRICS` in place of KL; None keeps KL.
        held_out: build the task on its held-out sequences.

    Returns:
        The task, with INDUCTION_CIRCUIT as ground truth.

    Raises:
        TrainedWeightsMissingError: the model's weights are not there.
    """
    return copying_task("induction", load_induction(), INDUCTION_CIRCUIT, "", metric, held_out)


def induction_redundant_task(metric: str | None = None, held_out: bool = False) -> Task:
    """Returns the induction-redundant task (see `copying_task`) on the model trained with head dropout, whose two
    heads per role each do it alone.

    Args:
        metric: the name of a metric in `METRICS` in place of KL; None keeps KL.
        held_out: build the task on its held-out sequences.

    Returns:
        The task, with REDUNDANT_INDUCTION_CIRCUIT as ground truth.

    Raises:
        TrainedWeightsMissingError: the model's weights are not there.
    """
    return copying_task(
        "induction-redundant",
        load_induction(REDUNDANT_WEIGHTS_PATH),
        REDUNDANT_INDUCTION_CIRCUIT,
        " with two heads in each role",
        metric,
        held_out,
    )


# A removal changes nothing when it changes the copied token at no more than 5% of the scored positions. The logits
# cannot tell: a role's two heads add up in them, so removing one moves them half as far as removing both, while the
# answers stay (mean ablation: one head flips 0.3-2.5% of them, both 95%; docs/induction.md)
TRUTH_TOLERANCE = 0.05


def copying_task(
    name: str,
    model: torch.nn.Module,
    truth: list[tuple[str, str]],
    model_words: str,
    metric: str | None,
    held_out: bool,
) -> Task:
    """Returns task `name` of `model` with ground truth `truth` on TRAINED_SEQUENCES repeated-segment sequences
    (`held_out`: as many others, drawn from another seed), each paired with a sequence of distinct tokens that nothing
    can be copied from; scored at the repeat's predictable positions, by KL unless `metric` names another.

    Args:
        name: the task's name.
        model: the trained model.
        truth: the verified circuit as (writer, reader) node names.
        model_words: words added after "transformer" in the description (e.g. " with two heads in each role").
        metric: the name of a metric in `METRICS`; None: KL.
        held_out: draw the sequences from HELD_OUT_SEED instead of DISCOVERY_SEED.

    Returns:
        The task: argmax ground truth within TRUTH_TOLERANCE, `answers` the copied token at each scored position (-1
            elsewhere), `family` a CopyingData.
    """
    generator = torch.Generator().manual_seed(HELD_OUT_SEED if held_out else DISCOVERY_SEED)
    batch = repeated_segments(TRAINED_SEQUENCES, generator)
    corrupt = unrepeated_sequences(TRAINED_SEQUENCES, generator)
    answers, positions = batch.answers, batch.predictable
    return Task(
        name=name,
        model=model,
        clean=batch.tokens,
        corrupt=corrupt,
        metric=METRICS[metric or "kl"],
        scored_positions=positions,
        ground_truth=list(truth),
        bos_position=0,
        truth_measure="argmax",
        truth_tolerance=TRUTH_TOLERANCE,
        description=f"in-context copying of a repeated random segment by a trained 2-layer attention-only "
        f"transformer{model_words} ({TRAINED_SEQUENCES} {'held-out ' if held_out else ''}sequences)",
        pairing=f"row i's corrupted sequence: BOS and {N_CONTENT} distinct tokens drawn afresh, so no token repeats "
        "and nothing can be copied; it is scored at row i's positions",
        answers=answers,  # [batch, pos]: the copied token at each scored position, -1 elsewhere
        family=CopyingData(
            batch.starts,
            batch.lengths,
            copying_accuracy(model, batch.tokens, answers, positions),
            copying_accuracy(model, corrupt, next_tokens(corrupt), positions),
        ),
    )
