"""SAELens's on-disk SAE format, read and written, so SAEs trained with SAELens (or published with it) plug into
edgewise and edgewise's SAEs load in SAELens.

A SAELens SAE is a folder holding `cfg.json` and `sae_weights.safetensors`, whose tensors are W_enc [d_in, d_sae],
b_enc [d_sae], W_dec [d_sae, d_in] and b_dec [d_in]. SAELens 6 nests what the SAE was trained on under
cfg["metadata"] (hook_name, model_name, ...) and says which layout a cfg uses by metadata.sae_lens_version; SAELens
3-5 kept those fields at the top level, named the activation function in `activation_fn_str` (earlier
`activation_fn`) and a topk SAE's k in `activation_fn_kwargs`. load_saelens reads both layouts and returns the cfg
in the 6 layout, as SAELens 6 does; save_saelens writes the 6 layout.

Supported: "standard" (ReLU) and "topk" SAEs, with b_dec subtracted from the input or not (apply_b_dec_to_input),
and topk's rescale_acts_by_decoder_norm, folded into the weights on load. Anything else raises SAEFormatError:
other architectures (jumprelu's thresholds, gated SAEs, transcoders), normalize_activations other than "none",
hook_z reshaping, and a finetuning scaling factor other than ones.

Every folder is checked as it loads: cfg fields of the right types and ranges (SAEConfigError), and weights that are
all finite (NonFiniteSAEWeightsError; an encoder of NaN would otherwise leave an SAE with no active feature). Whether
`hook_head_index` is one of the hook's heads is known only with the model: `edgewise.features.add_sae_features`
checks it where it attaches the SAE to a writer.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..errors import NonFiniteSAEWeightsError, SAEConfigError, SAEFormatError
from ..outputs import atomic_path, write_text
from .sae import SparseAutoencoder

CFG_FILENAME = "cfg.json"
WEIGHTS_FILENAME = "sae_weights.safetensors"
WEIGHT_NAMES = ("W_enc", "b_enc", "W_dec", "b_dec")
# written as metadata.sae_lens_version: SAELens reads a cfg in the 6 layout only when that version is 6 or later
FORMAT_VERSION = "6.0.0"
ARCHITECTURES = {"standard": "relu", "topk": "topk"}  # SAELens's name -> edgewise's
DTYPES = {
    name: dtype
    for dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16)
    for name in (str(dtype).removeprefix("torch."), str(dtype))  # SAELens writes both "float32" and "torch.float32"
}
# Pre-6 field names SAELens 6 renames, and the top-level fields it moves under metadata (SAELens's
# LLM_METADATA_KEYS), with hook_layer, which SAELens 6 drops but which says where the SAE reads
PRE_6_RENAMES = {
    "hook_point": "hook_name",
    "hook_point_head_index": "hook_head_index",
    "hook_point_layer": "hook_layer",
    "activation_fn_str": "activation_fn",
}
METADATA_KEYS = (
    "model_name",
    "hook_name",
    "hook_layer",
    "model_class_name",
    "hook_head_index",
    "model_from_pretrained_kwargs",
    "prepend_bos",
    "exclude_special_tokens",
    "neuronpedia_id",
    "context_size",
    "seqpos_slice",
    "dataset_path",
    "sae_lens_version",
    "sae_lens_training_version",
    "hook_name_out",
    "hook_head_index_out",
)


def save_saelens(sae: SparseAutoencoder, folder: str | Path, hook_name: str | None, **metadata) -> tuple[Path, Path]:
    """Returns the paths of the weights and cfg written to `folder` in SAELens 6's layout; `hook_name` (the hook
    the SAE reads, None if unknown) and `metadata` (JSON values: model_name, ...) go under cfg["metadata"].

    Args:
        sae: the SAE to write; its weights are written from the CPU, in their dtype.
        folder: the folder to write into; created if missing.
        hook_name: the hook the SAE reads, or None.
        **metadata (object): more fields for cfg["metadata"], JSON values only.

    Returns:
        The paths of `sae_weights.safetensors` and `cfg.json`.
    """
    folder = Path(folder)
    cfg = saelens_cfg(sae, hook_name, **metadata)
    text = json.dumps(cfg)  # before anything is written: metadata that is not JSON leaves no half-written folder
    folder.mkdir(parents=True, exist_ok=True)
    weights_path, cfg_path = folder / WEIGHTS_FILENAME, folder / CFG_FILENAME
    with atomic_path(weights_path) as temporary:
        save_file({name: getattr(sae, name).detach().cpu().contiguous() for name in WEIGHT_NAMES}, temporary)
    write_text(cfg_path, text)
    return weights_path, cfg_path


def saelens_cfg(sae: SparseAutoencoder, hook_name: str | None, **metadata) -> dict:
    """Returns the cfg.json SAELens 6 writes for this SAE, its fields in SAELens's order."""
    cfg = {
        "d_in": sae.d_in,
        "d_sae": sae.d_sae,
        "dtype": str(sae.W_enc.dtype).removeprefix("torch."),
        "device": str(sae.W_enc.device),
        "apply_b_dec_to_input": sae.apply_b_dec_to_input,
        "normalize_activations": "none",
        "reshape_activations": "none",
        "metadata": {
            "sae_lens_version": FORMAT_VERSION,
            "sae_lens_training_version": None,
            "hook_name": hook_name,
            **metadata,
        },
    }
    if sae.architecture == "topk":
        cfg |= {"k": sae.k, "rescale_acts_by_decoder_norm": False}  # edgewise's decoder is used as it is
    return cfg | {"architecture": {ours: theirs for theirs, ours in ARCHITECTURES.items()}[sae.architecture]}


def load_saelens(folder: str | Path) -> tuple[SparseAutoencoder, dict]:
    """Returns the SAE in a SAELens folder, on the CPU in the cfg's dtype, and its cfg in SAELens 6's layout (the
    hook it reads is `cfg["metadata"]["hook_name"]`).

    Args:
        folder: a SAELens folder holding `cfg.json` and `sae_weights.safetensors`, in SAELens 6's layout or an
            earlier (3-5) one.

    Returns:
        The SAE (a `topk` SAE with rescale_acts_by_decoder_norm folded into its weights) and its cfg.

    Raises:
        SAEFormatError: the folder, its cfg or its weights are missing or unreadable, or describe an SAE edgewise
            does not support (see the module's docstring).
        SAEConfigError: a cfg field of the wrong type or out of range (d_in, d_sae, dtype, architecture, metadata
            not an object, hook_name not a string, hook_head_index not an integer >= 0).
        NonFiniteSAEWeightsError: a weight tensor holds NaN or infinite entries.
    """
    folder = Path(folder)
    cfg = _read_cfg(folder)
    _check_metadata_type(cfg, folder)  # before the layout is read from it
    cfg = _in_6_layout(cfg, folder)
    _check_hook_fields(cfg.get("metadata", {}), folder)
    d_in, d_sae = _size(cfg, "d_in", folder), _size(cfg, "d_sae", folder)
    architecture, k = _architecture(cfg, d_sae, folder)
    for name in ("normalize_activations", "reshape_activations"):
        if cfg.get(name, "none") != "none":
            raise SAEFormatError(
                f"{folder / CFG_FILENAME}: {name}={cfg[name]!r} is not supported; edgewise feeds an SAE the hook's "
                f"activations as they are, so it loads SAEs with {name}='none' (SAELens folds an activation norm "
                f"scaling factor into the weights with fold_activation_norm_scaling_factor)"
            )
    apply_b_dec_to_input = cfg.get("apply_b_dec_to_input", True)
    if not isinstance(apply_b_dec_to_input, bool):
        raise SAEConfigError(
            f"{folder / CFG_FILENAME}: apply_b_dec_to_input must be true or false, got {apply_b_dec_to_input!r}"
        )
    dtype_name = cfg.get("dtype", "float32")
    dtype = DTYPES.get(dtype_name) if isinstance(dtype_name, str) else None
    if dtype is None:
        raise SAEConfigError(
            f"{folder / CFG_FILENAME}: dtype {cfg['dtype']!r} is not one SAELens writes; supported: "
            f"{', '.join(sorted(DTYPES))}"
        )
    weights = _read_weights(folder, d_in, d_sae, dtype)
    rescale = cfg.get("rescale_acts_by_decoder_norm", False)
    if not isinstance(rescale, bool):
        raise SAEConfigError(
            f"{folder / CFG_FILENAME}: rescale_acts_by_decoder_norm must be true or false, got {rescale!r}"
        )
    if architecture == "topk" and rescale:
        _fold_decoder_norm(weights)
    sae = SparseAutoencoder(d_in, d_sae, architecture, k, apply_b_dec_to_input).to(dtype)
    sae.load_state_dict(weights)
    return sae, cfg


def _read_cfg(folder: Path) -> dict:
    """Returns the folder's cfg.json as a dict; raises SAEFormatError if it is missing, unreadable or not an object."""
    path = folder / CFG_FILENAME
    if not folder.is_dir():
        raise SAEFormatError(
            f"{folder} is not a folder; a SAELens SAE is a folder holding {CFG_FILENAME} and {WEIGHTS_FILENAME}"
        )
    try:
        cfg = json.loads(path.read_text())
    except FileNotFoundError:
        raise SAEFormatError(
            f"{folder} has no {CFG_FILENAME}; a SAELens SAE is a folder holding {CFG_FILENAME} and {WEIGHTS_FILENAME}"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SAEFormatError(f"{path} cannot be read as JSON ({type(err).__name__}: {err})") from err
    if not isinstance(cfg, dict):
        raise SAEFormatError(f"{path} holds a JSON {type(cfg).__name__}, not the object of an SAE's config")
    return cfg


def _in_6_layout(cfg: dict, folder: Path) -> dict:
    """Returns the cfg in SAELens 6's layout: a 6 cfg as it is, a pre-6 (3-5) one converted as SAELens 6 does."""
    metadata = cfg.get("metadata")
    version = (metadata.get("sae_lens_version") if isinstance(metadata, dict) else None) or cfg.get("sae_lens_version")
    if version is not None and _major(version, folder) >= 6:
        return cfg
    cfg = {PRE_6_RENAMES.get(name, name): value for name, value in cfg.items()}
    architecture = cfg.get("architecture", "standard")
    activation = cfg.get("activation_fn", "relu")
    if activation == "topk":  # SAELens 5 marked topk SAEs by their activation function
        architecture = "topk"
    elif activation != "relu":
        raise SAEFormatError(
            f"{folder / CFG_FILENAME}: activation_fn {activation!r} is not supported; edgewise loads SAEs with "
            f"'relu' and 'topk' activations"
        )
    normalize = cfg.get("normalize_activations")
    if isinstance(normalize, bool):  # SAELens 3's switch for what SAELens 5 calls expected_average_only_in
        normalize = "expected_average_only_in" if normalize else "none"
    converted = {
        "d_in": cfg.get("d_in"),
        "d_sae": cfg.get("d_sae"),
        "dtype": cfg.get("dtype", "float32"),
        "device": cfg.get("device", "cpu"),
        "apply_b_dec_to_input": cfg.get("apply_b_dec_to_input", True),
        "normalize_activations": normalize or "none",
        # SAELens 6's default for pre-6 SAEs: those on attention's z flatten its heads
        "reshape_activations": cfg.get(
            "reshape_activations", "hook_z" if "hook_z" in str(cfg.get("hook_name")) else "none"
        ),
        "metadata": {name: cfg[name] for name in METADATA_KEYS if name in cfg},
    }
    if architecture == "topk":
        kwargs = cfg.get("activation_fn_kwargs")
        converted["k"] = kwargs.get("k") if isinstance(kwargs, dict) else None
    return converted | {"architecture": architecture}


def _major(version, folder: Path) -> int:
    """Returns the major number of a SAELens version string ("6.0.0-rc.0" -> 6)."""
    head = str(version).split(".")[0]
    if not head.isdigit():
        raise SAEFormatError(
            f"{folder / CFG_FILENAME}: sae_lens_version {version!r} is not a SAELens version such as '6.18.0'"
        )
    return int(head)


def _check_metadata_type(cfg: dict, folder: Path) -> None:
    """Returns nothing; raises SAEConfigError when the cfg has a `metadata` field that is not a JSON object."""
    metadata = cfg.get("metadata", {})
    if not isinstance(metadata, dict):
        raise SAEConfigError(
            f"{folder / CFG_FILENAME}: metadata must be a JSON object (SAELens 6 keeps hook_name, model_name, ... "
            f"there), got a JSON {_json_type(metadata)}: {metadata!r}; write it as "
            f'{{"hook_name": "...", "sae_lens_version": "{FORMAT_VERSION}", ...}}'
        )


def _check_hook_fields(metadata: dict, folder: Path) -> None:
    """Returns nothing; raises SAEConfigError unless the metadata's hook_name is a string (or null) and its
    hook_head_index an integer >= 0 (or null). Whether the head exists is known only with the model."""
    hook = metadata.get("hook_name")
    if hook is not None and not isinstance(hook, str):
        raise SAEConfigError(
            f"{folder / CFG_FILENAME}: hook_name must name the hook the SAE reads (a string such as "
            f"'blocks.0.hook_mlp_out'), got {hook!r}"
        )
    head = metadata.get("hook_head_index")
    if head is not None and (not isinstance(head, int) or isinstance(head, bool) or head < 0):
        raise SAEConfigError(
            f"{folder / CFG_FILENAME}: hook_head_index must be the index of one attention head (an integer >= 0) "
            f"or null, got {head!r}"
        )


def _json_type(value) -> str:
    """Returns the JSON name of a value json.loads made (`array`, `string`, ...)."""
    names = {list: "array", str: "string", bool: "boolean", int: "number", float: "number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _size(cfg: dict, name: str, folder: Path) -> int:
    """Returns the cfg's `name` (d_in or d_sae); raises SAEConfigError unless it is an integer >= 1."""
    value = cfg.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise SAEConfigError(f"{folder / CFG_FILENAME}: {name} must be an integer >= 1, got {value!r}")
    return value


def _architecture(cfg: dict, d_sae: int, folder: Path) -> tuple[str, int | None]:
    """Returns edgewise's architecture and k for the cfg; raises SAEFormatError for an architecture edgewise does not
    implement or a topk SAE without a valid k."""
    theirs = cfg.get("architecture")
    if not isinstance(theirs, str):
        raise SAEConfigError(
            f"{folder / CFG_FILENAME}: architecture must be a string, got {theirs!r}; edgewise loads "
            f"{' and '.join(map(repr, ARCHITECTURES))} SAEs"
        )
    if theirs not in ARCHITECTURES:
        hint = " (jumprelu's per-feature thresholds are not implemented)" if theirs == "jumprelu" else ""
        raise SAEFormatError(
            f"{folder / CFG_FILENAME}: architecture {theirs!r} is not supported{hint}; edgewise loads "
            f"{' and '.join(map(repr, ARCHITECTURES))} SAEs"
        )
    if theirs != "topk":
        return ARCHITECTURES[theirs], None
    k = cfg.get("k")
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= d_sae:
        raise SAEConfigError(
            f"{folder / CFG_FILENAME}: a topk SAE needs k, an integer in 1..d_sae={d_sae} (before SAELens 6: "
            f'"activation_fn_kwargs": {{"k": ...}}); got {k!r}'
        )
    return "topk", k


def _read_weights(folder: Path, d_in: int, d_sae: int, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Returns W_enc, b_enc, W_dec and b_dec from the folder's safetensors file, in `dtype`; raises SAEFormatError
    when the file is missing or unreadable, a tensor is missing or misshapen, or others change the computation, and
    NonFiniteSAEWeightsError when a tensor holds NaN or infinite entries."""
    path = folder / WEIGHTS_FILENAME
    if not path.is_file():
        raise SAEFormatError(
            f"{folder} has no {WEIGHTS_FILENAME}; a SAELens SAE is a folder holding {CFG_FILENAME} and "
            f"{WEIGHTS_FILENAME}"
        )
    try:
        tensors = load_file(path)
    except Exception as err:  # safetensors reports a damaged file as SafetensorError, and some as OSError
        raise SAEFormatError(f"{path} cannot be read as safetensors ({type(err).__name__}: {err})") from err
    # SAELens wrote a finetuning scaling factor of ones for a while; ones change nothing, anything else would
    scaling = tensors.pop("scaling_factor", None)
    if scaling is not None and not torch.equal(scaling, torch.ones_like(scaling)):
        raise SAEFormatError(
            f"{path}: scaling_factor (SAELens's finetuning scaling of the features) is not supported unless it is all "
            f"ones"
        )
    expected = {"W_enc": (d_in, d_sae), "b_enc": (d_sae,), "W_dec": (d_sae, d_in), "b_dec": (d_in,)}
    missing = [name for name in expected if name not in tensors]
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        hint = " (threshold is a jumprelu SAE's)" if "threshold" in extra else ""
        raise SAEFormatError(
            f"{path}: a standard or topk SAE holds exactly {', '.join(expected)}; missing {missing}, unexpected "
            f"{extra}{hint}"
        )
    for name, shape in expected.items():
        if tuple(tensors[name].shape) != shape:
            raise SAEFormatError(
                f"{path}: {name} has shape {tuple(tensors[name].shape)}, but d_in={d_in} and d_sae={d_sae} in "
                f"{CFG_FILENAME} make it {shape}"
            )
    weights = {name: tensors[name].to(dtype) for name in expected}
    bad = []
    for name, tensor in weights.items():
        n_bad = int((~torch.isfinite(tensor)).sum())
        if n_bad:
            # checked after the cast: a float32 value beyond float16's range is inf once the cfg's dtype holds it
            overflow = (
                f" (finite in the file, beyond {dtype}'s range)" if bool(torch.isfinite(tensors[name]).all()) else ""
            )
            bad.append(f"{name} has {n_bad} of {tensor.numel()} entries NaN or infinite{overflow}")
    if bad:
        raise NonFiniteSAEWeightsError(
            f"{path}: {'; '.join(bad)}. An SAE with such weights encodes NaN, so the writer it splits would get no "
            "usable feature; load a finite checkpoint instead (a training run that diverged saves NaN: take its last "
            "finite save)"
        )
    return weights


def _fold_decoder_norm(weights: dict[str, torch.Tensor]) -> None:
    """Returns nothing; rewrites, in place, a topk SAE trained with rescale_acts_by_decoder_norm (pre-activations
    times each decoder row's norm, features divided by it before decoding) as the plain SAE that computes the same:
    encoder columns and b_enc times the norms, decoder rows divided by them, as SAELens's _fold_norm_topk does."""
    norms = weights["W_dec"].norm(dim=-1)  # [d_sae]
    weights["W_enc"] = weights["W_enc"] * norms
    weights["b_enc"] = weights["b_enc"] * norms
    # a zero row stays zero: its feature's pre-activation is 0 * anything, and 0 / 0 would put NaN in the decoder
    weights["W_dec"] = weights["W_dec"] / norms.where(norms > 0, torch.ones_like(norms))[:, None]
