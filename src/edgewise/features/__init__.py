"""The feature stage: sparse autoencoders (the model, training, measures, a cache), SAELens's folder format, and the
dictionary sets a task's writers are split by (`--features sae:DIR` loads SAEs, `--features train` fits them on the
task's own writer outputs). Feature graphs themselves are graphs (`edgewise.graph.Dictionary`, `feature_graph`)."""

from .sae import (
    DirectionRecovery,
    SAEStatistics,
    SAETrainingConfig,
    SparseAutoencoder,
    cached_sparse_autoencoder,
    direction_recovery,
    sae_statistics,
    train_sparse_autoencoder,
    train_with_config,
)
from .saelens import load_saelens, save_saelens
from .sets import TRAINED, add_sae_features, add_trained_features, matched_truth, writer_outputs

__all__ = [
    "TRAINED",
    "DirectionRecovery",
    "SAEStatistics",
    "SAETrainingConfig",
    "SparseAutoencoder",
    "add_sae_features",
    "add_trained_features",
    "cached_sparse_autoencoder",
    "direction_recovery",
    "load_saelens",
    "matched_truth",
    "sae_statistics",
    "save_saelens",
    "train_sparse_autoencoder",
    "train_with_config",
    "writer_outputs",
]
