"""The memory estimate of the patching forward: it equals the bytes the forward asks its buffer pool for (an
independent count, taken by wrapping the pool), and a training run whose estimate exceeds the memory available stops
before its first step."""

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
