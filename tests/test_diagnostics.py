"""Validity diagnostics against references that hold by construction: hand-built models with constant writers and a
redundant path, the tracr compiler's tables, published circuits (ACDC's zero-ablation and auto-circuit's resample
circuits for tracr-reverse), and brute-force counts of the program's answers."""

import dataclasses
import itertools
import json
from collections import Counter

import pytest
import torch
from conftest import random_transformer, run_edgewise
from test_interop_acdc import ACDC_REVERSE

from edgewise.diagnostics import DiagnosticsSettings, diagnose
from edgewise.diagnostics.behaviour import behaviour_check
from edgewise.diagnostics.constant_writers import constant_writers
from edgewise.diagnostics.minimal_circuit import minimal_circuit
from edgewise.errors import GraphMismatchError, InvalidHyperparameterError
from edgewise.graph import Circuit, Edge, Graph
from edgewise.interop.acdc import import_acdc_edges
from edgewise.models import Transformer, TransformerConfig
from edgewise.patching import full_logits, patched_forward, task_ablation
from edgewise.tasks import METRICS, Task

AUTO_CIRCUIT_RESAMPLE = {Edge("Resid Start", "A3.0.V"), Edge("A3.0", "Resid End")}


def _task(model: Transformer, clean: torch.Tensor, metric: str, truth: list[tuple[str, str]], categorical: bool):
    """Returns a task on `model` whose corrupted batch is the clean batch rolled by one row (no row kept)."""
    return Task(
        name="hand-built",
        model=model,
        clean=clean,
        corrupt=clean.roll(1, 0),
        metric=METRICS[metric],
        scored_positions=torch.ones_like(clean, dtype=torch.bool),
        ground_truth=truth,
        categorical=categorical,
    )


@pytest.fixture(scope="module")
def constant_task():
    """A random LayerNorm model in which three writers are constant by construction: MLP 1 (no output weights, a
    non-zero bias), head A2.1 (no value weights, a non-zero value bias: it averages one constant vector) and head
    A0.3 (no output weights: zero). Its ground truth is the whole graph."""
    model = random_transformer(seed=3, n_kv_heads=None)
    with torch.no_grad():
        model.blocks[1].mlp.W_out.zero_()
        model.blocks[1].mlp.b_out.copy_(torch.linspace(-1, 1, model.cfg.d_model))
        model.blocks[2].attn.W_V[1].zero_()
        model.blocks[2].attn.b_V[1].fill_(0.5)
        model.blocks[0].attn.W_O[3].zero_()
    clean = torch.randint(0, model.cfg.d_vocab, (6, 7), generator=torch.Generator().manual_seed(0))
    graph = Graph.from_model(model)
    return _task(model, clean, "kl", [(e.writer, e.reader) for e in graph.edges], categorical=True)


def test_constant_writers_are_exactly_the_ones_built_constant(constant_task):
    graph = constant_task.graph()
    found = {w.writer: w for w in constant_writers(constant_task, graph)}
    assert set(found) == {"MLP 1", "A2.1", "A0.3"}
    every = tuple(range(constant_task.n_positions))
    assert all(w.constant_positions == every and w.constant for w in found.values())
    assert found["A0.3"].zero_positions == every
    assert found["MLP 1"].zero_positions == found["A2.1"].zero_positions == ()


@pytest.mark.parametrize("kind", ["resample", "zero"])
def test_edges_out_of_built_constant_writers_are_removed_for_that_reason(constant_task, kind):
    """Resampling a constant writer, or zeroing a zero one, replaces its output by itself whatever its inputs: every
    such edge goes, for that reason; a constant but non-zero writer is no no-op under zero ablation."""
    graph = constant_task.graph()
    result = minimal_circuit(constant_task, graph, task_ablation(constant_task, graph, kind))
    no_ops = {"MLP 1", "A2.1", "A0.3"} if kind == "resample" else {"A0.3"}
    reason = "constant writer" if kind == "resample" else "zero writer"
    assert result.faithful
    removed = {r.edge: r.reason for r in result.removed}
    assert all(removed.get(e) == reason for e in graph.edges if e.writer in no_ops)
    assert all(r.edge.writer in no_ops for r in result.removed if r.reason == reason)


@pytest.fixture(scope="module")
def redundant_task():
    """Two paths carry the token (0 or 1) to MLP 1, which clamps their sum to [0, 1]: Resid Start->MLP 1 directly,
    and Resid Start->MLP 0->MLP 1 (MLP 0 copies it). Under zero ablation, either path alone gives the same answer."""
    cfg = TransformerConfig(n_layers=2, d_model=3, n_heads=1, d_head=1, d_mlp=2, d_vocab=2, d_vocab_out=1, n_ctx=3)
    model = Transformer(cfg)
    model.init_weights(std=0.0)
    with torch.no_grad():
        model.W_E[1, 0] = 1.0  # direction 0: the token
        model.blocks[0].mlp.W_in[0, 0] = 1.0
        model.blocks[0].mlp.W_out[0, 1] = 1.0  # direction 1: a copy of direction 0
        mlp = model.blocks[1].mlp
        mlp.W_in[:2] = 1.0  # both hidden units read direction 0 + direction 1
        mlp.b_in[1] = -1.0
        mlp.W_out[0, 2], mlp.W_out[1, 2] = 1.0, -1.0  # relu(x) - relu(x - 1) = clamp(x, 0, 1), into direction 2
        model.W_U[2, 0] = 1.0
    clean = torch.tensor(list(itertools.product([0, 1], repeat=3)))
    truth = [("Resid Start", "MLP 0"), ("Resid Start", "MLP 1"), ("MLP 0", "MLP 1"), ("MLP 1", "Resid End")]
    return _task(model.eval(), clean, "mse", truth, categorical=False)


def test_a_redundant_path_is_cut_to_one_path_and_the_kept_copy_marked(redundant_task):
    assert torch.equal(full_logits(redundant_task)[..., 0], redundant_task.clean.float())  # the model is as built
    graph = redundant_task.graph()
    result = minimal_circuit(redundant_task, graph, task_ablation(redundant_task, graph, "zero"))
    direct = {Edge("Resid Start", "MLP 1"), Edge("MLP 1", "Resid End")}
    through_mlp0 = {Edge("Resid Start", "MLP 0"), Edge("MLP 0", "MLP 1"), Edge("MLP 1", "Resid End")}
    assert result.edges in (direct, through_mlp0)
    redundant = {k.edge for k in result.kept if k.redundant}
    assert redundant == result.edges - {Edge("MLP 1", "Resid End")}


def test_diagnose_takes_the_tasks_truth_tolerance_unless_the_settings_set_one(redundant_task):
    """Removing both paths moves the output by 1: at the task's tolerance 2 that is no change, so no copies back
    each other up; the settings' own tolerance, when given, wins."""
    tolerant = dataclasses.replace(redundant_task, truth_tolerance=2.0)
    groups = [
        diagnose(task, ablations=("zero",), settings=settings).ablations["zero"].redundancy
        for task, settings in [
            (redundant_task, DiagnosticsSettings()),
            (tolerant, DiagnosticsSettings()),
            (tolerant, DiagnosticsSettings(truth_tolerance=1e-4)),
        ]
    ]
    assert [[g.describe() for g in found] for found in groups] == [
        ["MLP 0 and Resid Start->MLP 1 each suffice"],
        [],
        ["MLP 0 and Resid Start->MLP 1 each suffice"],
    ]


def _reverse_constant_writers(task, graph) -> tuple[set[str], set[str]]:
    """Returns (constant, zero) writers read off the compiler's tables: every input has length 3, so a writer that
    writes only `length` and `opp_idx` directions writes the same on every input; a writer that writes nothing is
    zero."""
    assert {len(s) for s in task.family.sequences} == {3}
    writes = task.family.compiled.writes
    zero = {w for w in graph.writers if not writes.get(w)}
    constant = {w for w in graph.writers if w in writes and all(d.startswith(("length", "opp_idx")) for d in writes[w])}
    return constant | zero, zero


def test_reverse_constant_writers_are_those_computing_length_and_opp_idx(reverse):
    graph = reverse.graph()
    constant, zero = _reverse_constant_writers(reverse, graph)
    assert {"MLP 0", "MLP 1", "MLP 2"} <= constant and "Resid Start" not in constant and "A3.0" not in constant
    found = {w.writer: w for w in constant_writers(reverse, graph)}
    assert set(found) == constant
    assert all(found[w].constant for w in constant)
    assert {w for w, v in found.items() if len(v.zero_positions) == reverse.n_positions} == zero


@pytest.fixture(scope="module")
def reverse_diagnosis(reverse):
    return diagnose(reverse, ablations=("resample", "mean", "zero", "per-position-mean"))


@pytest.mark.parametrize("kind", ["resample", "per-position-mean"])
def test_reverse_minimal_circuit_under_resample_is_auto_circuits_two_edges(reverse, reverse_diagnosis, kind):
    result = reverse_diagnosis.ablations[kind].minimal
    assert result.faithful and result.edges == AUTO_CIRCUIT_RESAMPLE
    constant, _ = _reverse_constant_writers(reverse, reverse_diagnosis.graph)
    reasons = {r.edge: r.reason for r in result.removed}
    assert {e for e, reason in reasons.items() if reason == "constant writer"} == {
        e for e in reasons if e.writer in constant
    }


def test_reverse_minimal_circuit_under_zero_is_acdcs_canonical_circuit(reverse_diagnosis):
    """ACDC's canonical reverse circuit is its own zero-ablation run with a tiny threshold: the same minimisation."""
    result = reverse_diagnosis.ablations["zero"].minimal
    assert result.faithful and result.edges == {Edge(*e) for e in import_acdc_edges(ACDC_REVERSE)}


@torch.no_grad()
def test_reverse_minimal_circuit_under_mean_is_faithful_and_one_minimal(reverse, reverse_diagnosis):
    """Checked with plain patched forwards: the circuit keeps the outputs and no single edge of it can go."""
    graph = reverse_diagnosis.graph
    ablated = task_ablation(reverse, graph, "mean")
    edges = reverse_diagnosis.ablations["mean"].minimal.edges
    circuits = [edges] + [edges - {e} for e in sorted(edges)]
    masks = torch.stack([graph.mask_for(c) for c in circuits])
    logits = patched_forward(reverse.model, graph, reverse.clean, ablated, masks)
    change = (logits - full_logits(reverse)).abs().amax(-1)[:, reverse.scored_positions].amax(-1)
    assert change[0] <= 1e-5 and (change[1:] > 1e-5).all()
    assert edges < reverse.ground_truth_edges(graph)


def test_behaviour_of_the_full_model_matches_the_reversed_inputs(reverse_diagnosis, reverse):
    full = reverse_diagnosis.ablations["resample"].behaviour.rows[0]
    answers = Counter(str(v) for s in reverse.family.sequences for v in reversed(s))
    n = sum(answers.values())
    assert full.distribution == {k: c / n for k, c in answers.items()}
    assert full.flags == () and full.agreement == 1.0 and full.loss == 0.0


@pytest.mark.parametrize("kind", ["mean", "zero"])
def test_empty_circuit_flagged_constant_under_mean_and_zero(reverse_diagnosis, kind):
    """With every edge mean- or zero-ablated, each reader sees the same values whatever the input: one answer."""
    empty = reverse_diagnosis.ablations[kind].behaviour.rows[-1]
    assert {"constant output", "ignores input"} <= set(empty.flags)
    assert len(empty.distribution) == 1


def test_numerical_empty_circuit_flagged_constant_and_minimal_circuit_not(proportion):
    graph = proportion.graph()
    check = behaviour_check(
        proportion, graph, task_ablation(proportion, graph, "zero"), proportion.ground_truth_edges(graph)
    )
    full, circuit, empty = check.rows
    assert {"constant output", "ignores input"} <= set(empty.flags)
    assert full.flags == circuit.flags == ()
    assert empty.distribution["std"] == 0.0 < full.distribution["std"]


@pytest.mark.parametrize("kind", ["resample", "zero"])
def test_resample_circuit_ties_every_class_under_zero_ablation(reverse, kind):
    """The 2-edge resample circuit under zero ablation: A3.0's query is zeroed, so it attends uniformly to all four
    positions and averages their token values (1, 2 and 3 once each, BOS none): every class gets the same logit, at
    every position of every input. The behaviour check must call that one answer, a tie, and flag it."""
    graph = reverse.graph()
    check = behaviour_check(reverse, graph, task_ablation(reverse, graph, kind), AUTO_CIRCUIT_RESAMPLE)
    circuit = check.rows[1]
    if kind == "resample":
        assert circuit.flags == () and circuit.agreement == 1.0
    else:
        assert circuit.distribution == {"tie": 1.0} and circuit.agreement == 0.0
        assert {"constant output", "ignores input"} <= set(circuit.flags)


def test_behaviour_check_takes_a_mask(reverse):
    """A gate vector is checked as the circuit it encodes; a fractional one keeps a blend, so under zero ablation a
    uniform 0.5 mask gives different answers from the full model and from the empty circuit."""
    graph = reverse.graph()
    ablated = task_ablation(reverse, graph, "zero")
    by_edges = behaviour_check(reverse, graph, ablated, AUTO_CIRCUIT_RESAMPLE)
    by_mask = behaviour_check(reverse, graph, ablated, graph.mask_for(AUTO_CIRCUIT_RESAMPLE))
    assert by_mask == by_edges
    half = behaviour_check(reverse, graph, ablated, torch.full((graph.n_edges,), 0.5)).rows[1]
    full, empty = by_edges.rows[0], by_edges.rows[2]
    assert half.n_edges == graph.n_edges and half.loss > 0
    assert half.distribution not in (full.distribution, empty.distribution)
    with pytest.raises(GraphMismatchError, match="77 edges"):
        behaviour_check(reverse, graph, ablated, torch.ones(graph.n_edges + 1))


def test_cli_diagnose_json_contract(tmp_path):
    out = tmp_path / "d.json"
    result = run_edgewise("diagnose", "tracr-reverse", "--json", str(out))
    assert result.returncode == 0, result.stderr
    assert "constant writers" in result.stdout and "minimal circuit: 2 edges" in result.stdout
    record = json.loads(out.read_text())
    assert record["task"] == "tracr-reverse"
    assert {"MLP 0", "MLP 1", "MLP 2"} <= {w["writer"] for w in record["constant_writers"]}
    assert all(set(w) >= {"writer", "positions"} for w in record["constant_writers"])
    assert set(record["ablations"]) == {"resample", "mean", "zero"}
    resample = record["ablations"]["resample"]
    assert resample["ground_truth_faithful"] is True and resample["ground_truth_loss"] == 0.0
    assert resample["minimal_circuit"] == [["Resid Start", "A3.0.V"], ["A3.0", "Resid End"]]
    assert len(resample["removable"]) == 11 and all(set(r) >= {"edge", "reason"} for r in resample["removable"])
    assert len(record["ablations"]["zero"]["minimal_circuit"]) == 10
    assert resample["behaviour"]["rows"][1]["label"] == "minimal circuit"


def test_cli_diagnose_checks_a_given_circuit(tmp_path):
    path = tmp_path / "c.json"
    Circuit(frozenset(AUTO_CIRCUIT_RESAMPLE), description="resample circuit").save(path)
    out = tmp_path / "d.json"
    result = run_edgewise(
        "diagnose", "tracr-reverse", "--circuit", str(path), "--ablations", "resample,zero", "--json", str(out)
    )
    assert result.returncode == 0, result.stderr
    ablations = json.loads(out.read_text())["ablations"]
    rows = {kind: a["behaviour"]["rows"][1] for kind, a in ablations.items()}
    assert rows["resample"]["label"] == rows["zero"]["label"] == "resample circuit"
    assert rows["resample"]["flags"] == [] and "constant output" in rows["zero"]["flags"]


def test_cli_diagnose_unknown_ablation_exits_with_a_clear_error():
    result = run_edgewise("diagnose", "tracr-reverse", "--ablations", "resampel")
    assert result.returncode == 2
    assert "resampel" in result.stderr and "resample" in result.stderr


def test_negative_tolerance_is_refused_naming_the_value():
    with pytest.raises(InvalidHyperparameterError, match="output_tolerance=-1"):
        DiagnosticsSettings(output_tolerance=-1)


@torch.no_grad()
def test_diagnose_on_an_oracle_feature_graph():
    """On tracr-shift's oracle features every input has length 5, so each index feature is constant (checked on the
    inputs directly, from the token ids), and under resample the minimal circuit is the three token features into
    A0.0's value and A0.0's three output features, faithful by patching."""
    from conftest import tracr

    task = tracr("tracr-shift")
    diagnosis = diagnose(task, ablations=("resample",), features="oracle")
    graph = diagnosis.graph
    assert graph.features == "oracle"
    constant = {w.writer for w in diagnosis.writers if w.constant}
    assert (torch.cat([task.clean, task.corrupt]) != task.family.compiled.pad_id).all()  # no padding: same length
    assert {f"Resid Start[indices:{i}]" for i in range(5)} <= constant
    # A0.0's output features are named by tracr's label, which counts up over the programs a process compiled
    # (shift_1 in a fresh process, shift_10 in a cache written by one that compiled others first)
    outputs = [w for w in graph.writers if graph.writer_node(w).component == "A0.0" and not w.endswith("[error]")]
    assert len(outputs) == 3 and not {"Resid Start[tokens:a]", outputs[0]} & constant
    minimal = diagnosis.ablations["resample"].minimal
    expected = {Edge(f"Resid Start[tokens:{v}]", "A0.0.V") for v in "abc"} | {Edge(w, "Resid End") for w in outputs}
    assert set(minimal.edges) == expected
    logits = patched_forward(
        task.model, graph, task.clean, task_ablation(task, graph, "resample"), graph.mask_for(expected)[None]
    )[0]
    assert (logits - full_logits(task)).abs().max() < 1e-5


def _explained_share(order: list[int], answers: list[int], offered: list[set[int]]) -> float:
    """The share of answers that are the first class of `order` on offer: computed directly, input by input."""
    hits = sum(next((c for c in order if c in offer), None) == answer for answer, offer in zip(answers, offered))
    return hits / len(answers)


def test_preference_order_recovers_a_fixed_ranking_and_never_beats_the_best_ranking():
    from edgewise.diagnostics.behaviour import preference_order

    generator = torch.Generator().manual_seed(0)
    offered = torch.rand(200, 5, generator=generator) < 0.6
    offered[~offered.any(-1), 0] = True
    ranking = [3, 1, 4, 0, 2]
    answers = torch.tensor([next(c for c in ranking if offered[i, c]) for i in range(200)])
    order, share = preference_order(answers, offered)
    assert (
        share == 1.0
        and _explained_share(order, answers.tolist(), [set(torch.nonzero(o).flatten().tolist()) for o in offered])
        == 1.0
    )
    noisy = torch.where(
        torch.rand(200, generator=generator) < 0.3, torch.randint(5, (200,), generator=generator), answers
    )
    noisy = torch.where(offered[torch.arange(200), noisy], noisy, answers)  # answers stay on offer
    order, share = preference_order(noisy, offered)
    offer_sets = [set(torch.nonzero(o).flatten().tolist()) for o in offered]
    assert share == pytest.approx(_explained_share(order, noisy.tolist(), offer_sets))
    best = max(_explained_share(list(p), noisy.tolist(), offer_sets) for p in itertools.permutations(range(5)))
    assert share <= best + 1e-12 and share < 1.0
