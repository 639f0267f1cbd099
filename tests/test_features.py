"""Feature graphs: writers split by dictionaries into feature and error nodes (issue: circuits over SAE features).

References are independent of the code under test: the programs' own semantics (what `length` and `opp_idx` are on
each input), the patching exactness checks (hand-written hook patches, the per-edge reference), a dictionary built by
hand, and the head/MLP ground truth the compiler derives.
"""

import json

import pytest
import torch
from conftest import run_edgewise

import edgewise
from edgewise.errors import GraphMismatchError
from edgewise.evaluate import effective_ground_truth, roc_auc
from edgewise.graph import Edge, Graph, NodeKind
from edgewise.graph.dictionary import Dictionary, feature_groups, node_outputs
from edgewise.patching import full_logits, patched_forward, task_ablation
from edgewise.patching.ablation import resample_ablation
from edgewise.patching.checks import run_checks
from edgewise.patching.reference import per_edge_forward


def _features_of(graph: Graph, writer: str, variable: str) -> dict[str, int]:
    """Returns {value: writer index} of the writer's features that encode one categorical RASP variable."""
    found = {}
    for i, node in enumerate(graph.writer_nodes):
        if node.kind is NodeKind.FEATURE and node.component == writer:
            label = graph.dictionaries[writer].labels[graph.dictionaries[writer].indices.index(node.index)]
            name, _, value = label.partition(":")
            if name.rsplit("_", 1)[0] == variable:
                found[value] = i
    return found


def test_oracle_features_are_the_programs_variables(reverse):
    """On every reverse input, MLP 0's `length` feature for value n is 1 exactly when the input has length n, and
    MLP 1's `opp_idx` feature for value v is 1 exactly at the positions where length - index == v (lib.make_reverse)."""
    graph = reverse.graph(features="oracle")
    outputs = node_outputs_on(reverse, graph, reverse.clean)  # [batch, pos, writer, d_model]
    activation = outputs.norm(dim=-1)  # a one-hot residual direction: its coordinate is the part's norm
    lengths = reverse.scored_positions.sum(1)  # tokens after BOS
    for value, i in _features_of(graph, "MLP 0", "length").items():
        expected = (lengths == int(value))[:, None].expand(-1, reverse.n_positions) & reverse.scored_positions
        assert torch.equal(activation[..., i][reverse.scored_positions] > 0.5, expected[reverse.scored_positions])
    index = torch.arange(reverse.n_positions) - 1  # position 0 holds BOS
    opp = _features_of(graph, "MLP 1", "opp_idx")
    assert len(opp) >= 3
    for value, i in opp.items():
        expected = (lengths[:, None] - index[None]) == int(value)
        assert torch.equal(activation[..., i][reverse.scored_positions] > 0.5, expected[reverse.scored_positions])
    errors = [i for i, n in enumerate(graph.writer_nodes) if n.kind is NodeKind.ERROR]
    assert outputs[..., errors, :].abs().max() < 1e-5  # the oracle reconstructs every writer exactly


def node_outputs_on(task, graph: Graph, tokens: torch.Tensor) -> torch.Tensor:
    """Returns every writer node's output on `tokens`: [batch, pos, n_writers, d_model]."""
    parts = []
    hooks = [
        (g.hook, lambda value, hook, g=g: parts.append(node_outputs(g, graph.dictionaries, value)))
        for g in graph.groups
        if g.kind == "writer"
    ]
    with torch.no_grad(), task.adapter.hooks(hooks):
        task.adapter.forward(tokens)
    return torch.cat(parts, dim=-2)


@pytest.mark.parametrize("per_position", [False, True])
@pytest.mark.parametrize("name", ["reverse", "proportion"])
def test_feature_graphs_pass_every_exactness_check(request, name, per_position):
    task = request.getfixturevalue(name)
    results = run_checks(task, per_position=per_position, features="oracle", n_edges=4, n_masks=1)
    assert all(r.passed for r in results), [(r.name, r.max_abs_diff) for r in results if not r.passed]
    assert any("hook patch" in r.name and r.effect > 0.01 for r in results)  # the checked edges do move the outputs


def test_feature_edges_patch_like_a_hand_written_feature_ablation(reverse):
    """Zero-ablating one feature edge subtracts that feature's activation times its direction from the reader's input
    and nothing else: a hook on the reader written here, from the residual basis alone."""
    graph = reverse.graph(features="oracle")
    dictionary = graph.dictionaries["MLP 1"]
    feature = next(
        i for i, label in enumerate(dictionary.labels) if label.endswith(":1")
    )  # opp_idx = 1: the last token
    edge = Edge(f"MLP 1[{dictionary.labels[feature]}]", "MLP 2")
    direction = dictionary.decoder[feature]  # a one-hot residual direction
    assert direction.abs().sum() == 1 and direction.max() == 1
    dimension = int(direction.argmax())
    written = {}

    def save(value, hook):
        written["mlp1"] = value[..., dimension].clone()

    def patch(value, hook):
        value = value.clone()
        value[..., dimension] -= written["mlp1"]
        return value

    with torch.no_grad(), reverse.adapter.hooks([("blocks.1.hook_mlp_out", save), ("blocks.2.hook_mlp_in", patch)]):
        expected = reverse.adapter.forward(reverse.clean)
    mask = torch.ones(graph.n_edges)
    mask[graph.edge_index(edge)] = 0
    ablated = task_ablation(reverse, graph, "zero")
    patched = patched_forward(reverse.model, graph, reverse.clean, ablated, mask)
    assert (patched - expected).abs().max() < 1e-5
    assert (patched - full_logits(reverse)).abs().max() > 0.1  # the feature matters


def test_feature_truth_projects_onto_the_head_and_mlp_truth(reverse, proportion):
    """A head/MLP edge is true exactly when one of its writer's features is: the two levels agree."""
    for task in (reverse, proportion):
        graph = task.graph(features="oracle")
        features = task.ground_truth_edges(graph)
        projected = {(graph.writer_node(e.writer).component, e.reader) for e in features}
        assert projected == set(task.ground_truth)
        assert all(graph.writer_node(e.writer).kind is NodeKind.FEATURE for e in features)


@pytest.mark.parametrize("ablation", ["resample", "zero"])
@pytest.mark.parametrize("name", ["reverse", "proportion"])
def test_edge_sp_ranks_the_feature_truth(request, name, ablation):
    """The issue's bar: oracle-feature edge-sp AUROC >= 0.99 on reverse and proportion, resample and zero."""
    task = request.getfixturevalue(name)
    graph = task.graph(features="oracle")
    ablated = task_ablation(task, graph, ablation)
    truth = effective_ground_truth(task, graph, ablated)
    assert truth and len(truth) < graph.n_edges / 4
    scores = edgewise.discover(task, "edge-sp", ablation, graph=graph, ablated=ablated)
    assert roc_auc(scores, truth) >= 0.99


def test_a_restricted_dictionary_moves_the_other_features_into_the_error(reverse):
    """Keeping only some features stays exact: the error node carries what the dropped ones wrote."""
    full = reverse.dictionaries["oracle"]["MLP 1"]
    kept = full.restricted([0, 2])
    assert kept.labels == (full.labels[0], full.labels[2]) and kept.indices == (0, 2)
    x = torch.randn(5, full.decoder.shape[1])
    parts = kept.split(x)
    assert torch.allclose(parts.sum(-2), x, atol=1e-6)
    dropped = full.split(x)[..., [i for i in range(full.n_features) if i not in (0, 2)], :].sum(-2)
    residual = x - full.split(x)[..., :-1, :].sum(-2)
    assert torch.allclose(parts[..., -1, :], dropped + residual, atol=1e-6)
    graph = reverse.graph()
    split = Graph(feature_groups(graph.groups, {"MLP 1": kept}), None, "custom", {"MLP 1": kept})
    ablated = task_ablation(reverse, split, "resample")
    mask = torch.rand(split.n_edges, generator=torch.Generator().manual_seed(0))
    assert (
        patched_forward(reverse.model, split, reverse.clean, ablated, torch.ones(split.n_edges)) - full_logits(reverse)
    ).abs().max() < 1e-5
    assert (
        patched_forward(reverse.model, split, reverse.clean, ablated, mask)
        - per_edge_forward(reverse.model, split, reverse.clean, ablated, mask)
    ).abs().max() < 1e-5


def test_a_hand_made_dictionary_on_a_head_splits_only_that_head(random_model, random_batches):
    """Dictionaries apply per writer: on a per-head hook (with LayerNorm and GQA), one head is split into three
    non-orthogonal directions and an error, and the others stay whole."""
    clean, corrupt = random_batches
    graph = Graph.from_model(random_model)
    head = graph.writer_node("A1.2")
    d_model = random_model.cfg.d_model
    directions = torch.randn(3, d_model, generator=torch.Generator().manual_seed(1))
    dictionary = Dictionary.from_directions(directions, ["a", "b", "c"])
    split = Graph(feature_groups(graph.groups, {head.name: dictionary}), None, "custom", {head.name: dictionary})
    assert [n.name for n in split.writer_nodes if n.component == head.name] == [
        "A1.2[a]",
        "A1.2[b]",
        "A1.2[c]",
        "A1.2[error]",
    ]
    assert len(split.writers) == len(graph.writers) + 3
    ablated = resample_ablation(random_model, split, corrupt)
    mask = torch.rand(split.n_edges, generator=torch.Generator().manual_seed(0))
    assert (
        patched_forward(random_model, split, clean, ablated, mask)
        - per_edge_forward(random_model, split, clean, ablated, mask)
    ).abs().max() < 1e-4
    assert (
        patched_forward(random_model, split, clean, ablated, torch.ones(split.n_edges)) - random_model(clean)
    ).abs().max() < 1e-4


def test_feature_graph_files_keep_nodes_but_patching_needs_the_dictionaries(reverse, tmp_path):
    graph = reverse.graph(features="oracle")
    graph.save(tmp_path / "g.json")
    record = json.loads((tmp_path / "g.json").read_text())
    assert record["features"] == "oracle" and "MLP 1[error]" in record["nodes"]
    loaded = Graph.load(tmp_path / "g.json")
    assert loaded == graph and loaded.dictionaries == {}
    ablated = task_ablation(reverse, graph, "zero")
    with pytest.raises(GraphMismatchError, match="rebuild the graph with its dictionaries"):
        patched_forward(reverse.model, loaded, reverse.clean, ablated, torch.ones(loaded.n_edges))


def test_unknown_feature_sets_and_writers_raise(reverse):
    with pytest.raises(GraphMismatchError, match="has no 'sae' features .*oracle"):
        reverse.graph(features="sae")
    with pytest.raises(GraphMismatchError, match="not writers of this model"):
        feature_groups(reverse.graph().groups, {"MLP 9": reverse.dictionaries["oracle"]["MLP 1"]})
    custom = Graph(feature_groups(reverse.graph().groups, {}), None, "custom")
    assert not reverse.knows_truth(custom)
    with pytest.raises(GraphMismatchError, match="no ground truth for its 'custom' features"):
        reverse.ground_truth_edges(custom)


def test_graph_names_the_rasp_operation_of_each_block(reverse, tmp_path):
    """lib.make_reverse: length = SelectorWidth(...), opp_idx = length - indices (a SequenceMap), opp_idx - 1 (a Map),
    reverse = Aggregate(Select(indices, opp_idx - 1, EQ), tokens). The compiler places them on MLP 0, MLP 1, MLP 2 and
    head A3.0, and the true edges carry those variables."""
    compiled = reverse.family.compiled
    strip = lambda entries: [e.rsplit("_", 1)[0] if e[-1].isdigit() else e for e in entries]  # noqa: E731
    operations = {w: [o.split(" ", 1)[1] for o in ops] for w, ops in compiled.writer_operations().items()}
    assert operations["MLP 1"] == ["(SequenceMap)"] and operations["MLP 2"] == ["(Map)"]
    assert operations["A3.0"] == ["(Aggregate)"] and "(SelectorWidth)" in operations["MLP 0"]
    assert strip(compiled.carried("MLP 1", "MLP 2")) == ["opp_idx"]
    assert strip(compiled.carried("A3.0", "Resid End")) == ["reverse"]
    result = run_edgewise("graph", "tracr-reverse", "--json", str(tmp_path / "g.json"))
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "g.json").read_text())
    assert record["operations"]["A3.0"][0].endswith("(Aggregate)")
    carries = {(w, r): c for w, r, c in record["carries"]}
    assert strip(carries["MLP 2", "A3.0.Q"]) == ["opp_idx-1"]


@pytest.mark.parametrize(
    "method", ["acdc", "eap", "eap-ig-activations", "eap-ig-inputs", "edge-sp", "exact", "node-sp"]
)
def test_every_method_runs_on_feature_graphs_through_discover(proportion, method):
    """Every method scores proportion's oracle feature graph through the same `discover`, and ranks the three feature
    edges resample ablation needs (`Resid Start[tokens:x]->MLP 0`, `MLP 0[map_3]->A1.0.V`, A1.0's output) above the
    rest; node-sp shares a gate per feature, so it ties a needed edge with its writer's other edges."""
    from edgewise.methods import discover

    graph = proportion.graph(features="oracle")
    ablated = task_ablation(proportion, graph, "resample")
    scores = discover(proportion, method, graph=graph, ablated=ablated)
    assert scores.scores.shape == (graph.n_edges,) and torch.isfinite(scores.scores).all()
    assert roc_auc(scores, effective_ground_truth(proportion, graph, ablated)) >= (0.95 if method == "node-sp" else 1.0)
