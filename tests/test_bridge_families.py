"""Hugging Face architecture families through TransformerBridge: tiny random models (2 layers, width 64) built from
their configs, checked by `run_checks` and, where a block's shape is new (parallel attention and MLP), against
single-edge patches written with plain torch hooks on the plain Hugging Face model.

Biases and norm weights are perturbed (Hugging Face initialises them to 0 and 1): a wrong bias or norm path would
otherwise go unnoticed.
"""

from __future__ import annotations

import pytest
import torch

from edgewise.adapters.bridge import BridgeAdapter
from edgewise.patching import checks, run_checks
from edgewise.tasks import Task
from edgewise.tasks.metrics import METRICS

VOCAB = 100


def _config(arch: str, **overrides):
    """Returns a 2-layer, width-64, 4-head Hugging Face config of `arch` (its own argument names)."""
    from transformers import AutoConfig

    sizes = {
        "gpt2": dict(n_embd=64, n_layer=2, n_head=4, n_positions=64),
        "gptj": dict(n_embd=64, n_layer=2, n_head=4, n_positions=64, rotary_dim=8),
        "gpt_neo": dict(
            hidden_size=64,
            num_layers=2,
            num_heads=4,
            attention_types=[[["global", "local"], 1]],
            max_position_embeddings=64,
        ),
        "falcon": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4),
        "gpt_neox": dict(
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=128,
            max_position_embeddings=64,
        ),
    }.get(
        arch,
        dict(
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=16,
            intermediate_size=128,
            max_position_embeddings=64,
            pad_token_id=0,
        ),
    )
    return AutoConfig.for_model(arch, vocab_size=VOCAB, **{**sizes, **overrides})


def _tiny_model(arch: str, folder, scale_qk_norms: float = 1.0, **overrides):
    """Returns a random Hugging Face model of `arch` in eval mode, saved with a word-level tokenizer under `folder`."""
    from tokenizers import Tokenizer, models
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(_config(arch, **overrides)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name or ".ln" in name:
                p.add_(torch.randn_like(p) * 0.1)
            if name.endswith(("q_norm.weight", "k_norm.weight")):
                p.mul_(scale_qk_norms)
    vocab = {f"t{i}": i for i in range(VOCAB)}
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="t0")), bos_token="t1", eos_token="t2"
    )
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return model


def _boot(folder):
    from transformer_lens import TransformerBridge

    return TransformerBridge.boot_transformers(str(folder), device="cpu", dtype=torch.float32).eval()


def _task(model) -> Task:
    g = torch.Generator().manual_seed(0)
    clean, corrupt = torch.randint(0, VOCAB, (4, 6), generator=g), torch.randint(0, VOCAB, (4, 6), generator=g)
    return Task("tiny", model, clean, corrupt, METRICS["kl"], torch.ones(4, 6, dtype=torch.bool))


def _failed(results):
    return [(r.name, r.max_abs_diff, r.tolerance) for r in results if not r.passed]


# ---------------------------------------------------------------------------------------------------------------
# Check tolerances: float32 rounding on a correct patch passes, a patch wrong by a small real amount fails.


@pytest.fixture(scope="module")
def sharp_qwen3(tmp_path_factory):
    """Qwen 3 whose query/key norms amplify rounding: larger weights (init 0.2) and q/k norm weights times 10, so
    zero ablation leaves nearly cancelled sums that the norms blow up."""
    folder = tmp_path_factory.mktemp("qwen3")
    _tiny_model("qwen3", folder, scale_qk_norms=10.0, initializer_range=0.2)
    return _task(_boot(folder))


@torch.no_grad()
def test_float32_rounding_on_a_correct_patch_passes(sharp_qwen3):
    results = run_checks(sharp_qwen3)
    assert not _failed(results), _failed(results)
    logit_floor = 1e-5 * max(1.0, sharp_qwen3.adapter.forward(sharp_qwen3.clean).abs().max().item())
    # the fixed tolerance alone would have failed this correct patch: float32 rounding alone exceeds it here
    assert max(r.max_abs_diff for r in results) > logit_floor


@torch.no_grad()
def test_a_patch_wrong_by_one_percent_of_an_edge_fails(sharp_qwen3, monkeypatch):
    """A forward that keeps 1% of a removed edge's contribution (a small but real error) fails every single-edge
    check, on the same model whose rounding the checks allow."""
    right = checks.patched_forward

    def keeps_one_percent(adapter, graph, tokens, ablated, mask):
        if mask.dim() == 1 and int((mask == 0).sum()) == 1:
            mask = torch.where(mask == 0, torch.full_like(mask, 0.01), mask)
        return right(adapter, graph, tokens, ablated, mask)

    monkeypatch.setattr(checks, "patched_forward", keeps_one_percent)
    single_edge = [r for r in run_checks(sharp_qwen3) if r.name.startswith("remove ")]
    assert single_edge and not any(r.passed for r in single_edge), [(r.name, r.max_abs_diff) for r in single_edge]


# ---------------------------------------------------------------------------------------------------------------
# Parallel attention and MLP: exact, the MLP fed by the writers before its block only.

# Weights 10x Hugging Face's default scale (0.2): attention patterns far from uniform, so query and key edges matter
PARALLEL = {
    "gpt_neox": dict(use_parallel_residual=True, initializer_range=0.2),  # its own ln2 for the MLP (Pythia)
    "phi": dict(initializer_range=0.2),  # attention and MLP share ln1
    "cohere": dict(initializer_range=0.2),
    "falcon": dict(alibi=False, initializer_range=0.2),
}


# Scaled residual adds (Granite): every constant scale away from 1, so a scale carried to the wrong place shows
SCALED = {
    "granite": dict(
        initializer_range=0.2,
        residual_multiplier=0.3,
        embedding_multiplier=4.0,
        attention_multiplier=0.2,
        logits_scaling=2.0,
    ),
}
# Post-sublayer norms (Gemma 2 and 3): the attention one writer after its norm, the heads per-head readers
POST_NORM = {"gemma2": dict(initializer_range=0.2), "gemma3_text": dict(initializer_range=0.2)}
EXACT = {**PARALLEL, **SCALED, **POST_NORM}


# Sequential pre-norm blocks (exact before parallel, scaled and post-norm blocks were): weights at 10x Hugging Face's
# scale, so that attention patterns and norms are far from their initial, forgiving state
SEQUENTIAL = [
    "gpt2",
    "llama",
    "mistral",
    "qwen2",
    "qwen3",
    "phi3",
    "gemma",
    "olmo",
    "stablelm",
    "starcoder2",
    "smollm3",
    "mixtral",
]


@pytest.mark.parametrize("arch", SEQUENTIAL)
@torch.no_grad()
def test_sequential_families_pass_every_check(arch, tmp_path):
    _tiny_model(arch, tmp_path, initializer_range=0.2)
    results = run_checks(_task(_boot(tmp_path)), n_edges=4, n_masks=1)
    assert not _failed(results), _failed(results)


@pytest.mark.parametrize("arch", list(EXACT))
@torch.no_grad()
def test_every_check_passes(arch, tmp_path):
    _tiny_model(arch, tmp_path, **EXACT[arch])
    task = _task(_boot(tmp_path))
    graph = task.graph()
    edges = {(e.writer, e.reader) for e in graph.edges}
    assert ("Resid Start", "MLP 0") in edges and ("MLP 0", "A1.1.Q") in edges
    if arch in POST_NORM:  # the attention layer writes, its heads only read
        assert ("Attn 0", "MLP 0") in edges and not any(w.startswith("A") and w[1].isdigit() for w, _ in edges)
    else:  # a parallel block's heads do not feed its MLP; a sequential block's do
        assert any(w.startswith("A0.") and r == "MLP 0" for w, r in edges) == (arch not in PARALLEL)
    results = run_checks(task)
    assert not _failed(results), _failed(results)


# Where each plain Hugging Face model keeps what a hand-written patch needs: the embedding, the layers, the norm the
# attention reads (and the MLP, where it has no norm of its own), the MLP's own norm, the attention and its output
# projection, the final norm; and the config's constant scales of the embedding and of each sublayer's residual add.
HF_LAYOUT = {
    "gpt_neox": dict(
        embed="gpt_neox.embed_in",
        layers="gpt_neox.layers",
        ln1="input_layernorm",
        ln2="post_attention_layernorm",
        attn="attention",
        out="dense",
        final="gpt_neox.final_layer_norm",
    ),
    "phi": dict(
        embed="model.embed_tokens",
        layers="model.layers",
        ln1="input_layernorm",
        ln2=None,
        attn="self_attn",
        out="dense",
        final="model.final_layernorm",
    ),
    "granite": dict(
        embed="model.embed_tokens",
        layers="model.layers",
        ln1="input_layernorm",
        ln2="post_attention_layernorm",
        attn="self_attn",
        out="o_proj",
        final="model.norm",
        embed_scale=lambda cfg: cfg.embedding_multiplier,
        residual_scale=lambda cfg: cfg.residual_multiplier,
    ),
    "gemma2": dict(
        embed="model.embed_tokens",
        layers="model.layers",
        ln1="input_layernorm",
        ln2="pre_feedforward_layernorm",
        attn="self_attn",
        out="o_proj",
        final="model.norm",
        # the writers are the post-sublayer norms' outputs: the attention (all heads, normalised together) and MLP;
        # the embedding module scales by sqrt(hidden_size) itself
        attn_writer="post_attention_layernorm",
        mlp_writer="post_feedforward_layernorm",
    ),
}


def _qkv_columns(arch: str, kind: str, head: int, d_head: int) -> tuple[str, slice]:
    """Returns the projection module (under the attention) and the output columns of one head's q, k or v."""
    if arch == "gpt_neox":  # one fused projection, laid out [head, (q k v), d_head]
        start = head * 3 * d_head + "qkv".index(kind) * d_head
        return "query_key_value", slice(start, start + d_head)
    return f"{kind}_proj", slice(head * d_head, (head + 1) * d_head)


def _hand_patch_on_plain_model(arch, model, clean, corrupt, writer, reader):
    """Returns logits [batch, pos, vocab] of the plain Hugging Face model with one edge resample-ablated, by plain
    torch hooks: the writer's corrupted minus clean output is added to the reader's input only.

    writer: ("embed",), ("head", layer, head), ("mlp", layer) or ("attn", layer) (a post-norm attention). reader:
    ("q"/"k"/"v", layer, head), ("mlp", layer) or ("end",). A head's output is its slice of the output projection's
    input times its columns of W_O (no bias); every writer's output is what enters the residual stream (times the
    config's constant scale, where it has one).
    Norms and projections applied by hand call `.forward`, which skips the modules' hooks (these very hooks).
    """
    layout = HF_LAYOUT[arch]
    cfg = model.config
    d_head = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    layers = model.get_submodule(layout["layers"])
    embed_scale = layout.get("embed_scale", lambda cfg: 1.0)(cfg)
    residual_scale = layout.get("residual_scale", lambda cfg: 1.0)(cfg)

    def writer_output(runs):
        """Registers hooks that store the writer's output into runs[-1]; returns their handles."""
        kind = writer[0]
        if kind == "embed":
            embed = model.get_submodule(layout["embed"])
            return [embed.register_forward_hook(lambda m, i, o: runs.append(o * embed_scale))]
        attn = layers[writer[1]].get_submodule(layout["attn"])
        if kind in ("mlp", "attn"):
            module = layers[writer[1]].get_submodule(layout.get(f"{kind}_writer", "mlp"))
            return [module.register_forward_hook(lambda m, i, o: runs.append(o * residual_scale))]
        out = attn.get_submodule(layout["out"])
        cols = slice(writer[2] * d_head, (writer[2] + 1) * d_head)

        def head_output(m, args):
            runs.append(args[0][..., cols] @ out.weight[:, cols].T * residual_scale)

        return [out.register_forward_pre_hook(head_output)]

    corrupted: list[torch.Tensor] = []
    handles = writer_output(corrupted)
    model(corrupt)
    for h in handles:
        h.remove()
    live: list[torch.Tensor] = []
    handles = writer_output(live)
    delta = lambda: corrupted[0] - live[-1]  # noqa: E731
    entering = {}
    if reader[0] == "end":
        handles.append(
            model.get_submodule(layout["final"]).register_forward_pre_hook(lambda m, args: (args[0] + delta(),))
        )
    else:
        layer = layers[reader[1]]
        ln1 = layer.get_submodule(layout["ln1"])
        norm = ln1.forward
        handles.append(ln1.register_forward_pre_hook(lambda m, args: entering.update(resid=args[0])))
        if reader[0] == "mlp" and layout["ln2"]:
            ln2 = layer.get_submodule(layout["ln2"])
            handles.append(ln2.register_forward_pre_hook(lambda m, args: (args[0] + delta(),)))
        elif reader[0] == "mlp":  # the MLP takes ln1 of the block's input: give it ln1 of the patched input
            handles.append(layer.mlp.register_forward_pre_hook(lambda m, args: (norm(entering["resid"] + delta()),)))
        else:
            name, cols = _qkv_columns(arch, reader[0], reader[2], d_head)
            proj = layer.get_submodule(layout["attn"]).get_submodule(name)

            def patch_head(m, args, out):
                out = out.clone()
                out[..., cols] = proj.forward(norm(entering["resid"] + delta()))[..., cols]
                return out

            handles.append(proj.register_forward_hook(patch_head))
    try:
        return model(clean).logits
    finally:
        for h in handles:
            h.remove()


EDGES = {  # edgewise's names -> the hand patch's writer and reader
    ("Resid Start", "MLP 0"): (("embed",), ("mlp", 0)),
    ("A0.1", "MLP 1"): (("head", 0, 1), ("mlp", 1)),
    ("MLP 0", "A1.2.Q"): (("mlp", 0), ("q", 1, 2)),
    ("A0.3", "A1.0.K"): (("head", 0, 3), ("k", 1, 0)),
    ("Resid Start", "A0.1.V"): (("embed",), ("v", 0, 1)),
    ("MLP 1", "Resid End"): (("mlp", 1), ("end",)),
}


POST_NORM_EDGES = {  # a post-norm block's attention is one writer, `Attn L`
    ("Resid Start", "MLP 0"): (("embed",), ("mlp", 0)),
    ("Attn 0", "MLP 0"): (("attn", 0), ("mlp", 0)),
    ("Attn 0", "A1.2.Q"): (("attn", 0), ("q", 1, 2)),
    ("MLP 0", "A1.0.K"): (("mlp", 0), ("k", 1, 0)),
    ("Resid Start", "A0.1.V"): (("embed",), ("v", 0, 1)),
    ("Attn 1", "Resid End"): (("attn", 1), ("end",)),
    ("MLP 1", "Resid End"): (("mlp", 1), ("end",)),
}


@pytest.mark.parametrize("arch", list(HF_LAYOUT))
@torch.no_grad()
def test_single_edges_match_hand_patches_on_the_plain_model(arch, tmp_path):
    """Each edge removed by edgewise's patched forward through the bridge = the same edge patched by hand with torch
    hooks on the plain Hugging Face model (no edgewise or TransformerLens code in the reference)."""
    model = _tiny_model(arch, tmp_path, **EXACT[arch])
    _assert_edges_match_hand_patches(arch, model, _task(_boot(tmp_path)), atol=2e-6)


def _assert_edges_match_hand_patches(arch, model, task, atol: float) -> None:
    """Asserts each edge of EDGES (POST_NORM_EDGES) removed by edgewise's patched forward through the bridge changes
    the logits, and equals the same edge patched by hand on the plain model within `atol`."""
    from edgewise.graph import Edge
    from edgewise.patching import patched_forward
    from edgewise.patching.ablation import resample_ablation

    graph = task.graph()
    ablated = resample_ablation(task.adapter, graph, task.corrupt)
    plain = model(task.clean).logits
    edges = POST_NORM_EDGES if arch in POST_NORM else EDGES
    for (writer, reader), (hand_writer, hand_reader) in edges.items():
        mask = torch.ones(graph.n_edges)
        mask[graph.edge_index(Edge(writer, reader))] = 0
        ours = patched_forward(task.adapter, graph, task.clean, ablated, mask)
        theirs = _hand_patch_on_plain_model(arch, model, task.clean, task.corrupt, hand_writer, hand_reader)
        assert (theirs - plain).abs().max() > 1e-3, f"{writer}->{reader} changes nothing"
        assert torch.allclose(ours, theirs, atol=atol), (writer, reader, (ours - theirs).abs().max().item())


# ---------------------------------------------------------------------------------------------------------------
# Refused when the adapter is built, naming the cause (the bridge or the architecture) and what to do.


@pytest.mark.parametrize("arch", ["gpt_neo", "gptj"])
def test_attention_the_bridge_wraps_whole_is_refused_naming_the_bridge(arch, tmp_path):
    from edgewise.errors import UnsupportedArchitectureError

    _tiny_model(arch, tmp_path)
    with pytest.raises(UnsupportedArchitectureError) as refused:
        BridgeAdapter(_boot(tmp_path))
    message = str(refused.value)
    assert "AttentionBridge" in message and "no per-head q/k/v input fork" in message
    assert "The cause is the bridge" in message and "not the architecture" in message
    assert "DeclaredAdapter" in message


@torch.no_grad()
def test_falcon_with_alibi_is_refused_at_build_naming_the_bridge_and_its_dead_hooks(tmp_path):
    """The bridge runs Falcon's ALiBi attention its own way: logits off the Hugging Face model's, and no per-head
    q/k/v copies (their hooks never fire). Every patch through it would be wrong, so the adapter refuses it."""
    from edgewise.errors import BridgeDisagreesError

    _tiny_model("falcon", tmp_path, alibi=True)
    with pytest.raises(BridgeDisagreesError) as refused:
        BridgeAdapter(_boot(tmp_path))
    message = str(refused.value)
    assert "ALiBiJointQKVAttentionBridge" in message and "alibi positions" in message
    assert "logits differ from the plain Hugging Face model's" in message
    assert "hooks that never fired: blocks.0.attn.hook_q_input" in message
    assert "alibi=False" in message and "DeclaredAdapter" in message


def test_a_bridge_whose_hook_edits_reach_nothing_is_refused(tmp_path):
    """A reader hook that fires on a copy the model never uses passes every edge check (the patch and its references
    go through the same dead hook): the adapter refuses it when built."""
    from edgewise.errors import BridgeDisagreesError

    _tiny_model("llama", tmp_path)
    bridge = _boot(tmp_path)
    block = bridge.blocks[0]
    bridge.set_use_hook_mlp_in(True)
    bridge(torch.zeros(1, 2, dtype=torch.long))  # wires the bridge's capture hooks, hook_mlp_in's last
    block._capture_hook_handles.pop().remove()

    def fire_on_a_copy(module, args):  # the simulated fault: the hook sees ln2's input, the MLP never its edit
        block.hook_mlp_in(args[0].clone())

    block.submodules["ln2"].register_forward_pre_hook(fire_on_a_copy)
    with pytest.raises(BridgeDisagreesError, match="never reaches the model.*blocks.0.hook_mlp_in"):
        BridgeAdapter(bridge)


@pytest.mark.parametrize(
    ("arch", "cause"),
    [
        ("olmo2", r"query/key norm spans all heads at once \(OLMo 2\)"),
    ],
)
def test_architectures_whose_sublayers_do_not_add_plainly_are_refused(arch, cause, tmp_path):
    from edgewise.errors import UnsupportedArchitectureError

    _tiny_model(arch, tmp_path)
    with pytest.raises(UnsupportedArchitectureError, match=f"{cause}.*architecture's shape.*DeclaredAdapter"):
        BridgeAdapter(_boot(tmp_path))


# ---------------------------------------------------------------------------------------------------------------
# Real checkpoints' configs: every shape setting of Pythia-70M's and Gemma 2 2B's published configs, with 2 layers
# and a 100-word vocabulary (Gemma 2 also narrower, and its sliding window short enough to bite on 6 tokens)

CHECKPOINT_CONFIGS = {
    "pythia-70m": (
        "gpt_neox",
        dict(
            hidden_size=512,
            num_attention_heads=8,
            intermediate_size=2048,
            rotary_pct=0.25,  # rotary on a quarter of each head's dimensions
            rotary_emb_base=10000,
            use_parallel_residual=True,
            layer_norm_eps=1e-5,
            max_position_embeddings=2048,
            initializer_range=0.2,
        ),
    ),
    "gemma-2-2b": (
        "gemma2",
        dict(
            hidden_size=256,
            num_attention_heads=8,
            num_key_value_heads=4,
            head_dim=256,  # wider than hidden_size / heads, as in the checkpoint
            intermediate_size=512,
            query_pre_attn_scalar=256,
            attn_logit_softcapping=50.0,
            final_logit_softcapping=30.0,
            sliding_window=4,
            hidden_activation="gelu_pytorch_tanh",
            initializer_range=0.2,
        ),
    ),
}


@pytest.mark.parametrize("checkpoint", list(CHECKPOINT_CONFIGS))
@torch.no_grad()
def test_real_checkpoint_configs_pass_every_check_and_match_hand_patches(checkpoint, tmp_path):
    arch, overrides = CHECKPOINT_CONFIGS[checkpoint]
    model = _tiny_model(arch, tmp_path, **overrides)
    task = _task(_boot(tmp_path))
    results = run_checks(task, n_edges=4, n_masks=1)
    assert not _failed(results), _failed(results)
    # float32 rounding of sums over Pythia's 512 dimensions, relative to the largest logit (~2e-6 of it here)
    _assert_edges_match_hand_patches(arch, model, task, atol=5e-6 * model(task.clean).logits.abs().max().item())
