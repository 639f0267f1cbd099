"""Behaviour check: what a circuit's ablated model actually outputs across the task's inputs, beside the full model
and the empty circuit, with flags for the failure where a sparse circuit "solves" a task by ignoring its input.

A faithfulness number alone can hide a circuit that gives the same answer everywhere (when one answer is common) or
a numerical circuit that outputs roughly the mean. The flags name those cases:

- `constant output`: one answer at every scored position (numerical: every output equal within `tolerance`),
  while the full model's answers vary; a categorical answer is the top class, or `tie` when the two largest logits
  are equal within `tolerance`;
- `near-constant output`: the most common prediction takes at least `near_constant_share` of the scored positions
  while the full model's does not (numerical: a standard deviation below `near_constant_spread` of the full
  model's);
- `ignores input`: at every scored position where the full model's answer depends on the input, the circuit gives
  one answer for every input; `ignores input at some positions` when that holds at some of them only;
- `fixed preference`: where the answers on offer change with the input (a game's legal moves: the task's
  `task.offered`, [batch, pos, classes] bool), one fixed ranking of the classes explains at least
  `preference_share` of the answers (it always plays the first free square of one list: a corner, then another
  corner...) while it explains fewer of the full model's. Such a circuit looks at the input only to see what is
  on offer.

With the true value of every answer (`task.answer_values`, [batch, pos, classes]: a game's minimax value of
each move), each row also reports the mean true value of its answers, so a circuit that "plays the worst move" is
measured against the game, not against the network's own judgement.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import torch

from ..graph import Edge, Graph
from ..patching import AblatedOutputs, full_logits, patched_forward
from ..tasks import Task


@dataclass(frozen=True)
class BehaviourThresholds:
    """When outputs count as equal, as agreeing with the full model, and as (near-)constant.

    Attributes:
        tolerance: numbers within tolerance * (1 + largest |output|) are equal: float32 noise is ~1e-7.
        near_constant_share: one class answering 90% of positions is the "always answer X" failure.
        near_constant_spread: a tenth of the full model's standard deviation is a flat numerical output.
        agreement_spread: numerical answers within a tenth of the full model's std agree with it.
        preference_share: a fixed ranking explaining 95% of the answers ignores the rest of the input.
    """

    tolerance: float = 1e-5
    near_constant_share: float = 0.9
    near_constant_spread: float = 0.1
    agreement_spread: float = 0.1
    preference_share: float = 0.95


@dataclass(frozen=True)
class OutputBehaviour:
    """What one variant of the model (full, a circuit, the empty circuit) answers at the scored positions.

    Attributes:
        label: the variant's name (`full model`, the circuit's label, `empty circuit`).
        n_edges: the edges it keeps (a mask's edges above 0).
        loss: the task metric to the full model.
        agreement: share of scored positions answered as the full model does (numerical: within agreement_spread).
        distribution: categorical: share of each top class (or `tie`); numerical: mean, std, min, max.
        fixed_positions: scored positions whose answer is the same for every input.
        flags: the behaviour flags (see the module docstring); () for none.
        preference: the fixed ranking that best explains the answers (tasks with offered answers).
        preference_share: the share of answers it explains.
        answer_value: mean true value of the answers (tasks with answer values).
    """

    label: str
    n_edges: int
    loss: float
    agreement: float
    distribution: dict[str, float]
    fixed_positions: tuple[int, ...]
    flags: tuple[str, ...]
    preference: tuple[str, ...] = ()
    preference_share: float | None = None
    answer_value: float | None = None

    def to_dict(self) -> dict:
        """Returns the summary as JSON-ready data."""
        return {
            "label": self.label,
            "n_edges": self.n_edges,
            "loss": self.loss,
            "agreement": self.agreement,
            "distribution": self.distribution,
            "fixed_positions": list(self.fixed_positions),
            "flags": list(self.flags),
            "preference": list(self.preference),
            "preference_share": self.preference_share,
            "answer_value": self.answer_value,
        }


@dataclass(frozen=True)
class BehaviourCheck:
    """The full model, a circuit and the empty circuit under one ablation, side by side.

    Attributes:
        ablation: the ablation's kind.
        categorical: whether the task's outputs are classes (else numbers).
        rows: the full model's, the circuit's and the empty circuit's behaviour, in that order.
    """

    ablation: str
    categorical: bool
    rows: tuple[OutputBehaviour, ...]

    def to_dict(self) -> dict:
        """Returns the check as JSON-ready data."""
        return {"ablation": self.ablation, "categorical": self.categorical, "rows": [r.to_dict() for r in self.rows]}


def top_class(logits: torch.Tensor, tolerance: float) -> torch.Tensor:
    """Returns the top class [batch, pos], or -1 where the two largest logits tie within tolerance: the answer is then
    no class, and an argmax would pick one by index or float noise.

    Args:
        logits: outputs [batch, pos, classes].
        tolerance: logits within tolerance * (1 + |largest logit|) of each other tie.

    Returns:
        The class indices [batch, pos], -1 at ties; a plain argmax where there is one class.
    """
    if logits.shape[-1] < 2:
        return logits.argmax(-1)
    top2 = logits.topk(2, dim=-1).values
    tied = top2[..., 0] - top2[..., 1] <= tolerance * (1 + top2[..., 0].abs())
    return logits.argmax(-1).masked_fill(tied, -1)


def _fixed_positions(task: Task, logits: torch.Tensor, tolerance: float) -> tuple[int, ...]:
    """Returns the scored positions at which every input gets the same answer: the same outputs within tolerance,
    or (categorical) the same top class."""
    top = top_class(logits, tolerance) if task.categorical else None
    fixed = []
    for p in range(logits.shape[1]):
        rows = task.scored_positions[:, p]
        if not rows.any():
            continue
        at_p = logits[rows, p]  # [rows, out]
        same_values = (at_p - at_p.mean(0)).abs().max().item() <= tolerance * (1 + at_p.abs().max().item())
        if same_values or (top is not None and bool((top[rows, p] == top[rows, p][0]).all())):
            fixed.append(p)
    return tuple(fixed)


def _distribution(task: Task, logits: torch.Tensor, tolerance: float) -> dict[str, float]:
    """Returns the share of each top class, `tie` for no single top class (most common first), or the outputs'
    mean, std, min and max."""
    if not task.categorical:
        scored = logits[task.scored_positions]
        return {
            "mean": scored.mean().item(),
            "std": scored.std(unbiased=False).item(),
            "min": scored.min().item(),
            "max": scored.max().item(),
        }
    label = task.class_label or str  # a compiled program's value, a decoded token, or the class index
    top = top_class(logits, tolerance)[task.scored_positions]
    counts = Counter(top.tolist())
    return {("tie" if c < 0 else label(c)): n / len(top) for c, n in counts.most_common()}


def _agreement(
    task: Task, logits: torch.Tensor, full: torch.Tensor, full_std: float, thresholds: BehaviourThresholds
) -> float:
    """Returns the share of scored positions answered as the full model answers them: the same top class (or both
    tied), or outputs within agreement_spread of the full model's standard deviation."""
    scored = task.scored_positions
    if task.categorical:
        same = top_class(logits, thresholds.tolerance) == top_class(full, thresholds.tolerance)
        return same[scored].float().mean().item()
    close = (logits[scored] - full[scored]).abs() <= thresholds.agreement_spread * full_std
    return close.all(-1).float().mean().item()


def preference_order(answers: torch.Tensor, offered: torch.Tensor) -> tuple[list[int], float]:
    """Returns the fixed ranking of classes that best explains `answers` [n] (class indices) given what was on offer
    [n, classes] (bool), and the share of answers it explains: answer i is explained when it is the highest-ranked
    class on offer at i. Greedy: each step ranks next the class that the fewest undecided answers contradict (on
    offer there, not chosen), ties broken by how many it explains.

    Args:
        answers: [n] the class answered each time (-1: no single class, which no ranking explains).
        offered: [n, classes] bool: the classes on offer each time.

    Returns:
        The ranking (class indices, best first; it stops once every answer is decided) and the share of answers it
        explains.
    """
    undecided = torch.ones(len(answers), dtype=torch.bool)
    chosen = torch.nn.functional.one_hot(answers.clamp(min=0), offered.shape[-1]).bool() & (answers >= 0)[:, None]
    order, explained = [], 0
    remaining = list(range(offered.shape[-1]))
    while remaining and bool(undecided.any()):
        on_offer = offered[undecided][:, remaining]  # [undecided, remaining]
        picked = chosen[undecided][:, remaining]
        contradicted = (on_offer & ~picked).sum(0)
        explains = picked.sum(0)
        best = min(range(len(remaining)), key=lambda j: (int(contradicted[j]), -int(explains[j]), remaining[j]))
        cls = remaining.pop(best)
        order.append(cls)
        explained += int(explains[best])
        undecided &= ~offered[:, cls]
    return order, explained / max(len(answers), 1)


def _on_offer(task: Task, logits: torch.Tensor) -> torch.Tensor:
    """Returns the logits with each class not on offer lowered to one below the lowest offered logit of its row: the
    top class is then always on offer, and a game's -1e9 at illegal moves does not swamp the equality tolerance."""
    offered = task.offered
    if offered is None or not task.categorical:
        return logits
    offered = offered.to(logits.device).expand_as(logits)
    floor = logits.masked_fill(~offered, float("inf")).amin(-1, keepdim=True) - 1
    return torch.where(offered, logits, floor)


def _offered_answers(task: Task, logits: torch.Tensor, thresholds: BehaviourThresholds) -> tuple:
    """Returns (the fixed ranking as labels, the share it explains) of the scored answers, or ((), None) for a task
    whose offered answers do not change with the input."""
    offered = task.offered
    if offered is None or not task.categorical:
        return (), None
    scored = task.scored_positions
    order, share = preference_order(top_class(logits, thresholds.tolerance)[scored], offered.to(scored.device)[scored])
    label = task.class_label or str  # a compiled program's value, a decoded token, or the class index
    return tuple(label(c) for c in order), share


def _answer_value(task: Task, logits: torch.Tensor, thresholds: BehaviourThresholds) -> float | None:
    """Returns the mean true value of the top answers at the scored positions (ties: the mean over the tied
    answers' values is not defined, so they count as the lowest-index top class), or None without answer values."""
    values = task.answer_values
    if values is None or not task.categorical:
        return None
    top = logits.argmax(-1)
    return values.to(logits.device).gather(-1, top.unsqueeze(-1)).squeeze(-1)[task.scored_positions].mean().item()


def _flags(
    task: Task,
    here: dict[str, float],
    full: dict[str, float],
    fixed: tuple[int, ...],
    full_fixed: tuple[int, ...],
    thresholds: BehaviourThresholds,
) -> tuple[str, ...]:
    """Returns the behaviour flags of one variant against the full model's distribution and fixed positions."""
    flags = []
    if task.categorical:
        constant = len(here) == 1 and len(full) > 1
        near = max(here.values()) >= thresholds.near_constant_share > max(full.values())
    else:
        flat = thresholds.tolerance * (1 + max(abs(here["min"]), abs(here["max"])))
        constant = here["std"] <= flat < full["std"]
        near = here["std"] <= thresholds.near_constant_spread * full["std"] and full["std"] > 0
    if constant:
        flags.append("constant output")
    elif near:
        flags.append("near-constant output")
    scored_positions = torch.nonzero(task.scored_positions.any(0)).flatten().tolist()
    varying = {p for p in scored_positions if p not in full_fixed}
    ignored = varying & set(fixed)
    if varying and ignored == varying:
        flags.append("ignores input")
    elif ignored:
        flags.append("ignores input at some positions")
    return tuple(flags)


@torch.no_grad()
def behaviour_check(
    task: Task,
    graph: Graph,
    ablated: AblatedOutputs,
    circuit: set[Edge] | torch.Tensor,
    label: str = "circuit",
    thresholds: BehaviourThresholds = BehaviourThresholds(),
) -> BehaviourCheck:
    """Returns what the full model, `circuit` (a set of edges, or a mask [n_edges] with values in [0, 1], such as a
    subnetwork-probing gate vector) and the empty circuit answer on the clean inputs under this ablation, with flags
    where an answer is (near-)constant or ignores the input: a low loss alone does not rule those out.

    Args:
        task: the task whose clean inputs are run.
        graph: the graph `circuit` is taken on.
        ablated: the ablation every edge outside the circuit takes.
        circuit: the circuit's edges, or a float mask [n_edges].
        label: the circuit's row label.
        thresholds: when outputs count as equal, agreeing and (near-)constant.

    Returns:
        The check, its rows the full model, the circuit and the empty circuit.

    Raises:
        GraphMismatchError: `circuit` holds an edge outside `graph`, or a mask of the wrong shape.
    """
    full = full_logits(task)
    mask = graph.check_mask(circuit)[0] if isinstance(circuit, torch.Tensor) else graph.mask_for(circuit)
    masks = torch.stack([mask, torch.zeros(graph.n_edges)])
    circuit_logits, empty_logits = patched_forward(task.model, graph, task.clean, ablated, masks)
    full_on_offer = _on_offer(task, full)
    full_distribution = _distribution(task, full_on_offer, thresholds.tolerance)
    full_fixed = _fixed_positions(task, full_on_offer, thresholds.tolerance)
    full_std = 0.0 if task.categorical else full_distribution["std"]
    rows = []
    kept = int((mask > 0).sum())  # edges that carry any of their clean value
    full_share = _offered_answers(task, full_on_offer, thresholds)[1]
    for name, n_edges, raw in [
        ("full model", graph.n_edges, full),
        (label, kept, circuit_logits),
        ("empty circuit", 0, empty_logits),
    ]:
        logits = _on_offer(task, raw)
        distribution = _distribution(task, logits, thresholds.tolerance)
        fixed = _fixed_positions(task, logits, thresholds.tolerance)
        preference, share = _offered_answers(task, logits, thresholds)
        flags = _flags(task, distribution, full_distribution, fixed, full_fixed, thresholds)
        if share is not None and share >= thresholds.preference_share > full_share:
            flags += (
                f"fixed preference ({' > '.join(preference[:4])}{' ...' if len(preference) > 4 else ''} "
                f"explains {share:.0%} of answers)",
            )
        rows.append(
            OutputBehaviour(
                label=name,
                n_edges=n_edges,
                loss=task.metric(raw, full, task.scored_positions).item(),
                agreement=_agreement(task, logits, full_on_offer, full_std, thresholds),
                distribution=distribution,
                fixed_positions=fixed,
                flags=flags,
                preference=preference,
                preference_share=share,
                answer_value=_answer_value(task, logits, thresholds),
            )
        )
    return BehaviourCheck(ablation=ablated.kind, categorical=task.categorical, rows=tuple(rows))
