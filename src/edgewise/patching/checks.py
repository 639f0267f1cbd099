"""Patching exactness checks on a task's model, each against an independent reference (see reference.py).

`edgewise check TASK` runs them and exits non-zero if any fails; the test suite runs them on several models.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from ..graph import Edge, Graph
from ..tasks import Task
from .ablation import task_ablation
from .forward import patched_forward
from .reference import per_edge_forward, single_edge_patch
from .sparse import SparseMasking


@dataclass(frozen=True)
class CheckResult:
    """One exactness check: the largest absolute logit difference from its reference, the tolerance, and how far
    the patch moved the logits from the plain forward (a check whose patch changes nothing proves little).

    Attributes:
        name: what is checked against what, e.g. `mask of ones = plain forward`.
        max_abs_diff: the largest absolute logit difference between the patched forward and its reference.
        tolerance: the largest difference that passes: `run_checks`'s tolerance times the plain forward's largest
            |logit|, or times 1 where that is smaller.
        effect: the largest absolute logit difference between the patched forward and the plain one.
    """

    name: str
    max_abs_diff: float
    tolerance: float
    effect: float

    @property
    def passed(self) -> bool:
        """Returns whether `max_abs_diff` is within `tolerance`."""
        return self.max_abs_diff <= self.tolerance

    def to_dict(self) -> dict:
        """Returns the check as JSON-ready data."""
        return {
            "name": self.name,
            "max_abs_diff": self.max_abs_diff,
            "tolerance": self.tolerance,
            "effect": self.effect,
            "passed": self.passed,
        }


def _diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


def _effective_edges(
    adapter, graph: Graph, clean: torch.Tensor, resample, full: torch.Tensor, n: int, seed: int
) -> list[Edge]:
    """Returns up to n edges whose single removal moves the logits most, one per reader kind (q, k, v, MLP, end)
    first: checking edges that change nothing would pass even for a forward that ignored the mask."""
    rng = random.Random(seed)
    # The patching forward keeps every writer's delta per mask: [writers, batch, pos, d_model] floats. Keep a chunk of
    # masks under ~1 GB, and on graphs that allow few masks per forward (SmolLM2: 4) sample fewer candidates.
    per_mask = len(graph.writers) * clean.numel() * adapter.describe()["d_model"] * 4
    chunk_size = max(1, min(64, 2**30 // per_mask))
    n_candidates = min(512, 16 * chunk_size)
    candidates = graph.edges if graph.n_edges <= n_candidates else rng.sample(graph.edges, n_candidates)
    effects = []
    for start in range(0, len(candidates), chunk_size):
        chunk = candidates[start : start + chunk_size]
        masks = torch.ones(len(chunk), graph.n_edges)
        for row, edge in enumerate(chunk):
            masks[row, graph.edge_index(edge)] = 0
        logits = patched_forward(adapter, graph, clean, resample, masks)
        effects += (logits - full).flatten(1).abs().amax(1).tolist()
    ranked = sorted(zip(candidates, effects), key=lambda pair: -pair[1])
    best_per_kind: dict[tuple, Edge] = {}
    for edge, _ in ranked:
        node = graph.reader_node(edge.reader)
        best_per_kind.setdefault((node.kind, node.input), edge)
    picked = list(best_per_kind.values())
    picked += [e for e, _ in ranked if e not in picked]
    return picked[:n]


@torch.no_grad()
def run_checks(
    task: Task,
    per_position: bool = False,
    n_edges: int = 6,
    n_masks: int = 2,
    tolerance: float = 1e-5,
    seed: int = 0,
    features: str | None = None,
) -> list[CheckResult]:
    """Returns the exactness checks of the patching forward on `task` (tolerance scaled by the logits' size), on its
    head/MLP graph or, with `features`, on the feature graph of that dictionary set.

    The checks: a mask of ones gives the plain forward; a mask of zeros under resample ablation gives the forward on
    the corrupted batch; removing each of up to `n_edges` edges, those of a sample that move the logits most (one per
    reader kind first), matches a hand-written hook patch (`single_edge_patch`); and `n_masks` random masks match the
    per-edge reference (`per_edge_forward`) under every ablation, batched into one forward for resample; and the
    sparse forward of a pre-filtered run (`SparseMasking`: a tenth of the edges gated, the rest ablated) matches it
    too.

    Args:
        task: the task whose model, clean and corrupted batches are used.
        per_position: check the graph unrolled over the task's positions.
        n_edges: the most single-edge removals to check.
        n_masks: how many random masks to check per ablation.
        tolerance: the largest logit difference that passes, relative to the plain forward's largest |logit| (when
            over 1).
        seed: seeds the candidate edges' sample and the random masks.
        features: a dictionary set's name (a key of `task.dictionaries`); None: the head/MLP graph.

    Returns:
        One result per check, in the order above.
    """
    graph = task.graph(per_position=per_position, features=features)
    adapter = task.adapter
    clean, corrupt = task.clean, task.corrupt
    full, corrupted = adapter.forward(clean), adapter.forward(corrupt)
    tol = tolerance * max(1.0, full.abs().max().item())
    resample = task_ablation(task, graph, "resample")
    ones, zeros = torch.ones(graph.n_edges, dtype=full.dtype), torch.zeros(graph.n_edges, dtype=full.dtype)

    def check(name: str, patched: torch.Tensor, reference: torch.Tensor) -> CheckResult:
        return CheckResult(name, _diff(patched, reference), tol, _diff(patched, full))

    results = [
        check("mask of ones = plain forward", patched_forward(adapter, graph, clean, resample, ones), full),
        check(
            "mask of zeros (resample) = corrupted forward",
            patched_forward(adapter, graph, clean, resample, zeros),
            corrupted,
        ),
    ]
    for edge in _effective_edges(adapter, graph, clean, resample, full, n_edges, seed):
        mask = ones.clone()
        mask[graph.edge_index(edge)] = 0
        patched = patched_forward(adapter, graph, clean, resample, mask)
        results.append(
            check(
                f"remove {edge.name} = hand-written hook patch",
                patched,
                single_edge_patch(adapter, graph, clean, corrupt, edge),
            )
        )
    generator = torch.Generator().manual_seed(seed)
    masks = torch.rand(n_masks, graph.n_edges, generator=generator).to(full.dtype)
    batched = patched_forward(adapter, graph, clean, resample, masks)
    for kind in ("resample", "zero", "mean", "per-position-mean"):
        ablated = resample if kind == "resample" else task_ablation(task, graph, kind)
        for i, mask in enumerate(masks):
            patched = batched[i] if kind == "resample" else patched_forward(adapter, graph, clean, ablated, mask)
            label = "batched " if kind == "resample" else ""
            results.append(
                check(
                    f"random mask {i} ({kind}, {label}one pass) = per-edge reference",
                    patched,
                    per_edge_forward(adapter, graph, clean, ablated, mask),
                )
            )
    # The sparse forward of a pre-filtered SP run: a tenth of the edges gated (random gates), the rest ablated
    gated = torch.randperm(graph.n_edges, generator=generator)[: max(1, graph.n_edges // 10)]
    gates = torch.rand(len(gated), generator=generator).to(full.dtype)
    sparse = SparseMasking(adapter, graph, resample, gated, torch.zeros(graph.n_edges)).forward(clean, gates)
    mask = torch.zeros(graph.n_edges, dtype=full.dtype)
    mask[gated] = gates
    results.append(
        check(
            f"sparse forward ({len(gated)} gated, the rest ablated) = per-edge reference",
            sparse,
            per_edge_forward(adapter, graph, clean, resample, mask),
        )
    )
    return results
