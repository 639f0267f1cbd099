"""EAP, EAP-IG and exact patching against independent references: gradients taken with plain TransformerLens hooks
and autograd (no edgewise.patching), one hand-patched forward per edge, the first-order limit, and IG completeness."""

import pytest
import torch
from conftest import tracr

from edgewise.errors import InvalidHyperparameterError
from edgewise.evaluate import roc_auc
from edgewise.graph import Edge, EdgeScores, Graph
from edgewise.methods import discover, get_method, make_config
from edgewise.patching import answer_score, task_ablation
from edgewise.patching.ablation import AblatedOutputs, record_writer_outputs
from edgewise.patching.reference import single_edge_patch
from edgewise.tasks import METRICS, Task

METHODS = ["eap", "eap-ig-inputs", "eap-ig-activations", "exact"]

RANDOM_EDGES = [
    ("Resid Start", "A0.1.Q"),
    ("A0.2", "A2.1.K"),
    ("MLP 0", "MLP 1"),
    ("A1.3", "Resid End"),
    ("MLP 2", "Resid End"),
    ("A0.0", "A1.0.V"),
    ("Resid Start", "A2.0.V"),
]
REVERSE_EDGES = [
    ("Resid Start", "A3.0.V"),
    ("A3.0", "Resid End"),
    ("MLP 2", "A3.0.Q"),
    ("Resid Start", "MLP 0"),
    ("A0.0", "MLP 0"),
    ("MLP 1", "Resid End"),
]


@pytest.fixture(scope="module")
def random_task(random_model, random_batches):
    clean, corrupt = random_batches
    return Task("random", random_model, clean, corrupt, METRICS["kl"], torch.ones_like(clean, dtype=torch.bool))


def _task(case, random_task):
    return random_task if case == "random" else tracr(case)


def _run(method: str, task: Task, graph: Graph, ablated: AblatedOutputs, **hyperparameters) -> torch.Tensor:
    spec = get_method(method)
    return spec.run(task, graph, ablated, make_config(spec, hyperparameters), 0, False)


# --- the independent reference: plain hooks and autograd ------------------------------------------------------------


def _locate(graph: Graph, name: str, kind: str) -> tuple[str, int | None]:
    for group in graph.groups:
        if group.kind == kind and name in group.names:
            return group.hook, (group.names.index(name) if group.per_head else None)
    raise KeyError(name)


def _node_value(value: torch.Tensor, head: int | None) -> torch.Tensor:
    return value if head is None else value[:, :, head]


def _ablated_output(task: Task, hook: str, head: int | None, kind: str) -> torch.Tensor:
    """Returns a writer's ablated output from run_with_cache: corrupted run, clean mean, or zero."""
    _, cache = task.model.run_with_cache(task.corrupt if kind == "resample" else task.clean)
    if kind == "resample":
        return _node_value(cache[hook], head)
    mean = _node_value(cache[hook], head).mean((0, 1), keepdim=True)
    return mean if kind == "mean" else torch.zeros_like(mean)


def _reader_gradients(task: Task, reader_hooks: list[str], embedding: torch.Tensor | None = None) -> dict:
    """Returns d answer_score / d (input at each reader hook) on the clean run, by autograd on zero leaves added at
    the hooks; `embedding` replaces the residual stream entering block 0."""
    reference = task.model(task.clean).detach()
    leaves = {}

    def add_leaf(value, hook):
        leaves[hook.name] = torch.zeros_like(value, requires_grad=True)
        return value + leaves[hook.name]

    hooks = [(h, add_leaf) for h in dict.fromkeys(reader_hooks)]
    if embedding is not None:
        hooks.insert(0, ("blocks.0.hook_resid_pre", lambda value, hook: embedding))
    logits = task.model.run_with_hooks(task.clean, fwd_hooks=hooks)
    names = list(leaves)
    grads = torch.autograd.grad(answer_score(task, logits, reference), [leaves[n] for n in names])
    return dict(zip(names, grads))


def _reference_eap(task, graph, edges, kind, steps=None):
    """Returns (clean_u - ablated_u) . d B / d input_v for each edge, with B = answer score; `steps` averages the
    gradient over embeddings interpolated k/steps of the way from ablated to clean (EAP-IG), k = 1..steps."""
    _, clean_cache = task.model.run_with_cache(task.clean)
    reader_hooks = [_locate(graph, e.reader, "reader")[0] for e in edges]
    if steps is None:
        grads = _reader_gradients(task, reader_hooks)
    else:
        clean_embedding = clean_cache["blocks.0.hook_resid_pre"]
        ablated_embedding = _ablated_output(task, "blocks.0.hook_resid_pre", None, kind)
        per_step = [
            _reader_gradients(task, reader_hooks, ablated_embedding + k / steps * (clean_embedding - ablated_embedding))
            for k in range(1, steps + 1)
        ]
        grads = {h: sum(g[h] for g in per_step) / steps for h in per_step[0]}
    scores = []
    for edge in edges:
        w_hook, w_head = _locate(graph, edge.writer, "writer")
        r_hook, r_head = _locate(graph, edge.reader, "reader")
        difference = _node_value(clean_cache[w_hook], w_head) - _ablated_output(task, w_hook, w_head, kind)
        per_position = (difference * _node_value(grads[r_hook], r_head)).sum(-1)  # [batch, pos]
        scores.append(per_position.sum() if edge.position is None else per_position[:, edge.position].sum())
    return torch.stack(scores)


def _edges(case, per_position):
    pairs = RANDOM_EDGES if case == "random" else REVERSE_EDGES
    positions = [None] if not per_position else [1, 3]
    return [Edge(w, r, p) for w, r in pairs for p in positions]


# --- EAP -------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["random", "tracr-reverse"])
@pytest.mark.parametrize("kind", ["resample", "mean", "zero"])
@pytest.mark.parametrize("per_position", [False, True])
def test_eap_equals_gradient_times_difference_from_plain_hooks(case, kind, per_position, random_task):
    task = _task(case, random_task)
    graph = task.graph(per_position)
    eap = _run("eap", task, graph, task_ablation(task, graph, kind), absolute=False)
    edges = _edges(case, per_position)
    expected = _reference_eap(task, graph, edges, kind).double()
    got = eap[[graph.edge_index(e) for e in edges]]
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-6), (got, expected)
    assert expected.abs().max() > 1e-2  # the check has teeth


def test_eap_on_the_metric_is_zero_because_the_full_model_minimises_it(random_task):
    graph = random_task.graph()
    ablated = task_ablation(random_task, graph, "resample")
    on_metric = _run("eap", random_task, graph, ablated, objective="metric")
    on_answer = _run("eap", random_task, graph, ablated)
    assert on_metric.abs().max() < 1e-4 * on_answer.abs().max()


# --- exact patching --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["random", "tracr-reverse"])
@pytest.mark.parametrize("per_position", [False, True])
def test_exact_equals_one_hand_patched_forward_per_edge(case, per_position, random_task):
    task = _task(case, random_task)
    graph = task.graph(per_position)
    exact = _run("exact", task, graph, task_ablation(task, graph, "resample"), chunk_size=16)
    edges = _edges(case, per_position)
    full = task.model(task.clean)
    expected = torch.stack(
        [
            task.metric(single_edge_patch(task.model, graph, task.clean, task.corrupt, e), full, task.scored_positions)
            for e in edges
        ]
    ).double()
    got = exact[[graph.edge_index(e) for e in edges]]
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-6), (got, expected)
    assert expected.max() > 1e-2


@pytest.mark.parametrize("per_position", [False, True])
def test_eap_matches_exact_patching_for_small_perturbations(per_position, random_task):
    """Ablated outputs a step eps from the clean ones: exact changes equal EAP up to O(eps) relative error."""
    graph = random_task.graph(per_position)
    clean = record_writer_outputs(random_task.adapter, graph, random_task.clean)
    corrupt = record_writer_outputs(random_task.adapter, graph, random_task.corrupt)
    errors = []
    for eps in (1e-2, 1e-3):
        near = {h: clean[h] + eps * (corrupt[h] - clean[h]) for h in clean}
        ablated = AblatedOutputs("resample", near, tuple(random_task.clean.shape))
        eap = _run("eap", random_task, graph, ablated, absolute=False)
        exact = _run("exact", random_task, graph, ablated, objective="answer", absolute=False)
        errors.append(((exact - eap).abs().max() / eap.abs().max()).item())
    assert errors[1] < 0.01, errors
    assert errors[0] / errors[1] > 5, errors  # the gap is the second-order term: it shrinks with eps


# --- integrated gradients -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["eap-ig-inputs", "eap-ig-activations"])
@pytest.mark.parametrize("kind", ["resample", "mean"])
@pytest.mark.parametrize("per_position", [False, True])
def test_one_step_of_integrated_gradients_is_eap(method, kind, per_position, random_task):
    """Both variants sum over k = 1..steps: their single point is the clean run, where EAP takes its gradient."""
    graph = random_task.graph(per_position)
    ablated = task_ablation(random_task, graph, kind)
    eap = _run("eap", random_task, graph, ablated, absolute=False)
    ig = _run(method, random_task, graph, ablated, steps=1, absolute=False)
    assert torch.allclose(ig, eap, rtol=1e-4, atol=1e-5 * eap.abs().max().item())


@pytest.mark.parametrize("kind", ["resample", "zero"])
def test_eap_ig_inputs_equals_plain_hook_reference(kind, random_task):
    graph = random_task.graph()
    scores = _run("eap-ig-inputs", random_task, graph, task_ablation(random_task, graph, kind), steps=3, absolute=False)
    edges = _edges("random", False)
    expected = _reference_eap(random_task, graph, edges, kind, steps=3).double()
    got = scores[[graph.edge_index(e) for e in edges]]
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-6), (got, expected)
    # The interpolation reaches the readers: the scores differ from EAP's.
    eap = _reference_eap(random_task, graph, edges, kind).double()
    assert (got - eap).abs().max() > 1e-2 * eap.abs().max()


@pytest.mark.parametrize("objective", ["answer", "metric"])
@pytest.mark.parametrize("per_position", [False, True])
def test_eap_ig_activations_is_complete(objective, per_position, random_task):
    """Signed scores over all edges sum to B(full) - B(every edge ablated), which under resample ablation is the
    clean run minus the corrupted run: computed here without patching."""
    task = random_task
    graph = task.graph(per_position)
    scores = _run(
        "eap-ig-activations",
        task,
        graph,
        task_ablation(task, graph, "resample"),
        steps=50,
        objective=objective,
        absolute=False,
    )
    full, corrupted = task.model(task.clean), task.model(task.corrupt)
    if objective == "answer":
        expected = answer_score(task, full, full) - answer_score(task, corrupted, full)
    else:
        expected = task.metric(corrupted, full, task.scored_positions)
    assert abs(scores.sum().item() - expected.item()) < 0.03 * abs(expected.item()), (scores.sum(), expected)


# --- every method through discover ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["resample", "mean", "zero"])
@pytest.mark.parametrize("per_position", [False, True])
def test_discover_runs_every_method(kind, per_position, proportion):
    for method in METHODS:
        result = (
            discover(proportion, method, ablation=kind, per_position=per_position, steps=2)
            if "ig" in method
            else discover(proportion, method, ablation=kind, per_position=per_position)
        )
        assert result.scores.shape == (result.graph.n_edges,)
        assert torch.isfinite(result.scores).all() and (result.scores >= 0).all()  # absolute values by default
        assert result.scores.max() > 0, method


# --- recovery of tracr's ground truth -------------------------------------------------------------------------------

AUROC: dict = {}


@pytest.mark.parametrize("name", ["tracr-reverse", "tracr-proportion"])
@pytest.mark.parametrize("per_position", [False, True])
@pytest.mark.parametrize("method", METHODS)
def test_tracr_ground_truth_recovery(name, per_position, method):
    """Under resample ablation only edges of the compiled circuit may carry a clear score, and a circuit edge scores
    highest. (The ground truth also holds edges whose inputs are constant on the data, e.g. all of reverse's
    `length` computation, so AUROC stays well below 1: see the printed table.)"""
    task = tracr(name)
    result = discover(task, method, ablation="resample", per_position=per_position)
    truth = task.ground_truth_edges(result.graph)
    clear = result.scores > 1e-6 * result.scores.max()
    # Rounding leaves scores of ~1e-19 on edges without effect; zeroed, they tie as they should.
    snapped = EdgeScores(result.graph, torch.where(clear, result.scores, 0.0), method)
    AUROC[(name, per_position, method)] = (roc_auc(result, truth), roc_auc(snapped, truth), result.seconds)
    print(
        f"\n{name} per_position={per_position} {method}: AUROC {roc_auc(result, truth):.3f} "
        f"(noise zeroed {roc_auc(snapped, truth):.3f}), {result.seconds * 1000:.0f} ms"
    )
    assert result.ranked()[0][0] in truth
    assert all(e in truth for e, keep in zip(result.graph.edges, clear.tolist()) if keep)
    if name == "tracr-reverse" and not per_position:  # the genuinely faithful 2-edge circuit under resampling
        top_two = {e for e, _ in result.ranked()[:2]}
        assert top_two == {Edge("Resid Start", "A3.0.V"), Edge("A3.0", "Resid End")}


@pytest.mark.parametrize(
    "method, hyperparameters",
    [
        ("eap", {"objective": "logit-diff"}),
        ("eap-ig-inputs", {"steps": 0}),
        ("exact", {"chunk_size": 0}),
    ],
)
def test_bad_hyperparameters_fail_before_any_forward(method, hyperparameters, proportion):
    with pytest.raises(InvalidHyperparameterError, match=next(iter(hyperparameters))):
        discover(proportion, method, **hyperparameters)


@pytest.mark.parametrize("method", METHODS)
def test_progress_bar_leaves_scores_unchanged(method, proportion):
    quiet = discover(proportion, method, per_position=True)
    shown = discover(proportion, method, per_position=True, progress=True)
    assert torch.equal(quiet.scores, shown.scores)
