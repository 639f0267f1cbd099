"""A removal mask learned for the purpose (after Bayazit et al. 2024, knowledge-critical subnetworks): one
hard-concrete gate per edge, as in subnetwork probing, trained so that the masked model forgets one task and keeps
the others, with as few edges removed as possible:

    KL(uniform || masked outputs) on the forget task          suppression: no answer preferred
    + alpha * mean over retain tasks of their metric          maintenance: KL to the full model on their inputs
    + lambda * expected fraction of edges removed             sparsity: P(gate = 0), the complement of SP's L0

A removed edge is fed the ablation's value (each task's own), exactly as `remove` ablates a circuit, so the edges
whose noise-free gate ends at or below 0.5 are the removal to measure with `remove` on held-out inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from ..errors import InvalidHyperparameterError, NonFiniteMetricError
from ..graph import Edge
from ..methods import hard_concrete
from ..patching import faithfulness_loss, full_logits, patched_forward, task_ablation
from ..tasks import Task, kl_divergence
from .removal import check_same_model


@dataclass(frozen=True)
class RemovalMaskConfig:
    """Hyperparameters of the removal mask; the defaults removed multitask-sort's skill on the discovery inputs."""

    alpha: float = 1.0  # weight of the retain tasks' KL to the full model against the forget task's suppression
    lambda_: float = 0.1  # weight of the expected fraction of edges removed
    steps: int = 200
    lr: float = 0.05  # Adam on log_alpha; SP's tuned 0.02 left most forget edges half-open after 200 steps
    init_gate: float = 0.9  # every gate starts open (SP's start): nothing removed yet
    n_samples: int = 1  # masks per step; SmolLM2's 49,152-way outputs make more than one costly

    def __post_init__(self):
        if self.steps < 1 or self.n_samples < 1:
            raise InvalidHyperparameterError(
                f"steps and n_samples must be at least 1, got {self.steps} and {self.n_samples}"
            )
        if not (self.alpha >= 0 and self.lambda_ >= 0 and self.lr > 0):
            raise InvalidHyperparameterError(
                f"alpha={self.alpha} and lambda_={self.lambda_} must be >= 0 and lr={self.lr} above 0"
            )
        if not 0.0 < self.init_gate < 1.0:
            raise InvalidHyperparameterError(f"init_gate={self.init_gate} must lie strictly between 0 and 1")


def suppression(task: Task, logits: torch.Tensor) -> torch.Tensor:
    """Returns KL(uniform || softmax(logits)) on the task's scored positions: 0 when the outputs prefer no class."""
    return kl_divergence(logits, torch.zeros_like(logits), task.scored_positions)


def learn_removal_mask(
    forget: Task,
    retain: list[Task] | tuple[Task, ...] = (),
    ablation: str = "resample",
    per_position: bool = False,
    config: RemovalMaskConfig | None = None,
    seed: int = 0,
    progress: bool = False,
) -> frozenset[Edge]:
    """Returns the edges a removal mask trained on the tasks' inputs (the discovery split, by the caller's choice)
    removes: those whose noise-free gate ends at or below 0.5. The retain tasks must run the forget task's model."""
    config = config or RemovalMaskConfig()
    if not forget.categorical:
        raise InvalidHyperparameterError(
            f"task {forget.name} has numerical outputs; the removal mask suppresses a "
            "distribution over answers, so it needs a categorical forget task"
        )
    for task in retain:
        check_same_model(forget, task)
    graph = forget.graph(per_position)
    ablated = {t.name: task_ablation(t, graph, ablation) for t in (forget, *retain)}
    references = {t.name: full_logits(t) for t in retain}
    generator = torch.Generator().manual_seed(seed)
    log_alpha = torch.full((graph.n_edges,), hard_concrete.log_alpha_for(config.init_gate), requires_grad=True)
    optimiser = torch.optim.Adam([log_alpha], lr=config.lr)
    bar = tqdm(range(config.steps), disable=not progress, desc="removal mask", leave=False)
    for step in bar:
        masks = hard_concrete.sample_mask(log_alpha, config.n_samples, generator)  # [samples, edges]
        forgetting = suppression(
            forget, patched_forward(forget.adapter, graph, forget.clean, ablated[forget.name], masks)
        ).mean()
        keeping = (
            torch.stack(
                [faithfulness_loss(t, graph, ablated[t.name], masks, references[t.name]).mean() for t in retain]
            ).mean()
            if retain
            else torch.zeros(())
        )
        removed = 1 - hard_concrete.expected_l0(log_alpha).mean()
        loss = forgetting + config.alpha * keeping + config.lambda_ * removed
        if not bool(loss.isfinite()):
            raise NonFiniteMetricError(
                f"removal mask: the loss is {loss.item()} at step {step + 1} (suppression {forgetting.item()}, retain "
                f"metric {keeping.item()}); make the retain tasks' metrics finite for any outputs"
            )
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if progress:
            bar.set_postfix(
                {
                    "suppression": f"{forgetting.item():.3g}",
                    "retain": f"{keeping.item():.3g}",
                    "removed": int((log_alpha.detach() <= hard_concrete.KEEP_THRESHOLD).sum()),
                }
            )
    return frozenset(
        graph.edges[i] for i in torch.nonzero(log_alpha.detach() <= hard_concrete.KEEP_THRESHOLD).flatten().tolist()
    )
