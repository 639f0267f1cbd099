"""Capability removal on a hand-built model whose two skills live in two known branches: removing skill A's edge
loses A exactly as a hand-written ablation does and leaves B exactly as it was; the model's weights stay untouched;
random edges of the same number are the baseline."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformer_lens import HookedRootModule
from transformer_lens.hook_points import HookPoint

from edgewise import DeclaredAdapter
from edgewise.errors import GraphMismatchError
from edgewise.graph import Edge
from edgewise.interventions import random_edges, remove
from edgewise.tasks import METRICS, Task


class TwoSkills(HookedRootModule):
    """Inputs [batch, 4]: dims 0-1 are skill A's question, dims 2-3 skill B's. Branch a answers A (logits 0-1),
    branch b answers B (logits 2-3); the embedding also reaches the logits directly, weakly."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(4, 4, bias=False)
        self.a, self.b = nn.Linear(4, 4, bias=False), nn.Linear(4, 4, bias=False)
        with torch.no_grad():
            self.embed.weight.copy_(0.1 * torch.eye(4))
            self.a.weight.zero_()
            self.a.weight[:2, :2] = torch.tensor([[0.0, 30.0], [30.0, 0.0]])  # A: answer the other of dims 0-1
            self.b.weight.zero_()
            self.b.weight[2:, 2:] = torch.tensor([[30.0, 0.0], [0.0, 30.0]])  # B: answer the larger of dims 2-3
        self.hook_embed, self.hook_a_in, self.hook_a_out = HookPoint(), HookPoint(), HookPoint()
        self.hook_b_in, self.hook_b_out, self.hook_out = HookPoint(), HookPoint(), HookPoint()
        self.setup()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stream = self.hook_embed(self.embed(x))
        stream = stream + self.hook_a_out(self.a(self.hook_a_in(stream)))
        stream = stream + self.hook_b_out(self.b(self.hook_b_in(stream)))
        return self.hook_out(stream)


def _tasks() -> tuple[Task, Task]:
    """Returns skill A's and skill B's tasks on one TwoSkills model (zero ablation: a removed edge carries nothing)."""
    model = TwoSkills().eval()
    generator = torch.Generator().manual_seed(0)
    inputs = {}
    for skill, dims in (("A", slice(0, 2)), ("B", slice(2, 4))):
        x = torch.zeros(32, 4)
        x[:, dims] = torch.rand(32, 2, generator=generator)
        inputs[skill] = x
    adapter = DeclaredAdapter(
        model,
        {"embed": "hook_embed", "a": "hook_a_out", "b": "hook_b_out"},
        {"a": "hook_a_in", "b": "hook_b_in", "out": "hook_out"},
        torch.cat(list(inputs.values())),
    )
    answers = {"A": inputs["A"][:, :2].argmin(-1), "B": 2 + inputs["B"][:, 2:].argmax(-1)}
    return tuple(
        Task(
            f"skill-{s}",
            adapter,
            x,
            x.flip(0),
            METRICS["kl"],
            torch.ones(32, 1, dtype=torch.bool),
            answers=answers[s].unsqueeze(-1),
        )
        for s, x in inputs.items()
    )


def test_removing_skill_a_loses_a_as_a_hand_ablation_does_and_keeps_b_exactly():
    skill_a, skill_b = _tasks()
    before = {k: v.clone() for k, v in skill_a.adapter.model.state_dict().items()}
    removal = remove(skill_a, {Edge("a", "out")}, retain=[skill_b], ablation="zero")
    model = skill_a.adapter.model
    with torch.no_grad():  # by hand: branch a's output never reaches the logits
        by_hand = model.run_with_hooks(skill_a.clean, fwd_hooks=[("hook_a_out", lambda v, hook: v * 0)])
        full = model(skill_a.clean)
    expected_kl = METRICS["kl"](by_hand.unsqueeze(1).unsqueeze(0), full.unsqueeze(1), skill_a.scored_positions)
    assert removal.forget.metric == pytest.approx(expected_kl.item(), rel=1e-5) and removal.forget.metric > 0.1
    assert removal.forget.accuracy_before == 1.0
    expected_accuracy = (by_hand.argmax(-1) == skill_a.answers[:, 0]).float().mean().item()
    assert removal.forget.accuracy_after == pytest.approx(expected_accuracy) and expected_accuracy < 0.8
    [kept] = removal.retain
    assert kept.metric == pytest.approx(0.0, abs=1e-9) and kept.accuracy_before == kept.accuracy_after == 1.0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # an intervention, not an edit
    assert remove(skill_a, {Edge("a", "out")}, ablation="zero").forget == removal.forget  # measured again, the same


def test_random_edges_are_a_seeded_draw_of_the_same_size_and_retain_tasks_must_share_the_model():
    skill_a, skill_b = _tasks()
    graph = skill_a.graph()
    drawn = random_edges(graph, 2, seed=3)
    assert len(drawn) == 2 and drawn <= set(graph.edges) and drawn == random_edges(graph, 2, seed=3)
    other = _tasks()[1]
    with torch.no_grad():
        other.adapter.model.b.weight.mul_(2)
    with pytest.raises(GraphMismatchError, match="runs another model"):
        remove(skill_a, drawn, retain=[other])
    with pytest.raises(GraphMismatchError, match="not in skill-A's plain graph"):
        remove(skill_a, {Edge("b", "a")})


def test_cli_remove_measures_the_circuit_and_random_baselines_on_held_out_inputs(tmp_path):
    import json

    from conftest import run_edgewise, tracr

    from edgewise.graph import Circuit
    from edgewise.suite.tasks.registry import get_task

    tracr("tracr-redundant-or")  # compiled once per test run
    circuit = Circuit(
        frozenset({Edge("MLP 2", "Resid End")}), description="the answer's edge", task="tracr-redundant-or"
    )
    circuit.save(tmp_path / "circuit.json")
    result = run_edgewise(
        "remove",
        "tracr-redundant-or",
        "--circuit",
        str(tmp_path / "circuit.json"),
        "--ablation",
        "zero",
        "--random-seeds",
        "2",
        "--json",
        str(tmp_path / "removal.json"),
    )
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "removal.json").read_text())
    assert record["measured_on"] == "held-out" and [r["n_edges"] for r in record["removals"]] == [1, 1, 1]
    direct = remove(get_task("tracr-redundant-or", held_out=True), {Edge("MLP 2", "Resid End")}, ablation="zero")
    assert record["removals"][0]["forget"] == direct.forget.to_dict()
    assert direct.forget.accuracy_after < 0.5  # without its only way out the answer is gone


def test_node_level_removal_takes_every_edge_out_of_the_circuits_nodes_but_the_input():
    from edgewise.interventions import node_edges

    skill_a, skill_b = _tasks()
    graph = skill_a.graph()
    # the circuit embed -> a -> out touches nodes embed, a and out; embed is every skill's input and stays
    assert node_edges(graph, {Edge("embed", "a"), Edge("a", "out")}) == {Edge("a", "b"), Edge("a", "out")}
    removal = remove(skill_a, node_edges(graph, {Edge("a", "out")}), [skill_b], "zero")
    with torch.no_grad():  # by hand: branch a's output zeroed everywhere it goes
        by_hand = skill_b.adapter.model.run_with_hooks(skill_b.clean, fwd_hooks=[("hook_a_out", lambda v, hook: v * 0)])
    assert removal.retain[0].accuracy_after == (by_hand.argmax(-1) == skill_b.answers[:, 0]).float().mean()


def test_cli_remove_runs_every_baseline_and_plots_them(tmp_path):
    import json

    from conftest import run_edgewise, tracr

    tracr("tracr-redundant-or")
    result = run_edgewise(
        "remove",
        "tracr-redundant-or",
        "--method",
        "eap",
        "--ablation",
        "zero",
        "--nodes",
        "--random-seeds",
        "1",
        "--removal-mask",
        "--mask-steps",
        "20",
        "--task-vector",
        "1",
        "--edit-steps",
        "3",
        "--relearn-steps",
        "2",
        "--json",
        str(tmp_path / "removal.json"),
        "--plot",
        str(tmp_path / "removal.png"),
    )
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "removal.json").read_text())
    kinds = [r["kind"] for r in record["removals"]]
    assert kinds == ["circuit", "nodes", "random", "removal mask", "task vector"]
    assert all(len(r["relearning"]["accuracy"]) == 3 for r in record["removals"])
    circuit, nodes = record["removals"][:2]
    # a node removal holds its circuit's edges, but for the input's: the embeddings are every task's
    assert {tuple(e) for e in circuit["edges"] if e[0] != "Resid Start"} <= set(map(tuple, nodes["edges"]))
    assert circuit["circuit_faithfulness"] is not None and "relearned in" in result.stdout
    assert (tmp_path / "removal.png").stat().st_size > 0 and (tmp_path / "removal.svg").exists()


@pytest.mark.slow
def test_removal_on_smollm2_runs_every_baseline_and_leaves_the_model_as_it_was(smollm2):
    """The pretrained testbed end to end, on 6 prompts a split and one step of everything that trains: every kind of
    intervention is measured on held-out IOI prompts and the capitals, each relearns, and SmolLM2's own weights are
    untouched (the weight edits and relearning train fresh copies of it)."""
    from edgewise.interventions import GivenCircuit, RemovalMaskConfig, RemovalSettings, TaskSplit, compare_removals
    from edgewise.methods import discover
    from edgewise.suite.tasks.lm.ioi import smollm2_ioi_task
    from edgewise.suite.tasks.lm.templated import smollm2_capitals_task

    split = lambda factory: TaskSplit(
        factory(n_prompts=6, loaded=smollm2),  # noqa: E731
        factory(n_prompts=6, loaded=smollm2, held_out=True),
        True,
    )
    ioi, capitals = split(smollm2_ioi_task), split(smollm2_capitals_task)
    scores = discover(ioi.discovery, "eap", "resample")
    circuit = set(scores.graph.edges[i] for i in scores.scores.abs().argsort(descending=True)[:100].tolist())
    before = {name: value.clone() for name, value in smollm2.bridge.state_dict().items()}
    settings = RemovalSettings(
        nodes=True,
        random_seeds=1,
        task_vector=(1.0,),
        gradient_ascent=True,
        edit_steps=1,
        edit_lr=1e-5,
        removal_mask=RemovalMaskConfig(steps=1),
        relearn_steps=1,
        relearn_lr=1e-5,
    )
    rows = compare_removals(ioi, [GivenCircuit("eap top 100", frozenset(circuit))], [capitals], settings).rows
    assert [row.kind for row in rows] == [
        "circuit",
        "nodes",
        "random",
        "removal mask",
        "task vector",
        "gradient ascent",
    ]
    assert all(len(row.relearning.accuracy) == 2 for row in rows)
    after = smollm2.bridge.state_dict()
    assert all(torch.equal(before[name], after[name]) for name in before)
    # the forget accuracy before removal is the model's own on the held-out prompts: its top next token is the IO
    with torch.no_grad():
        top = smollm2.bridge(ioi.evaluation.clean, return_type="logits")[:, -1].argmax(-1)
    expected = (top == ioi.evaluation.family.answer_ids[:, 0]).float().mean().item()
    assert rows[0].result.forget.accuracy_before == pytest.approx(expected)
    assert rows[0].result.forget.accuracy_after < expected  # EAP's top 100 edges carry IOI


def test_cli_remove_subtract_retain_removes_the_forget_circuit_less_the_retain_ones(tmp_path):
    """`--subtract-retain` adds each circuit less the same method's circuit fitted on each retain task's discovery
    inputs: here EAP's top 20 for multitask-sort less EAP's top 20 for multitask-count, as computed by hand."""
    import json

    from conftest import run_edgewise

    from edgewise.graph import circuit_from_scores
    from edgewise.methods import discover
    from edgewise.suite.tasks import get_task

    result = run_edgewise(
        "remove",
        "multitask-sort",
        "--method",
        "eap",
        "--top-k",
        "20",
        "--retain",
        "multitask-count",
        "--subtract-retain",
        "--random-seeds",
        "0",
        "--json",
        str(tmp_path / "removal.json"),
    )
    assert result.returncode == 0, result.stderr
    rows = {r["label"]: r for r in json.loads((tmp_path / "removal.json").read_text())["removals"]}
    assert list(rows) == ["eap: top 20", "eap: top 20 minus retain circuits"]
    top = {
        name: circuit_from_scores(discover(get_task(name), "eap"), top_k=20).edges
        for name in ("multitask-sort", "multitask-count")
    }
    expected = top["multitask-sort"] - top["multitask-count"]
    assert {tuple(e) for e in rows["eap: top 20 minus retain circuits"]["edges"]} == {
        tuple(e.endpoints()) for e in expected
    }
    assert 0 < len(expected) < 20
    refused = run_edgewise("remove", "multitask-sort", "--method", "eap", "--subtract-retain")
    assert refused.returncode != 0 and "--subtract-retain needs --method" in refused.stderr


def _two_skills_comparison():
    """Returns a comparison on the two-skill model with a row of every kind: a discovered circuit and a given one,
    their nodes, random edges, a removal mask, a task vector and gradient ascent, each relearning for a step."""
    from edgewise.interventions import (
        DiscoveredCircuit,
        GivenCircuit,
        RemovalMaskConfig,
        RemovalSettings,
        TaskSplit,
        compare_removals,
    )

    skill_a, skill_b = _tasks()
    circuits = [
        DiscoveredCircuit(
            "eap", (("lambda_", 1.0),), "top 2", 2, edges=frozenset({Edge("embed", "a"), Edge("a", "out")})
        ),
        GivenCircuit("branch a's way out", frozenset({Edge("a", "out")})),
    ]
    settings = RemovalSettings(
        "zero",
        nodes=True,
        random_seeds=2,
        task_vector=(1.0, 2.0),
        gradient_ascent=True,
        edit_steps=2,
        removal_mask=RemovalMaskConfig(steps=5),
        relearn_steps=1,
    )
    return compare_removals(
        TaskSplit(skill_a, skill_a, False), circuits, [TaskSplit(skill_b, skill_b, False)], settings
    )


def test_rows_carry_what_they_removed_typed_and_the_json_round_trips():
    import json

    from edgewise.interventions import (
        CircuitNodes,
        GradientAscent,
        RandomEdges,
        RemovalComparison,
        RemovalKind,
        RemovalMask,
        TaskVector,
    )

    comparison = _two_skills_comparison()
    rows = comparison.rows
    assert [row.kind for row in rows] == [
        "circuit",
        "nodes",
        "circuit",
        "nodes",
        "random",
        "random",
        "random",
        "random",
        "removal mask",
        "task vector",
        "task vector",
        "gradient ascent",
    ]
    assert [row.label for row in rows] == [
        "eap: lambda_ 1, top 2",
        "eap: lambda_ 1, top 2, its nodes",
        "branch a's way out",
        "branch a's way out, its nodes",
        "random 1 edges (seed 0)",
        "random 1 edges (seed 1)",
        "random 2 edges (seed 0)",
        "random 2 edges (seed 1)",
        "removal mask (alpha 1, lambda 0.1)",
        "task vector, alpha 1",
        "task vector, alpha 2",
        "gradient ascent, 2 steps",
    ]
    assert all(row.result.label == row.label == row.relearning.label for row in rows)
    assert rows[1].removed == CircuitNodes(rows[0].removed) and rows[4].removed == RandomEdges(1, 0)
    assert [row.removed for row in rows[8:]] == [
        RemovalMask(1.0, 0.1),
        TaskVector(1.0),
        TaskVector(2.0),
        GradientAscent(2),
    ]
    assert rows[0].kind is RemovalKind.CIRCUIT and rows[0].result.edges == rows[0].removed.edges
    record = comparison.to_dict()
    assert [r["kind"] for r in record["removals"]] == [row.kind.value for row in rows]
    assert RemovalComparison.from_dict(record) == comparison
    assert RemovalComparison.from_dict(json.loads(json.dumps(record, allow_nan=False))) == comparison
    # a file written before rows stored what they removed: the labels say it, read once
    old = {
        **record,
        "removals": [{k: v for k, v in r.items() if k not in ("removed", "n_graph_edges")} for r in record["removals"]],
    }
    assert RemovalComparison.from_dict(old) == comparison


def test_the_removal_results_in_the_repository_load_typed_and_write_back_the_same(tmp_path):
    import json
    from pathlib import Path

    from edgewise.interventions import CircuitNodes, DiscoveredCircuit, RandomEdges, RemovalComparison
    from edgewise.report import plot_removals

    files = sorted((Path(__file__).parent.parent / "benchmarks" / "results" / "removal").glob("*.json"))
    assert files
    for path in files:
        record = json.loads(path.read_text())
        comparison = RemovalComparison.from_dict(record)
        written = comparison.to_dict()
        assert {k: v for k, v in record.items() if k not in ("removals", "seconds")} == {
            k: v for k, v in written.items() if k != "removals"
        }
        for old, new in zip(record["removals"], written["removals"], strict=True):
            assert {k: v for k, v in new.items() if k not in ("removed", "n_graph_edges")} == old
        assert RemovalComparison.from_dict(written) == comparison
    sort = RemovalComparison.from_dict(json.loads((files[0].parent / "multitask-sort.json").read_text()))
    by_label = {row.label: row.removed for row in sort.rows}
    assert by_label["edge-sp: lambda_ 10"] == DiscoveredCircuit(
        "edge-sp", (("lambda_", 10.0),), "", None, False, by_label["edge-sp: lambda_ 10"].edges
    )
    minus = by_label["eap: top 20 minus retain circuits"]
    assert (minus.method, minus.setting, minus.rule, minus.top_k, minus.minus_retain) == ("eap", (), "top 20", 20, True)
    assert by_label["acdc: threshold 0.1, its nodes"] == CircuitNodes(by_label["acdc: threshold 0.1"])
    assert by_label["random 40 edges (seed 2)"] == RandomEdges(40, 2)
    assert all(p.stat().st_size > 0 for p in plot_removals(sort, tmp_path / "sort.png"))


def test_plot_labels_come_from_fields_not_from_the_label_text():
    """The short labels the plot prints read the fields: a method named with a colon, or with `minus retain` in
    it, once cut at the colon or marked `- retain` by the label's text, now keeps its name."""
    from edgewise.interventions import (
        CircuitNodes,
        ComparedRemoval,
        DiscoveredCircuit,
        GivenCircuit,
        GradientAscent,
        RandomEdges,
        RemovalMask,
        TaskVector,
    )
    from edgewise.report.removal_plots import short_label

    skill_a, _ = _tasks()
    result = remove(skill_a, {Edge("a", "out")}, ablation="zero")
    short = lambda removed: short_label(ComparedRemoval(removed, result))  # noqa: E731
    colon = DiscoveredCircuit("lab:eap", rule="top 5", top_k=5)
    assert colon.label == "lab:eap: top 5" and short(colon) == "lab:eap"
    named = DiscoveredCircuit("eap minus retain circuits (v2)", rule="top 5", top_k=5)
    assert short(named) == "eap minus retain circuits (v2)" and short(CircuitNodes(named)).endswith("(v2) nodes")
    assert short(DiscoveredCircuit("eap", rule="top 5", top_k=5, minus_retain=True)) == "eap - retain"
    assert short(GivenCircuit("mine (hand-made): a")) == "mine (hand-made): a"
    assert short(GivenCircuit("")) == "circuit" and short(CircuitNodes(GivenCircuit("x"))) == "x nodes"
    assert [short(r) for r in (RandomEdges(3, 1), RemovalMask(1.0, 0.1), TaskVector(2.0), GradientAscent(5))] == [
        "random 3 edges",
        "removal mask",
        "task vector, alpha 2",
        "gradient ascent, 5 steps",
    ]


def test_labels_are_todays_text_and_old_labels_parse_back_to_the_fields():
    from edgewise.interventions import (
        CircuitNodes,
        DiscoveredCircuit,
        GivenCircuit,
        GradientAscent,
        RandomEdges,
        RemovalFileError,
        RemovalMask,
        TaskVector,
    )
    from edgewise.interventions.removed import removed_from_label

    described = [
        DiscoveredCircuit("eap", (), "top 20", 20),
        DiscoveredCircuit("acdc", (("threshold", 0.1),), "change >= 0.1"),
        DiscoveredCircuit("acdc", (), "change >= 0.001"),
        DiscoveredCircuit("edge-sp", (("lambda_", 1.0),), "deterministic gate > 0.5"),
        DiscoveredCircuit("eap-ig-inputs", (("steps", 5.0),), "top 40", 40, True),
        DiscoveredCircuit("eap", (), "score > 0.5, connected"),
        GivenCircuit("ground truth"),
        RandomEdges(20, 2),
        RemovalMask(1.0, 0.1),
        TaskVector(0.5),
        GradientAscent(100),
    ]
    assert [d.label for d in described] == [
        "eap: top 20",
        "acdc: threshold 0.1",
        "acdc: change >= 0.001",
        "edge-sp: lambda_ 1",
        "eap-ig-inputs: steps 5, top 40 minus retain circuits",
        "eap: score > 0.5, connected",
        "ground truth",
        "random 20 edges (seed 2)",
        "removal mask (alpha 1, lambda 0.1)",
        "task vector, alpha 0.5",
        "gradient ascent, 100 steps",
    ]
    for removed in [*described, CircuitNodes(described[0])]:
        parsed = removed_from_label(removed.kind, removed.label)
        assert parsed.label == removed.label and parsed.kind == removed.kind
    assert removed_from_label("circuit", "eap-ig-inputs: steps 5, top 40 minus retain circuits") == described[4]
    with pytest.raises(RemovalFileError, match="not a random row's label"):
        removed_from_label("random", "twenty random edges")
    with pytest.raises(RemovalFileError, match="unknown removal kind"):
        removed_from_label("pruning", "x")


def test_minus_retain_subtracts_the_circuit_of_the_same_method_and_setting():
    from edgewise.interventions import DiscoveredCircuit, minus_retain

    e1, e2, e3 = Edge("embed", "a"), Edge("a", "out"), Edge("b", "out")
    forget = [
        DiscoveredCircuit("eap", (), "top 2", 2, edges=frozenset({e1, e2})),
        DiscoveredCircuit("eap", (), "top 3", 3, edges=frozenset({e1, e2, e3})),
        DiscoveredCircuit("acdc", (), "change >= 0.001", edges=frozenset({e2})),
    ]
    retain = [
        [
            DiscoveredCircuit("eap", (), "top 2", 2, edges=frozenset({e1, e3})),
            DiscoveredCircuit("eap", (), "top 3", 3, edges=frozenset({e3})),
        ],
        [DiscoveredCircuit("eap", (), "top 2", 2, edges=frozenset({e2}))],
    ]
    [only] = minus_retain(forget, retain)  # top 3 and acdc lack a circuit on some retain task
    assert only == DiscoveredCircuit("eap", (), "top 2", 2, True, frozenset())
    assert only.label == "eap: top 2 minus retain circuits"
    assert minus_retain(forget, [retain[0]])[1].edges == {e1, e2}
