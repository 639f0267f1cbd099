"""The code keeps the style its linter and formatter set (pyproject.toml's [tool.ruff]): line length, import order,
no unused or undefined names. Fix a failure with `.venv/bin/ruff format` and `.venv/bin/ruff check --fix`."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUFF = Path(sys.executable).parent / "ruff"


def _ruff(*args: str) -> subprocess.CompletedProcess:
    if not RUFF.exists() and shutil.which("ruff") is None:
        pytest.fail("ruff is not installed: `./scripts/setup --test` installs it (the test extra pins it)")
    ruff = str(RUFF) if RUFF.exists() else "ruff"
    return subprocess.run([ruff, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_ruff_check_passes():
    result = _ruff("check", "--output-format", "concise", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_leaves_every_file_as_it_is():
    result = _ruff("format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr
