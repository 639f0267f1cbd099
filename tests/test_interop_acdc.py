"""ACDC <-> edgewise names, and our derived tracr circuits against ACDC's canonical ones.

The independent reference is ACDC's own canonical circuits, typed in below in ACDC's naming from
ArthurConmy/Automatic-Circuit-Discovery, acdc/tracr_task/utils.py (`get_tracr_reverse_edges`,
`get_tracr_proportion_edges`: "generated from ACDC run with threshold epsilon, metric l2 and zero ablation").
"""

import pytest
import torch

from edgewise.adapters.base import layered_hook_groups
from edgewise.errors import GraphMismatchError
from edgewise.graph import Graph
from edgewise.interop.acdc import (
    acdc_edge_type,
    export_acdc_edges,
    format_acdc_node,
    from_acdc_name,
    import_acdc_edges,
    parse_acdc_node,
    to_acdc_name,
)
from edgewise.patching import full_logits, patched_forward, task_ablation
from edgewise.tasks import METRICS

H0 = (None, None, 0)
ALL = (None,)

# ACDC's canonical tracr-reverse circuit, as listed in its repository (receiver first).
ACDC_REVERSE = [
    ("blocks.3.hook_resid_post", ALL, "blocks.3.attn.hook_result", H0),
    ("blocks.3.attn.hook_result", H0, "blocks.3.attn.hook_q", H0),
    ("blocks.3.attn.hook_result", H0, "blocks.3.attn.hook_k", H0),
    ("blocks.3.attn.hook_result", H0, "blocks.3.attn.hook_v", H0),
    ("blocks.3.attn.hook_q", H0, "blocks.3.hook_q_input", H0),
    ("blocks.3.attn.hook_k", H0, "blocks.3.hook_k_input", H0),
    ("blocks.3.attn.hook_v", H0, "blocks.3.hook_v_input", H0),
    ("blocks.3.hook_q_input", H0, "blocks.2.hook_mlp_out", ALL),
    ("blocks.3.hook_k_input", H0, "hook_pos_embed", ALL),
    ("blocks.3.hook_v_input", H0, "hook_embed", ALL),
    ("blocks.2.hook_mlp_out", ALL, "blocks.2.hook_mlp_in", ALL),
    ("blocks.2.hook_mlp_in", ALL, "blocks.1.hook_mlp_out", ALL),
    ("blocks.1.hook_mlp_out", ALL, "blocks.1.hook_mlp_in", ALL),
    ("blocks.1.hook_mlp_in", ALL, "blocks.0.hook_mlp_out", ALL),
    ("blocks.1.hook_mlp_in", ALL, "hook_embed", ALL),
    ("blocks.1.hook_mlp_in", ALL, "hook_pos_embed", ALL),
    ("blocks.0.hook_mlp_out", ALL, "blocks.0.hook_mlp_in", ALL),
    ("blocks.0.hook_mlp_in", ALL, "blocks.0.attn.hook_result", H0),
    ("blocks.0.hook_mlp_in", ALL, "hook_embed", ALL),
    ("blocks.0.attn.hook_result", H0, "blocks.0.attn.hook_q", H0),
    ("blocks.0.attn.hook_result", H0, "blocks.0.attn.hook_k", H0),
    ("blocks.0.attn.hook_result", H0, "blocks.0.attn.hook_v", H0),
    ("blocks.0.attn.hook_v", H0, "blocks.0.hook_v_input", H0),
    ("blocks.0.hook_v_input", H0, "hook_embed", ALL),
]

# ACDC's canonical tracr-proportion circuit, as listed in its repository (receiver first).
ACDC_PROPORTION = [
    ("blocks.1.hook_resid_post", ALL, "blocks.1.attn.hook_result", H0),
    ("blocks.1.attn.hook_result", H0, "blocks.1.attn.hook_q", H0),
    ("blocks.1.attn.hook_result", H0, "blocks.1.attn.hook_k", H0),
    ("blocks.1.attn.hook_result", H0, "blocks.1.attn.hook_v", H0),
    ("blocks.1.attn.hook_q", H0, "blocks.1.hook_q_input", H0),
    ("blocks.1.attn.hook_k", H0, "blocks.1.hook_k_input", H0),
    ("blocks.1.attn.hook_v", H0, "blocks.1.hook_v_input", H0),
    ("blocks.1.hook_q_input", H0, "hook_embed", ALL),
    ("blocks.1.hook_q_input", H0, "hook_pos_embed", ALL),
    ("blocks.1.hook_k_input", H0, "hook_embed", ALL),
    ("blocks.1.hook_k_input", H0, "hook_pos_embed", ALL),
    ("blocks.1.hook_v_input", H0, "blocks.0.hook_mlp_out", ALL),
    ("blocks.0.hook_mlp_out", ALL, "blocks.0.hook_mlp_in", ALL),
    ("blocks.0.hook_mlp_in", ALL, "hook_embed", ALL),
]

# The edges our derived ground truth has beyond ACDC's, and why (docs/ground-truth.md explains each).
EXTRA_IN_DERIVED = {
    "tracr-reverse": {
        ("Resid Start", "A0.0.Q"),  # length head: Select(tokens, tokens, TRUE) attends uniformly; zero Q does too
        ("Resid Start", "A0.0.K"),  # same head: with Q or K zeroed every score is equal, the pattern is unchanged
        ("Resid Start", "A3.0.Q"),  # `one`/BOS query reads: only the default attention to BOS, never used here
    },
    # The compiler's value space for A1.0 also holds the BOS direction, but the OV matrix maps it to zero, so the
    # weight check drops Resid Start->A1.0.V: the derived circuit equals ACDC's.
    "tracr-proportion": set(),
}
EXTRA_IN_DERIVED_SPLIT = {
    "tracr-reverse": {
        ("Tok Embed", "A0.0.Q"),
        ("Tok Embed", "A0.0.K"),
        ("Tok Embed", "A3.0.Q"),
        ("Tok Embed", "A3.0.K"),  # the key side of A3.0's default attention to BOS (tokens:BOS)
    },
    "tracr-proportion": set(),
}
ACDC_CANONICAL = {"tracr-reverse": ACDC_REVERSE, "tracr-proportion": ACDC_PROPORTION}


def small_graph(split_embeddings: bool) -> Graph:
    """Returns a 3-layer graph with 4 query heads sharing 2 key-value heads, built without a model."""
    groups = layered_hook_groups(
        n_layers=3, n_heads=4, n_kv_heads=2, final_hook="blocks.2.hook_resid_post", split_embeddings=split_embeddings
    )
    return Graph(groups)


@pytest.mark.parametrize(
    "hook, index, split, expected",
    [
        ("hook_embed", ALL, False, "Resid Start"),
        ("hook_pos_embed", ALL, False, "Resid Start"),
        ("hook_embed", ALL, True, "Tok Embed"),
        ("hook_pos_embed", ALL, True, "Pos Embed"),
        ("blocks.0.hook_resid_pre", ALL, False, "Resid Start"),
        ("blocks.3.attn.hook_result", H0, False, "A3.0"),
        ("blocks.3.attn.hook_result", (None, None, 7), False, "A3.7"),
        ("blocks.3.hook_q_input", H0, False, "A3.0.Q"),
        ("blocks.3.hook_k_input", (None, None, 2), False, "A3.2.K"),
        ("blocks.3.hook_v_input", H0, False, "A3.0.V"),
        ("blocks.0.hook_mlp_out", ALL, False, "MLP 0"),
        ("blocks.1.hook_mlp_in", ALL, False, "MLP 1"),
        ("blocks.1.hook_resid_mid", ALL, False, "MLP 1"),
        ("blocks.3.hook_resid_post", ALL, False, "Resid End"),
    ],
)
def test_mapping_table(hook, index, split, expected):
    assert from_acdc_name(hook, index, split_embeddings=split) == expected
    assert from_acdc_name(format_acdc_node(hook, index), split_embeddings=split) == expected


def test_printed_form_round_trips():
    assert format_acdc_node("blocks.3.hook_q_input", H0) == "blocks.3.hook_q_input[:, :, 0]"
    assert format_acdc_node("hook_embed") == "hook_embed[:]"
    assert parse_acdc_node("blocks.3.hook_q_input[:, :, 0]") == ("blocks.3.hook_q_input", H0)
    graphviz_form = "blocks.3.attn.hook_result[COLON, COLON, 2]"  # ACDC's graphviz output spells the colon out
    assert parse_acdc_node(graphviz_form) == ("blocks.3.attn.hook_result", (None, None, 2))
    assert parse_acdc_node("hook_pos_embed") == ("hook_pos_embed", ALL)


@pytest.mark.parametrize("split", [False, True])
def test_every_edge_round_trips_through_acdc_names(split):
    graph = small_graph(split)
    edges = {(e.writer, e.reader) for e in graph.edges}
    exported = export_acdc_edges(edges, n_layers=3)
    assert all(acdc_edge_type(e) == "ADDITION" for e in exported)
    assert import_acdc_edges(exported, split_embeddings=split, graph=graph) == edges
    printed = [(format_acdc_node(s, si), format_acdc_node(r, ri)) for r, ri, s, si in exported]
    assert import_acdc_edges(printed, split_embeddings=split) == edges
    for writer, reader in edges:
        assert from_acdc_name(*to_acdc_name(writer, "writer"), split_embeddings=split) == writer
        assert from_acdc_name(*to_acdc_name(reader, "reader", n_layers=3), split_embeddings=split) == reader


def test_embeddings_merge_unless_split():
    edges = [("blocks.1.hook_mlp_in", ALL, "hook_embed", ALL), ("blocks.1.hook_mlp_in", ALL, "hook_pos_embed", ALL)]
    assert import_acdc_edges(edges) == {("Resid Start", "MLP 1")}
    assert import_acdc_edges(edges, split_embeddings=True) == {("Tok Embed", "MLP 1"), ("Pos Embed", "MLP 1")}
    assert import_acdc_edges([("Tok Embed", "MLP 1")]) == {("Resid Start", "MLP 1")}


def test_auto_circuit_names_and_mappings_are_accepted():
    assert import_acdc_edges(["Resid Start->A3.0.V", "A3.0->Resid End", ("MLP 0", "MLP 1")]) == {
        ("Resid Start", "A3.0.V"),
        ("A3.0", "Resid End"),
        ("MLP 0", "MLP 1"),
    }
    as_mapping = {ACDC_REVERSE[0]: True, ACDC_REVERSE[7]: False}  # ACDC's {edge: present} format
    assert import_acdc_edges(as_mapping) == {("A3.0", "Resid End")}


def test_direct_and_placeholder_edges_are_dropped():
    direct = ("blocks.3.attn.hook_q", H0, "blocks.3.hook_q_input", H0)
    head_placeholder = ("blocks.3.attn.hook_result", H0, "blocks.3.attn.hook_k", H0)
    mlp_placeholder = ("blocks.2.hook_mlp_out", ALL, "blocks.2.hook_mlp_in", ALL)
    assert acdc_edge_type(direct) == "DIRECT_COMPUTATION"
    assert acdc_edge_type(head_placeholder) == "PLACEHOLDER"
    assert acdc_edge_type(mlp_placeholder) == "PLACEHOLDER"
    assert import_acdc_edges([direct, head_placeholder, mlp_placeholder]) == set()
    assert import_acdc_edges([("blocks.3.hook_v_input[:, :, 0]", "blocks.3.attn.hook_v[:, :, 0]")]) == set()


@pytest.mark.parametrize(
    "edge, named",
    [
        (("blocks.3.hook_foo", ALL, "hook_embed", ALL), "blocks.3.hook_foo"),
        (("blocks.3.hook_q_input", ALL, "hook_embed", ALL), "blocks.3.hook_q_input[:]"),  # per-head hook, no head
        (("blocks.2.hook_resid_pre", ALL, "hook_embed", ALL), "blocks.2.hook_resid_pre"),
        (("A3.0.X", "Resid End"), "A3.0.X"),
        ("Resid Start->Resid Middle", "Resid Middle"),
    ],
)
def test_unknown_names_raise_naming_the_name_and_the_accepted_forms(edge, named):
    with pytest.raises(GraphMismatchError) as err:
        import_acdc_edges([edge])
    assert named in str(err.value)
    assert "hook_q_input" in str(err.value) and "Resid Start" in str(err.value)


def test_malformed_edges_raise():
    with pytest.raises(GraphMismatchError, match="writer, reader"):
        import_acdc_edges([("A3.0.V", "Resid Start")])  # reversed pair
    with pytest.raises(GraphMismatchError, match="inside one head"):
        acdc_edge_type(("blocks.3.attn.hook_q", H0, "blocks.3.hook_k_input", H0))  # q from k's input
    with pytest.raises(GraphMismatchError, match="not in this graph"):
        import_acdc_edges([("blocks.0.hook_q_input", H0, "blocks.1.hook_mlp_out", ALL)], graph=small_graph(False))
    with pytest.raises(GraphMismatchError, match="inside head"):
        from_acdc_name("blocks.3.attn.hook_q", H0)
    with pytest.raises(GraphMismatchError, match="role"):
        to_acdc_name("MLP 2")
    with pytest.raises(GraphMismatchError, match="n_layers"):
        to_acdc_name("Resid End")


def test_acdc_canonical_edge_types():
    """ACDC's lists hold ADDITION edges plus the edges inside each kept head and MLP."""
    kinds = {name: [acdc_edge_type(e) for e in edges] for name, edges in ACDC_CANONICAL.items()}
    assert [kinds["tracr-reverse"].count(k) for k in ("ADDITION", "DIRECT_COMPUTATION", "PLACEHOLDER")] == [11, 4, 9]
    assert [kinds["tracr-proportion"].count(k) for k in ("ADDITION", "DIRECT_COMPUTATION", "PLACEHOLDER")] == [7, 3, 4]


@pytest.fixture(scope="module")
def tasks():
    from edgewise.suite.tasks.tracr import get_task

    return {name: get_task(name) for name in ACDC_CANONICAL}


@pytest.mark.parametrize("name", list(ACDC_CANONICAL))
def test_derived_ground_truth_differs_from_acdc_by_the_documented_edges(tasks, name):
    acdc = import_acdc_edges(ACDC_CANONICAL[name], graph=tasks[name].graph())
    derived = set(tasks[name].ground_truth)
    assert derived - acdc == EXTRA_IN_DERIVED[name]
    assert acdc - derived == set()


@pytest.mark.parametrize("name", list(ACDC_CANONICAL))
def test_split_ground_truth_differs_from_acdc_by_the_documented_edges(tasks, name):
    """ACDC keeps token and position embeddings apart: compare like with like."""
    graph = tasks[name].graph(split_embeddings=True)
    acdc = import_acdc_edges(ACDC_CANONICAL[name], split_embeddings=True, graph=graph)
    derived = {(e.writer, e.reader) for e in tasks[name].ground_truth_edges(graph)}
    assert derived - acdc == EXTRA_IN_DERIVED_SPLIT[name]
    assert acdc - derived == set()


@pytest.mark.parametrize("name", list(ACDC_CANONICAL))
def test_documented_differences_carry_nothing_under_zero_ablation(tasks, name):
    """ACDC found its circuits with zero ablation: the edges it left out change no output beyond float error."""
    task = tasks[name]
    graph = task.graph()
    derived = set(task.ground_truth)
    circuits = [derived, import_acdc_edges(ACDC_CANONICAL[name])] + [derived - {e} for e in EXTRA_IN_DERIVED[name]]
    masks = torch.stack([graph.mask_for(c) for c in circuits])
    logits = patched_forward(task.adapter, graph, task.clean, task_ablation(task, graph, "zero"), masks)
    distance = METRICS["l2"](logits, full_logits(task), task.scored_positions)
    assert distance.max() < 1e-5


@pytest.mark.parametrize("name", list(ACDC_CANONICAL))
def test_effective_truth_under_zero_ablation_is_acdcs_canonical_circuit(tasks, name):
    """ACDC's canonical circuits come from zero ablation and score the task's positions: the one truth edgewise
    scores methods against (scored positions only, docs/ground-truth.md) is the same circuit."""
    from edgewise.evaluate import effective_ground_truth

    task = tasks[name]
    graph = task.graph()
    effective = effective_ground_truth(task, graph, task_ablation(task, graph, "zero"))
    assert {(e.writer, e.reader) for e in effective} == import_acdc_edges(ACDC_CANONICAL[name], graph=graph)
