"""SAELens's folder format: folders written by hand in SAELens 6's and SAELens 3-5's layouts load and compute what
the formulas say (checked in numpy), edgewise's SAEs round-trip, and folders edgewise cannot honour are refused."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from edgewise.errors import SAEFormatError
from edgewise.features.sae import SparseAutoencoder
from edgewise.features.saelens import load_saelens, save_saelens

D_IN, D_SAE = 5, 8


def cfg_6(architecture="standard", **fields) -> dict:
    """Returns a cfg.json as SAELens 6.18 writes it (StandardSAE / TopKSAE .save_model)."""
    cfg = {
        "d_in": D_IN,
        "d_sae": D_SAE,
        "dtype": "float32",
        "device": "cpu",
        "apply_b_dec_to_input": True,
        "normalize_activations": "none",
        "reshape_activations": "none",
        "metadata": {
            "sae_lens_version": "6.18.0",
            "sae_lens_training_version": "6.18.0",
            "model_name": "gpt2",
            "hook_name": "blocks.2.hook_resid_pre",
            "hook_head_index": None,
        },
    }
    if architecture == "topk":
        cfg |= {"k": 3, "rescale_acts_by_decoder_norm": False}
    return cfg | {"architecture": architecture} | fields


def cfg_5(**fields) -> dict:
    """Returns a cfg.json as SAELens 5 wrote it (SAEConfig.to_dict), for a topk SAE."""
    return {
        "architecture": "standard",
        "d_in": D_IN,
        "d_sae": D_SAE,
        "dtype": "float32",
        "device": "cpu",
        "model_name": "gpt2",
        "hook_name": "blocks.2.hook_resid_pre",
        "hook_layer": 2,
        "hook_head_index": None,
        "activation_fn_str": "topk",
        "activation_fn_kwargs": {"k": 3},
        "apply_b_dec_to_input": True,
        "finetuning_scaling_factor": False,
        "sae_lens_training_version": "5.11.0",
        "prepend_bos": True,
        "dataset_path": "Skylion007/openwebtext",
        "dataset_trust_remote_code": True,
        "context_size": 128,
        "normalize_activations": "none",
        "neuronpedia_id": None,
        "model_from_pretrained_kwargs": {},
        "seqpos_slice": [None],
    } | fields


def random_weights(seed=0, **shapes) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    sizes = {"W_enc": (D_IN, D_SAE), "b_enc": (D_SAE,), "W_dec": (D_SAE, D_IN), "b_dec": (D_IN,)} | shapes
    return {name: torch.randn(*shape, generator=g) for name, shape in sizes.items()}


def write_folder(folder, cfg, weights=None):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cfg.json").write_text(json.dumps(cfg))
    save_file(random_weights() if weights is None else weights, folder / "sae_weights.safetensors")
    return folder


def numpy_reference(weights, x, k=None, subtract_b_dec=True, decoder_norm_rescale=False):
    """Returns (features, reconstruction) computed in numpy the way SAELens does: pre = (x - b_dec) W_enc + b_enc,
    times the decoder norms if rescaled; ReLU of all (standard) or of the k largest (topk); decode with the
    features divided by the norms again if rescaled."""
    w_enc, b_enc, w_dec, b_dec = (weights[n].double().numpy() for n in ("W_enc", "b_enc", "W_dec", "b_dec"))
    x = x.double().numpy()
    pre = (x - b_dec if subtract_b_dec else x) @ w_enc + b_enc
    norms = np.linalg.norm(w_dec, axis=-1)
    if decoder_norm_rescale:
        pre = pre * norms
    if k is not None:
        kth = np.sort(pre, axis=-1)[:, -k][:, None]
        pre = np.where(pre >= kth, pre, 0.0)
    features = np.maximum(pre, 0.0)
    decoded = features / norms if decoder_norm_rescale else features
    return features, decoded @ w_dec + b_dec


X = torch.randn(30, D_IN, generator=torch.Generator().manual_seed(1))


def assert_computes(sae, weights, **reference):
    features, reconstruction = numpy_reference(weights, X, **reference)
    np.testing.assert_allclose(sae.encode(X).detach().numpy(), features, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(sae(X).detach().numpy(), reconstruction, rtol=1e-5, atol=1e-5)


def test_standard_sae_written_by_hand(tmp_path):
    sae, cfg = load_saelens(write_folder(tmp_path / "sae", cfg_6()))
    assert (sae.architecture, sae.d_in, sae.d_sae, sae.apply_b_dec_to_input) == ("relu", D_IN, D_SAE, True)
    assert cfg["metadata"]["hook_name"] == "blocks.2.hook_resid_pre"
    assert_computes(sae, random_weights())


def test_topk_sae_written_by_hand(tmp_path):
    sae, _ = load_saelens(write_folder(tmp_path / "sae", cfg_6("topk")))
    assert (sae.architecture, sae.k) == ("topk", 3)
    assert_computes(sae, random_weights(), k=3)


@pytest.mark.parametrize("architecture,k", [("standard", None), ("topk", 3)])
def test_b_dec_not_applied_to_the_input(tmp_path, architecture, k):
    folder = write_folder(tmp_path / "sae", cfg_6(architecture, apply_b_dec_to_input=False))
    sae, _ = load_saelens(folder)
    assert sae.apply_b_dec_to_input is False
    assert_computes(sae, random_weights(), k=k, subtract_b_dec=False)


def test_topk_rescaled_by_decoder_norm(tmp_path):
    # SAELens's TopKTrainingSAE default: topk of the pre-activations times each decoder row's norm
    weights = random_weights() | {"W_dec": random_weights()["W_dec"] * torch.linspace(0.2, 3, D_SAE)[:, None]}
    folder = write_folder(tmp_path / "sae", cfg_6("topk", rescale_acts_by_decoder_norm=True), weights)
    sae, _ = load_saelens(folder)
    assert_computes(sae, weights, k=3, decoder_norm_rescale=True)


def test_saelens_5_layout(tmp_path):
    sae, cfg = load_saelens(write_folder(tmp_path / "sae", cfg_5()))
    assert (sae.architecture, sae.k) == ("topk", 3)
    assert_computes(sae, random_weights(), k=3)
    # returned in SAELens 6's layout, as SAELens 6's handle_pre_6_0_config converts it
    assert cfg["architecture"] == "topk" and cfg["k"] == 3
    assert cfg["metadata"]["hook_name"] == "blocks.2.hook_resid_pre"
    assert cfg["metadata"]["hook_layer"] == 2 and cfg["metadata"]["model_name"] == "gpt2"


def test_saelens_3_layout_with_old_names(tmp_path):
    old = {
        "d_in": D_IN,
        "d_sae": D_SAE,
        "dtype": "float32",
        "device": "cpu",
        "model_name": "gpt2",
        "hook_point": "blocks.0.hook_resid_pre",
        "hook_point_layer": 0,
        "hook_point_head_index": None,
        "activation_fn": "relu",
        "apply_b_dec_to_input": False,
        "normalize_activations": False,
    }
    sae, cfg = load_saelens(write_folder(tmp_path / "sae", old))
    assert cfg["metadata"]["hook_name"] == "blocks.0.hook_resid_pre"
    assert cfg["architecture"] == "standard" and cfg["normalize_activations"] == "none"
    assert_computes(sae, random_weights(), subtract_b_dec=False)


def test_dtype_is_honoured(tmp_path):
    folder = write_folder(tmp_path / "sae", cfg_6(dtype="torch.float64"))
    sae, _ = load_saelens(folder)
    assert sae.W_enc.dtype == torch.float64


def test_all_ones_scaling_factor_is_ignored(tmp_path):
    weights = random_weights() | {"scaling_factor": torch.ones(D_SAE)}
    sae, _ = load_saelens(write_folder(tmp_path / "sae", cfg_5(), weights))
    assert_computes(sae, random_weights(), k=3)


@pytest.mark.parametrize("architecture,k,apply_b_dec", [("relu", None, True), ("topk", 2, False)])
def test_round_trip(tmp_path, architecture, k, apply_b_dec):
    torch.manual_seed(0)
    sae = SparseAutoencoder(D_IN, D_SAE, architecture, k, apply_b_dec)
    with torch.no_grad():
        for p in sae.parameters():
            p.copy_(torch.randn_like(p))
    save_saelens(sae, tmp_path / "sae", hook_name="blocks.1.hook_resid_post", model_name="tiny")
    loaded, cfg = load_saelens(tmp_path / "sae")
    for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
        assert torch.equal(getattr(loaded, name), getattr(sae, name)), name
    assert (loaded.architecture, loaded.k, loaded.apply_b_dec_to_input) == (architecture, k, apply_b_dec)
    assert cfg["metadata"]["hook_name"] == "blocks.1.hook_resid_post" and cfg["metadata"]["model_name"] == "tiny"


def test_written_cfg_is_saelens_6s_layout(tmp_path):
    sae = SparseAutoencoder(D_IN, D_SAE, "topk", 3)
    save_saelens(sae, tmp_path / "sae", hook_name="blocks.2.hook_resid_pre", model_name="gpt2")
    written = json.loads((tmp_path / "sae" / "cfg.json").read_text())
    # what SAELens 6.18's TopKSAE.save_model writes, but for the version fields
    assert written == {
        "d_in": D_IN,
        "d_sae": D_SAE,
        "dtype": "float32",
        "device": "cpu",
        "apply_b_dec_to_input": True,
        "normalize_activations": "none",
        "reshape_activations": "none",
        "metadata": {
            "sae_lens_version": "6.0.0",
            "sae_lens_training_version": None,
            "hook_name": "blocks.2.hook_resid_pre",
            "model_name": "gpt2",
        },
        "k": 3,
        "rescale_acts_by_decoder_norm": False,
        "architecture": "topk",
    }
    assert list(written) == list(cfg_6("topk"))  # in SAELens's field order


def test_metadata_that_is_not_json_writes_nothing(tmp_path):
    with pytest.raises(TypeError):
        save_saelens(SparseAutoencoder(D_IN, D_SAE), tmp_path / "sae", hook_name="h", model=object())
    assert not (tmp_path / "sae").exists()


def bad_weights(**changes):
    return {name: tensor for name, tensor in (random_weights() | changes).items() if tensor is not None}


@pytest.mark.parametrize(
    "cfg,weights,match",
    [
        (
            cfg_6("jumprelu"),
            bad_weights(threshold=torch.zeros(D_SAE)),
            "architecture 'jumprelu' is not supported.*threshold",
        ),
        (cfg_6("gated"), None, "architecture 'gated' is not supported; edgewise loads 'standard' and 'topk'"),
        (
            cfg_6(normalize_activations="expected_average_only_in"),
            None,
            "normalize_activations='expected_average_only_in' is not supported.*normalize_activations='none'",
        ),
        (cfg_5(normalize_activations=True), None, "normalize_activations='expected_average_only_in' is not supported"),
        (cfg_5(hook_name="blocks.0.attn.hook_z"), None, "reshape_activations='hook_z' is not supported"),
        (cfg_6("topk", k=0), None, "a topk SAE needs k, an integer in 1..d_sae=8"),
        (cfg_5(activation_fn_kwargs={}), None, "a topk SAE needs k"),
        (cfg_5(activation_fn_str="tanh-relu"), None, "activation_fn 'tanh-relu' is not supported"),
        (cfg_6(d_sae="8"), None, "d_sae must be an integer >= 1, got '8'"),
        (cfg_6(dtype="int8"), None, "dtype 'int8' is not one SAELens writes"),
        (cfg_6(apply_b_dec_to_input="yes"), None, "apply_b_dec_to_input must be true or false"),
        (cfg_6(), bad_weights(W_dec=torch.zeros(D_IN, D_SAE)), r"W_dec has shape \(5, 8\).*make it \(8, 5\)"),
        (cfg_6(), bad_weights(b_enc=None), r"missing \['b_enc'\]"),
        (cfg_6(), bad_weights(b_gate=torch.zeros(D_SAE)), r"unexpected \['b_gate'\]"),
        (cfg_5(), bad_weights(scaling_factor=torch.full((D_SAE,), 2.0)), "scaling_factor .* is not supported"),
        (cfg_6(metadata={"sae_lens_version": "six"}), None, "sae_lens_version 'six' is not a SAELens version"),
    ],
)
def test_unsupported_folders_are_refused(tmp_path, cfg, weights, match):
    folder = write_folder(tmp_path / "sae", cfg, weights)
    with pytest.raises(SAEFormatError, match=match) as raised:
        load_saelens(folder)
    assert str(folder) in str(raised.value)


def test_missing_and_damaged_files(tmp_path):
    with pytest.raises(SAEFormatError, match="is not a folder"):
        load_saelens(tmp_path / "nowhere")
    folder = write_folder(tmp_path / "sae", cfg_6())
    (folder / "sae_weights.safetensors").write_bytes(b"\x00\x01garbage")
    with pytest.raises(SAEFormatError, match="cannot be read as safetensors"):
        load_saelens(folder)
    (folder / "sae_weights.safetensors").unlink()
    with pytest.raises(SAEFormatError, match="has no sae_weights.safetensors"):
        load_saelens(folder)
    (folder / "cfg.json").write_text("{not json")
    with pytest.raises(SAEFormatError, match="cannot be read as JSON"):
        load_saelens(folder)
    (folder / "cfg.json").write_text("[1, 2]")
    with pytest.raises(SAEFormatError, match="holds a JSON list"):
        load_saelens(folder)
    (folder / "cfg.json").unlink()
    with pytest.raises(SAEFormatError, match="has no cfg.json"):
        load_saelens(folder)
