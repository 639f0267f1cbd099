"""A random-scores baseline: what any method must beat."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .registry import register


@dataclass(frozen=True)
class RandomConfig:
    """No hyperparameters: scores are uniform draws from the seed."""


@register("random", RandomConfig)
def random_scores(task, graph, ablated, config: RandomConfig, seed: int, progress: bool) -> torch.Tensor:
    """Uniform random scores, reproducible from the seed.

    Args:
        task (Task): the task; unused.
        graph (Graph): the graph whose edges are scored.
        ablated (AblatedOutputs): what ablated edges carry; unused.
        config: no hyperparameters.
        seed: seeds the generator of the draws.
        progress: unused.

    Returns:
        Scores [n_edges] drawn uniformly from [0, 1), in float64.
    """
    return torch.rand(graph.n_edges, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
