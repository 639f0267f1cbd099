"""The command line's machine-readable contract, run as a user would run it."""

import json
import subprocess
import sys

import pytest
from conftest import run_edgewise, run_edgewise_process

import edgewise


def test_tasks_json_lists_every_task_with_its_sizes():
    result = run_edgewise("tasks", "--json")
    assert result.returncode == 0, result.stderr
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert len(rows) >= 10
    assert rows["tracr-reverse"]["n_edges"] == 77 and rows["tracr-reverse"]["n_layers"] == 4
    assert rows["tracr-proportion"]["n_edges"] == 23 and rows["tracr-proportion"]["n_ground_truth_edges"] == 5
    assert all({"name", "n_layers", "n_edges", "n_ground_truth_edges", "n_held_out"} <= set(r) for r in rows.values())
    assert rows["tracr-reverse"]["n_held_out"] is None and rows["tracr-shift"]["n_held_out"] == 100
    compressed = rows["tracr-reverse-compressed"]  # the same graph, in 16 of 41 dimensions
    assert compressed["n_edges"] == 77 and compressed["d_model"] == 16
    assert compressed["compression"]["n_directions"] == 41 and compressed["compression"]["accuracy"] == 1.0
    assert rows["tracr-reverse"]["compression"] is None


@pytest.mark.parametrize("per_position", [False, True])
def test_graph_json_contract(tmp_path, per_position):
    out = tmp_path / "g.json"
    result = run_edgewise("graph", "tracr-reverse", "--json", str(out), *(["--per-position"] if per_position else []))
    assert result.returncode == 0, result.stderr
    record = json.loads(out.read_text())
    assert set(record) >= {"nodes", "edges", "ground_truth"}
    edges = {tuple(e) for e in record["edges"]}
    assert len(edges) == (308 if per_position else 77)
    assert {tuple(e) for e in record["ground_truth"]} <= edges
    assert (["Resid Start@1", "A3.0.V@1"] if per_position else ["Resid Start", "A3.0.V"]) in record["ground_truth"]
    assert all(w in record["nodes"] and r in record["nodes"] for w, r in edges)


@pytest.mark.parametrize("precision", [[], ["--float64"]])
def test_check_passes_on_a_tracr_task(precision):
    result = run_edgewise("check", "tracr-proportion", *precision)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "17/17 patching checks passed" in result.stdout
    assert "patching checks passed" in result.stdout and "FAIL" not in result.stdout


def test_unknown_task_exits_with_a_clear_error():
    result = run_edgewise("graph", "tracr-revers")
    assert result.returncode == 2
    assert "unknown task 'tracr-revers'" in result.stderr and "tracr-reverse" in result.stderr


def test_demo_discovers_explains_and_plots(tmp_path):
    result = run_edgewise("demo", "--out", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ground-truth circuit" in result.stdout and "constant on every input of the task" in result.stdout
    for ablation in ("resample", "zero"):
        for plot in ("edge-sp-circuit", "roc", "faithfulness"):
            assert (tmp_path / f"tracr-reverse-{ablation}-{plot}.png").stat().st_size > 0
    record = json.loads((tmp_path / "demo.json").read_text())
    sp = {r["ablation"]: r for r in record["runs"] if r["method"] == "edge-sp"}
    # The circuits docs/ground-truth.md derives by hand: 2 edges under resample; ACDC's 10 (+ one 6e-7 edge) under zero.
    assert sp["resample"]["circuit"] == [["Resid Start", "A3.0.V"], ["A3.0", "Resid End"]]
    assert len(sp["zero"]["circuit"]) in (10, 11) and sp["zero"]["faithfulness"] > 0.999
    assert record["diagnosis"]["ablations"]["resample"]["minimal_circuit"] == sp["resample"]["circuit"]
    acdc_zero = next(r for r in record["runs"] if r["method"] == "acdc" and r["ablation"] == "zero")
    assert sorted(acdc_zero["circuit"]) == sorted(record["diagnosis"]["ablations"]["zero"]["minimal_circuit"])


@pytest.fixture(scope="module")
def proportion_edges(tmp_path_factory) -> list[tuple[str, str]]:
    """The edges `edgewise graph tracr-proportion --json` names, in its order."""
    graph_file = tmp_path_factory.mktemp("graph") / "graph.json"
    assert run_edgewise("graph", "tracr-proportion", "--json", str(graph_file)).returncode == 0
    return [tuple(e) for e in json.loads(graph_file.read_text())["edges"]]


@pytest.mark.parametrize(
    "method", ["edge-sp", "node-sp", "acdc", "eap", "eap-ig-inputs", "eap-ig-activations", "random"]
)
def test_discover_json_contract(tmp_path, method, proportion_edges):
    """The issue's contract: {"method", "seconds", "scores": [[writer, reader, score], ...]} over the edges that
    `edgewise graph` names, read back independently of EdgeScores."""
    out = tmp_path / "scores.json"
    steps = ["--set", "steps=20"] if method.endswith("-sp") else []
    result = run_edgewise(
        "discover",
        "tracr-proportion",
        "--method",
        method,
        "--ablation",
        "resample",
        "--seed",
        "1",
        "--json",
        str(out),
        *steps,
    )
    assert result.returncode == 0, result.stderr
    record = json.loads(out.read_text())
    assert record["method"] == method and record["seconds"] >= 0
    assert [(w, r) for w, r, _ in record["scores"]] == proportion_edges
    assert all(isinstance(score, float) for _, _, score in record["scores"])


def test_discover_circuit_out_feeds_diagnose_and_a_bad_circuit_file_is_a_clear_error(tmp_path):
    circuit = tmp_path / "circuit.json"
    result = run_edgewise("discover", "tracr-reverse", "--method", "eap", "--top-k", "2", "--circuit-out", str(circuit))
    assert result.returncode == 0, result.stderr
    edges = {tuple(e) for e in json.loads(circuit.read_text())["edges"]}
    assert edges == {("Resid Start", "A3.0.V"), ("A3.0", "Resid End")}  # the resample circuit (docs/ground-truth.md)
    report = tmp_path / "diagnosis.json"
    assert run_edgewise("diagnose", "tracr-reverse", "--circuit", str(circuit), "--json", str(report)).returncode == 0
    (tmp_path / "bad.json").write_text('{"edge": []}')
    result = run_edgewise("diagnose", "tracr-reverse", "--circuit", str(tmp_path / "bad.json"))
    assert result.returncode == 2 and "cannot read" in result.stderr and "a circuit written by" in result.stderr
    assert "Traceback" not in result.stderr


def test_mib_export_and_import_round_trip_through_the_command_line(tmp_path):
    scores_file, circuit_file, mib_file = tmp_path / "s.json", tmp_path / "c.json", tmp_path / "m.json"
    result = run_edgewise(
        "discover",
        "tracr-proportion",
        "--method",
        "eap",
        "--json",
        str(scores_file),
        "--circuit-out",
        str(circuit_file),
    )
    assert result.returncode == 0, result.stderr
    result = run_edgewise(
        "export", str(scores_file), "--format", "mib", "--out", str(mib_file), "--circuit", str(circuit_file)
    )
    assert result.returncode == 0, result.stderr
    record = json.loads(mib_file.read_text())
    assert record["cfg"] == {"n_layers": 2, "n_heads": 1, "parallel_attn_mlp": False, "d_model": 14}
    assert len(record["edges"]) == 23
    circuit = json.loads(circuit_file.read_text())["edges"]
    assert sum(e["in_graph"] for e in record["edges"].values()) == len(circuit)
    back, back_circuit = tmp_path / "s2.json", tmp_path / "c2.json"
    result = run_edgewise(
        "import", str(mib_file), "--task", "tracr-proportion", "--out", str(back), "--circuit-out", str(back_circuit)
    )
    assert result.returncode == 0, result.stderr
    original = {(w, r): s for w, r, s in json.loads(scores_file.read_text())["scores"]}
    imported = {(w, r): s for w, r, s in json.loads(back.read_text())["scores"]}
    assert imported == original
    assert sorted(json.loads(back_circuit.read_text())["edges"]) == sorted(circuit)
    result = run_edgewise("import", str(mib_file), "--task", "tracr-reverse", "--out", str(back))
    assert result.returncode == 2 and "n_layers=2" in result.stderr
    assert run_edgewise("export", str(scores_file), "--out", str(mib_file)).returncode == 0
    # by default the method's own circuit, as discover reported it (EAP: top k, k the effective truth's size)
    assert sum(e["in_graph"] for e in json.loads(mib_file.read_text())["edges"].values()) == len(circuit)
    acdc_scores, acdc_circuit = tmp_path / "acdc.json", tmp_path / "acdc-circuit.json"
    assert (
        run_edgewise(
            "discover",
            "tracr-proportion",
            "--method",
            "acdc",
            "--json",
            str(acdc_scores),
            "--circuit-out",
            str(acdc_circuit),
        ).returncode
        == 0
    )
    assert run_edgewise("export", str(acdc_scores), "--out", str(mib_file)).returncode == 0
    in_graph = sum(e["in_graph"] for e in json.loads(mib_file.read_text())["edges"].values())
    assert in_graph == len(json.loads(acdc_circuit.read_text())["edges"])  # ACDC: the edges it kept


def test_start_up_imports_nothing_heavy_and_the_entry_point_runs():
    """`edgewise --help` must not pay for torch, transformers or jax (timed in benchmarks/startup.py)."""
    check = (
        "import sys, edgewise, edgewise.cli; edgewise.cli.build_parser(); "
        "print(sorted(m for m in ('torch', 'transformers', 'jax', 'transformer_lens') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stdout + result.stderr
    result = run_edgewise_process("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"edgewise {edgewise.__version__}"


def test_discover_with_the_published_preset(tmp_path):
    out = tmp_path / "s.json"
    result = run_edgewise(
        "discover",
        "tracr-proportion",
        "--method",
        "edge-sp",
        "--preset",
        "published",
        "--set",
        "steps=2",
        "--json",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    hyperparameters = json.loads(out.read_text())["hyperparameters"]
    assert hyperparameters["lr"] == 0.1 and hyperparameters["steps"] == 2 and hyperparameters["n_samples"] == 1
