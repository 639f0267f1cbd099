"""Bad input raises specific exceptions whose messages say what was wrong and how to fix it."""

import pytest
import torch

from edgewise import (
    BatchShapeError,
    Graph,
    GraphMismatchError,
    Task,
    UnknownAblationError,
    UnknownTaskError,
    UnsupportedArchitectureError,
    make_ablation,
    patched_forward,
)
from edgewise.metrics import METRICS
from edgewise.tracr_tasks import get_task


def test_unknown_task_name_suggests_the_closest():
    with pytest.raises(UnknownTaskError, match="did you mean 'tracr-reverse'|Did you mean 'tracr-reverse'"):
        get_task("tracr-revers")


def test_clean_and_corrupted_batches_of_different_shapes(reverse):
    with pytest.raises(BatchShapeError, match=r"same number of rows"):
        Task("t", reverse.model, reverse.clean, reverse.corrupt[:3], METRICS["kl"], reverse.scored_positions)
    graph = reverse.graph()
    ablated = make_ablation("resample", reverse.model, graph, reverse.corrupt[:3])
    with pytest.raises(BatchShapeError, match=r"\(3, 4\).*\(6, 4\)"):
        patched_forward(reverse.model, graph, reverse.clean, ablated, torch.ones(graph.n_edges))


def test_mask_of_the_wrong_length(reverse):
    graph = reverse.graph()
    ablated = reverse.ablation(graph)
    with pytest.raises(GraphMismatchError, match=r"has 77 edges.*per-position"):
        patched_forward(reverse.model, graph, reverse.clean, ablated, torch.ones(308))
    with pytest.raises(GraphMismatchError, match="float tensor"):
        patched_forward(reverse.model, graph, reverse.clean, ablated, torch.ones(77, dtype=torch.long))


def test_per_position_graph_with_another_sequence_length(reverse):
    graph = Graph.from_model(reverse.model, per_position=True, n_positions=6)
    ablated = reverse.ablation(graph)
    with pytest.raises(GraphMismatchError, match="6 positions but the batch has 4"):
        patched_forward(reverse.model, graph, reverse.clean, ablated, torch.ones(graph.n_edges))


def test_model_the_adapter_cannot_describe():
    with pytest.raises(UnsupportedArchitectureError, match="no adapter for Sequential"):
        Graph.from_model(torch.nn.Sequential(torch.nn.Linear(2, 2)))


def test_unknown_ablation(reverse):
    with pytest.raises(UnknownAblationError, match="resample, zero, mean"):
        reverse.ablation(reverse.graph(), "gaussian")


def test_edge_not_in_graph(reverse):
    with pytest.raises(GraphMismatchError, match="A3.0->A0.0.Q is not in this graph"):
        reverse.graph().edge_index(("A3.0", "A0.0.Q"))


def test_unknown_token_in_a_tracr_input(reverse):
    from edgewise import CompileError

    with pytest.raises(CompileError, match="not in tracr-reverse's vocabulary"):
        reverse.extras["compiled"].encode([[1, 2, 7]])
