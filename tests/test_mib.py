"""MIB circuit files <-> edgewise scores and circuits.

The independent reference is a MIB file typed in by hand below from the format of EAP-IG's `Graph.to_json`
(hannamw/EAP-IG, src/eap/graph.py): edge names `{parent}->{child}` with `<q>`/`<k>`/`<v>` for a head's input, in
the order `Graph.from_model` adds them, and node flags by EAP-IG's rule (in when an in-graph edge leaves the node
and one enters it; `input` needs only one leaving; `logits` is always in). MIB's published GPT-2 graph has 32,491
edges and 158 nodes (hannamw/MIB-circuit-track, circuits/ioi-eap-ig.json).
"""

import copy
import dataclasses
import json
import math

import pytest
import torch

from edgewise.adapters.base import layered_hook_groups
from edgewise.errors import GraphMismatchError, OutputPathError
from edgewise.graph import Circuit, Edge, EdgeScores, Graph
from edgewise.interop.mib import MibFileError, edgewise_node, from_mib, load_mib, mib_node_names, save_mib, to_mib


def graph(n_layers: int, n_heads: int, n_kv_heads: int | None = None, **options) -> Graph:
    groups = layered_hook_groups(
        n_layers=n_layers,
        n_heads=n_heads,
        n_kv_heads=n_kv_heads or n_heads,
        final_hook=f"blocks.{n_layers - 1}.hook_resid_post",
        split_embeddings=options.pop("split_embeddings", False),
    )
    return Graph(groups, **options)


# A 1-layer, 2-head model as MIB writes it. In the graph: input->a0.h0<q>, a0.h0->logits and a0.h1->m0, so a0.h0 is
# in (an edge in and one out), a0.h1 is not (nothing enters it), m0 is not (nothing leaves it).
HAND_WRITTEN = {
    "cfg": {"n_layers": 1, "n_heads": 2, "parallel_attn_mlp": False, "d_model": 8},
    "nodes": {
        "input": {"in_graph": True},
        "a0.h0": {"in_graph": True},
        "a0.h1": {"in_graph": False},
        "m0": {"in_graph": False},
        "logits": {"in_graph": True},
    },
    "edges": {
        "input->a0.h0<q>": {"score": 0.5, "in_graph": True},
        "input->a0.h0<k>": {"score": -0.25, "in_graph": False},
        "input->a0.h0<v>": {"score": 0.125, "in_graph": False},
        "input->a0.h1<q>": {"score": 1.5, "in_graph": False},
        "input->a0.h1<k>": {"score": -2.0, "in_graph": False},
        "input->a0.h1<v>": {"score": 3.0, "in_graph": False},
        "input->m0": {"score": 0.75, "in_graph": False},
        "a0.h0->m0": {"score": -0.5, "in_graph": False},
        "a0.h1->m0": {"score": 0.0625, "in_graph": True},
        "input->logits": {"score": 4.0, "in_graph": False},
        "a0.h0->logits": {"score": 2.5, "in_graph": True},
        "a0.h1->logits": {"score": -1.0, "in_graph": False},
        "m0->logits": {"score": 0.3, "in_graph": False},
    },
}


def random_scores_and_circuit(g: Graph, seed: int) -> tuple[EdgeScores, Circuit]:
    generator = torch.Generator().manual_seed(seed)
    values = torch.randn(g.n_edges, generator=generator, dtype=torch.float64)
    kept = torch.rand(g.n_edges, generator=generator) < 0.3
    circuit = Circuit(frozenset(e for e, k in zip(g.edges, kept.tolist()) if k))
    return EdgeScores(g, values, "random"), circuit


def test_gpt2_shaped_graph_has_mibs_edge_and_node_counts():
    g = graph(12, 12)
    record = to_mib(EdgeScores(g, torch.zeros(g.n_edges), "zeros"), d_model=768)
    assert len(record["edges"]) == 32_491
    assert len(record["nodes"]) == 158
    assert record["cfg"] == {"n_layers": 12, "n_heads": 12, "parallel_attn_mlp": False, "d_model": 768}
    assert list(record["edges"])[:4] == ["input->a0.h0<q>", "input->a0.h0<k>", "input->a0.h0<v>", "input->a0.h1<q>"]
    assert list(record["edges"])[-1] == "m11->logits"


def test_hand_written_file_maps_onto_named_edges():
    scores, circuit = from_mib(HAND_WRITTEN, graph(1, 2), task="hand")
    assert scores[Edge("Resid Start", "A0.0.Q")] == 0.5
    assert scores[Edge("Resid Start", "A0.1.K")] == -2.0
    assert scores[Edge("A0.1", "MLP 0")] == 0.0625
    assert scores[Edge("MLP 0", "Resid End")] == 0.3
    assert scores.task == "hand" and scores.method == "mib"
    assert circuit.edges == {Edge("Resid Start", "A0.0.Q"), Edge("A0.0", "Resid End"), Edge("A0.1", "MLP 0")}


def test_hand_written_file_is_reproduced_by_to_mib():
    scores, circuit = from_mib(HAND_WRITTEN, graph(1, 2))
    record = to_mib(scores, circuit, d_model=8)
    assert record == HAND_WRITTEN
    assert list(record["edges"]) == list(HAND_WRITTEN["edges"])  # EAP-IG's order, too


def test_without_a_circuit_only_logits_is_in_the_graph():
    record = to_mib(from_mib(HAND_WRITTEN, graph(1, 2))[0])
    assert not any(e["in_graph"] for e in record["edges"].values())
    assert [n for n, flags in record["nodes"].items() if flags["in_graph"]] == ["logits"]
    assert record["cfg"]["d_model"] == 0  # unknown: EAP-IG needs an integer but reads it only for neurons


@pytest.mark.parametrize("n_heads, n_kv_heads", [(3, 3), (4, 2), (6, 2)])
def test_round_trip_through_a_file(tmp_path, n_heads, n_kv_heads):
    g = graph(2, n_heads, n_kv_heads)
    scores, circuit = random_scores_and_circuit(g, seed=n_heads)
    save_mib(to_mib(scores, circuit), tmp_path / "circuit.json")
    back_scores, back_circuit = from_mib(load_mib(tmp_path / "circuit.json"), g)
    assert torch.equal(back_scores.scores, scores.scores)
    assert back_circuit.edges == circuit.edges


def test_gqa_key_edge_becomes_one_mib_edge_per_query_head():
    g = graph(1, 4, 2)
    values = torch.zeros(g.n_edges, dtype=torch.float64)
    values[g.edge_index(Edge("Resid Start", "A0.1.K"))] = 0.75
    record = to_mib(EdgeScores(g, values, "one"), Circuit(frozenset({Edge("Resid Start", "A0.1.K")})))
    kept = {name for name, e in record["edges"].items() if e["in_graph"]}
    assert kept == {"input->a0.h2<k>", "input->a0.h3<k>"}
    assert record["edges"]["input->a0.h2<k>"]["score"] == record["edges"]["input->a0.h3<k>"]["score"] == 0.75
    assert record["edges"]["input->a0.h0<k>"]["score"] == 0.0
    assert mib_node_names(g.reader_node("A0.1.K"), group_size=2) == ("a0.h2<k>", "a0.h3<k>")


def test_gqa_import_takes_the_mean_and_any():
    g = graph(1, 4, 2)
    record = to_mib(EdgeScores(g, torch.zeros(g.n_edges), "zeros"))
    record["edges"]["input->a0.h2<k>"] = {"score": 1.0, "in_graph": False}
    record["edges"]["input->a0.h3<k>"] = {"score": 4.0, "in_graph": True}
    scores, circuit = from_mib(record, g)
    assert scores[Edge("Resid Start", "A0.1.K")] == 2.5
    assert scores[Edge("Resid Start", "A0.0.K")] == 0.0
    assert circuit.edges == {Edge("Resid Start", "A0.1.K")}


def test_node_names_both_ways():
    g = graph(2, 4, 2)
    table = [
        ("Resid Start", "writer", "input"),
        ("A1.3", "writer", "a1.h3"),
        ("MLP 1", "writer", "m1"),
        ("A1.3.Q", "reader", "a1.h3<q>"),
        ("A1.0.V", "reader", "a1.h1<v>"),
        ("Resid End", "reader", "logits"),
    ]
    for ours, role, theirs in table:
        node = g.writer_node(ours) if role == "writer" else g.reader_node(ours)
        assert theirs in mib_node_names(node, group_size=2)
        assert edgewise_node(theirs, g) == node
    assert edgewise_node("a0.h3<k>", g).name == "A0.1.K"


def test_wrong_n_layers_is_a_graph_mismatch():
    record = copy.deepcopy(HAND_WRITTEN)
    record["cfg"]["n_layers"] = 2
    with pytest.raises(GraphMismatchError, match="n_layers=2, n_heads=2 but the graph has n_layers=1"):
        from_mib(record, graph(1, 2))


@pytest.mark.parametrize(
    "name, message",
    [
        ("input->a0.h2<q>", "not an edge of a 1-layer 2-head MIB graph"),
        ("a0.h0->a0.h1<q>", "not an edge of a 1-layer 2-head MIB graph"),
        ("Resid Start->A0.0.Q", "not a MIB edge name"),
        ("input->a0.h0<x>", "not a MIB edge name"),
    ],
)
def test_unknown_edge_name(name, message):
    record = copy.deepcopy(HAND_WRITTEN)
    record["edges"][name] = {"score": 1.0, "in_graph": False}
    with pytest.raises(MibFileError, match=message):
        from_mib(record, graph(1, 2))


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_score_names_the_edge(bad):
    record = copy.deepcopy(HAND_WRITTEN)
    record["edges"]["a0.h1->m0"]["score"] = bad
    with pytest.raises(MibFileError, match=r"edge 'a0.h1->m0' has score .*must be finite"):
        from_mib(record, graph(1, 2))


def test_non_finite_score_from_a_file(tmp_path):
    path = tmp_path / "nan.json"
    path.write_text(json.dumps(HAND_WRITTEN).replace('"score": 0.3', '"score": NaN'))
    with pytest.raises(MibFileError, match="m0->logits"):
        from_mib(load_mib(path), graph(1, 2))


def test_missing_edge_names_count_and_example():
    record = copy.deepcopy(HAND_WRITTEN)
    del record["edges"]["a0.h0->m0"]
    with pytest.raises(MibFileError, match=r"lacks 1 of the 13 edges .* e\.g\. 'a0\.h0->m0'"):
        from_mib(record, graph(1, 2))


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"score": "high", "in_graph": True}, "not a number"),
        ({"score": 1.0}, "MIB edges are"),
        ({"score": 1.0, "in_graph": "yes"}, "MIB edges are"),
    ],
)
def test_malformed_edge_entry(entry, message):
    record = copy.deepcopy(HAND_WRITTEN)
    record["edges"]["input->m0"] = entry
    with pytest.raises(MibFileError, match=message):
        from_mib(record, graph(1, 2))


def test_missing_file(tmp_path):
    with pytest.raises(MibFileError, match=r"cannot read the MIB file .*nope\.json.*expected EAP-IG's Graph\.to_json"):
        load_mib(tmp_path / "nope.json")


def test_non_json_file(tmp_path):
    path = tmp_path / "circuit.json"
    path.write_text("input->a0.h0<q> 0.5\n")
    with pytest.raises(MibFileError, match=r"is not JSON .*expected EAP-IG's Graph\.to_json"):
        load_mib(path)


@pytest.mark.parametrize(
    "content, message", [("[1, 2]", "JSON list, not an object"), ('{"cfg": {}, "edges": {}}', "has no nodes object")]
)
def test_json_that_is_not_a_mib_file(tmp_path, content, message):
    path = tmp_path / "circuit.json"
    path.write_text(content)
    with pytest.raises(MibFileError, match=message):
        load_mib(path)


def test_graphs_mib_cannot_hold():
    for g, message in [
        (graph(1, 2, n_positions=3), "no per-position edges"),
        (graph(1, 2, split_embeddings=True), "split_embeddings=False"),
    ]:
        with pytest.raises(GraphMismatchError, match=message):
            to_mib(EdgeScores(g, torch.zeros(g.n_edges), "zeros"))


def test_export_rejects_nan_scores_and_a_wrong_n_heads():
    g = graph(1, 2)
    values = torch.zeros(g.n_edges)
    values[g.edge_index(Edge("A0.1", "MLP 0"))] = math.nan
    with pytest.raises(MibFileError, match=r"edge A0\.1->MLP 0 has score nan"):
        to_mib(EdgeScores(g, values, "nan"))
    with pytest.raises(GraphMismatchError, match="n_heads=3 but the graph has 2"):
        to_mib(EdgeScores(g, torch.zeros(g.n_edges), "zeros"), n_heads=3)


def test_save_rejects_non_finite_records_and_unwritable_paths(tmp_path):
    record = copy.deepcopy(HAND_WRITTEN)
    save_mib(record, tmp_path / "ok.json")
    assert load_mib(tmp_path / "ok.json") == HAND_WRITTEN
    with pytest.raises(OutputPathError, match="could not write"):
        save_mib(record, tmp_path)  # a directory
    record["edges"]["m0->logits"]["score"] = math.inf
    with pytest.raises(MibFileError, match="NaN or infinite"):
        save_mib(record, tmp_path / "inf.json")


# ---------------------------------------------------------------------------------------------------------------
# Parallel attention and MLP (MIB's parallel_attn_mlp): a layer's MLP reads the writers before its block only


def parallel_graph(n_layers: int, n_heads: int) -> Graph:
    """Returns the graph of a model whose blocks add attention and MLP to the same residual (GPT-NeoX, Pythia)."""
    groups, before = [], ()
    for group in layered_hook_groups(
        n_layers=n_layers,
        n_heads=n_heads,
        n_kv_heads=n_heads,
        final_hook=f"blocks.{n_layers - 1}.hook_resid_post",
        split_embeddings=False,
    ):
        if group.hook.endswith("hook_q_input"):
            before = tuple(n.name for g in groups if g.kind == "writer" for n in g.nodes)
        fed_by = before if group.hook.endswith("hook_mlp_in") else None
        groups.append(dataclasses.replace(group, fed_by=fed_by))
    return Graph(groups)


# EAP-IG's Graph.from_model with parallel_attn_mlp: per earlier writer, its q/k/v edges into every head, then its edge
# into the MLP; no head feeds its own layer's MLP.
HAND_WRITTEN_PARALLEL = {
    "cfg": {"n_layers": 1, "n_heads": 2, "parallel_attn_mlp": True, "d_model": 8},
    # EAP-IG's node rule: a0.h1 has an in-graph edge leaving it but none entering it, so no node but logits is in
    "nodes": {name: {"in_graph": name == "logits"} for name in ("input", "a0.h0", "a0.h1", "m0", "logits")},
    "edges": {
        name: {"score": float(i), "in_graph": name == "a0.h1->logits"}
        for i, name in enumerate(
            [
                "input->a0.h0<q>",
                "input->a0.h0<k>",
                "input->a0.h0<v>",
                "input->a0.h1<q>",
                "input->a0.h1<k>",
                "input->a0.h1<v>",
                "input->m0",
                "input->logits",
                "a0.h0->logits",
                "a0.h1->logits",
                "m0->logits",
            ]
        )
    },
}


def test_parallel_blocks_export_as_mibs_parallel_graph():
    g = parallel_graph(1, 2)
    scores, circuit = from_mib(HAND_WRITTEN_PARALLEL, g)
    assert scores.scores[g.edge_index(Edge("Resid Start", "MLP 0"))] == 6.0
    assert circuit.edges == {Edge("A0.1", "Resid End")}
    record = to_mib(scores, circuit, d_model=8)
    assert record["cfg"] == HAND_WRITTEN_PARALLEL["cfg"]
    assert list(record["edges"]) == list(HAND_WRITTEN_PARALLEL["edges"])  # EAP-IG's order
    assert record == HAND_WRITTEN_PARALLEL


def test_parallel_and_sequential_files_do_not_load_on_each_others_graphs():
    with pytest.raises(GraphMismatchError, match=r"sequential attention and MLP \(parallel_attn_mlp: false\)"):
        from_mib(HAND_WRITTEN, parallel_graph(1, 2))
    with pytest.raises(GraphMismatchError, match=r"parallel attention and MLP \(parallel_attn_mlp: true\)"):
        from_mib(HAND_WRITTEN_PARALLEL, graph(1, 2))


def test_a_pythia_shaped_bridge_graph_round_trips(tmp_path):
    from test_bridge_families import _boot, _tiny_model

    from edgewise.adapters import adapter_for

    _tiny_model("gpt_neox", tmp_path, use_parallel_residual=True)
    g = adapter_for(_boot(tmp_path)).hook_groups()
    scores, circuit = random_scores_and_circuit(Graph(g), seed=3)
    record = to_mib(scores, circuit)
    assert record["cfg"]["parallel_attn_mlp"] is True and "a0.h0->m0" not in record["edges"]
    back, back_circuit = from_mib(record, scores.graph)
    assert torch.equal(back.scores, scores.scores) and back_circuit.edges == circuit.edges
