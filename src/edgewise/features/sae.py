"""Sparse autoencoders (SAEs): dictionaries that split a model's activations into sparse, labelled features.

An SAE encodes an activation x [d_in] into feature activations f = act((x - b_dec) @ W_enc + b_enc) [d_sae] and
decodes them back as x_hat = f @ W_dec + b_dec, so feature i contributes f_i(x) * W_dec[i] to the reconstruction.
`relu` SAEs keep every positive pre-activation and are trained with an L1 penalty; `topk` SAEs keep the k largest
(then ReLU), so at most k features are active per input. This module trains them (deterministically, by seed),
measures them (reconstruction, sparsity, dead features), scores how well a decoder recovers known directions, and
caches trained SAEs on disk in SAELens's folder format (`saelens.py`), so SAEs trained elsewhere and here look alike.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import torch
from tqdm.auto import tqdm

from ..cache import cache_root
from ..errors import (
    CacheWarning,
    InvalidActivationsError,
    InvalidDirectionsError,
    InvalidHyperparameterError,
    OutputPathError,
    SAEFormatError,
)

Architecture = Literal["relu", "topk"]
ARCHITECTURES = ("relu", "topk")
CACHE_FORMAT = 1  # bump when training, the stored fields or the folder layout change: old entries then retrain
STATISTICS_BATCH = 4096  # rows encoded at once by sae_statistics: bounds the [rows, d_sae] feature matrix


class SparseAutoencoder(torch.nn.Module):
    """An SAE with encoder W_enc [d_in, d_sae], b_enc [d_sae] and decoder W_dec [d_sae, d_in], b_dec [d_in].

    Its weights start at zero: train one (`train_sparse_autoencoder`) or load one (`load_saelens`).

    Args:
        d_in: the width of the activations it encodes.
        d_sae: the number of features.
        architecture: `relu` (every positive pre-activation) or `topk` (the k largest, then ReLU).
        k: features kept per input; required for `topk`, None for `relu`.
        apply_b_dec_to_input: subtract b_dec from the input before encoding (SAELens's switch: some SAEs were
            trained on x itself rather than on x - b_dec).

    Raises:
        InvalidHyperparameterError: a size is not a positive integer, the architecture is unknown, k does not suit
            it, or apply_b_dec_to_input is not a bool.
    """

    def __init__(
        self,
        d_in: int,
        d_sae: int,
        architecture: Architecture = "relu",
        k: int | None = None,
        apply_b_dec_to_input: bool = True,
    ):
        super().__init__()
        _check_shape(d_in, d_sae, architecture, k)
        if not isinstance(apply_b_dec_to_input, bool):
            raise InvalidHyperparameterError(
                f"apply_b_dec_to_input must be True or False, got {apply_b_dec_to_input!r}"
            )
        self.architecture = architecture
        self.k = k
        self.apply_b_dec_to_input = apply_b_dec_to_input
        self.W_enc = torch.nn.Parameter(torch.zeros(d_in, d_sae))
        self.b_enc = torch.nn.Parameter(torch.zeros(d_sae))
        self.W_dec = torch.nn.Parameter(torch.zeros(d_sae, d_in))
        self.b_dec = torch.nn.Parameter(torch.zeros(d_in))

    @property
    def d_in(self) -> int:
        return self.W_enc.shape[0]

    @property
    def d_sae(self) -> int:
        return self.W_enc.shape[1]

    @property
    def labels(self) -> tuple[str, ...]:
        """Returns each feature's label, its index as a string: the names feature nodes take."""
        return tuple(str(i) for i in range(self.d_sae))

    @property
    def decoder(self) -> torch.Tensor:
        """Returns W_dec [d_sae, d_in]: feature i adds f_i(x) * W_dec[i] to the reconstruction."""
        return self.W_dec

    def pre_activations(self, x: torch.Tensor) -> torch.Tensor:
        """Returns (x - b_dec) @ W_enc + b_enc [..., d_sae] (without subtracting b_dec if apply_b_dec_to_input is
        False), the encoder's output before the activation function.

        Args:
            x: activations [..., d_in].

        Returns:
            The pre-activations [..., d_sae].

        Raises:
            InvalidActivationsError: the last axis of `x` is not d_in.
        """
        if x.shape[-1:] != (self.d_in,):
            raise InvalidActivationsError(
                f"this SAE encodes activations [..., {self.d_in}], got shape {tuple(x.shape)}; pass activations of "
                f"the hook it was trained on"
            )
        if self.apply_b_dec_to_input:
            x = x - self.b_dec
        return x @ self.W_enc + self.b_enc

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Returns the feature activations [..., d_sae] of activations x [..., d_in].

        Args:
            x: activations [..., d_in].

        Returns:
            The feature activations [..., d_sae]: the ReLU of the pre-activations, or for `topk` the ReLU of the k
                largest with every other feature 0.

        Raises:
            InvalidActivationsError: the last axis of `x` is not d_in.
        """
        pre = self.pre_activations(x)
        if self.architecture == "relu":
            return pre.relu()
        values, indices = pre.topk(self.k, dim=-1)
        return torch.zeros_like(pre).scatter(-1, indices, values.relu())

    def decode(self, features: torch.Tensor) -> torch.Tensor:
        """Returns the reconstruction f @ W_dec + b_dec [..., d_in] of feature activations f [..., d_sae].

        Args:
            features: feature activations [..., d_sae].

        Returns:
            The reconstruction [..., d_in].
        """
        return features @ self.W_dec + self.b_dec

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Returns the reconstruction decode(encode(x)) [..., d_in].

        Args:
            x: activations [..., d_in].

        Returns:
            The reconstruction [..., d_in].
        """
        return self.decode(self.encode(x))

    def extra_repr(self) -> str:
        k = f", k={self.k}" if self.architecture == "topk" else ""
        return f"d_in={self.d_in}, d_sae={self.d_sae}, architecture={self.architecture!r}{k}"


def _check_shape(d_in: int, d_sae: int, architecture: str, k: int | None) -> None:
    """Returns nothing; raises InvalidHyperparameterError unless the sizes are positive integers, the architecture
    is known and k suits it (1..d_sae for topk, None for relu)."""
    for name, value in (("d_in", d_in), ("d_sae", d_sae)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InvalidHyperparameterError(f"{name} must be an integer >= 1, got {value!r}")
    if architecture not in ARCHITECTURES:
        raise InvalidHyperparameterError(
            f"unknown SAE architecture {architecture!r}; edgewise has {', '.join(map(repr, ARCHITECTURES))}"
        )
    if architecture == "relu" and k is not None:
        raise InvalidHyperparameterError(
            f"k={k!r} is the topk architecture's feature count; a relu SAE takes none (pass architecture='topk')"
        )
    if architecture == "topk" and (not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= d_sae):
        raise InvalidHyperparameterError(
            f"a topk SAE keeps k features per input: k must be an integer in 1..d_sae={d_sae}, got {k!r}"
        )


@dataclass(frozen=True)
class SAETrainingConfig:
    """Hyperparameters of train_sparse_autoencoder; defaults fit small data (thousands of rows, d_in 20-600). On one
    CPU thread the default 1000 steps take ~2 s at d_in 20 (d_sae 80), ~5 s at d_in 64 (d_sae 256) and ~50 s at
    d_in 600 (d_sae 1200). Training sees the activations rescaled to unit RMS norm about their mean, so the defaults
    do not depend on the activations' scale; the trained SAE is rescaled back.

    Raises:
        InvalidHyperparameterError: a field is out of its range (a size below 1, k unsuited to the architecture, lr
            not a finite positive number, a negative l1, an l1 set for a topk SAE, an unknown decoder_bias).
    """

    d_sae: int  # number of features; no default: it is the dictionary size the experiment is about
    architecture: Architecture = "topk"  # topk needs no penalty tuning and fixes L0 (Gao et al. 2024)
    k: int | None = None  # topk: features kept per input, required there (no size fits every task); relu: None
    # relu, on unit-RMS data: on sparse synthetic directions 0.05 kept ~5x the true L0 and 0.4 lost directions
    l1: float = 0.1
    steps: int = 1000  # sparse synthetic directions are recovered by ~300 steps; 3000 lowered FVU by under 0.01
    lr: float = 2e-3  # Adam on unit-RMS data: 5e-3 fit as well, 1e-2 and above left a third of topk features dead
    batch_size: int = 256  # rows per step: enough for a stable gradient, small enough for fast CPU steps
    seed: int = 0  # drives the initial weights and the batch order, through its own generator
    # "mean": b_dec starts at the data mean and trains, the usual choice. "zero": b_dec stays 0, for activations that
    # are sums of features with nothing written at 0 (tracr's writers): on one-hot data a mean-centred SAE learns
    # feature - mean instead (none of tracr-reverse's writer directions recovered at cosine 0.9)
    decoder_bias: Literal["mean", "zero"] = "mean"

    def __post_init__(self):
        _check_shape(1, self.d_sae, self.architecture, self.k)
        if self.decoder_bias not in ("mean", "zero"):
            raise InvalidHyperparameterError(f"decoder_bias must be 'mean' or 'zero', got {self.decoder_bias!r}")
        for name in ("steps", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InvalidHyperparameterError(
                    f"{name} must be an integer >= 1, got {value!r}; the default is {getattr(type(self), name)}"
                )
        if not (isinstance(self.lr, (int, float)) and 0 < self.lr < float("inf")):
            raise InvalidHyperparameterError(
                f"lr must be a finite number > 0, got {self.lr!r}; the default is {type(self).lr}"
            )
        if not (isinstance(self.l1, (int, float)) and 0 <= self.l1 < float("inf")):
            raise InvalidHyperparameterError(
                f"l1 must be a finite number >= 0 (0: no sparsity penalty), got {self.l1!r}; the default is "
                f"{type(self).l1}"
            )
        if self.architecture == "topk" and self.l1 != type(self).l1:
            raise InvalidHyperparameterError(
                f"l1={self.l1} penalises relu SAEs; a topk SAE's sparsity is set by k (pass architecture='relu' to "
                f"train with an L1 penalty)"
            )
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise InvalidHyperparameterError(f"seed must be an integer, got {self.seed!r}")


def train_sparse_autoencoder(
    activations: torch.Tensor,
    d_sae: int,
    architecture: Architecture = SAETrainingConfig.architecture,
    k: int | None = SAETrainingConfig.k,
    l1: float = SAETrainingConfig.l1,
    steps: int = SAETrainingConfig.steps,
    lr: float = SAETrainingConfig.lr,
    batch_size: int = SAETrainingConfig.batch_size,
    seed: int = SAETrainingConfig.seed,
    progress: bool = False,
) -> SparseAutoencoder:
    """Returns an SAE trained on activations [n, d_in]; the same seed and activations give bit-identical weights.

    The hyperparameters are `SAETrainingConfig`'s fields, with its defaults; `train_with_config` says how it trains.

    Args:
        activations: the activations to fit [n, d_in], finite floating point.
        d_sae: the number of features.
        architecture: `topk` or `relu`.
        k: features kept per input (`topk`); None for `relu`.
        l1: the L1 penalty's weight (`relu` only).
        steps: Adam steps.
        lr: Adam's learning rate, on activations rescaled to unit RMS norm.
        batch_size: rows per step.
        seed: drives the initial weights and the batch order.
        progress: show a progress bar.

    Returns:
        The trained SAE, on the activations' device, in float32.

    Raises:
        InvalidHyperparameterError: a hyperparameter is out of its range (see `SAETrainingConfig`).
        InvalidActivationsError: the activations are not a non-empty, finite, floating-point matrix.
    """
    config = SAETrainingConfig(d_sae, architecture, k, l1, steps, lr, batch_size, seed)
    return train_with_config(activations, config, progress)


def train_with_config(
    activations: torch.Tensor, config: SAETrainingConfig, progress: bool = False
) -> SparseAutoencoder:
    """Returns an SAE trained on activations [n, d_in] with `config`: Adam on the squared reconstruction error (plus
    the L1 penalty for relu SAEs), the decoder's rows renormalised to unit norm after every step.

    Args:
        activations: the activations to fit [n, d_in], finite floating point.
        config: the training hyperparameters.
        progress: show a progress bar with the batch's reconstruction error.

    Returns:
        The trained SAE, on the activations' device, in float32, scaled back to the activations' units.

    Raises:
        InvalidActivationsError: the activations are not a non-empty, finite, floating-point matrix.
        InvalidHyperparameterError: training diverged (a weight is NaN or infinite at the end): lr is too large.
    """
    x = _checked_activations(activations)
    generator = torch.Generator().manual_seed(config.seed)
    mean = x.mean(0)
    # Training sees the activations about their mean at unit RMS norm, so lr and l1 mean the same at any scale
    rms = (x - mean).pow(2).sum(-1).mean().sqrt()
    scale = rms if rms > torch.finfo(x.dtype).tiny else torch.ones_like(rms)  # rows all equal: nothing to rescale
    x = x / scale
    start = mean / scale if config.decoder_bias == "mean" else torch.zeros_like(mean)
    sae = _initial_sae(x.shape[1], config, start, generator).to(x.device)
    trained = [p for name, p in sae.named_parameters() if name != "b_dec" or config.decoder_bias == "mean"]
    optimizer = torch.optim.Adam(trained, lr=config.lr)
    order = torch.empty(0, dtype=torch.long)
    bar = tqdm(range(config.steps), disable=not progress, desc="training SAE", leave=False)
    for _ in bar:
        if len(order) < config.batch_size:  # a fresh pass over the rows, in an order drawn from the seed
            order = torch.cat([order, torch.randperm(len(x), generator=generator)])
        batch, order = x[order[: config.batch_size].to(x.device)], order[config.batch_size :]
        features = sae.encode(batch)
        reconstruction = (sae.decode(features) - batch).pow(2).sum(-1).mean()
        # decoder rows have unit norm, so the summed activations are the usual L1 on f_i * ||W_dec[i]||
        penalty = config.l1 * features.sum(-1).mean() if config.architecture == "relu" else 0.0
        optimizer.zero_grad()
        (reconstruction + penalty).backward()
        optimizer.step()
        with torch.no_grad():
            sae.W_dec /= sae.W_dec.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)
        if progress:
            bar.set_postfix(mse=f"{reconstruction.item():.4g}")
    # checked once at the end, not per step (a sync per step on a GPU): a diverged SAE encodes NaN, which would leave
    # its writer without features, and cached_sparse_autoencoder would save it
    not_finite = {name: int((~torch.isfinite(p)).sum()) for name, p in sae.named_parameters()}
    if any(not_finite.values()):
        counts = ", ".join(f"{name} {n} of {getattr(sae, name).numel()}" for name, n in not_finite.items() if n)
        raise InvalidHyperparameterError(
            f"SAE training diverged: after {config.steps} steps at lr={config.lr:g} the weights hold NaN or infinite "
            f"entries ({counts}); lower lr (the default is {SAETrainingConfig.lr:g})"
        )
    with torch.no_grad():
        # ReLU and top-k are positively homogeneous: scaling the biases by `scale` gives features (and a
        # reconstruction) of the original activations, in their units, with the same unit-norm decoder
        sae.b_enc *= scale
        sae.b_dec *= scale
    return sae


def _initial_sae(
    d_in: int, config: SAETrainingConfig, b_dec: torch.Tensor, generator: torch.Generator
) -> SparseAutoencoder:
    """Returns the SAE training starts from: random unit decoder rows, the encoder their transpose (so each feature
    first reads the direction it writes), zero b_enc, and the given b_dec (the data mean: the best constant
    reconstruction; or zero)."""
    sae = SparseAutoencoder(d_in, config.d_sae, config.architecture, config.k)
    directions = torch.randn(config.d_sae, d_in, generator=generator)
    directions /= directions.norm(dim=-1, keepdim=True)
    with torch.no_grad():
        sae.W_dec.copy_(directions)
        sae.W_enc.copy_(directions.T)
        sae.b_dec.copy_(b_dec)
    return sae


def _checked_activations(activations: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Returns the activations [n, d_in] in `dtype`, without gradient; raises InvalidActivationsError unless they are
    a non-empty, finite, floating-point matrix."""
    if not isinstance(activations, torch.Tensor) or activations.ndim != 2:
        shape = tuple(activations.shape) if isinstance(activations, torch.Tensor) else type(activations).__name__
        raise InvalidActivationsError(
            f"SAE activations must be a tensor [n_rows, d_in], got {shape}; flatten batch and position first "
            f"(activations.reshape(-1, d_in))"
        )
    if activations.shape[0] == 0 or activations.shape[1] == 0:
        raise InvalidActivationsError(
            f"SAE activations of shape {tuple(activations.shape)} hold no rows (or no dimensions); collect "
            f"activations on some inputs first"
        )
    if not activations.is_floating_point():
        raise InvalidActivationsError(f"SAE activations must be floating point, got {activations.dtype}")
    x = activations.detach().to(dtype)
    bad = ~torch.isfinite(x).all(-1)
    if bad.any():
        raise InvalidActivationsError(
            f"{int(bad.sum())} of {len(x)} activation rows hold NaN or infinity (the first is row "
            f"{int(bad.nonzero()[0])}); drop them or fix the model run that produced them"
        )
    return x


@dataclass(frozen=True)
class SAEStatistics:
    """How well an SAE reconstructs a set of activations, and how sparsely.

    Attributes:
        mse: mean squared error per element: mean over rows and dimensions of (x_hat - x)^2.
        fvu: fraction of variance unexplained: sum (x_hat - x)^2 / sum (x - mean x)^2; nan if the rows are equal.
        l0: mean number of active (non-zero) features per row.
        dead_fraction: fraction of features active on none of the rows.
        n_rows: the number of activation rows measured.
    """

    mse: float
    fvu: float
    l0: float
    dead_fraction: float
    n_rows: int


@torch.no_grad()
def sae_statistics(sae: SparseAutoencoder, activations: torch.Tensor) -> SAEStatistics:
    """Returns the SAE's reconstruction error, L0 and dead-feature fraction on activations [n, d_in].

    Args:
        sae: the SAE to measure.
        activations: activations [n, d_in], finite floating point; encoded in batches of `STATISTICS_BATCH` rows.

    Returns:
        The statistics.

    Raises:
        InvalidActivationsError: the activations are not a non-empty, finite, floating-point matrix, or their
            width is not the SAE's d_in.
    """
    x = _checked_activations(activations, sae.W_enc.dtype).to(sae.W_enc.device)
    squared_error = torch.zeros((), dtype=torch.float64)
    active = torch.zeros((), dtype=torch.float64)
    ever_active = torch.zeros(sae.d_sae, dtype=torch.bool, device=x.device)
    for rows in x.split(STATISTICS_BATCH):
        features = sae.encode(rows)
        squared_error += (sae.decode(features) - rows).double().pow(2).sum().cpu()
        active += (features != 0).sum().double().cpu()
        ever_active |= (features != 0).any(0)
    variance = (x.double() - x.double().mean(0)).pow(2).sum().cpu()
    return SAEStatistics(
        mse=float(squared_error / x.numel()),
        fvu=float(squared_error / variance) if variance > 0 else float("nan"),
        l0=float(active / len(x)),
        dead_fraction=float((~ever_active).double().mean()),
        n_rows=len(x),
    )


@dataclass(frozen=True)
class DirectionRecovery:
    """How well a dictionary's decoder rows recover known target directions, by cosine similarity.

    Attributes:
        best_cosine: per target direction: the largest (signed) cosine with any decoder row.
        best_feature: per target direction: the decoder row that attains it.
        fraction_recovered: fraction of target directions whose best cosine is >= threshold.
        threshold: the cosine at which a direction counts as recovered.
    """

    best_cosine: tuple[float, ...]
    best_feature: tuple[int, ...]
    fraction_recovered: float
    threshold: float


@torch.no_grad()
def direction_recovery(decoder: torch.Tensor, directions: torch.Tensor, threshold: float = 0.9) -> DirectionRecovery:
    """Returns, for each target direction [n_directions, d], its best signed cosine with a decoder row
    [n_features, d], that row, and the fraction of directions recovered at `threshold`.

    Signed, not absolute: a feature fires with one sign, so a row opposite to a direction does not recover it.
    A zero decoder row (a pruned feature) has cosine 0 with everything.

    Args:
        decoder: the decoder rows [n_features, d].
        directions: the target directions [n_directions, d], finite and non-zero.
        threshold: the cosine, in [-1, 1], at which a direction counts as recovered.

    Returns:
        The best cosine and feature per direction, and the fraction recovered.

    Raises:
        InvalidDirectionsError: a matrix is empty or not 2-D, the widths differ, the threshold lies outside
            [-1, 1], or a direction is zero or not finite.
    """
    for name, matrix in (("decoder", decoder), ("directions", directions)):
        if not isinstance(matrix, torch.Tensor) or matrix.ndim != 2 or 0 in matrix.shape:
            shape = tuple(matrix.shape) if isinstance(matrix, torch.Tensor) else type(matrix).__name__
            raise InvalidDirectionsError(f"{name} must be a non-empty matrix [n, d], got {shape}")
    if decoder.shape[1] != directions.shape[1]:
        raise InvalidDirectionsError(
            f"decoder rows have width {decoder.shape[1]} but the directions have width {directions.shape[1]}; "
            f"compare directions in the space the SAE reconstructs"
        )
    if not -1.0 <= threshold <= 1.0:
        raise InvalidDirectionsError(f"threshold is a cosine in [-1, 1], got {threshold!r}")
    targets = directions.detach().double()
    norms = targets.norm(dim=-1)
    if not (torch.isfinite(targets).all() and (norms > 0).all()):
        raise InvalidDirectionsError(
            f"target directions must be finite and non-zero; rows {(~(norms > 0)).nonzero().flatten().tolist()} "
            f"are zero (or some entries are NaN or infinite)"
        )
    rows = torch.nn.functional.normalize(decoder.detach().double(), dim=-1)
    cosines = (targets / norms[:, None]) @ rows.T  # [n_directions, n_features]
    best, index = cosines.max(dim=-1)
    return DirectionRecovery(
        best_cosine=tuple(best.tolist()),
        best_feature=tuple(index.tolist()),
        fraction_recovered=float((best >= threshold).double().mean()),
        threshold=float(threshold),
    )


def default_cache_dir() -> Path:
    """Returns $EDGEWISE_CACHE/saes, or ~/.cache/edgewise/saes."""
    return cache_root() / "saes"


def cached_sparse_autoencoder(
    activations: torch.Tensor,
    config: SAETrainingConfig,
    progress: bool = False,
    cache_dir: Path | None = None,
) -> SparseAutoencoder:
    """Returns the SAE train_with_config would train on these activations, from the cache when it holds one.

    Entries are SAELens folders keyed by a hash of the activations (bytes, shape, dtype) and the whole training
    config. One that cannot be read, or was saved for another key, is retrained and replaced with a CacheWarning
    naming the folder; a cache that cannot be written is warned about, and the trained SAE is returned all the same.

    Args:
        activations: the activations to fit [n, d_in], finite floating point.
        config: the training hyperparameters.
        progress: show a progress bar while training.
        cache_dir: the folder of cache entries; None: `$EDGEWISE_CACHE/saes`, or `~/.cache/edgewise/saes`.

    Returns:
        The SAE, on the activations' device.

    Raises:
        InvalidActivationsError: the activations are not a non-empty, finite, floating-point matrix.
    """
    # imported here: saelens.py imports this module for SparseAutoencoder
    from .saelens import load_saelens

    x = _checked_activations(activations)
    key = cache_key(activations, config)
    folder = (default_cache_dir() if cache_dir is None else Path(cache_dir)) / (
        f"sae-{config.architecture}-{config.d_sae}-{key}"
    )
    if folder.exists():
        try:
            sae, cfg = load_saelens(folder)
            _check_entry(cfg, key)
            return sae.to(x.device)  # where training would have put it
        except (SAEFormatError, _UnusableEntry) as problem:
            warnings.warn(
                f"SAE cache entry {folder} cannot be used ({problem}); retraining and replacing it",
                CacheWarning,
                stacklevel=2,
            )
    sae = train_with_config(x, config, progress)
    _save(sae, folder, key, config)
    return sae


def cache_key(activations: torch.Tensor, config: SAETrainingConfig) -> str:
    """Returns a hash of the activations' bytes, shape and dtype, the training config, the cache format and the
    edgewise version: what decides the trained weights."""
    from importlib.metadata import version

    digest = hashlib.sha256()
    raw = activations.detach().cpu().contiguous().reshape(-1).view(torch.uint8)  # any dtype, bfloat16 included
    digest.update(
        json.dumps(
            [list(activations.shape), str(activations.dtype), asdict(config), CACHE_FORMAT, version("edgewise")]
        ).encode()
    )
    digest.update(raw.numpy().tobytes())
    return digest.hexdigest()[:16]


class _UnusableEntry(Exception):
    """A readable SAELens folder that is not the entry for this key; the message says why."""


def _check_entry(cfg: dict, key: str) -> None:
    """Returns nothing; raises _UnusableEntry unless the folder's cfg says this cache saved it for `key`."""
    metadata = cfg.get("metadata")
    found = metadata.get("edgewise_cache_key") if isinstance(metadata, dict) else None
    if found != key:
        raise _UnusableEntry(f"it was saved for key {found!r}, not {key!r} (a folder of another SAE, copied?)")


def _save(sae: SparseAutoencoder, folder: Path, key: str, config: SAETrainingConfig) -> None:
    """Returns nothing; writes `sae` to `folder` atomically (a temporary folder beside it, renamed into place), or
    warns (CacheWarning) when the cache cannot be written: the trained SAE is kept either way."""
    from .saelens import save_saelens

    tmp = folder.with_name(f".{folder.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        written = save_saelens(sae, tmp, hook_name=None, edgewise_cache_key=key, edgewise_training=asdict(config))
        for path in written:  # on disk before the rename, or a crash could leave a renamed, empty entry
            _fsync(path)
        if folder.is_dir():  # the unusable entry this call could not load
            shutil.rmtree(folder)
        folder.unlink(missing_ok=True)  # or a file in its place
        os.rename(tmp, folder)
    except (OSError, OutputPathError) as err:  # save_saelens's atomic writer reports OSError as OutputPathError
        warnings.warn(
            f"could not write SAE cache entry {folder} ({type(err).__name__}: {err}); the SAE is trained but will be "
            f"trained again next time. Make {folder.parent} writable, or pass another cache_dir (or set "
            f"EDGEWISE_CACHE)",
            CacheWarning,
            stacklevel=3,
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # nothing left to remove once renamed


def _fsync(path: Path) -> None:
    """Returns nothing; flushes the file at `path` to disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
