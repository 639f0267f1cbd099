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
# Refused when the adapter is built, naming the cause (the bridge or the architecture) and what to do.


@pytest.mark.parametrize("arch", ["gpt_neo"])
def test_attention_the_bridge_wraps_whole_is_refused_naming_the_bridge(arch, tmp_path):
    from edgewise.errors import UnsupportedArchitectureError

    _tiny_model(arch, tmp_path)
    with pytest.raises(UnsupportedArchitectureError) as refused:
        BridgeAdapter(_boot(tmp_path))
    message = str(refused.value)
    assert "AttentionBridge" in message and "no per-head q/k/v input fork" in message
    assert "The cause is the bridge" in message and "not the architecture" in message
    assert "DeclaredAdapter" in message


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
        ("granite", "sublayer outputs are scaled before the residual add"),
        ("gemma2", r"pass through a norm \(ln1_post, ln2_post\)"),
        ("olmo2", r"pass through a norm \(ln1_post, ln2_post\)"),
    ],
)
def test_architectures_whose_sublayers_do_not_add_plainly_are_refused(arch, cause, tmp_path):
    from edgewise.errors import UnsupportedArchitectureError

    _tiny_model(arch, tmp_path)
    with pytest.raises(UnsupportedArchitectureError, match=f"{cause}.*architecture's shape.*DeclaredAdapter"):
        BridgeAdapter(_boot(tmp_path))
