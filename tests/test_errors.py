"""Bad input raises specific exceptions whose messages say what was wrong and how to fix it."""

import pytest
import torch

from edgewise import (
    BatchShapeError,
    CompileError,
    InvalidMaskError,
    InvalidTokensError,
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
from edgewise.tracr_tasks import get_task, tracr_task


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
    with pytest.raises(InvalidTokensError, match="not in tracr-reverse's vocabulary"):
        reverse.extras["compiled"].encode([[1, 2, 7]])


@pytest.mark.parametrize(
    "tokens, message",
    [
        (torch.tensor([[3, 0, 99]]), r"in \[0, 5\)"),
        (torch.tensor([[3, 0, -1]]), r"in \[0, 5\)"),
        (torch.tensor([3, 0, 1]), r"\[batch, pos\].*tokens\[None\]"),
        (torch.zeros(1, 9, dtype=torch.long), "exceeds the model's n_ctx=6"),
    ],
)
def test_tokens_the_model_cannot_take(reverse, tokens, message):
    with pytest.raises(InvalidTokensError, match=message):
        reverse.model(tokens)


def test_mask_with_nan(reverse):
    graph = reverse.graph()
    mask = torch.ones(graph.n_edges)
    mask[3] = float("nan")
    with pytest.raises(InvalidMaskError, match="NaN"):
        patched_forward(reverse.model, graph, reverse.clean, reverse.ablation(graph), mask)


def test_graph_or_ablation_of_another_model(reverse, proportion):
    graph = reverse.graph()  # 4 layers; proportion's model has 2
    with pytest.raises(GraphMismatchError, match="no hook point 'blocks.2.hook_q_input'.*another model"):
        patched_forward(proportion.model, graph, proportion.clean, proportion.ablation(proportion.graph()),
                        torch.ones(graph.n_edges))
    other = make_ablation("zero", proportion.model, proportion.graph(), proportion.clean)
    with pytest.raises(GraphMismatchError, match="recorded on another model"):
        patched_forward(reverse.model, graph, reverse.clean, other, torch.ones(graph.n_edges))


def test_n_positions_for_a_plain_graph(reverse):
    with pytest.raises(GraphMismatchError, match="pass per_position=True"):
        Graph.from_model(reverse.model, n_positions=4)


def test_graph_load_of_a_file_without_groups(tmp_path):
    (tmp_path / "g.json").write_text('{"nodes": [], "edges": []}')
    with pytest.raises(GraphMismatchError, match="no hook groups"):
        Graph.load(tmp_path / "g.json")


def test_tracr_task_with_something_that_is_not_a_program():
    from tracr.rasp import rasp

    with pytest.raises(CompileError, match="RASP sequence operations.*got str"):
        tracr_task("reverse", {1, 2}, 3, "bad")
    with pytest.raises(CompileError, match="got Select"):
        tracr_task(rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.EQ), {1, 2}, 3, "bad")


def test_tracr_task_with_one_sequence_cannot_be_paired():
    from tracr.compiler import lib
    from tracr.rasp import rasp

    with pytest.raises(BatchShapeError, match="at least 2 sequences"):
        tracr_task(lib.make_frac_prevs(rasp.tokens == "x"), {"x", "y"}, 3, "one", sequences=[["x", "y"]])
