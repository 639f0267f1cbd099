"""The benchmark pages under docs/results/ are what benchmarks/render_tables.py renders from benchmarks/results/*.json:
rendered afresh, every committed page must be the same, and a changed JSON value must change its page.

Pure Python, no torch and no edgewise: the renderer reads JSON and asks git for the commit that last changed each
file."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PAGES = ROOT / "docs" / "results"


def _renderer():
    """Imports benchmarks/render_tables.py (benchmarks/ is no package)."""
    spec = importlib.util.spec_from_file_location("render_tables", ROOT / "benchmarks" / "render_tables.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


render_tables = _renderer()


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def test_committed_pages_are_what_the_json_renders(tmp_path):
    # the pages name the commit that last changed each JSON file: a shallow clone or an export has no such history
    if _git("rev-parse", "--is-shallow-repository") != "false":
        pytest.skip("needs the repository's full git history (not a shallow clone or an export)")
    pages = render_tables.render_all(RESULTS, tmp_path)
    render_tables.write(pages, tmp_path)
    rendered = sorted(p.name for p in tmp_path.glob("*.md"))
    assert rendered, "render_tables.py rendered no pages"
    committed = sorted(p.name for p in PAGES.glob("*.md") if render_tables.is_generated(p))
    stale = [
        f"docs/results/{name}"
        for name in sorted(set(rendered) | set(committed))
        if not (PAGES / name).exists()
        or not (tmp_path / name).exists()
        or (PAGES / name).read_text() != (tmp_path / name).read_text()
    ]
    uncommitted = [
        render_tables.Provenance(RESULTS).label(p)
        for p in sorted(RESULTS.rglob("*.json"))
        if render_tables.Provenance(RESULTS).commit(p) is None
    ]
    assert not stale, (
        f"{', '.join(stale)} differ from what benchmarks/render_tables.py renders from benchmarks/results/: run "
        "`python benchmarks/render_tables.py` and commit docs/results/"
        + (f" (commit the changed JSON first: {', '.join(uncommitted)})" if uncommitted else "")
    )


def test_a_changed_value_changes_its_page(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(RESULTS, results)
    before = render_tables.render_all(results, tmp_path / "before")

    path = results / "patching_overhead.json"
    data = json.loads(path.read_text())
    data["results"][0]["ratio_masked_over_plain"] = 9.876
    path.write_text(json.dumps(data))
    after = render_tables.render_all(results, tmp_path / "after")

    changed = [p.name for p in before if before[p] != after[tmp_path / "after" / p.name]]
    assert changed == ["speed.md"]
    assert "| 9.88 |" in after[tmp_path / "after" / "speed.md"]
    assert "| 9.88 |" not in before[tmp_path / "before" / "speed.md"]


def test_pages_say_where_their_numbers_come_from(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(RESULTS, results)  # outside any repository: every file uncommitted
    pages = render_tables.render_all(results, tmp_path / "out")
    for path, text in pages.items():
        assert text.startswith(render_tables.GENERATED), path.name
        if path.name != "index.md":
            assert "Run: `benchmarks/results/" in text, path.name
            assert "commit: uncommitted" in text, path.name
    peers = pages[tmp_path / "out" / "peers.md"]
    assert "date 2026-12-03 (recorded in the run); commit: uncommitted" in peers


def test_check_exits_1_naming_a_page_that_differs(tmp_path, capsys):
    out = tmp_path / "out"
    assert render_tables.main(["--out", str(out)]) == 0
    assert render_tables.main(["--check", "--out", str(out)]) == 0
    (out / "startup.md").write_text((out / "startup.md").read_text() + "edited by hand\n")
    assert render_tables.main(["--check", "--out", str(out)]) == 1
    assert "startup.md (differs)" in capsys.readouterr().err
