"""The command line's machine-readable contract, run as a user would run it."""

import json
import subprocess
import sys

import pytest


def edgewise(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgewise.cli", *args], capture_output=True, text=True, timeout=600)


def test_tasks_json_lists_every_task_with_its_sizes():
    result = edgewise("tasks", "--json")
    assert result.returncode == 0, result.stderr
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert len(rows) >= 10
    assert rows["tracr-reverse"]["n_edges"] == 77 and rows["tracr-reverse"]["n_layers"] == 4
    assert rows["tracr-proportion"]["n_edges"] == 23 and rows["tracr-proportion"]["n_ground_truth_edges"] == 5
    assert all({"name", "n_layers", "n_edges", "n_ground_truth_edges"} <= set(r) for r in rows.values())


@pytest.mark.parametrize("per_position", [False, True])
def test_graph_json_contract(tmp_path, per_position):
    out = tmp_path / "g.json"
    result = edgewise("graph", "tracr-reverse", "--json", str(out), *(["--per-position"] if per_position else []))
    assert result.returncode == 0, result.stderr
    record = json.loads(out.read_text())
    assert set(record) >= {"nodes", "edges", "ground_truth"}
    edges = {tuple(e) for e in record["edges"]}
    assert len(edges) == (308 if per_position else 77)
    assert {tuple(e) for e in record["ground_truth"]} <= edges
    assert (["Resid Start@1", "A3.0.V@1"] if per_position else ["Resid Start", "A3.0.V"]) in record["ground_truth"]
    assert all(w in record["nodes"] and r in record["nodes"] for w, r in edges)


def test_check_passes_on_a_tracr_task():
    result = edgewise("check", "tracr-proportion")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "patching checks passed" in result.stdout and "FAIL" not in result.stdout


def test_unknown_task_exits_with_a_clear_error():
    result = edgewise("graph", "tracr-revers")
    assert result.returncode == 2
    assert "unknown task 'tracr-revers'" in result.stderr and "tracr-reverse" in result.stderr


def test_demo_prints_and_plots(tmp_path):
    result = edgewise("demo", "--out", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ground-truth circuit" in result.stdout and "Resid Start->A3.0.V" in result.stdout
    for name in ("tracr-reverse-ground-truth.png", "tracr-reverse-edge-effects.svg", "demo.json"):
        assert (tmp_path / name).stat().st_size > 0
    assert json.loads((tmp_path / "demo.json").read_text())["needed_edges"]["resample"] == [
        "Resid Start->A3.0.V", "A3.0->Resid End"
    ]
