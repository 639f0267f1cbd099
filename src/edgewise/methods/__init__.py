"""Circuit-discovery methods: one module each, all with one signature, all in one registry.

    registry.py         the registry: `register`, `get_method`, `method_names`, presets, each method's circuit rule
    hyperparameters.py  a method's config from a preset and overrides (text from the command line converted)
    discovery.py        `discover`: one method on one graph and ablation, with its checks; `lambda_sweep`
    hard_concrete.py    the hard-concrete (L0) gates of subnetwork probing and the removal mask
    subnetwork_probing.py, acdc.py, attribution.py, random_baseline.py: the methods

Adding a method is adding one file to this folder that calls `@register`.
"""

from . import hard_concrete
from .discovery import check_metric, check_scores, discover, frozen_weights, lambda_sweep
from .hyperparameters import make_config, resolve_config
from .registry import (
    METHODS,
    PRESETS,
    CircuitRule,
    Method,
    MethodFn,
    get_method,
    method_circuit,
    method_names,
    preset_hyperparameters,
    register,
    top_k_circuit,
)

__all__ = [
    "METHODS",
    "PRESETS",
    "CircuitRule",
    "Method",
    "MethodFn",
    "check_metric",
    "check_scores",
    "discover",
    "frozen_weights",
    "get_method",
    "hard_concrete",
    "lambda_sweep",
    "make_config",
    "method_circuit",
    "method_names",
    "preset_hyperparameters",
    "register",
    "resolve_config",
    "top_k_circuit",
]
