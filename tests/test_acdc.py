"""ACDC against an independent brute-force greedy loop (one patched forward per edge), its provable properties, and
what it finds on tracr tasks whose circuits are known."""

import pytest
import torch
from conftest import random_transformer, tracr

from edgewise.evaluate import circuit_loss, effective_ground_truth, roc_auc
from edgewise.methods import discover
from edgewise.methods.acdc import AcdcConfig, acdc_circuit, acdc_scores
from edgewise.patching import patched_forward, task_ablation
from edgewise.tasks import METRICS, Task


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These forwards are tiny; with two threads, OpenMP's spin-waiting makes them ~100x slower when another process
    holds a core (measured here: 469 s against 15 s for this file)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _random_task(n_positions: int = 9) -> Task:
    g = torch.Generator().manual_seed(0)
    clean, corrupt = torch.randint(0, 20, (2, 5, n_positions), generator=g)
    return Task("random", random_transformer(), clean, corrupt, METRICS["kl"], torch.ones_like(clean, dtype=torch.bool))


def _feeds_nothing(graph, mask, edge) -> bool:
    """Whether the node `edge.reader` belongs to has no kept outgoing edge that `edge` could reach."""
    reader = edge.reader
    node = reader.rsplit(".", 1)[0] if reader.endswith((".Q", ".K", ".V")) else reader
    writers = {w for w in graph.writers if graph.writer_node(w).component == node}  # a split writer: its features
    if not writers:
        return False
    every_position = edge.position is None or reader.endswith((".K", ".V"))  # K/V reach every query position
    return not any(
        keep and out.writer in writers and (every_position or out.position == edge.position)
        for keep, out in zip(mask.tolist(), graph.edges)
    )


@torch.no_grad()
def brute_force_acdc(task, graph, ablated, threshold, skip_dead_nodes):
    """ACDC's greedy rule written plainly: one forward per edge, readers from the output back, latest writer (and
    last position) first; returns (kept mask, {edge index: measured change})."""
    reference = task.model(task.clean)

    def metric(mask):
        logits = patched_forward(task.model, graph, task.clean, ablated, mask)
        return task.metric(logits, reference, task.scored_positions).item()

    mask = torch.ones(graph.n_edges)
    current = metric(mask)
    changes = {}
    for reader in reversed(graph.readers):
        for i in reversed([i for i, e in enumerate(graph.edges) if e.reader == reader]):
            if skip_dead_nodes and threshold > 0 and _feeds_nothing(graph, mask, graph.edges[i]):
                mask[i] = 0.0
                changes[i] = 0.0
                continue
            trial = mask.clone()
            trial[i] = 0.0
            value = metric(trial)
            changes[i] = value - current
            if value - current < threshold:
                mask, current = trial, value
    return mask, changes


CASES = [
    ("tracr-reverse", False, 1e-3),
    ("tracr-reverse", True, 1e-3),
    ("tracr-proportion", False, 1e-3),
    ("random", False, 1e-3),
    ("random", False, 3e-2),
    ("random", True, 5e-2),
    ("tracr-reverse+oracle", False, 1e-3),  # a feature graph: a split writer is dead once none of its features feed
]


@pytest.mark.parametrize("name, per_position, threshold", CASES)
@pytest.mark.parametrize("skip_dead_nodes", [True, False])
def test_equals_brute_force_greedy(name, per_position, threshold, skip_dead_nodes):
    if per_position and not skip_dead_nodes:
        pytest.skip("one forward per edge of a per-position graph is slow: the skipping variant covers them")
    name, _, features = name.partition("+")
    task = _random_task(5 if per_position else 9) if name == "random" else tracr(name)
    graph = task.graph(per_position, features=features or None)
    ablated = task_ablation(task, graph)
    mask, changes = brute_force_acdc(task, graph, ablated, threshold, skip_dead_nodes)
    measured = [c for c in changes.values() if c != 0.0]
    # Batched and single forwards differ by rounding: the comparison is only sharp away from the threshold.
    assert min(abs(c - threshold) for c in measured) > 1e-5, "pick a threshold away from the measured changes"
    expected = torch.tensor([changes[i] for i in range(graph.n_edges)], dtype=torch.float64)
    for masks_per_forward in (64, 3):  # one forward per reader, and blocks that split readers
        config = AcdcConfig(threshold=threshold, skip_dead_nodes=skip_dead_nodes, masks_per_forward=masks_per_forward)
        scores = acdc_scores(task, graph, ablated, config, 0, False)
        assert torch.equal(scores >= threshold, mask > 0)
        assert torch.allclose(scores, expected, atol=1e-6, rtol=1e-4)
    assert 0 < int(mask.sum()) < graph.n_edges  # the case decides both ways


@pytest.fixture(scope="module")
def random_case():
    task = _random_task()
    graph = task.graph()
    return task, graph, task_ablation(task, graph)


def test_negative_threshold_keeps_everything_and_huge_removes_everything(random_case):
    """The metric is a distance to the full model: >= 0, and 0 for the full circuit. So no removal can lower it
    below the start, and a negative threshold keeps every edge; a threshold above every change keeps none."""
    task, graph, ablated = random_case
    kept_all = acdc_scores(task, graph, ablated, AcdcConfig(threshold=-1e-4), 0, False)
    assert bool((kept_all >= -1e-4).all())
    assert kept_all.min() > -1e-6  # every change is >= 0 up to rounding
    assert acdc_circuit(discover(task, "acdc", graph=graph, ablated=ablated, threshold=-1e-4)).edges == set(graph.edges)
    none = discover(task, "acdc", graph=graph, ablated=ablated, threshold=1e9)
    assert acdc_circuit(none).edges == frozenset()


@pytest.mark.parametrize("threshold", [0.0, 1e-2, 1e9])
def test_final_metric_is_the_sum_of_removed_changes(random_case, threshold):
    """Removals telescope: metric(circuit) = metric(full) + sum of the changes of removed edges, each < threshold."""
    task, graph, ablated = random_case
    scores = acdc_scores(task, graph, ablated, AcdcConfig(threshold=threshold), 0, False)
    removed = scores < threshold
    circuit = acdc_circuit(discover(task, "acdc", threshold=threshold))
    assert circuit.edges == {e for e, r in zip(graph.edges, removed.tolist()) if not r}
    full = circuit_loss(task, graph, ablated, set(graph.edges))
    loss = circuit_loss(task, graph, ablated, set(circuit.edges))
    assert loss == pytest.approx(full + scores[removed].sum().item(), abs=1e-5)
    if threshold == 0.0:  # removing an edge never lowers a distance that starts at 0, beyond rounding
        assert bool((scores[removed].abs() < 1e-6).all())
    if threshold == 1e9:
        assert len(circuit) == 0


@pytest.mark.parametrize("name", ["tracr-reverse", "tracr-proportion"])
@pytest.mark.parametrize("per_position", [False, True])
def test_tracr_circuit_lies_in_the_ground_truth(name, per_position, capsys):
    """tracr reads and writes disjoint residual subspaces, so an edge outside the derived ground truth changes
    nothing and is removed at any threshold > 0: what ACDC keeps lies inside the ground truth, and the ground-truth
    edges it keeps outrank every other edge, so AUROC > 0.5. Under resample ablation most derived edges carry nothing
    on this data (constant intermediate values); what ACDC keeps is exactly the effective ground truth here."""
    task = tracr(name)
    scores = discover(task, "acdc", "resample", per_position, progress=True)
    graph = scores.graph
    truth = task.ground_truth_edges(graph)
    circuit = acdc_circuit(scores)
    auroc = roc_auc(scores, truth)
    ablated = task_ablation(task, graph)
    effective = effective_ground_truth(task, graph, ablated)
    loss = circuit_loss(task, graph, ablated, set(circuit.edges))
    with capsys.disabled():
        print(
            f"\n{name} {'per-position' if per_position else 'plain'}: AUROC {auroc:.3f} (effective truth: "
            f"{roc_auc(scores, effective):.3f}), {len(circuit)} of {graph.n_edges} edges kept ({len(truth)} true, "
            f"{len(effective)} effective), loss {loss:.2e}, {scores.seconds:.2f} s"
        )
    assert circuit.edges and circuit.edges <= truth
    assert auroc > 0.5
    assert circuit.edges == effective
    threshold = scores.hyperparameters["threshold"]
    assert loss < threshold * (graph.n_edges - len(circuit)) + 1e-6  # each removal added less than the threshold


def test_config_rejects_empty_batches():
    with pytest.raises(ValueError, match="masks_per_forward"):
        AcdcConfig(masks_per_forward=0)
