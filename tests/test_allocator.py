"""The allocator setting against the kernel's own count of page faults: a forward of a mid-sized model on the CPU
maps no fresh memory once the patching forward has run (thousands of faults per forward without it)."""

import os
import subprocess
import sys

import pytest

from edgewise.patching.allocator import keep_freed_memory

# Counts minor page faults over forwards of a 4-layer d_model 256 model (16 x 32 tokens), after the warm-up forwards
# that map what the process keeps; prints faults per forward.
FAULTS = """
import resource, torch
from edgewise.models.transformer import Transformer, TransformerConfig
from edgewise.patching.allocator import keep_freed_memory
kept = keep_freed_memory()
cfg = TransformerConfig(n_layers=4, d_model=256, n_heads=8, d_head=32, d_mlp=1024, d_vocab=1000, d_vocab_out=1000,
                        n_ctx=64, normalization=True, act_fn="gelu")
model = Transformer(cfg)
tokens = torch.randint(0, 1000, (16, 32), generator=torch.Generator().manual_seed(0))
with torch.no_grad():
    for _ in range(3):
        model(tokens)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        model(tokens)
print(kept, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5)
"""


def _faults(env: dict) -> tuple[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", FAULTS],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", **env},
    )
    kept, faults = done.stdout.split()
    return kept, float(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux") or not keep_freed_memory(), reason="glibc only")
def test_forwards_fault_in_no_fresh_memory_once_set():
    kept, faults = _faults({})
    assert kept == "True"
    assert faults < 2000  # without the setting: ~20,000 a forward (its activations, mapped afresh)


def test_opt_out_leaves_malloc_alone():
    kept, _ = _faults({"EDGEWISE_MALLOC": "system"})
    assert kept == "False"
