"""The patching forward and every method on a CUDA model: exact against the per-edge reference, and the same scores
as on the CPU. Skipped without a GPU (CI has none); run on a GPU machine with `pytest tests/test_cuda.py`."""

import pytest
import torch
from conftest import random_transformer

from edgewise.graph import Graph
from edgewise.methods import discover
from edgewise.patching import patched_forward
from edgewise.patching.ablation import resample_ablation
from edgewise.patching.reference import per_edge_forward
from edgewise.tasks import METRICS, Task

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def random_task(device: str) -> Task:
    """Returns a task on a random float64 LayerNorm+GQA model, its tensors on `device`."""
    g = torch.Generator().manual_seed(0)
    clean, corrupt = torch.randint(0, 20, (6, 8), generator=g), torch.randint(0, 20, (6, 8), generator=g)
    scored = torch.zeros(6, 8, dtype=torch.bool)
    scored[:, -1] = True
    return Task("random", random_transformer().double(), clean, corrupt, METRICS["kl"], scored).to(device)


@pytest.mark.parametrize("per_position", [False, True])
def test_patching_on_cuda_equals_the_per_edge_reference(per_position):
    task = random_task("cuda")
    graph = Graph.from_model(task.adapter, per_position, 8 if per_position else None)
    ablated = resample_ablation(task.adapter, graph, task.corrupt)
    forward = lambda mask: patched_forward(task.adapter, graph, task.clean, ablated, mask)  # noqa: E731
    mask = torch.rand(graph.n_edges, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.allclose(forward(torch.ones(graph.n_edges)), task.adapter.forward(task.clean), atol=1e-10)
        assert torch.allclose(forward(torch.zeros(graph.n_edges)), task.adapter.forward(task.corrupt), atol=1e-10)
        reference = per_edge_forward(task.adapter, graph, task.clean, ablated, mask.cuda())
        assert torch.allclose(forward(mask), reference, atol=1e-10)


@pytest.mark.parametrize("method", ["eap", "eap-ig-inputs", "eap-ig-activations", "exact", "acdc"])
def test_deterministic_methods_score_the_same_on_cuda_as_on_cpu(method):
    on_cpu, on_cuda = (discover(random_task(d), method, "resample") for d in ("cpu", "cuda"))
    assert on_cuda.scores.device.type == "cpu"
    assert torch.allclose(on_cuda.scores.double(), on_cpu.scores.double(), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("method", ["edge-sp", "node-sp"])
def test_subnetwork_probing_trains_on_cuda(method):
    scores = discover(random_task("cuda"), method, "resample", steps=20)
    assert torch.isfinite(scores.scores).all() and scores.scores.unique().numel() > 1
