"""Bad input raises specific exceptions whose messages say what was wrong and how to fix it."""

import os
import re

import pytest
import torch

from edgewise import (
    BatchShapeError,
    CompileError,
    Graph,
    GraphMismatchError,
    InvalidMaskError,
    InvalidTokensError,
    Task,
    UnknownAblationError,
    UnknownTaskError,
    UnsupportedArchitectureError,
    make_ablation,
    patched_forward,
)
from edgewise.patching import task_ablation
from edgewise.suite.tasks.tracr import get_task, tracr_task
from edgewise.tasks import METRICS


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
    ablated = task_ablation(reverse, graph)
    with pytest.raises(GraphMismatchError, match=r"has 77 edges.*per-position"):
        patched_forward(reverse.model, graph, reverse.clean, ablated, torch.ones(308))
    with pytest.raises(GraphMismatchError, match="float tensor"):
        patched_forward(reverse.model, graph, reverse.clean, ablated, torch.ones(77, dtype=torch.long))


def test_per_position_graph_with_another_sequence_length(reverse):
    graph = Graph.from_model(reverse.model, per_position=True, n_positions=6)
    ablated = task_ablation(reverse, graph)
    with pytest.raises(GraphMismatchError, match="6 positions but the batch has 4"):
        patched_forward(reverse.model, graph, reverse.clean, ablated, torch.ones(graph.n_edges))


def test_model_the_adapter_cannot_describe():
    with pytest.raises(UnsupportedArchitectureError, match="no adapter for Sequential"):
        Graph.from_model(torch.nn.Sequential(torch.nn.Linear(2, 2)))


def test_unknown_ablation(reverse):
    with pytest.raises(UnknownAblationError, match="resample, zero, mean"):
        task_ablation(reverse, reverse.graph(), "gaussian")


def test_edge_not_in_graph(reverse):
    with pytest.raises(GraphMismatchError, match="A3.0->A0.0.Q is not in this graph"):
        reverse.graph().edge_index(("A3.0", "A0.0.Q"))


def test_unknown_token_in_a_tracr_input(reverse):
    with pytest.raises(InvalidTokensError, match="not in tracr-reverse's vocabulary"):
        reverse.family.compiled.encode([[1, 2, 7]])


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
        patched_forward(reverse.model, graph, reverse.clean, task_ablation(reverse, graph), mask)


def test_graph_or_ablation_of_another_model(reverse, proportion):
    graph = reverse.graph()  # 4 layers; proportion's model has 2
    with pytest.raises(GraphMismatchError, match="no hook point 'blocks.2.hook_q_input'.*another model"):
        patched_forward(
            proportion.model,
            graph,
            proportion.clean,
            task_ablation(proportion, proportion.graph()),
            torch.ones(graph.n_edges),
        )
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


@pytest.mark.parametrize(
    "setting, message",
    [
        ("steps=abc", r"edge-sp: steps='abc' is not an integer"),
        ("steps=2.5", r"edge-sp: steps='2.5' is not an integer"),
        ("lr=nan", r"edge-sp: lr='nan' is not a finite number"),
        ("lr=-1", r"lr=-1.0 must be a number > 0"),
        ("init_gate=1.0", r"init_gate=1.0 must lie strictly between 0 and 1"),
        ("lambda_=nan", r"lambda_='nan' is not a finite number"),
        ("lambda_=inf", r"lambda_='inf' is not a finite number"),
        ("n_samples=0", r"at least 1"),
        ("target_edges=many", r"target_edges='many' is not an integer \(or none\)"),
        ("no_such=1", r"edge-sp has no hyperparameter no_such"),
        ("steps", r"--set takes NAME=VALUE"),
    ],
)
def test_bad_hyperparameters_exit_2_before_any_work(setting, message, monkeypatch):
    from conftest import run_edgewise

    import edgewise.suite.tasks

    def no_work(*args, **kwargs):
        raise AssertionError("the task was loaded before the hyperparameters were checked")

    monkeypatch.setattr(edgewise.suite.tasks, "get_task", no_work)
    result = run_edgewise("discover", "tracr-reverse", "--method", "edge-sp", "--set", setting)
    assert result.returncode == 2, result.stdout + result.stderr
    assert re.search(message, result.stderr), result.stderr


@pytest.mark.parametrize("setting", ["threshold=nan", "threshold=-inf", "masks_per_forward=0"])
def test_bad_acdc_settings(setting):
    from conftest import run_edgewise

    result = run_edgewise("discover", "tracr-reverse", "--method", "acdc", "--set", setting)
    assert result.returncode == 2 and setting.split("=")[0] in result.stderr, result.stderr


@pytest.mark.parametrize("top_k", ["0", "-3", "two"])
def test_top_k_must_be_a_positive_integer(top_k):
    from conftest import run_edgewise

    result = run_edgewise("discover", "tracr-reverse", "--top-k", top_k)
    assert result.returncode == 2 and "--top-k" in result.stderr, result.stderr


def test_output_paths_that_cannot_be_written_exit_2_before_any_work(tmp_path, monkeypatch):
    from conftest import run_edgewise

    import edgewise.suite.tasks

    monkeypatch.setattr(
        edgewise.suite.tasks, "get_task", lambda *a, **k: pytest.fail("work started before the path check")
    )
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    cases = [
        (["discover", "tracr-reverse", "--json", str(tmp_path)], "is a directory"),
        (["discover", "tracr-reverse", "--circuit-out", str(blocker / "c.json")], "is a file, not a folder"),
        (["graph", "tracr-reverse", "--json", str(tmp_path)], "is a directory"),
        (["diagnose", "tracr-reverse", "--json", str(tmp_path)], "is a directory"),
        (["bench", "--out", str(blocker)], "is a file"),
        (["demo", "--out", str(blocker)], "is a file"),
    ]
    if os.geteuid() != 0:  # root writes anywhere
        cases.append((["discover", "tracr-reverse", "--json", str(locked / "s.json")], "not writable"))
    for args, message in cases:
        result = run_edgewise(*args)
        assert result.returncode == 2 and message in result.stderr, (args, result.stderr)


def test_a_circuit_or_scores_file_of_another_task(tmp_path, reverse, proportion):
    from edgewise import Circuit, EdgeScores, discover

    scores = discover(reverse, "random")
    scores.save(tmp_path / "s.json")
    with pytest.raises(GraphMismatchError, match="computed on task 'tracr-reverse', not 'tracr-proportion'"):
        EdgeScores.load(tmp_path / "s.json", task="tracr-proportion")
    assert EdgeScores.load(tmp_path / "s.json", task="tracr-reverse").task == "tracr-reverse"
    from edgewise.graph import circuit_from_scores

    circuit_from_scores(scores, top_k=3).save(tmp_path / "c.json")
    with pytest.raises(GraphMismatchError, match="found on task 'tracr-reverse', not 'tracr-proportion'"):
        Circuit.load(tmp_path / "c.json", task="tracr-proportion")
    with pytest.raises(GraphMismatchError, match="graph of 77 edges, but this graph has 23"):
        Circuit.load(tmp_path / "c.json").mask(proportion.graph())
    from conftest import run_edgewise

    result = run_edgewise("diagnose", "tracr-proportion", "--circuit", str(tmp_path / "c.json"))
    assert result.returncode == 2 and "found on task 'tracr-reverse'" in result.stderr, result.stderr
