"""Shared fixtures: built-in tracr tasks (compiled once, then cached on disk), SmolLM2 (loaded once per run), a
random LayerNorm model, and the command line run in-process (and, for smoke tests, as a user runs it)."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from dataclasses import dataclass

import pytest
import torch

from edgewise.models import Transformer, TransformerConfig

# One thread per torch: the suite's tensors are small, and two threads on a shared 2-core machine thrash. Tests
# marked slow (SmolLM2's 30 layers) get the machine's cores back, unless pytest-xdist runs one worker per core.
torch.set_num_threads(1)
SLOW_TEST_THREADS = 1 if os.environ.get("PYTEST_XDIST_WORKER") else min(2, os.cpu_count() or 1)
# tracr's compiler runs its model op by op while assembling it, and XLA compiles each op: unoptimised code compiles
# faster, and these models are tiny. Set before jax is imported.
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")


@pytest.fixture(autouse=True)
def _threads_for_slow_tests(request):
    if request.node.get_closest_marker("slow") is None:
        yield
        return
    torch.set_num_threads(SLOW_TEST_THREADS)
    yield
    torch.set_num_threads(1)


_TASKS: dict = {}


def tracr(name: str):
    """Returns the built-in task `name`, built once per test session."""
    from edgewise.suite.tasks.tracr import get_task  # imports tracr and jax: only for the tests that use tracr tasks

    if name not in _TASKS:
        _TASKS[name] = get_task(name)
    return _TASKS[name]


@pytest.fixture(scope="session")
def reverse():
    return tracr("tracr-reverse")


@pytest.fixture(scope="session")
def proportion():
    return tracr("tracr-proportion")


def random_transformer(seed: int = 0, n_kv_heads: int | None = 2, normalization: bool = True) -> Transformer:
    """Returns a randomly initialised 3-layer model with LayerNorm, 4 query heads and (by default) GQA."""
    cfg = TransformerConfig(
        n_layers=3,
        d_model=32,
        n_heads=4,
        d_head=8,
        d_mlp=64,
        d_vocab=20,
        d_vocab_out=20,
        n_ctx=12,
        n_key_value_heads=n_kv_heads,
        normalization=normalization,
        act_fn="gelu",
    )
    model = Transformer(cfg)
    model.init_weights(seed=seed, std=0.3)
    with torch.no_grad():  # non-zero biases, so "what no writer produced" is tested too
        g = torch.Generator().manual_seed(seed + 1)
        for name, p in model.named_parameters():
            if name.split(".")[-1].startswith("b"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return model.eval()


@pytest.fixture(scope="session")
def random_model():
    return random_transformer()


@pytest.fixture(scope="session")
def random_batches():
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 20, (5, 9), generator=g), torch.randint(0, 20, (5, 9), generator=g)


def pairwise_auroc(values, labels) -> float:
    """Returns P(a true item outscores a false one), ties one half, by brute force over every pair: the reference
    for every AUROC edgewise computes."""
    values = [float(v) for v in values]
    true = [v for v, label in zip(values, labels) if label]
    other = [v for v, label in zip(values, labels) if not label]
    wins = sum(1.0 if t > o else 0.5 if t == o else 0.0 for t in true for o in other)
    return wins / (len(true) * len(other))


@dataclass
class CliResult:
    """What one command-line call printed and returned, as `subprocess.CompletedProcess` names them."""

    returncode: int
    stdout: str
    stderr: str


def run_edgewise(*args: str) -> CliResult:
    """Runs `edgewise ARGS` in this process (`cli.main`), capturing what it prints; argparse's exits count as exit
    statuses. Start-up is paid once per test run, not once per call."""
    from edgewise.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
    return CliResult(code, out.getvalue(), err.getvalue())


def run_edgewise_process(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """Runs the command line as a user would, in a fresh interpreter (for the few smoke tests of start-up)."""
    return subprocess.run(
        [sys.executable, "-m", "edgewise.cli", *args], capture_output=True, text=True, timeout=timeout
    )


_SMOLLM2: dict = {}


def _load_smollm2_once(cache_dir=None):
    """load_smollm2, but one booted model per test run: 135M parameters take seconds to boot and 1 GB to hold."""
    from edgewise.suite.models.pretrained import load_smollm2

    if cache_dir is not None:
        return load_smollm2(cache_dir)
    if "model" not in _SMOLLM2:
        _SMOLLM2["model"] = load_smollm2()
    return _SMOLLM2["model"]


@pytest.fixture(scope="session", autouse=True)
def _one_smollm2_per_run():
    """Every SmolLM2 task built in the run (`get_task("smollm2-ioi")`, `edgewise tasks`) shares the one SmolLM2."""
    from edgewise.suite.tasks.lm import ioi, self_text, templated

    modules = (ioi, templated, self_text)
    real = [module.load_smollm2 for module in modules]
    for module in modules:
        module.load_smollm2 = _load_smollm2_once
    yield
    for module, load in zip(modules, real):
        module.load_smollm2 = load


@pytest.fixture(scope="session")
def smollm2():
    """SmolLM2-135M-Instruct through TransformerBridge, loaded once per test run (skipped if not installed)."""
    from edgewise.errors import PretrainedModelMissingError

    try:
        return _load_smollm2_once()
    except PretrainedModelMissingError as err:
        pytest.skip(str(err))


@pytest.fixture(scope="session")
def ioi_task(smollm2):
    """IOI on the session's SmolLM2."""
    from edgewise.suite.tasks.lm.ioi import smollm2_ioi_task

    return smollm2_ioi_task(loaded=smollm2)
