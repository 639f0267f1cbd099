"""Sparse autoencoders: the encode/decode formulas, training (recovery of known directions, sparsity, determinism),
statistics and direction recovery against numbers computed by hand, and the on-disk cache."""

import math
import os
import shutil
import warnings

import numpy as np
import pytest
import torch

import edgewise.features.sae as sae_module
from edgewise.errors import (
    CacheWarning,
    InvalidActivationsError,
    InvalidDirectionsError,
    InvalidHyperparameterError,
)
from edgewise.features.sae import (
    SAETrainingConfig,
    SparseAutoencoder,
    cached_sparse_autoencoder,
    direction_recovery,
    sae_statistics,
    train_sparse_autoencoder,
)

D_IN, N_TRUE, ACTIVE = 16, 24, 3


def sparse_data(n_rows: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns activations [n_rows, D_IN] that are each ACTIVE of N_TRUE random unit directions with weights in
    [0.5, 1.5], plus an offset, and those directions [N_TRUE, D_IN]: more directions than dimensions, as in
    superposition."""
    g = torch.Generator().manual_seed(seed)
    directions = torch.randn(N_TRUE, D_IN, generator=g)
    directions /= directions.norm(dim=-1, keepdim=True)
    chosen = torch.rand(n_rows, N_TRUE, generator=g).argsort(-1)[:, :ACTIVE]
    weights = torch.zeros(n_rows, N_TRUE).scatter(-1, chosen, 0.5 + torch.rand(n_rows, ACTIVE, generator=g))
    return weights @ directions + 2.0, directions


@pytest.fixture(scope="module")
def data():
    return sparse_data(2000)


def random_sae(architecture="relu", k=None, apply_b_dec_to_input=True, d_in=6, d_sae=10, seed=0):
    torch.manual_seed(seed)
    sae = SparseAutoencoder(d_in, d_sae, architecture, k, apply_b_dec_to_input)
    with torch.no_grad():
        for p in sae.parameters():
            p.copy_(torch.randn_like(p))
    return sae


def numpy_encode(sae, x, k=None, subtract_b_dec=True):
    """Returns the feature activations by the textbook formula, in numpy: ReLU (or ReLU of the k largest) of
    (x - b_dec) W_enc + b_enc."""
    w_enc, b_enc, b_dec = (getattr(sae, n).detach().double().numpy() for n in ("W_enc", "b_enc", "b_dec"))
    x = x.double().numpy()
    pre = (x - b_dec if subtract_b_dec else x) @ w_enc + b_enc
    if k is not None:
        keep = np.zeros_like(pre, dtype=bool)
        np.put_along_axis(keep, np.argsort(-pre, axis=-1)[:, :k], True, axis=-1)
        pre = np.where(keep, pre, 0.0)
    return np.maximum(pre, 0.0)


@pytest.mark.parametrize(
    "architecture,k,subtract", [("relu", None, True), ("topk", 3, True), ("relu", None, False), ("topk", 3, False)]
)
def test_encode_and_decode_follow_the_formulas(architecture, k, subtract):
    sae = random_sae(architecture, k, subtract)
    x = torch.randn(20, 6)
    features = numpy_encode(sae, x, k, subtract)
    np.testing.assert_allclose(sae.encode(x).detach().numpy(), features, rtol=1e-5, atol=1e-5)
    w_dec, b_dec = sae.W_dec.detach().double().numpy(), sae.b_dec.detach().double().numpy()
    np.testing.assert_allclose(sae(x).detach().numpy(), features @ w_dec + b_dec, rtol=1e-5, atol=1e-5)
    assert sae.encode(x.reshape(4, 5, 6)).shape == (4, 5, 10)  # any leading dimensions


def test_properties():
    sae = random_sae("topk", 2)
    assert (sae.d_in, sae.d_sae) == (6, 10)
    assert sae.labels == tuple(str(i) for i in range(10))
    assert sae.decoder.shape == (10, 6) and torch.equal(sae.decoder, sae.W_dec)


def test_topk_keeps_at_most_k_features_per_row():
    sae = random_sae("topk", 3, d_sae=40)
    features = sae.encode(torch.randn(500, 6))
    assert ((features != 0).sum(-1) <= 3).all()
    assert ((features != 0).sum(-1) == 3).float().mean() > 0.5  # and usually exactly k: some pre-activations > 0


def test_trained_topk_recovers_the_directions(data):
    x, directions = data
    sae = train_sparse_autoencoder(x, 48, "topk", k=ACTIVE, steps=300)
    recovery = direction_recovery(sae.decoder, directions)
    assert recovery.fraction_recovered >= 0.95, recovery.best_cosine
    stats = sae_statistics(sae, x)
    assert stats.fvu < 0.1
    assert stats.l0 <= ACTIVE
    # decoder rows are renormalised after every step, and the fold back to the data's scale keeps them unit
    torch.testing.assert_close(sae.W_dec.norm(dim=-1), torch.ones(48))
    # random unit directions in 16 dimensions are far from the true ones: the recovery is learnt
    untrained = torch.nn.functional.normalize(torch.randn(48, D_IN, generator=torch.Generator().manual_seed(5)), dim=-1)
    assert direction_recovery(untrained, directions).fraction_recovered == 0.0


def test_l1_sparsifies_a_relu_sae(data):
    x, _ = data
    dense = sae_statistics(train_sparse_autoencoder(x[:500], 32, "relu", l1=0.0, steps=150), x[:500])
    sparse = sae_statistics(train_sparse_autoencoder(x[:500], 32, "relu", l1=1.0, steps=150), x[:500])
    assert sparse.l0 < dense.l0 / 2, (sparse, dense)


def test_same_seed_gives_identical_weights(data):
    x, _ = data
    first, second, other = (train_sparse_autoencoder(x[:300], 20, "topk", k=2, steps=20, seed=s) for s in (1, 1, 2))
    for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
        assert torch.equal(getattr(first, name), getattr(second, name)), name
    assert not torch.equal(first.W_dec, other.W_dec)


def test_training_does_not_depend_on_the_activations_scale(data):
    x, _ = data
    small = train_sparse_autoencoder(x[:300], 20, "topk", k=2, steps=20)
    large = train_sparse_autoencoder(x[:300] * 1000, 20, "topk", k=2, steps=20)
    torch.testing.assert_close(large.W_dec, small.W_dec, atol=1e-3, rtol=0)
    # the same features, in the units of the larger activations
    torch.testing.assert_close(large.encode(x[:50] * 1000), small.encode(x[:50]) * 1000, atol=1e-1, rtol=1e-3)


def test_b_dec_starts_at_the_data_mean(data):
    x, _ = data
    # lr 1e-12: Adam's first step moves each parameter by about lr, so b_dec stays where it started
    sae = train_sparse_autoencoder(x, 20, "topk", k=2, steps=1, lr=1e-12)
    torch.testing.assert_close(sae.b_dec, x.mean(0), atol=1e-5, rtol=0)


def test_progress_bar_runs(data):
    x, _ = data
    assert train_sparse_autoencoder(x[:100], 8, "relu", steps=3, progress=True).d_sae == 8


def test_statistics_by_hand():
    # feature 0 and 1 read and write the two axes; feature 2 reads nothing and has b_enc -1, so it never fires
    sae = SparseAutoencoder(2, 3, "relu")
    with torch.no_grad():
        sae.W_enc.copy_(torch.tensor([[1.0, 0, 0], [0, 1, 0]]))
        sae.b_enc.copy_(torch.tensor([0.0, 0, -1]))
        sae.W_dec.copy_(torch.tensor([[1.0, 0], [0, 1], [5, 5]]))
    x = torch.tensor([[1.0, 2], [-1, 3], [2, -2]])
    # reconstructions [1, 2], [0, 3], [2, 0]: squared errors 0, 1, 4. Mean [2/3, 1]; centred squares sum to 56/3
    stats = sae_statistics(sae, x)
    assert stats.n_rows == 3
    assert math.isclose(stats.mse, 5 / 6)
    assert math.isclose(stats.fvu, 5 / (56 / 3))
    assert math.isclose(stats.l0, 4 / 3)  # 2, 1 and 1 active features
    assert math.isclose(stats.dead_fraction, 1 / 3)


def test_statistics_of_equal_rows_have_no_fvu():
    sae = random_sae()
    assert math.isnan(sae_statistics(sae, torch.ones(4, 6)).fvu)


def test_direction_recovery_by_hand():
    e = torch.eye(4)
    angle = math.radians(30)
    decoder = torch.stack(
        [
            3 * e[1],  # e1, at another length: cosine 1
            math.cos(angle) * e[0] + math.sin(angle) * e[3],  # e0 rotated by 30 degrees: cosine cos(30)
            -e[2],  # the opposite of e2: cosine -1, so e2's best is 0 (from the rows orthogonal to it)
            torch.zeros(4),  # a pruned feature: cosine 0, not NaN
        ]
    )
    recovery = direction_recovery(decoder, 2 * e[:3])
    np.testing.assert_allclose(recovery.best_cosine, [math.cos(angle), 1.0, 0.0], atol=1e-12)
    assert recovery.best_feature[:2] == (1, 0)
    assert recovery.fraction_recovered == pytest.approx(1 / 3)
    assert direction_recovery(decoder, e[:3], threshold=0.8).fraction_recovered == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"architecture": "topk", "k": None}, "k must be an integer in 1..d_sae=10"),
        ({"architecture": "topk", "k": 11}, "k must be an integer in 1..d_sae=10"),
        ({"architecture": "relu", "k": 3}, "relu SAE takes none"),
        ({"architecture": "jumprelu"}, "unknown SAE architecture 'jumprelu'"),
    ],
)
def test_bad_sae_arguments(kwargs, match):
    with pytest.raises(InvalidHyperparameterError, match=match):
        SparseAutoencoder(6, 10, **kwargs)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"steps": 0}, "steps must be an integer >= 1"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1"),
        ({"lr": -1.0}, "lr must be a finite number > 0"),
        ({"architecture": "relu", "l1": -0.1}, "l1 must be a finite number >= 0"),
        ({"architecture": "topk", "k": 2, "l1": 0.5}, "a topk SAE's sparsity is set by k"),
        ({"architecture": "topk"}, "k must be an integer"),
    ],
)
def test_bad_training_config(kwargs, match):
    with pytest.raises(InvalidHyperparameterError, match=match):
        SAETrainingConfig(d_sae=10, **{"architecture": "relu", **kwargs})


@pytest.mark.parametrize(
    "activations,match",
    [
        (torch.zeros(0, 6), "hold no rows"),
        (torch.zeros(6), r"must be a tensor \[n_rows, d_in\], got \(6,\)"),
        (torch.tensor([[0.0] * 6, [float("nan")] + [0.0] * 5]), "1 of 2 activation rows hold NaN.*row 1"),
        (torch.zeros(3, 6, dtype=torch.long), "must be floating point"),
    ],
)
def test_bad_activations(activations, match):
    with pytest.raises(InvalidActivationsError, match=match):
        train_sparse_autoencoder(activations, 4, "relu", steps=1)
    with pytest.raises(InvalidActivationsError, match=match):
        sae_statistics(random_sae(), activations)


def test_encode_of_the_wrong_width():
    with pytest.raises(InvalidActivationsError, match=r"encodes activations \[\.\.\., 6\], got shape \(2, 5\)"):
        random_sae().encode(torch.zeros(2, 5))


@pytest.mark.parametrize(
    "decoder,directions,threshold,match",
    [
        (torch.zeros(3, 4), torch.eye(5)[:2], 0.9, "width 4 but the directions have width 5"),
        (torch.zeros(3, 4), torch.zeros(2, 4), 0.9, r"rows \[0, 1\] are zero"),
        (torch.zeros(3, 4), torch.eye(4), 1.5, r"threshold is a cosine in \[-1, 1\]"),
        (torch.zeros(4), torch.eye(4), 0.9, "decoder must be a non-empty matrix"),
    ],
)
def test_bad_directions(decoder, directions, threshold, match):
    with pytest.raises(InvalidDirectionsError, match=match):
        direction_recovery(decoder, directions, threshold)


# --- the cache ---------------------------------------------------------------------------------------------------

CACHED = {"d_sae": 12, "architecture": "topk", "k": 2, "steps": 15}


@pytest.fixture
def trainings(monkeypatch):
    """Returns a list that grows by one config each time the cache trains an SAE."""
    calls = []
    train = sae_module.train_with_config

    def counting(activations, config, progress=False):
        calls.append(config)
        return train(activations, config, progress)

    monkeypatch.setattr(sae_module, "train_with_config", counting)
    return calls


def assert_same_weights(a, b):
    for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert (a.architecture, a.k, a.apply_b_dec_to_input) == (b.architecture, b.k, b.apply_b_dec_to_input)


def entry_of(cache_dir):
    (folder,) = [p for p in cache_dir.iterdir()]
    return folder


def test_cache_hit_returns_the_same_sae_without_training(tmp_path, data, trainings):
    x = data[0][:200]
    first = cached_sparse_autoencoder(x, cache_dir=tmp_path, config=SAETrainingConfig(**CACHED))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        second = cached_sparse_autoencoder(x, cache_dir=tmp_path, config=SAETrainingConfig(**CACHED))
    assert len(trainings) == 1
    assert_same_weights(first, second)
    assert_same_weights(first, train_sparse_autoencoder(x, **CACHED))  # the cache serves what training gives
    folder = entry_of(tmp_path)  # one entry, no temporary folder left behind
    assert sorted(p.name for p in folder.iterdir()) == ["cfg.json", "sae_weights.safetensors"]


def test_other_activations_or_config_train_apart(tmp_path, data, trainings):
    x = data[0][:200]
    cached_sparse_autoencoder(x, cache_dir=tmp_path, config=SAETrainingConfig(**CACHED))
    cached_sparse_autoencoder(x[:150], cache_dir=tmp_path, config=SAETrainingConfig(**CACHED))
    cached_sparse_autoencoder(
        x.double(), cache_dir=tmp_path, config=SAETrainingConfig(**CACHED)
    )  # same values, another dtype
    cached_sparse_autoencoder(x, cache_dir=tmp_path, config=SAETrainingConfig(**{**CACHED, "seed": 1}))
    assert len(trainings) == 4
    assert len(list(tmp_path.iterdir())) == 4


def test_damaged_entry_is_retrained_with_a_warning(tmp_path, data, trainings):
    x = data[0][:200]
    first = cached_sparse_autoencoder(x, cache_dir=tmp_path, config=SAETrainingConfig(**CACHED))
    folder = entry_of(tmp_path)
    (folder / "sae_weights.safetensors").write_bytes(b"not a safetensors file")
    with pytest.warns(CacheWarning, match=f"SAE cache entry {folder} cannot be used.*retraining"):
        second = cached_sparse_autoencoder(x, cache_dir=tmp_path, config=SAETrainingConfig(**CACHED))
    assert len(trainings) == 2
    assert_same_weights(first, second)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cached_sparse_autoencoder(
            x, cache_dir=tmp_path, config=SAETrainingConfig(**CACHED)
        )  # the entry was replaced by a good one
    assert len(trainings) == 2


def test_entry_of_another_key_is_retrained(tmp_path, data, trainings):
    x = data[0][:200]
    cached_sparse_autoencoder(x[:150], cache_dir=tmp_path / "other", config=SAETrainingConfig(**CACHED))
    cached_sparse_autoencoder(x, cache_dir=tmp_path / "mine", config=SAETrainingConfig(**CACHED))
    mine, other = entry_of(tmp_path / "mine"), entry_of(tmp_path / "other")
    shutil.rmtree(mine)
    shutil.copytree(other, mine)  # a folder of another SAE under this key's name
    with pytest.warns(CacheWarning, match="was saved for key"):
        cached_sparse_autoencoder(x, cache_dir=tmp_path / "mine", config=SAETrainingConfig(**CACHED))
    assert len(trainings) == 3


def test_unwritable_cache_warns_and_returns_the_sae(tmp_path, data, trainings):
    x = data[0][:200]
    blocker = tmp_path / "a-file"
    blocker.write_text("")  # a file where the cache folder would go
    with pytest.warns(CacheWarning, match="could not write SAE cache entry.*will be trained again"):
        sae = cached_sparse_autoencoder(x, cache_dir=blocker, config=SAETrainingConfig(**CACHED))
    assert_same_weights(sae, train_sparse_autoencoder(x, **CACHED))


def test_default_cache_is_under_edgewise_cache(tmp_path, data, monkeypatch, trainings):
    monkeypatch.setenv("EDGEWISE_CACHE", os.fspath(tmp_path))
    cached_sparse_autoencoder(data[0][:100], config=SAETrainingConfig(**CACHED))
    assert entry_of(tmp_path / "saes").name.startswith("sae-topk-12-")
