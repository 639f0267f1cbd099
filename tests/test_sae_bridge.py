"""SAEs in SAELens's format on a Hugging Face model through TransformerBridge (`--features sae:DIR`): trained here on
a tiny random Gemma 2 (post-sublayer norms: the attention layer is one writer) and a Llama, saved as SAELens folders
named by TransformerLens hook names, loaded onto the bridge's writers.

The reference is independent of edgewise: one feature edge resample-ablated by plain torch hooks on the plain Hugging
Face model, the feature's activation computed by hand from the SAE's saved weights.
"""

from __future__ import annotations

import csv
import json

import pytest
import torch
from safetensors.torch import load_file
from test_bridge_families import _tiny_model  # the zoo's tiny models (pytest puts tests/ on the path)

from edgewise.errors import SAEHookError
from edgewise.features import add_sae_features, save_saelens, train_sparse_autoencoder, writer_outputs
from edgewise.graph import Edge
from edgewise.patching import patched_forward, run_checks
from edgewise.patching.ablation import resample_ablation
from edgewise.tasks import prompt_task

D_SAE = 32
# Each row: same length, one token changed; answers t7 / t8 (a word-level vocabulary t0..t99)
ROWS = [
    {
        "clean": f"t{a} t{b} t{c} t{d}",
        "corrupted": f"t{a} t{(b + 7) % 90 + 3} t{c} t{d}",
        "answer": "t7",
        "wrong_answer": "t8",
    }
    for a, b, c, d in [(3, 4, 5, 6), (10, 11, 12, 13), (20, 21, 22, 23), (30, 31, 32, 33), (40, 41, 42, 43)]
]


def _folder(tmp_path_factory, arch, **overrides):
    """Returns a tiny model folder of `arch` whose tokenizer splits on whitespace (words t0..t99; its special tokens
    are no prefix of another word, as the tokenizer splits special tokens out of words)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp(arch)
    _tiny_model(arch, folder, initializer_range=0.2, **overrides)
    tokenizer = Tokenizer(models.WordLevel({f"t{i}": i for i in range(100)}, unk_token="t0"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="t99", eos_token="t98").save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "words.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(ROWS[0]))
        writer.writeheader()
        writer.writerows(ROWS)
    return path


@pytest.fixture(scope="module")
def gemma2(tmp_path_factory, data):
    """A Gemma 2 folder, its prompt task, and a folder of SAEs trained on its attention output of layer 0, its MLP
    output of layer 0 and its residual stream entering layer 0 (named as SAELens names them)."""
    folder = _folder(tmp_path_factory, "gemma2")
    task = prompt_task(folder, data)
    outputs = writer_outputs(task)
    saes = tmp_path_factory.mktemp("saes")
    for hook, writer in [
        ("blocks.0.hook_attn_out", "Attn 0"),
        ("blocks.0.hook_mlp_out", "MLP 0"),
        ("blocks.0.hook_resid_pre", "Resid Start"),
    ]:
        sae = train_sparse_autoencoder(outputs[writer], D_SAE, "relu", None, steps=150, seed=0)
        save_saelens(sae, saes / hook, hook, model_name=str(folder))
    return folder, task, saes


def _activation(folder, x, feature):
    """Returns feature `feature`'s activation on x [..., d_in], by hand from the SAELens weights file (ReLU SAE, b_dec
    subtracted from the input)."""
    w = load_file(folder / "sae_weights.safetensors")
    return torch.relu((x - w["b_dec"]) @ w["W_enc"][:, feature] + w["b_enc"][feature]), w["W_dec"][feature]


def _hand_feature_patch(hf, sae_folder, feature, writer_module, reader_module, clean, corrupt):
    """Returns the plain Hugging Face model's logits with one feature edge resample-ablated by torch hooks: the
    reader's input (a norm's input) gets the feature's corrupted part minus its clean part, where a feature's part is
    its activation on the writer's output (the module's output) times its decoder row."""
    parts = []

    def record(module, args, out):
        out = out[0] if isinstance(out, tuple) else out  # an attention module returns (output, weights)
        activation, direction = _activation(sae_folder, out, feature)
        parts.append(activation.unsqueeze(-1) * direction)

    handle = writer_module.register_forward_hook(record)
    hf(corrupt)
    patch = reader_module.register_forward_pre_hook(lambda m, args: (args[0] + parts[0] - parts[-1],))
    try:
        return hf(clean).logits
    finally:
        handle.remove()
        patch.remove()


def _most_moving_feature_edge(task, graph, writer, reader):
    """Returns the feature node of `writer` whose edge into `reader` moves the logits most when resample-ablated, with
    edgewise's patched logits of that edge removed."""
    ablated = resample_ablation(task.adapter, graph, task.corrupt)
    plain = task.adapter.forward(task.clean)
    best, effect, logits = None, 0.0, None
    for node in graph.writer_nodes:
        if node.component == writer and node.index is not None:
            mask = torch.ones(graph.n_edges)
            mask[graph.edge_index(Edge(node.name, reader))] = 0
            ours = patched_forward(task.adapter, graph, task.clean, ablated, mask)
            if (ours - plain).abs().max() > effect:
                best, effect, logits = node, (ours - plain).abs().max().item(), ours
    assert effect > 1e-3, f"no feature of {writer} moves the logits through {reader}"
    return best, logits


@torch.no_grad()
def test_saes_on_attention_mlp_and_residual_hooks_split_the_bridge_writers_exactly(gemma2):
    from transformers import AutoModelForCausalLM

    folder, task, saes = gemma2
    name = add_sae_features(task, saes)
    graph = task.graph(features=name)
    split = {node.component for node in graph.writer_nodes if node.component != node.name}
    assert split == {"Attn 0", "MLP 0", "Resid Start"}
    results = run_checks(task, features=name)
    assert all(r.passed for r in results), [(r.name, r.max_abs_diff) for r in results if not r.passed]

    hf = AutoModelForCausalLM.from_pretrained(folder).eval()
    layers = hf.model.layers
    # writer (its SAE's folder and the module whose output it splits) -> reader (the norm whose input it reads)
    cases = [
        (
            "Attn 0",
            saes / "blocks.0.hook_attn_out",
            layers[0].post_attention_layernorm,
            "MLP 0",
            layers[0].pre_feedforward_layernorm,
        ),
        (
            "MLP 0",
            saes / "blocks.0.hook_mlp_out",
            layers[0].post_feedforward_layernorm,
            "MLP 1",
            layers[1].pre_feedforward_layernorm,
        ),
    ]
    for writer, sae_folder, writer_module, reader, reader_module in cases:
        node, ours = _most_moving_feature_edge(task, graph, writer, reader)
        theirs = _hand_feature_patch(hf, sae_folder, node.index, writer_module, reader_module, task.clean, task.corrupt)
        assert torch.allclose(ours, theirs, atol=2e-5), (node.name, (ours - theirs).abs().max().item())


def test_discover_and_check_take_sae_folders_on_a_model_folder(gemma2, data, tmp_path, capsys):
    from edgewise.cli.main import main
    from edgewise.graph import EdgeScores

    folder, _, saes = gemma2
    source = ["--model", str(folder), "--data", str(data), "--features", f"sae:{saes}"]
    assert main(["check", *source]) == 0
    assert "FAIL" not in capsys.readouterr().out
    out = tmp_path / "scores.json"
    assert main(["discover", *source, "--method", "eap", "--json", str(out)]) == 0
    scores = EdgeScores.load(out)
    assert scores.graph.features == f"sae:{saes}"
    assert any("[" in e.writer and not e.writer.endswith("[error]") for e in scores.graph.edges)


# the plain Hugging Face model's attention module of layer 0 and the norm that MLP 1 reads (its input is the reader)
ATTENTION_LAYOUT = {
    "llama": (lambda hf: hf.model.layers[0].self_attn, lambda hf: hf.model.layers[1].post_attention_layernorm),
    "gpt_neox": (lambda hf: hf.gpt_neox.layers[0].attention, lambda hf: hf.gpt_neox.layers[1].post_attention_layernorm),
}


@pytest.mark.parametrize("arch", list(ATTENTION_LAYOUT))
def test_an_attention_output_sae_makes_its_layer_one_writer_exactly(arch, tmp_path_factory, data):
    """An SAE on hook_attn_out of a model whose heads are writers: the layer's heads become one writer `Attn 0` (the
    heads' sum and the output bias), split into the SAE's features; its q/k/v readers stay per head. Sequential
    (Llama) and parallel (GPT-NeoX: the MLP of layer 0 does not read it)."""
    from transformers import AutoModelForCausalLM

    folder = _folder(tmp_path_factory, arch, **({"use_parallel_residual": True} if arch == "gpt_neox" else {}))
    task = prompt_task(folder, data)
    whole = task.adapter.whole_attention_group(0)
    rows = writer_outputs(task, [whole])["Attn 0"]
    saes = tmp_path_factory.mktemp("attn_saes")
    save_saelens(train_sparse_autoencoder(rows, D_SAE, "relu", None, steps=150), saes / "a", "blocks.0.hook_attn_out")
    name = add_sae_features(task, saes)
    graph = task.graph(features=name)
    assert not any(n.name.startswith("A0.") for n in graph.writer_nodes) and "Attn 0[error]" in graph.writers
    assert {n.component for n in graph.reader_nodes if n.layer == 0 and n.input} == {"Attn 0"}
    assert any(e.writer.startswith("Attn 0[") and e.reader == "MLP 0" for e in graph.edges) == (arch == "llama")
    results = run_checks(task, features=name)
    assert all(r.passed for r in results), [(r.name, r.max_abs_diff) for r in results if not r.passed]
    hf = AutoModelForCausalLM.from_pretrained(folder).eval()
    attention, reader = (module(hf) for module in ATTENTION_LAYOUT[arch])
    with torch.no_grad():
        node, ours = _most_moving_feature_edge(task, graph, "Attn 0", "MLP 1")
        theirs = _hand_feature_patch(hf, saes / "a", node.index, attention, reader, task.clean, task.corrupt)
    assert torch.allclose(ours, theirs, atol=2e-5), (node.name, (ours - theirs).abs().max().item())


@pytest.fixture(scope="module")
def llama(tmp_path_factory, data):
    folder = _folder(tmp_path_factory, "llama")
    return folder, prompt_task(folder, data)


def _sae_folder(root, hook, model_name, d_in=64, head=None):
    sae = train_sparse_autoencoder(
        torch.randn(64, d_in, generator=torch.Generator().manual_seed(0)), 8, "relu", None, steps=2
    )
    folder = root / hook.replace(".", "_")
    metadata = {"model_name": model_name} | ({} if head is None else {"hook_head_index": head})
    save_saelens(sae, folder, hook, **metadata)
    return folder


def test_a_per_head_sae_and_an_mlp_sae_load_on_a_sequential_model(llama, tmp_path):
    folder, task = llama
    _sae_folder(tmp_path, "blocks.1.hook_mlp_out", str(folder))
    _sae_folder(tmp_path, "blocks.0.attn.hook_result", str(folder), head=2)
    graph = task.graph(features=add_sae_features(task, tmp_path))
    assert {n.component for n in graph.writer_nodes if n.component != n.name} == {"MLP 1", "A0.2"}


@pytest.mark.parametrize(
    "hook, options, message",
    [
        (
            "blocks.1.hook_resid_pre",
            {},
            r"'blocks.1.hook_resid_pre' \(the model's blocks.1.hook_in\): the residual stream there is the sum",
        ),
        (
            "blocks.0.hook_resid_post",
            {},
            "a residual SAE fits only where the stream is one writer, blocks.0.hook_resid_pre",
        ),
        ("blocks.0.hook_mlp_out", {"d_in": 48}, "reads 48 dimensions, but MLP 0 writes 64"),
        (
            "blocks.0.hook_mlp_out",
            {"model_name": "gemma-2-2b"},
            "trained on model 'gemma-2-2b'.*set model_name in its cfg.json",
        ),
        ("blocks.0.attn.hook_result", {"head": 4}, "has 4 heads"),
    ],
)
def test_saes_that_do_not_fit_the_model_are_refused_naming_the_cause(llama, tmp_path, hook, options, message):
    folder, task = llama
    options = {"model_name": str(folder)} | options
    _sae_folder(tmp_path, hook, options.pop("model_name"), **options)
    with pytest.raises(SAEHookError, match=message):
        add_sae_features(task, tmp_path)


def test_an_sae_cfg_written_by_saelens_5_loads_by_its_hook_point(llama, tmp_path):
    """A pre-6 cfg (hook_point at the top level) names the same hook: the alias is resolved the same way."""
    folder, task = llama
    path = _sae_folder(tmp_path, "blocks.0.hook_mlp_out", str(folder))
    cfg = json.loads((path / "cfg.json").read_text())
    old = {"d_in": cfg["d_in"], "d_sae": cfg["d_sae"], "hook_point": "blocks.0.hook_mlp_out", "model_name": str(folder)}
    (path / "cfg.json").write_text(json.dumps(old | {"dtype": "float32", "architecture": "standard"}))
    graph = task.graph(features=add_sae_features(task, tmp_path))
    assert {n.component for n in graph.writer_nodes if n.component != n.name} == {"MLP 0"}
