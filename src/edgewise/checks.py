"""Patching exactness checks on a task's model, each against an independent reference (see reference.py).

`edgewise check TASK` runs them and exits non-zero if any fails; the test suite runs them on several models.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from .graph import Edge, Graph
from .patching import patched_forward
from .reference import per_edge_forward, single_edge_patch
from .task import Task


@dataclass(frozen=True)
class CheckResult:
    """One exactness check: the largest absolute logit difference from its reference, and the tolerance."""

    name: str
    max_abs_diff: float
    tolerance: float

    @property
    def passed(self) -> bool:
        return self.max_abs_diff <= self.tolerance

    def to_dict(self) -> dict:
        return {"name": self.name, "max_abs_diff": self.max_abs_diff, "tolerance": self.tolerance, "passed": self.passed}


def _diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


def _sample_edges(graph: Graph, n: int, seed: int) -> list[Edge]:
    """Returns up to n edges, covering each reader kind (q, k, v, MLP, end) before repeating one."""
    rng = random.Random(seed)
    by_kind: dict[str, list[Edge]] = {}
    for e in graph.edges:
        kind = e.reader.rsplit(".", 1)[-1] if e.reader.startswith("A") else e.reader.split(" ")[0]
        by_kind.setdefault(kind, []).append(e)
    picked = [rng.choice(edges) for edges in by_kind.values()]
    rest = [e for e in graph.edges if e not in picked]
    return (picked + rng.sample(rest, max(0, min(len(rest), n - len(picked)))))[:n]


@torch.no_grad()
def run_checks(
    task: Task, per_position: bool = False, n_edges: int = 6, n_masks: int = 2, tolerance: float = 1e-5, seed: int = 0
) -> list[CheckResult]:
    """Returns the exactness checks of the patching forward on `task` (tolerance scaled by the logits' size)."""
    graph = task.graph(per_position=per_position)
    adapter = task.adapter
    clean, corrupt = task.clean, task.corrupt
    full, corrupted = adapter.forward(clean), adapter.forward(corrupt)
    tol = tolerance * max(1.0, full.abs().max().item())
    resample = task.ablation(graph, "resample")
    ones, zeros = torch.ones(graph.n_edges), torch.zeros(graph.n_edges)
    results = [
        CheckResult("mask of ones = plain forward", _diff(patched_forward(adapter, graph, clean, resample, ones), full), tol),
        CheckResult(
            "mask of zeros (resample) = corrupted forward",
            _diff(patched_forward(adapter, graph, clean, resample, zeros), corrupted),
            tol,
        ),
    ]
    for edge in _sample_edges(graph, n_edges, seed):
        mask = ones.clone()
        mask[graph.edge_index(edge)] = 0
        patched = patched_forward(adapter, graph, clean, resample, mask)
        reference = single_edge_patch(adapter, graph, clean, corrupt, edge)
        results.append(CheckResult(f"remove {edge.name} = hand-written hook patch", _diff(patched, reference), tol))
    generator = torch.Generator().manual_seed(seed)
    masks = torch.rand(n_masks, graph.n_edges, generator=generator)
    batched = patched_forward(adapter, graph, clean, resample, masks)
    for kind in ("resample", "zero", "mean", "per-position-mean"):
        ablated = resample if kind == "resample" else task.ablation(graph, kind)
        for i, mask in enumerate(masks):
            reference = per_edge_forward(adapter, graph, clean, ablated, mask)
            patched = batched[i] if kind == "resample" else patched_forward(adapter, graph, clean, ablated, mask)
            label = "batched " if kind == "resample" else ""
            results.append(
                CheckResult(f"random mask {i} ({kind}, {label}one pass) = per-edge reference", _diff(patched, reference), tol)
            )
    return results
