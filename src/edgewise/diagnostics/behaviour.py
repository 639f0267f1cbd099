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
  one answer for every input; `ignores input at some positions` when that holds at some of them only.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Callable

import torch

from ..graph import Edge, Graph
from ..patching import AblatedOutputs, full_logits, patched_forward
from ..tasks import Task


@dataclass(frozen=True)
class BehaviourThresholds:
    """When outputs count as equal, as agreeing with the full model, and as (near-)constant."""

    tolerance: float = 1e-5  # numbers within tolerance * (1 + largest |output|) are equal: float32 noise is ~1e-7
    near_constant_share: float = 0.9  # one class answering 90% of positions is the "always answer X" failure
    near_constant_spread: float = 0.1  # a tenth of the full model's standard deviation is a flat numerical output
    agreement_spread: float = 0.1  # numerical answers within a tenth of the full model's std agree with it


@dataclass(frozen=True)
class OutputBehaviour:
    """What one variant of the model (full, a circuit, the empty circuit) answers at the scored positions."""

    label: str
    n_edges: int
    loss: float  # the task metric to the full model
    agreement: float  # share of scored positions answered as the full model does (numerical: within agreement_spread)
    distribution: dict[str, float]  # categorical: share of each top class (or tie); numerical: mean, std, min, max
    fixed_positions: tuple[int, ...]  # scored positions whose answer is the same for every input
    flags: tuple[str, ...]

    def to_dict(self) -> dict:
        """Returns the summary as JSON-ready data."""
        return {"label": self.label, "n_edges": self.n_edges, "loss": self.loss, "agreement": self.agreement,
                "distribution": self.distribution, "fixed_positions": list(self.fixed_positions),
                "flags": list(self.flags)}


@dataclass(frozen=True)
class BehaviourCheck:
    """The full model, a circuit and the empty circuit under one ablation, side by side."""

    ablation: str
    categorical: bool
    rows: tuple[OutputBehaviour, ...]

    def to_dict(self) -> dict:
        """Returns the check as JSON-ready data."""
        return {"ablation": self.ablation, "categorical": self.categorical, "rows": [r.to_dict() for r in self.rows]}


def _class_label(task: Task) -> Callable[[int], str]:
    """Returns what names an output class: the value tracr's compiler recorded for it, the token a language model's
    tokenizer decodes it to (quoted), or its index."""
    values = getattr(task.extras.get("compiled"), "output_values", None)
    if values is not None:
        return lambda c: str(values[c])
    tokenizer = task.extras.get("tokenizer")
    if tokenizer is not None:
        return lambda c: repr(tokenizer.decode([c]))
    return str


def _top_class(logits: torch.Tensor, tolerance: float) -> torch.Tensor:
    """Returns the top class [batch, pos], or -1 where the two largest logits tie within tolerance: the answer is then
    no class, and an argmax would pick one by index or float noise."""
    if logits.shape[-1] < 2:
        return logits.argmax(-1)
    top2 = logits.topk(2, dim=-1).values
    tied = top2[..., 0] - top2[..., 1] <= tolerance * (1 + top2[..., 0].abs())
    return logits.argmax(-1).masked_fill(tied, -1)


def _fixed_positions(task: Task, logits: torch.Tensor, tolerance: float) -> tuple[int, ...]:
    """Returns the scored positions at which every input gets the same answer: the same outputs within tolerance,
    or (categorical) the same top class."""
    top = _top_class(logits, tolerance) if task.categorical else None
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
        return {"mean": scored.mean().item(), "std": scored.std(unbiased=False).item(),
                "min": scored.min().item(), "max": scored.max().item()}
    label = _class_label(task)
    top = _top_class(logits, tolerance)[task.scored_positions]
    counts = Counter(top.tolist())
    return {("tie" if c < 0 else label(c)): n / len(top) for c, n in counts.most_common()}


def _agreement(task: Task, logits: torch.Tensor, full: torch.Tensor, full_std: float,
               thresholds: BehaviourThresholds) -> float:
    """Returns the share of scored positions answered as the full model answers them: the same top class (or both
    tied), or outputs within agreement_spread of the full model's standard deviation."""
    scored = task.scored_positions
    if task.categorical:
        same = _top_class(logits, thresholds.tolerance) == _top_class(full, thresholds.tolerance)
        return same[scored].float().mean().item()
    close = (logits[scored] - full[scored]).abs() <= thresholds.agreement_spread * full_std
    return close.all(-1).float().mean().item()


def _flags(task: Task, here: dict[str, float], full: dict[str, float], fixed: tuple[int, ...],
           full_fixed: tuple[int, ...], thresholds: BehaviourThresholds) -> tuple[str, ...]:
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
    where an answer is (near-)constant or ignores the input: a low loss alone does not rule those out."""
    full = full_logits(task)
    mask = graph.check_mask(circuit)[0] if isinstance(circuit, torch.Tensor) else graph.mask_for(circuit)
    masks = torch.stack([mask, torch.zeros(graph.n_edges)])
    circuit_logits, empty_logits = patched_forward(task.model, graph, task.clean, ablated, masks)
    full_distribution = _distribution(task, full, thresholds.tolerance)
    full_fixed = _fixed_positions(task, full, thresholds.tolerance)
    full_std = 0.0 if task.categorical else full_distribution["std"]
    rows = []
    kept = int((mask > 0).sum())  # edges that carry any of their clean value
    for name, n_edges, logits in [("full model", graph.n_edges, full), (label, kept, circuit_logits),
                                  ("empty circuit", 0, empty_logits)]:
        distribution = _distribution(task, logits, thresholds.tolerance)
        fixed = _fixed_positions(task, logits, thresholds.tolerance)
        rows.append(OutputBehaviour(
            label=name,
            n_edges=n_edges,
            loss=task.metric(logits, full, task.scored_positions).item(),
            agreement=_agreement(task, logits, full, full_std, thresholds),
            distribution=distribution,
            fixed_positions=fixed,
            flags=_flags(task, distribution, full_distribution, fixed, full_fixed, thresholds),
        ))
    return BehaviourCheck(ablation=ablated.kind, categorical=task.categorical, rows=tuple(rows))
