"""The sparse patching forward (gated edges trained, every other edge fixed) against the dense one-pass forward on
the full mask and against the per-edge reference: tracr-reverse plain, per-position and oracle-feature graphs, a
random LayerNorm/GQA model, and a declared CNN whose later readers see only some writers; under resample, zero and
mean ablation, with fixed edges all ablated, all kept and mixed; one mask and several; gradients w.r.t. the gates."""

import sys
from pathlib import Path

import pytest
import torch
from conftest import random_transformer, tracr

from edgewise import DeclaredAdapter
from edgewise.errors import GraphMismatchError, InvalidMaskError
from edgewise.graph import Dictionary, Graph, node_outputs
from edgewise.patching import SparseMasking, patched_forward, task_ablation
from edgewise.patching.ablation import make_ablation
from edgewise.patching.reference import per_edge_forward
from edgewise.tasks import METRICS, Task

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

import residual_cnn  # noqa: E402  (examples/ is not a package)

CASES = ["reverse", "reverse-per-position", "reverse-oracle", "random", "random-per-position", "declared-cnn"]
KINDS = ["resample", "zero", "mean"]
FIXED = ["ablated", "kept", "mixed"]
_SETUPS: dict = {}


def _setup(case: str):
    """Returns (adapter or model, graph, clean, corrupt, {ablation kind: AblatedOutputs}), built once per case."""
    if case in _SETUPS:
        return _SETUPS[case]
    if case.startswith("reverse"):
        task = tracr("tracr-reverse")
        graph = task.graph(
            per_position=case.endswith("per-position"), features="oracle" if case.endswith("oracle") else None
        )
        model, clean, corrupt = task.adapter, task.clean, task.corrupt
        ablations = {kind: task_ablation(task, graph, kind) for kind in KINDS}
    elif case.startswith("random"):
        model = random_transformer()
        g = torch.Generator().manual_seed(0)
        clean, corrupt = torch.randint(0, 20, (5, 9), generator=g), torch.randint(0, 20, (5, 9), generator=g)
        per_position = case.endswith("per-position")
        graph = Graph.from_model(model, per_position, clean.shape[1] if per_position else None)
        ablations = {
            kind: make_ablation(kind, model, graph, corrupt if kind == "resample" else clean) for kind in KINDS
        }
    else:
        torch.manual_seed(0)
        cnn = residual_cnn.ResidualCNN().eval()
        clean = torch.rand(6, 1, 8, 8)
        corrupt = clean.flip(0)
        model = DeclaredAdapter(cnn, residual_cnn.WRITERS, residual_cnn.READERS, clean, feeds=residual_cnn.FEEDS)
        task = Task("cnn", model, clean, corrupt, METRICS["kl"], torch.ones(len(clean), 1, dtype=torch.bool))
        graph = task.graph()
        ablations = {kind: task_ablation(task, graph, kind) for kind in KINDS}
    _SETUPS[case] = (model, graph, clean, corrupt, ablations)
    return _SETUPS[case]


def _gated_and_fixed(graph: Graph, fixed_kind: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns edges to gate, a random third and every edge into the output (so that some gate reaches the logits
    whatever is fixed: the comparisons can fail), and fixed values: all 0, all 1, or a random half 1."""
    g = torch.Generator().manual_seed(seed)
    into_output = [i for i, e in enumerate(graph.edges) if e.reader in graph.output_readers]
    third = torch.randperm(graph.n_edges, generator=g)[: graph.n_edges // 3]
    gated = torch.unique(torch.cat([third, torch.tensor(into_output)]))
    gated = gated[torch.randperm(len(gated), generator=g)]  # in no particular order
    if fixed_kind == "ablated":
        return gated, torch.zeros(graph.n_edges)
    if fixed_kind == "kept":
        return gated, torch.ones(graph.n_edges)
    return gated, (torch.rand(graph.n_edges, generator=g) < 0.5).float()


def _assert_close(got: torch.Tensor, expected: torch.Tensor, rel: float = 1e-5) -> None:
    """Asserts the largest difference is within rel times the reference's largest |value| (or rel, if below 1)."""
    tolerance = rel * max(1.0, expected.abs().max().item())
    assert (got - expected).abs().max().item() <= tolerance, (got - expected).abs().max().item()


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("fixed_kind", FIXED)
@torch.no_grad()
def test_sparse_forward_equals_dense_forward_and_per_edge_reference(case, kind, fixed_kind):
    model, graph, clean, _, ablations = _setup(case)
    ablated = ablations[kind]
    gated, fixed = _gated_and_fixed(graph, fixed_kind)
    masking = SparseMasking(model, graph, ablated, gated, fixed)
    gates = torch.rand(len(gated), generator=torch.Generator().manual_seed(1)) / 2  # half-ablated at least: effects
    mask = masking.full_mask(gates)
    off = torch.ones(graph.n_edges, dtype=torch.bool)
    off[gated] = False
    assert torch.equal(mask[gated], gates) and torch.equal(mask[off], fixed[off])
    got = masking.forward(clean, gates)
    dense = patched_forward(model, graph, clean, ablated, mask)
    reference = per_edge_forward(model, graph, clean, ablated, mask)
    _assert_close(dense, reference)  # the two references agree with each other
    _assert_close(got, reference)
    plain = patched_forward(model, graph, clean, ablated, torch.ones(graph.n_edges))
    assert (reference - plain).abs().max() > 1e-4  # the patch moves the logits: the comparison can fail


@pytest.mark.parametrize("case", ["reverse-oracle", "random", "random-per-position", "declared-cnn"])
@torch.no_grad()
def test_several_masks_in_one_forward_equal_one_forward_each(case):
    model, graph, clean, _, ablations = _setup(case)
    gated, fixed = _gated_and_fixed(graph, "mixed", seed=2)
    masking = SparseMasking(model, graph, ablations["resample"], gated, fixed)
    gates = torch.rand(3, len(gated), generator=torch.Generator().manual_seed(3))
    got = masking.forward(clean, gates)
    assert got.shape[0] == 3
    _assert_close(got, patched_forward(model, graph, clean, ablations["resample"], masking.full_mask(gates)))
    for i in range(3):
        _assert_close(got[i], masking.forward(clean, gates[i]))


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize(
    "fixed_kind, kind", [("ablated", "zero"), ("ablated", "mean"), ("kept", "resample"), ("mixed", "resample")]
)
@pytest.mark.parametrize("n_masks", [None, 2])
def test_gate_gradients_equal_the_dense_forwards_mask_gradients(case, fixed_kind, kind, n_masks):
    """d loss / d gates equals the dense forward's d loss / d mask at the gated edges (torch.autograd.grad); for one
    mask, also plain autograd through the per-edge reference. (Resample ablation of every fixed edge would leave
    the gates nothing to move: each writer whose inputs are all ablated puts out its corrupted output.)"""
    model, graph, clean, _, ablations = _setup(case)
    ablated = ablations[kind]
    gated, fixed = _gated_and_fixed(graph, fixed_kind, seed=4)
    masking = SparseMasking(model, graph, ablated, gated, fixed)
    shape = (len(gated),) if n_masks is None else (n_masks, len(gated))
    gates = torch.rand(shape, generator=torch.Generator().manual_seed(5)).requires_grad_(True)
    logits = masking.forward(clean, gates)
    target = torch.randn(logits.shape, generator=torch.Generator().manual_seed(6))
    (got,) = torch.autograd.grad((logits * target).sum(), gates)
    mask = masking.full_mask(gates.detach()).requires_grad_(True)
    (dense,) = torch.autograd.grad((patched_forward(model, graph, clean, ablated, mask) * target).sum(), mask)
    # The gates matter, so the comparison can fail; except on tracr's oracle features with every fixed edge ablated:
    # its one-hot features then all stay off, and no gate moves the logits
    if (case, fixed_kind) != ("reverse-oracle", "ablated"):
        assert dense[..., gated].abs().max() > 1e-3
    _assert_close(got, dense[..., gated], rel=1e-4)
    if n_masks is None:
        mask = mask.detach().requires_grad_(True)
        (reference,) = torch.autograd.grad((per_edge_forward(model, graph, clean, ablated, mask) * target).sum(), mask)
        _assert_close(got, reference[gated], rel=1e-4)


def test_weight_gradients_still_flow_and_equal_the_dense_forwards():
    """Methods freeze the weights, but a forward with trainable weights must still give their true gradients."""
    model, graph, clean, _, ablations = _setup("random")
    gated, fixed = _gated_and_fixed(graph, "mixed", seed=7)
    masking = SparseMasking(model, graph, ablations["resample"], gated, fixed)
    gates = torch.rand(len(gated), generator=torch.Generator().manual_seed(8))
    params = [model.W_E, model.blocks[0].attn.W_Q, model.blocks[1].mlp.W_in, model.blocks[2].attn.W_V]
    got = torch.autograd.grad(masking.forward(clean, gates).pow(2).sum(), params)
    dense = patched_forward(model, graph, clean, ablations["resample"], masking.full_mask(gates))
    for g, d in zip(got, torch.autograd.grad(dense.pow(2).sum(), params)):
        _assert_close(g, d, rel=1e-4)


@pytest.mark.parametrize("fixed_kind", FIXED)
def test_work_follows_the_gated_edges(fixed_kind):
    """Each reader costs one product per gated edge plus one per fixed edge of its rarer kind (every reader of the
    transformer sees every earlier writer, so each may take either form)."""
    model, graph, _, _, ablations = _setup("random-per-position")
    gated, fixed = _gated_and_fixed(graph, fixed_kind)
    masking = SparseMasking(model, graph, ablations["zero"], gated, fixed)
    off = torch.ones(graph.n_edges, dtype=torch.bool)
    off[gated] = False
    kept = torch.bincount(graph.edge_reader[off & (fixed == 1)], minlength=len(graph.readers))
    ablated = torch.bincount(graph.edge_reader[off & (fixed == 0)], minlength=len(graph.readers))
    assert len(masking.src) == len(gated) + int(torch.minimum(kept, ablated).sum())
    if fixed_kind != "mixed":
        assert len(masking.src) == len(gated)


@torch.no_grad()
def test_a_feature_graph_is_never_split_densely_and_only_read_features_are_multiplied_out(monkeypatch):
    """Item 2 of the sparse path: the writers' feature outputs are computed only for features some gated edge reads
    (activations x decoder rows), never as the dense [..., n_features, d_model] split; the result still equals the
    per-edge reference."""
    model, graph, clean, _, ablations = _setup("reverse-oracle")
    features = [i for i, e in enumerate(graph.edges) if graph.writer_node(e.writer).kind == "feature"]
    gated = torch.tensor(features[:3] + [i for i, e in enumerate(graph.edges) if e.reader in graph.output_readers])
    gated = torch.unique(gated)
    masking = SparseMasking(model, graph, ablations["resample"], gated, torch.zeros(graph.n_edges))
    gates = torch.rand(len(gated), generator=torch.Generator().manual_seed(0))
    expected = per_edge_forward(model, graph, clean, ablations["resample"], masking.full_mask(gates))
    parts_asked: list[int] = []
    original_parts = Dictionary.parts

    def counted(self, x, which=None):
        parts_asked.append(self.n_features + 1 if which is None else len(which))
        return original_parts(self, x, which)

    def refused(self, x):
        raise AssertionError("the sparse forward split a writer densely")

    monkeypatch.setattr(Dictionary, "split", refused)
    monkeypatch.setattr(Dictionary, "parts", counted)
    got = masking.forward(clean, gates)
    _assert_close(got, expected)
    read = {graph.writer_node(graph.edges[int(i)].writer) for i in gated}
    assert sum(parts_asked) == sum(1 for w in read if w.kind in ("feature", "error"))


def test_dictionary_parts_equal_the_dense_split_at_the_chosen_parts():
    g = torch.Generator().manual_seed(0)
    directions = torch.randn(5, 8, generator=g)
    dictionary = Dictionary.from_directions(directions, [f"f{i}" for i in range(5)])
    x = torch.randn(3, 4, 8, generator=g)
    # the brute-force split: every feature's activation times its decoder row, the error as x minus their sum
    activations = x @ torch.linalg.pinv(directions.double()).float()
    dense = torch.cat([activations.unsqueeze(-1) * directions, (x - activations @ directions).unsqueeze(-2)], dim=-2)
    assert dictionary.parts(x, []).shape == (3, 4, 0, 8)
    for which in ([0], [1, 3], [2, 5], [5], [0, 1, 2, 3, 4, 5]):
        _assert_close(dictionary.parts(x, which), dense[..., which, :])
    _assert_close(dictionary.split(x), dense)
    assert torch.allclose(dictionary.split(x).sum(-2), x, atol=1e-5)
    for bad in ([3, 1], [6], [-1], [2, 2]):
        with pytest.raises(GraphMismatchError, match="ascending"):
            dictionary.parts(x, bad)


def test_node_outputs_of_chosen_nodes_equal_the_full_outputs_at_those_nodes():
    _, graph, clean, _, _ = _setup("reverse-oracle")
    d = next(iter(graph.dictionaries.values())).decoder.shape[1]
    for group in (g for g in graph.groups if g.kind == "writer"):
        shape = (2, clean.shape[1], len(dict.fromkeys(n.component for n in group.nodes)), d)
        value = torch.randn(shape if group.per_head else shape[:2] + shape[3:])
        full = node_outputs(group, graph.dictionaries, value)
        n = len(group.nodes)
        for chosen in ([0], [n - 1], list(range(0, n, 2)), list(range(n))):
            _assert_close(node_outputs(group, graph.dictionaries, value, chosen), full[..., chosen, :])


@torch.no_grad()
def test_nothing_gated_and_everything_kept_is_the_plain_forward():
    model, graph, clean, _, ablations = _setup("reverse-oracle")
    masking = SparseMasking(
        model, graph, ablations["resample"], torch.zeros(0, dtype=torch.long), torch.ones(graph.n_edges)
    )
    _assert_close(masking.forward(clean, torch.zeros(0)), model.forward(clean))


def test_bad_gated_fixed_and_gates_are_refused_naming_the_fix():
    model, graph, clean, _, ablations = _setup("reverse")
    ablated, n = ablations["resample"], graph.n_edges
    with pytest.raises(GraphMismatchError, match="integer tensor"):
        SparseMasking(model, graph, ablated, torch.tensor([0.0, 1.0]), torch.zeros(n))
    with pytest.raises(GraphMismatchError, match="outside this graph"):
        SparseMasking(model, graph, ablated, torch.tensor([0, n]), torch.zeros(n))
    with pytest.raises(InvalidMaskError, match="repeats"):
        SparseMasking(model, graph, ablated, torch.tensor([3, 3]), torch.zeros(n))
    with pytest.raises(GraphMismatchError, match=f"float tensor \\[{n}\\]"):
        SparseMasking(model, graph, ablated, torch.tensor([0]), torch.zeros(n - 1))
    fixed = torch.zeros(n)
    fixed[[0, 1]] = 0.5
    with pytest.raises(InvalidMaskError, match="kept \\(1\\) or ablated \\(0\\)"):
        SparseMasking(model, graph, ablated, torch.tensor([0]), fixed)  # edge 0 is gated, edge 1 is not
    masking = SparseMasking(model, graph, ablated, torch.tensor([0, 1]), fixed)  # values at gated edges are ignored
    with pytest.raises(GraphMismatchError, match="\\[2\\] or \\[n_masks, 2\\]"):
        masking.forward(clean, torch.rand(3))
    with pytest.raises(InvalidMaskError, match="NaN"):
        masking.forward(clean, torch.tensor([0.5, float("nan")]))
