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
        tolerance: the largest difference that passes: the larger of `run_checks`'s tolerance times the plain
            forward's largest |logit| (or times 1 where that is smaller), and this patch's rounding noise
            (`_rounding_noise`) times `ROUNDING_MARGIN`.
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


# How many times its own rounding noise a patch may differ from its reference. The noise perturbs every reader's input
# by float rounding's worst case for a sum of its terms, once; the forward and its reference each round at every
# stage and inside every sublayer, so they may differ by a few times that. A wrong patch (an edge off by 1% of its
# contribution) is orders of magnitude larger on every model the tests check.
ROUNDING_MARGIN = 4.0


def _diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


def _rounding_noise(
    adapter, graph: Graph, clean: torch.Tensor, ablated, mask: torch.Tensor, patched: torch.Tensor, seed: int
) -> float:
    """Returns the largest logit change of the patched forward under `mask` when each reader's input is perturbed by
    float rounding of the sum that makes it up: machine epsilon times the sum of |terms| (every earlier writer's
    output, its ablated output and the reader's own value), times a standard normal per element.

    A fixed tolerance cannot tell rounding from a wrong patch: rounding grows with the activations a reader sums and
    with how sharply the model responds to its input (a norm of a nearly cancelled sum, as zero ablation leaves in
    Qwen 3's query/key norms, turns float32 rounding into logit differences far above 1e-5). Measuring the
    model's response to that rounding at the patch's own state gives each check the noise it must allow.
    """
    eps = torch.finfo(patched.dtype).eps
    generator = torch.Generator(device=clean.device).manual_seed(seed)
    terms: dict[tuple[int, ...], torch.Tensor] = {}  # sum of |writer outputs| so far, by value shape [.., d_model]

    def writer(group):
        def hook(value: torch.Tensor, hook) -> None:
            out = value.abs().sum(-2) if group.per_head else value.abs()
            key = tuple(out.shape)
            terms[key] = terms[key] + 2 * out if key in terms else 2 * out  # output and ablated output, alike in size
            return None

        return hook

    def reader(group):
        def hook(value: torch.Tensor, hook) -> torch.Tensor:
            own = value.abs()
            summed = terms.get(tuple(value.shape[:-2] + value.shape[-1:]) if group.per_head else tuple(value.shape))
            if summed is not None:
                own = own + (summed.unsqueeze(-2) if group.per_head else summed)
            noise = torch.randn(value.shape, generator=generator, device=value.device, dtype=value.dtype)
            return value + eps * own * noise

        return hook

    hooks = [(g.hook, writer(g) if g.kind == "writer" else reader(g)) for g in graph.groups]
    with adapter.hooks(hooks):
        noisy = patched_forward(adapter, graph, clean, ablated, mask)
    return _diff(noisy, patched)


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
    """Returns the exactness checks of the patching forward on `task` (each with a tolerance scaled by the logits' size
    and by its own rounding noise), on its head/MLP graph or, with `features`, on the feature graph of that
    dictionary set.

    The checks: a mask of ones gives the plain forward; a mask of zeros under resample ablation gives the forward on
    the corrupted batch; removing each of up to `n_edges` edges, those of a sample that move the logits most (one per
    reader kind first), matches a hand-written hook patch (`single_edge_patch`); and `n_masks` random masks match the
    per-edge reference (`per_edge_forward`) under every ablation, batched into one forward for resample; and the
    sparse forward of a pre-filtered run (`SparseMasking`: a tenth of the edges gated, the rest ablated) matches it
    too.

    Each check passes within the larger of `tolerance` (relative to the logits) and `ROUNDING_MARGIN` times the
    logit change its patched forward shows when every reader's input is perturbed by float rounding of the terms it
    sums (`_rounding_noise`): float32 rounding on a correct patch passes on models that amplify it (query/key norms
    of a nearly ablated input), while a patch that is wrong by a small real amount still fails.

    Args:
        task: the task whose model, clean and corrupted batches are used.
        per_position: check the graph unrolled over the task's positions.
        n_edges: the most single-edge removals to check.
        n_masks: how many random masks to check per ablation.
        tolerance: the least tolerance of every check: a logit difference relative to the plain forward's largest
            |logit| (when over 1); a check whose rounding noise is larger allows `ROUNDING_MARGIN` times that.
        seed: seeds the candidate edges' sample and the random masks.
        features: a dictionary set's name (a key of `task.dictionaries`); None: the head/MLP graph.

    Returns:
        One result per check, in the order above.
    """
    graph = task.graph(per_position=per_position, features=features)
    adapter = task.adapter
    clean, corrupt = task.clean, task.corrupt
    full, corrupted = adapter.forward(clean), adapter.forward(corrupt)
    floor = tolerance * max(1.0, full.abs().max().item())
    resample = task_ablation(task, graph, "resample")
    ones, zeros = torch.ones(graph.n_edges, dtype=full.dtype), torch.zeros(graph.n_edges, dtype=full.dtype)

    def check(name: str, patched: torch.Tensor, reference: torch.Tensor, ablated, mask) -> CheckResult:
        noise = _rounding_noise(adapter, graph, clean, ablated, mask, patched, seed)
        tol = max(floor, ROUNDING_MARGIN * noise)
        return CheckResult(name, _diff(patched, reference), tol, _diff(patched, full))

    results = [
        check(
            "mask of ones = plain forward",
            patched_forward(adapter, graph, clean, resample, ones),
            full,
            resample,
            ones,
        ),
        check(
            "mask of zeros (resample) = corrupted forward",
            patched_forward(adapter, graph, clean, resample, zeros),
            corrupted,
            resample,
            zeros,
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
                resample,
                mask,
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
                    ablated,
                    mask,
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
            resample,
            mask,
        )
    )
    return results
