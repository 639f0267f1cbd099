"""Planted redundancy: the tracr-redundant-* programs compute what they say, their copies back each other up (checked
with hand-written hooks on the heads' outputs), the redundancy-aware truth is the union of the minimal faithful
circuits (brute force over every sub-circuit), and redundant groups, diagnose and the bench report the copies."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
import torch
from conftest import tracr

from edgewise.diagnostics import diagnose, redundant_groups
from edgewise.evaluate import effective_truth
from edgewise.evaluate.ground_truth import OUTPUT_TOLERANCE, removal_changes, scored_change
from edgewise.graph import Edge
from edgewise.patching import full_logits, patched_forward, task_ablation
from edgewise.suite.bench import RunRecord
from edgewise.suite.bench.summary import summary_markdown

COPIES = {"tracr-redundant-or": 2, "tracr-redundant-majority": 3, "tracr-redundant-backup": 2}


def _prev_is_x(sequence: list) -> list[bool]:
    return [i > 0 and sequence[i - 1] == "x" for i in range(len(sequence))]


@pytest.mark.parametrize("name", list(COPIES))
def test_each_program_says_whether_the_previous_token_is_x(name):
    task = tracr(name)
    values = task.family.compiled.output_values
    answers = full_logits(task).argmax(-1)[:, 1:]  # after BOS
    expected = torch.tensor([_prev_is_x(s) for s in task.family.sequences])
    assert [[values[a] for a in row] for row in answers.tolist()] == expected.tolist()


def _heads_replaced(task, layer: int, heads: tuple[int, ...], kind: str) -> torch.Tensor:
    """Returns the model's logits with these heads' outputs replaced by hand: by zero, or by their outputs on the
    corrupted inputs (resample)."""
    name = f"blocks.{layer}.attn.hook_result"
    corrupted = {}
    task.model.run_with_hooks(task.corrupt, fwd_hooks=[(name, lambda v, hook: corrupted.setdefault("v", v.clone()))])

    def replace(value, hook):
        value = value.clone()
        for h in heads:
            value[:, :, h] = 0 if kind == "zero" else corrupted["v"][:, :, h]
        return value

    return task.model.run_with_hooks(task.clean, fwd_hooks=[(name, replace)])


@pytest.mark.parametrize(
    "name, layer, kind, suffice",
    [
        ("tracr-redundant-or", 1, "zero", 1),
        ("tracr-redundant-majority", 1, "zero", 2),
        ("tracr-redundant-majority", 1, "resample", 2),
    ],
)
@torch.no_grad()
def test_copies_back_each_other_up_by_hand_and_redundant_groups_agree(name, layer, kind, suffice):
    """Removing fewer copies than `suffice` allows leaves every answer; removing one more changes some. The groups
    found by joint edge removals name the same heads."""
    task = tracr(name)
    full = full_logits(task)
    n = COPIES[name]
    for removed in range(1, n + 1):
        for heads in itertools.combinations(range(n), removed):
            change = scored_change(task, _heads_replaced(task, layer, heads, kind), full).item()
            assert (change <= OUTPUT_TOLERANCE) == (n - removed >= suffice), (heads, change)
    graph = task.graph()
    [group] = redundant_groups(task, graph, task_ablation(task, graph, kind))
    assert group.names == tuple(f"A{layer}.{h}" for h in range(n)) and group.suffice == suffice
    expected = f"A{layer}.0 and A{layer}.1 each suffice" if n == 2 else "any 2 of A1.0, A1.1 and A1.2 suffice"
    assert group.describe() == expected


@pytest.mark.parametrize("kind", ["zero", "mean"])
@torch.no_grad()
def test_redundancy_aware_truth_is_the_union_of_minimal_faithful_circuits(kind):
    """Brute force over all 4096 sub-circuits of tracr-redundant-or's 12-edge derived circuit (on 24 of its inputs,
    for time): the faithful ones, the inclusion-minimal among them, and their union, which must be the effective
    truth on the same inputs."""
    full = tracr("tracr-redundant-or")
    task = dataclasses.replace(
        full, clean=full.clean[:24], corrupt=full.corrupt[:24], scored_positions=full.scored_positions[:24]
    )
    graph = task.graph()
    ablated = task_ablation(task, graph, kind)
    derived = sorted(task.ground_truth_edges(graph), key=graph.edge_index)
    reference = patched_forward(task.model, graph, task.clean, ablated, graph.mask_for(derived).unsqueeze(0))
    subsets = [frozenset(e for i, e in enumerate(derived) if bits >> i & 1) for bits in range(2 ** len(derived))]
    removals = [tuple(e for e in derived if e not in s) for s in subsets]
    changes = removal_changes(task, graph, ablated, set(derived), removals, reference)
    faithful = [s for s, c in zip(subsets, changes) if c <= OUTPUT_TOLERANCE]
    minimal = [s for s in faithful if not any(t < s for t in faithful)]
    assert len(minimal) >= 2  # redundancy: more than one minimal circuit
    truth = effective_truth(task, graph, ablated)
    assert truth.edges == frozenset().union(*minimal)
    assert not truth.edges <= truth.needed  # single removals alone would have missed the copies


@torch.no_grad()
def test_resample_needs_both_or_copies_so_the_truth_has_no_partners():
    """Under resample ablation a copy gives a wrong answer instead of none, and an OR cannot outvote it: each copy
    is needed alone, as single removals find."""
    task = tracr("tracr-redundant-or")
    graph = task.graph()
    ablated = task_ablation(task, graph, "resample")
    truth = effective_truth(task, graph, ablated)
    assert truth.partners == () and redundant_groups(task, graph, ablated, truth) == []
    assert {Edge("A1.0", "MLP 1"), Edge("A1.1", "MLP 1")} <= truth.edges


def test_copies_kept_counts_whole_copies_only():
    task = tracr("tracr-redundant-or")
    graph = task.graph()
    [group] = redundant_groups(task, graph, task_ablation(task, graph, "zero"))
    first, second = group.copies
    assert group.copies_kept(set(first | second)) == 2
    assert group.copies_kept(set(first) | {next(iter(second))}) == (1 if len(second) > 1 else 2)
    assert group.copies_kept(set()) == 0


def test_diagnose_names_the_groups_and_the_bench_summary_counts_copies_kept():
    task = tracr("tracr-redundant-majority")
    report = diagnose(task, ablations=("resample",)).to_dict()["ablations"]["resample"]
    [group] = report["redundant_groups"]
    assert group["description"] == "any 2 of A1.0, A1.1 and A1.2 suffice"
    assert group["copies_kept"] == 2  # the greedy minimal circuit keeps two of three
    records = [
        {
            "task": "t",
            "graph": "plain",
            "ablation": "resample",
            "method": m,
            "redundancy": [{"copies": ["A1.0", "A1.1", "A1.2"], "suffice": 2, "copies_kept": kept}],
        }
        for m, kept in (("a", 3), ("b", 1))
    ]
    summary = summary_markdown([RunRecord.from_json(r) for r in records])
    assert "copies kept" in summary and "| 3/3 |" in summary and "| 1/3 |" in summary
