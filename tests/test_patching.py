"""The one-pass patching forward against independent references, on tracr models and a random LayerNorm/GQA model."""

import pytest
import torch
from conftest import tracr

from edgewise.graph import Edge, Graph
from edgewise.patching import patched_forward
from edgewise.patching.ablation import make_ablation
from edgewise.patching.reference import per_edge_forward, single_edge_patch

TRACR = ["tracr-reverse", "tracr-proportion", "tracr-pair-balance", "tracr-dyck2"]


def _graph_and_data(case, random_model, random_batches, per_position=False):
    if case == "random":
        clean, corrupt = random_batches
        graph = Graph.from_model(random_model, per_position, clean.shape[1] if per_position else None)
        return random_model, graph, clean, corrupt
    task = tracr(case)
    return task.model, task.graph(per_position), task.clean, task.corrupt


CASES = TRACR + ["random"]


@pytest.mark.parametrize("case", CASES)
@torch.no_grad()
def test_mask_of_ones_reproduces_plain_forward(case, random_model, random_batches):
    model, graph, clean, corrupt = _graph_and_data(case, random_model, random_batches)
    for kind in ("resample", "zero", "mean"):
        ablated = make_ablation(kind, model, graph, corrupt)
        logits = patched_forward(model, graph, clean, ablated, torch.ones(graph.n_edges))
        assert torch.allclose(logits, model(clean), atol=1e-5), kind


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("per_position", [False, True])
@torch.no_grad()
def test_mask_of_zeros_under_resample_reproduces_corrupted_forward(case, per_position, random_model, random_batches):
    model, graph, clean, corrupt = _graph_and_data(case, random_model, random_batches, per_position)
    ablated = make_ablation("resample", model, graph, corrupt)
    logits = patched_forward(model, graph, clean, ablated, torch.zeros(graph.n_edges))
    assert torch.allclose(logits, model(corrupt), atol=1e-5)
    assert not torch.allclose(model(clean), model(corrupt), atol=1e-3)  # the check has teeth


@torch.no_grad()
def test_zero_ablating_everything_leaves_only_biases(random_model, random_batches):
    """With every edge zero-ablated each reader sees only biases, so the logits cannot depend on the tokens."""
    clean, corrupt = random_batches
    graph = Graph.from_model(random_model)
    ablated = make_ablation("zero", random_model, graph, clean)
    a = patched_forward(random_model, graph, clean, ablated, torch.zeros(graph.n_edges))
    b = patched_forward(random_model, graph, corrupt, ablated, torch.zeros(graph.n_edges))
    # Looser: readers see resid - sum(outputs), a float32 cancellation that LayerNorm of a bias-only input amplifies.
    assert torch.allclose(a, b, atol=1e-4)
    assert not torch.allclose(random_model(clean), random_model(corrupt), atol=1e-2)


def _hand_patch_reverse(model, clean, corrupt, writer_hook, writer_head, reader_hook, reader_head):
    """Resample-ablates one edge of the tracr-reverse model with plain TransformerLens hooks."""
    _, corrupt_cache = model.run_with_cache(corrupt)
    _, clean_cache = model.run_with_cache(clean)

    def writer_out(cache):
        v = cache[writer_hook]
        return v if writer_head is None else v[:, :, writer_head]

    def hook(value, hook):
        value = value.clone()
        delta = writer_out(corrupt_cache) - writer_out(clean_cache)
        if reader_head is None:
            value += delta
        else:
            value[:, :, reader_head] += delta
        return value

    return model.run_with_hooks(clean, fwd_hooks=[(reader_hook, hook)])


@pytest.mark.parametrize(
    "edge, hooks",
    [
        (Edge("Resid Start", "A3.0.V"), ("blocks.0.hook_resid_pre", None, "blocks.3.hook_v_input", 0)),
        (Edge("MLP 2", "A3.0.Q"), ("blocks.2.hook_mlp_out", None, "blocks.3.hook_q_input", 0)),
        (Edge("A0.0", "MLP 0"), ("blocks.0.attn.hook_result", 0, "blocks.0.hook_mlp_in", None)),
        (Edge("A3.0", "Resid End"), ("blocks.3.attn.hook_result", 0, "blocks.3.hook_resid_post", None)),
        (Edge("MLP 0", "MLP 1"), ("blocks.0.hook_mlp_out", None, "blocks.1.hook_mlp_in", None)),
    ],
)
@torch.no_grad()
def test_single_edge_removal_matches_hand_written_hook_patch(reverse, edge, hooks):
    # Inputs of different lengths, so that length and opp_idx differ between paired rows and every edge here
    # changes the output (on the task's own data, all of one length, most of them would change nothing).
    encode = reverse.family.compiled.encode
    clean = encode([[1, 2, 3], [2, 3, 1, 1, 2], [3, 3, 1, 2], [1, 1]])
    corrupt = encode([[2, 1, 3, 3, 1], [1, 2], [1, 1, 2, 3, 3], [3, 2, 1]])
    graph = reverse.graph()
    mask = torch.ones(graph.n_edges)
    mask[graph.edge_index(edge)] = 0
    patched = patched_forward(
        reverse.model, graph, clean, make_ablation("resample", reverse.model, graph, corrupt), mask
    )
    reference = _hand_patch_reverse(reverse.model, clean, corrupt, *hooks)
    assert (reference - reverse.model(clean)).abs().max() > 1e-2  # the edge matters: the check has teeth
    assert torch.allclose(patched, reference, atol=1e-5)


@pytest.mark.parametrize("case", ["tracr-dyck2", "random"])
@torch.no_grad()
def test_single_edge_removal_matches_hook_patch_on_multi_head_models(case, random_model, random_batches):
    model, graph, clean, corrupt = _graph_and_data(case, random_model, random_batches)
    ablated = make_ablation("resample", model, graph, corrupt)
    # Edges that matter: random picks on dyck2 mostly hit edges into empty heads, which prove nothing.
    pool = sorted(tracr(case).ground_truth_edges(graph), key=graph.edge_index) if case != "random" else graph.edges
    picks = [pool[i] for i in torch.randperm(len(pool), generator=torch.Generator().manual_seed(1))[:8].tolist()]
    full = model(clean)
    moved = 0
    for edge in picks:
        mask = torch.ones(graph.n_edges)
        mask[graph.edge_index(edge)] = 0
        patched = patched_forward(model, graph, clean, ablated, mask)
        reference = single_edge_patch(model, graph, clean, corrupt, edge)
        assert torch.allclose(patched, reference, atol=1e-5), edge.name
        moved += (reference - full).abs().max().item() > 1e-3
    assert moved >= 3


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("kind", ["resample", "mean", "per-position-mean", "zero"])
@torch.no_grad()
def test_fractional_masks_match_per_edge_reference(case, kind, random_model, random_batches):
    model, graph, clean, corrupt = _graph_and_data(case, random_model, random_batches)
    ablated = make_ablation(kind, model, graph, corrupt)
    mask = torch.rand(graph.n_edges, generator=torch.Generator().manual_seed(7))
    reference = per_edge_forward(model, graph, clean, ablated, mask)
    assert torch.allclose(patched_forward(model, graph, clean, ablated, mask), reference, atol=1e-5)


@pytest.mark.parametrize("case", ["tracr-reverse", "random"])
@torch.no_grad()
def test_per_position_masks_match_per_edge_reference(case, random_model, random_batches):
    model, graph, clean, corrupt = _graph_and_data(case, random_model, random_batches, per_position=True)
    ablated = make_ablation("resample", model, graph, corrupt)
    mask = torch.rand(graph.n_edges, generator=torch.Generator().manual_seed(3))
    reference = per_edge_forward(model, graph, clean, ablated, mask)
    assert torch.allclose(patched_forward(model, graph, clean, ablated, mask), reference, atol=1e-5)


@torch.no_grad()
def test_per_position_edge_removal_matches_hook_patch(random_model, random_batches):
    model, graph, clean, corrupt = _graph_and_data("random", random_model, random_batches, per_position=True)
    ablated = make_ablation("resample", model, graph, corrupt)
    for edge in (Edge("A0.2", "A2.1.K", 3), Edge("MLP 1", "Resid End", 8), Edge("Resid Start", "A1.3.Q", 0)):
        mask = torch.ones(graph.n_edges)
        mask[graph.edge_index(edge)] = 0
        reference = single_edge_patch(model, graph, clean, corrupt, edge)
        assert torch.allclose(patched_forward(model, graph, clean, ablated, mask), reference, atol=1e-5)


@torch.no_grad()
def test_batched_masks_equal_one_forward_per_mask(random_model, random_batches):
    clean, corrupt = random_batches
    graph = Graph.from_model(random_model)
    ablated = make_ablation("resample", random_model, graph, corrupt)
    masks = torch.rand(4, graph.n_edges, generator=torch.Generator().manual_seed(0))
    batched = patched_forward(random_model, graph, clean, ablated, masks)
    assert batched.shape == (4, *clean.shape, 20)
    for i in range(4):
        assert torch.allclose(batched[i], patched_forward(random_model, graph, clean, ablated, masks[i]), atol=1e-5)


def test_mask_gradient_matches_finite_differences(random_model, random_batches):
    """The mask is differentiable: d loss / d mask[e] equals a central finite difference (in float64)."""
    clean, corrupt = random_batches
    model = random_model.double()
    try:
        graph = Graph.from_model(model)
        ablated = make_ablation("resample", model, graph, corrupt)
        mask = torch.rand(graph.n_edges, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        mask.requires_grad_(True)
        loss = lambda m: patched_forward(model, graph, clean, ablated, m).pow(2).mean()
        loss(mask).backward()
        for i in (0, graph.n_edges // 2, graph.n_edges - 1):
            step = torch.zeros_like(mask)
            step[i] = 1e-5
            with torch.no_grad():
                numeric = (loss(mask + step) - loss(mask - step)) / 2e-5
            assert torch.isclose(mask.grad[i], numeric, rtol=1e-4, atol=1e-8), graph.edges[i].name
    finally:
        random_model.float()


@pytest.mark.parametrize("per_position, n_masks", [(False, None), (True, None), (False, 3)])
def test_gradients_match_autograd_through_the_per_edge_reference(random_model, random_batches, per_position, n_masks):
    """Gradients w.r.t. the mask and the model's weights equal plain autograd through the per-edge reference."""
    clean, corrupt = random_batches
    graph = Graph.from_model(random_model, per_position, clean.shape[1] if per_position else None)
    ablated = make_ablation("resample", random_model, graph, corrupt)
    shape = (graph.n_edges,) if n_masks is None else (n_masks, graph.n_edges)
    start = torch.rand(shape, generator=torch.Generator().manual_seed(5))
    params = [random_model.W_E, random_model.blocks[0].attn.W_Q, random_model.blocks[1].mlp.W_in]
    target = torch.randn(20, generator=torch.Generator().manual_seed(6))

    def grads(forward):
        mask = start.clone().requires_grad_(True)
        random_model.zero_grad(set_to_none=True)
        if n_masks is None:
            logits = forward(mask)
        else:
            logits = torch.stack([forward(m) for m in mask]) if forward is not ours else forward(mask)
        (logits * target).sum().backward()
        return [mask.grad.clone()] + [p.grad.clone() for p in params]

    ours = lambda mask: patched_forward(random_model, graph, clean, ablated, mask)  # noqa: E731
    reference = lambda mask: per_edge_forward(random_model, graph, clean, ablated, mask)  # noqa: E731
    for got, expected in zip(grads(ours), grads(reference)):
        assert torch.allclose(got, expected, rtol=1e-3, atol=1e-4)
    random_model.zero_grad(set_to_none=True)


def test_forwards_alive_at_once_keep_their_own_buffers(random_model, random_batches):
    """The forward reuses its large buffers (delta stack, stage products, gradients) across forwards: two forwards
    whose autograd graphs live at once, and a no-grad forward run between them, must each keep their own values, so
    both backwards, run in the reverse order, give the gradients of the per-edge reference."""
    clean, corrupt = random_batches
    graph = Graph.from_model(random_model)
    ablated = make_ablation("resample", random_model, graph, corrupt)
    masks = torch.rand(2, graph.n_edges, generator=torch.Generator().manual_seed(8))
    target = torch.randn(20, generator=torch.Generator().manual_seed(9))

    def reference_grad(mask):
        mask = mask.clone().requires_grad_(True)
        (per_edge_forward(random_model, graph, clean, ablated, mask) * target).sum().backward()
        return mask.grad

    for p in random_model.parameters():
        p.requires_grad_(False)
    try:
        first, second = (m.clone().requires_grad_(True) for m in masks)
        loss_first = (patched_forward(random_model, graph, clean, ablated, first) * target).sum()
        loss_second = (patched_forward(random_model, graph, clean, ablated, second) * target).sum()
        with torch.no_grad():
            between = patched_forward(random_model, graph, clean, ablated, 1 - masks[0])
        loss_second.backward()
        loss_first.backward()
        for mask, got in zip(masks, (first.grad, second.grad)):
            assert torch.allclose(got, reference_grad(mask), rtol=1e-3, atol=1e-4)
        assert torch.allclose(between, per_edge_forward(random_model, graph, clean, ablated, 1 - masks[0]), atol=1e-5)
    finally:
        for p in random_model.parameters():
            p.requires_grad_(True)


def test_a_first_forward_under_inference_mode_leaves_later_forwards_with_autograd_working(random_model, random_batches):
    """The first forward on a graph makes its plan, and on a new batch shape its pooled buffers: made under
    torch.inference_mode they were inference tensors, and the next forward with autograd failed (writing a pooled
    buffer in place, saving the plan's index). Its gradients must equal the per-edge reference's."""
    clean, corrupt = (batch[:7] for batch in random_batches)  # a batch shape no other test pools
    graph = Graph.from_model(random_model)
    with torch.inference_mode():
        ablated = make_ablation("resample", random_model, graph, corrupt)
        first = patched_forward(random_model, graph, clean, ablated, torch.zeros(graph.n_edges))
    assert torch.allclose(first, random_model(corrupt), atol=1e-5)
    start = torch.rand(graph.n_edges, generator=torch.Generator().manual_seed(10))
    target = torch.randn(20, generator=torch.Generator().manual_seed(11))

    def mask_grad(forward):
        mask = start.clone().requires_grad_(True)
        (forward(random_model, graph, clean, ablated, mask) * target).sum().backward()
        return mask.grad

    assert torch.allclose(mask_grad(patched_forward), mask_grad(per_edge_forward), rtol=1e-3, atol=1e-4)
    random_model.zero_grad(set_to_none=True)


def test_a_weight_gradient_forward_with_edges_only_into_early_readers_frees_the_model(random_batches):
    """A fixed mask removing one edge into layer 0 leaves the later writers' deltas unread by any stage; the forward
    must not keep them, or the autograd graph (invisible to the garbage collector) keeps the model alive for good:
    each relearning copy of SmolLM2 leaked 1.5 GB this way."""
    import gc
    import weakref

    from conftest import random_transformer

    clean, corrupt = random_batches
    model = random_transformer()
    graph = Graph.from_model(model)
    ablated = make_ablation("resample", model, graph, corrupt)
    first = next(e for e in graph.edges if e.reader.startswith("A0"))
    patched_forward(model, graph, clean, ablated, 1 - graph.mask_for({first})).sum().backward()
    alive = weakref.ref(model.W_E)
    del model, ablated
    gc.collect()
    assert alive() is None


def test_buffer_pool_reuses_given_back_buffers_and_drops_the_shapes_given_back_longest_ago():
    """The pool hands a buffer back out only after its owner died, keeps at most max_bytes of free buffers, and
    makes room by dropping the shapes given back longest ago (a bench that moved on to another model's shapes)."""
    from edgewise.patching.forward import _BufferPool

    class Owner:
        pass

    pool, like = _BufferPool(max_bytes=3 * 1024), torch.zeros(1)
    owners = [Owner() for _ in range(4)]
    shapes = [(256,), (16, 16), (4, 64), (2, 128)]  # 1 KiB each in float32
    pointers = [pool.take(like, shape, owner).data_ptr() for shape, owner in zip(shapes, owners)]
    live = pool.take(like, shapes[0], Owner())  # the first is still owned: a fresh buffer
    assert live.data_ptr() not in pointers
    while owners:  # given back in order; the fourth pushes the first out
        owners.pop(0)
    assert pool.free_bytes == 3 * 1024 and [shape for shape, _, _ in pool.free] == shapes[1:]
    keep = [Owner(), Owner()]
    assert pool.take(like, shapes[3], keep[0]).data_ptr() == pointers[3] and pool.free_bytes == 2 * 1024
    pool.take(like, shapes[0], keep[1])  # dropped, so allocated afresh: the free buffers stay as they were
    assert pool.free_bytes == 2 * 1024 and [shape for shape, _, _ in pool.free] == shapes[1:3]
