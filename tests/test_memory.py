"""The memory estimate of the patching forward: it equals the bytes the forward asks its buffer pool for (an
independent count, taken by wrapping the pool), and a training run whose estimate exceeds the memory available stops
before its first step."""

import sys

import pytest
import torch

from edgewise.errors import InsufficientMemoryError
from edgewise.methods import discover
from edgewise.patching import forward, patched_forward, patching_bytes, task_ablation


def test_the_estimate_equals_the_buffers_a_training_forward_takes(reverse, monkeypatch):
    graph = reverse.graph()
    ablated = task_ablation(reverse, graph, "zero")
    taken = []
    original = forward._POOL.take

    def counting(like, shape, owner):
        taken.append(torch.Size(shape).numel() * like.element_size())
        return original(like, shape, owner)

    monkeypatch.setattr(forward._POOL, "take", counting)
    masks = torch.rand(3, graph.n_edges, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    patched_forward(reverse.model, graph, reverse.clean, ablated, masks).pow(2).sum().backward()
    n_positions = reverse.clean.shape[1]
    assert sum(taken) == patching_bytes(graph, ablated, reverse.clean.shape[0], n_positions, 3, gradients=True)
    assert taken  # the count saw the buffers: the check has teeth


def test_training_that_would_not_fit_stops_before_its_first_step(reverse, monkeypatch):
    import psutil

    class Tiny:
        available = 1024  # bytes

    monkeypatch.setattr(psutil, "virtual_memory", lambda: Tiny())
    calls = []
    monkeypatch.setattr(
        "edgewise.methods.subnetwork_probing.faithfulness_loss", lambda *a, **k: calls.append(1) or torch.zeros(())
    )
    with pytest.raises(InsufficientMemoryError, match=r"n_samples=4.*GiB available; reduce the masks a step"):
        discover(reverse, "edge-sp", steps=5)
    assert calls == []  # no step ran


def test_a_faithfulness_curve_takes_no_more_masks_a_forward_than_memory_allows(reverse, monkeypatch):
    """With memory for about one mask, the curve runs one mask a forward and gives the curve it gives in one pass."""
    import psutil

    from edgewise.evaluate import faithfulness_curve

    graph = reverse.graph()
    ablated = task_ablation(reverse, graph, "zero")
    scores = discover(reverse, "eap", graph=graph, ablated=ablated)
    together = faithfulness_curve(reverse, scores, ablated)
    one = patching_bytes(graph, ablated, reverse.clean.shape[0], reverse.clean.shape[1], 1, gradients=False)

    class Scarce:
        available = 4 * one + 1  # 25% of it: one mask's buffers

    masks_per_forward = []
    original = forward.patched_forward

    def counting(model, graph, tokens, ablated, mask):
        masks_per_forward.append(mask.shape[0])
        return original(model, graph, tokens, ablated, mask)

    monkeypatch.setattr(psutil, "virtual_memory", lambda: Scarce())
    # the module by its name: the package face's `faithfulness` is the function of that name
    monkeypatch.setattr(sys.modules["edgewise.evaluate.faithfulness"], "patched_forward", counting)
    apart = faithfulness_curve(reverse, scores, ablated)
    assert set(masks_per_forward) == {1} and len(masks_per_forward) == len(together.sizes)
    assert apart.faithfulness == pytest.approx(together.faithfulness, abs=1e-6)
