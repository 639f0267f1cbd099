"""Dictionary sets from outside the compiler: SAELens folders (`--features sae:DIR`) and SAEs trained on a task's
writer outputs (`--features train`). References: a folder written by hand in SAELens's format from tracr's own
residual directions, and the compiler's directions for the recovery check."""

import dataclasses
import json

import pytest
import torch
from conftest import run_edgewise
from safetensors.torch import save_file

from edgewise.errors import SAEFormatError
from edgewise.features.sets import add_sae_features, add_trained_features
from edgewise.patching import full_logits, patched_forward, task_ablation
from edgewise.patching.checks import run_checks


def _write_saelens(folder, directions: torch.Tensor, hook: str, head: int | None = None) -> None:
    """Writes a ReLU SAE whose encoder reads and decoder writes `directions` [n, d], as SAELens 6 lays it out."""
    folder.mkdir(parents=True)
    n, d = directions.shape
    save_file(
        {
            "W_enc": directions.T.clone().contiguous(),
            "b_enc": torch.zeros(n),
            "W_dec": directions.clone(),
            "b_dec": torch.zeros(d),
        },
        str(folder / "sae_weights.safetensors"),
    )
    metadata = {"hook_name": hook, "sae_lens_version": "6.0.0", "model_name": "tracr"}
    if head is not None:
        metadata["hook_head_index"] = head
    (folder / "cfg.json").write_text(
        json.dumps(
            {
                "architecture": "standard",
                "d_in": d,
                "d_sae": n,
                "dtype": "float32",
                "device": "cpu",
                "apply_b_dec_to_input": True,
                "normalize_activations": "none",
                "reshape_activations": "none",
                "metadata": metadata,
            }
        )
    )


def test_saelens_folders_split_the_writers_their_hooks_name(proportion, tmp_path):
    oracle = proportion.dictionaries["oracle"]
    _write_saelens(tmp_path / "mlp0", oracle["MLP 0"].decoder, "blocks.0.hook_mlp_out")
    _write_saelens(tmp_path / "a10", oracle["A1.0"].decoder, "blocks.1.attn.hook_result", head=0)
    name = add_sae_features(proportion, tmp_path)
    graph = proportion.graph(features=name)
    assert set(graph.dictionaries) == {"MLP 0", "A1.0"} and graph.features == f"sae:{tmp_path}"
    assert "MLP 0[0]" in graph.writers and "A1.0[error]" in graph.writers
    ablated = task_ablation(proportion, graph, "resample")
    assert (
        patched_forward(proportion.model, graph, proportion.clean, ablated, torch.ones(graph.n_edges))
        - full_logits(proportion)
    ).abs().max() < 1e-5
    assert all(r.passed for r in run_checks(proportion, features=name, n_edges=3, n_masks=1))
    assert not proportion.knows_truth(graph)  # feature-level truth is known for oracle features only


def test_saelens_folders_for_other_hooks_raise(reverse, tmp_path):
    directions = reverse.dictionaries["oracle"]["MLP 1"].decoder
    _write_saelens(tmp_path / "a", directions, "blocks.1.hook_resid_mid")
    with pytest.raises(SAEFormatError, match="the residual stream there is the sum of every writer before it"):
        add_sae_features(reverse, tmp_path / "a")
    _write_saelens(tmp_path / "d", directions, "blocks.1.hook_attn_out")
    with pytest.raises(SAEFormatError, match="the sum of a layer's heads"):
        add_sae_features(reverse, tmp_path / "d")
    _write_saelens(tmp_path / "c", directions, "blocks.1.hook_mlp_in")
    with pytest.raises(SAEFormatError, match="'blocks.1.hook_mlp_in': it is not a writer of this model"):
        add_sae_features(reverse, tmp_path / "c")
    _write_saelens(tmp_path / "b", directions, "blocks.3.attn.hook_result")
    with pytest.raises(SAEFormatError, match="hook_head_index"):
        add_sae_features(reverse, tmp_path / "b")
    with pytest.raises(SAEFormatError, match="holds no SAELens folder"):
        add_sae_features(reverse, tmp_path / "empty")


def test_trained_saes_recover_the_oracle_directions_and_stay_exact(proportion, tmp_path, monkeypatch):
    """On tracr-proportion MLP 0 writes one direction and A1.0 one: a TopK SAE (k = 1) trained on their outputs has a
    decoder row at cosine >= 0.9 with each, the compiler's own residual directions."""
    monkeypatch.setenv("EDGEWISE_CACHE", str(tmp_path))
    task = dataclasses.replace(proportion, dictionaries=dict(proportion.dictionaries))
    report = add_trained_features(task)
    assert report["MLP 0"]["oracle_recovered"] == 1.0 and report["A1.0"]["oracle_recovered"] == 1.0
    assert all(r["l0"] <= 1.0 for r in report.values())
    graph = task.graph(features="train")
    ablated = task_ablation(task, graph, "zero")
    assert (
        patched_forward(task.model, graph, task.clean, ablated, torch.ones(graph.n_edges)) - full_logits(task)
    ).abs().max() < 1e-4


def test_cli_discovers_over_saelens_features(proportion, tmp_path):
    _write_saelens(tmp_path / "mlp0", proportion.dictionaries["oracle"]["MLP 0"].decoder, "blocks.0.hook_mlp_out")
    result = run_edgewise(
        "discover",
        "tracr-proportion",
        "--method",
        "eap",
        "--features",
        f"sae:{tmp_path}",
        "--json",
        str(tmp_path / "s.json"),
    )
    assert result.returncode == 0, result.stderr
    assert "MLP 0[0]" in (tmp_path / "s.json").read_text()
    bad = run_edgewise("discover", "tracr-proportion", "--features", "pca")
    assert bad.returncode == 2 and "unknown feature set 'pca'" in bad.stderr
