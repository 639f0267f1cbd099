"""The compiler-derived circuits: faithful by construction, checked by patching, and the task data non-trivial."""

import pytest
import torch
from conftest import tracr

from edgewise.graph import Edge
from edgewise.patching import full_logits, patched_forward, task_ablation
from edgewise.suite.tasks.tracr import TRACR_TASKS

ABLATIONS = ["zero", "mean", "per-position-mean", "resample"]


@pytest.mark.parametrize("name", list(TRACR_TASKS))
@torch.no_grad()
def test_ground_truth_alone_reproduces_the_model_under_every_ablation(name):
    """Ablating every edge outside the derived circuit leaves the outputs exactly as they were."""
    task = tracr(name)
    full = full_logits(task)
    for per_position in (False, True):
        graph = task.graph(per_position)
        keep = graph.mask_for(task.ground_truth_edges(graph))
        for kind in ABLATIONS:
            logits = patched_forward(task.model, graph, task.clean, task_ablation(task, graph, kind), keep)
            assert torch.allclose(logits, full, atol=1e-5), (kind, per_position)


@pytest.mark.parametrize(
    "name, faithful", [("tracr-reverse", True), ("tracr-proportion", True), ("tracr-sort-repeated", False)]
)
@torch.no_grad()
def test_ground_truth_without_bos_position_under_resample(name, faithful):
    """auto-circuit's per-position convention (no BOS edges) holds on the ACDC tasks, but not in general: with
    bidirectional attention, what sort-repeated computes at the BOS position depends on the other tokens."""
    task = tracr(name)
    graph = task.graph(per_position=True)
    keep = graph.mask_for(task.ground_truth_edges(graph, include_bos=False))
    logits = patched_forward(task.model, graph, task.clean, task_ablation(task, graph, "resample"), keep)
    assert torch.allclose(logits, full_logits(task), atol=1e-5) == faithful


@pytest.mark.parametrize("name", list(TRACR_TASKS))
@torch.no_grad()
def test_task_data_is_not_trivial(name):
    """Outputs vary across inputs, and ablating everything changes them: there is a circuit to find."""
    task = tracr(name)
    full = full_logits(task)
    scored = full[task.scored_positions]
    assert not torch.allclose(scored, scored[:1].expand_as(scored), atol=1e-3)
    graph = task.graph()
    for kind in ("zero", "resample"):
        empty = patched_forward(
            task.model, graph, task.clean, task_ablation(task, graph, kind), torch.zeros(graph.n_edges)
        )
        assert task.metric(empty, full, task.scored_positions) > 1e-3, kind


def test_reverse_circuit_matches_hand_reading_of_the_program(reverse):
    """reverse = Aggregate(Select(indices, opp_idx - 1, EQ), tokens), opp_idx = length - indices, and
    length = SelectorWidth(Select(tokens, tokens, TRUE)): layer 0 computes length (head + MLP), MLP 1 opp_idx,
    MLP 2 opp_idx - 1, head 3 the aggregate. Embeddings feed every stage's token/index/BOS/one inputs."""
    expected = {
        ("Resid Start", "A0.0.Q"),
        ("Resid Start", "A0.0.K"),
        ("Resid Start", "A0.0.V"),
        ("Resid Start", "MLP 0"),
        ("A0.0", "MLP 0"),
        ("Resid Start", "MLP 1"),
        ("MLP 0", "MLP 1"),
        ("MLP 1", "MLP 2"),
        ("Resid Start", "A3.0.Q"),
        ("MLP 2", "A3.0.Q"),
        ("Resid Start", "A3.0.K"),
        ("Resid Start", "A3.0.V"),
        ("A3.0", "Resid End"),
    }
    assert set(reverse.ground_truth) == expected


def test_proportion_circuit_matches_hand_reading_of_the_program(proportion):
    """frac_prevs = numerical Aggregate(Select(indices, indices, LEQ), numerical(tokens == 'x')): MLP 0 computes
    the indicator, head A1.0 averages it over the prefix (with BOS as the default key), nothing else is used. The
    value input reads only the indicator: BOS is in its space, but its OV weights map BOS to zero."""
    expected = {
        ("Resid Start", "MLP 0"),
        ("Resid Start", "A1.0.Q"),
        ("Resid Start", "A1.0.K"),
        ("MLP 0", "A1.0.V"),
        ("A1.0", "Resid End"),
    }
    assert set(proportion.ground_truth) == expected


@torch.no_grad()
def test_reverse_under_resample_needs_only_two_edges(reverse):
    """All reverse inputs share one length, so length and opp_idx are constant on the data: under resample ablation
    embeddings -> A3.0.V -> output is as faithful as the whole circuit, and dropping either edge is not."""
    graph = reverse.graph()
    ablated = task_ablation(reverse, graph, "resample")
    full = full_logits(reverse)
    two = {Edge("Resid Start", "A3.0.V"), Edge("A3.0", "Resid End")}
    assert torch.allclose(patched_forward(reverse.model, graph, reverse.clean, ablated, graph.mask_for(two)), full)
    for edge in two:
        logits = patched_forward(reverse.model, graph, reverse.clean, ablated, graph.mask_for(two - {edge}))
        assert reverse.metric(logits, full, reverse.scored_positions) > 0.1


def test_proportion_mirrors_acdc_data():
    """ACDC's proportion: 50 random length-4 sequences for discovery, 50 others held out, corrupted by shuffling."""
    from edgewise.suite.tasks.tracr import get_task

    task, held_out = get_task("tracr-proportion"), get_task("tracr-proportion", held_out=True)
    assert task.clean.shape == held_out.clean.shape == (50, 5)
    assert not (task.clean[:, None] == held_out.clean[None]).all(-1).any()  # disjoint splits
    assert sorted(task.corrupt.tolist()) == sorted(task.clean.tolist())  # a permutation of the batch
    assert "shuffle" in task.pairing and get_task("tracr-proportion", metric="l2").metric.name == "l2"


def test_effective_ground_truth_matches_auto_circuit_resample_circuits(reverse, proportion):
    from edgewise.evaluate import effective_ground_truth

    graph = reverse.graph()
    assert effective_ground_truth(reverse, graph, task_ablation(reverse, graph, "resample")) == {
        Edge("Resid Start", "A3.0.V"),
        Edge("A3.0", "Resid End"),
    }
    # Under zero ablation: ACDC's 10 edges (tests/test_interop_acdc.py); Resid Start->A3.0.Q moves only the unscored
    # BOS output, and the truth counts scored positions only.
    zero = effective_ground_truth(reverse, graph, task_ablation(reverse, graph, "zero"))
    assert len(zero) == 10 and Edge("Resid Start", "A3.0.Q") not in zero
    graph = proportion.graph()
    assert effective_ground_truth(proportion, graph, task_ablation(proportion, graph, "resample")) == {
        Edge("Resid Start", "MLP 0"),
        Edge("MLP 0", "A1.0.V"),
        Edge("A1.0", "Resid End"),
    }
    # Zero ablation removes the positions and BOS too, so the query and key edges matter again.
    assert effective_ground_truth(proportion, graph, task_ablation(proportion, graph, "zero")) == set(
        proportion.ground_truth_edges(graph)
    )


def test_argmax_truth_measure_counts_changed_answers_at_scored_positions(reverse):
    """The argmax measure against a hand count: per row of removals, the share of scored (sequence, position) cells
    whose top output differs from the reference's; unscored positions (BOS) never count."""
    import dataclasses

    from edgewise.errors import UsageError
    from edgewise.evaluate.ground_truth import scored_change

    task = dataclasses.replace(reverse, truth_measure="argmax")
    generator = torch.Generator().manual_seed(0)
    reference = torch.randn(*task.clean.shape, 3, generator=generator)
    logits = reference.repeat(3, 1, 1, 1)
    logits[1] = torch.randn(reference.shape, generator=generator)
    logits[2, :, 0] = torch.randn(reference[:, 0].shape, generator=generator)  # only BOS, which no metric reads
    cells = [
        (b, p) for b in range(task.clean.shape[0]) for p in range(task.clean.shape[1]) if task.scored_positions[b, p]
    ]
    by_hand = [
        sum(int(logits[n, b, p].argmax() != reference[b, p].argmax()) for b, p in cells) / len(cells) for n in range(3)
    ]
    assert by_hand[0] == 0 and by_hand[1] > 0.3 and by_hand[2] == 0
    torch.testing.assert_close(scored_change(task, logits, reference), torch.tensor(by_hand))
    with pytest.raises(UsageError, match="truth_measure must be 'logits' or 'argmax', got 'kl'"):
        dataclasses.replace(reverse, truth_measure="kl")
