"""The HTML report's page data, read back from the written page, against references computed here from the files the
commands wrote (scores, diagnose and bootstrap JSON, a bench folder's results.json): ranks and top-k membership, the
layout by layer, faithfulness at a size, truths, diagnose findings, bootstrap frequencies, and the bad inputs that
must fail before writing or be marked on the page."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import pytest
from conftest import run_edgewise, tracr

TASK = "tracr-reverse"


def page_data(path: Path) -> dict:
    """Returns the JSON a written page carries in its #page-data script."""
    found = re.search(r'<script type="application/json" id="page-data">(.*?)</script>', path.read_text(), re.S)
    assert found, f"{path} carries no page data"
    return json.loads(found.group(1))


def expected_ranks(scores_file: Path) -> dict[str, int]:
    """Returns each edge's 1-based rank from a scores file: scores within 1e-6 of the largest |score| count as zero,
    higher first, ties in the file's (graph) order."""
    rows = json.loads(scores_file.read_text())["scores"]
    largest = max(abs(s) for _, _, s in rows)
    snapped = [0.0 if abs(s) <= 1e-6 * largest else s for _, _, s in rows]
    order = sorted(range(len(rows)), key=lambda i: (-snapped[i], i))
    return {f"{rows[i][0]}->{rows[i][1]}": rank for rank, i in enumerate(order, start=1)}


def refused(tmp_path: Path, *args: str) -> str:
    """Returns what `edgewise report ARGS --out FILE` printed to stderr, after checking that it exited with status 2
    and wrote no page."""
    out = tmp_path / "refused.html"
    done = run_edgewise("report", *args, "--out", str(out))
    assert done.returncode == 2, done.stdout
    assert not out.exists()
    return done.stderr


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """EAP scores of tracr-reverse with a 3-refit bootstrap and their page (`discover --html`), a diagnosis of the
    task under resample ablation with its page (`diagnose --html`), and pages of both by `edgewise report`."""
    out = tmp_path_factory.mktemp("report")
    paths = {name: out / name for name in ("scores.json", "boot.json", "discover.html", "diagnose.json")}
    done = run_edgewise(
        "discover", TASK, "--method", "eap", "--json", str(paths["scores.json"]), "--bootstrap", "3",
        "--bootstrap-json", str(paths["boot.json"]), "--html", str(paths["discover.html"]),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    done = run_edgewise(
        "diagnose", TASK, "--ablations", "resample", "--scores", str(paths["scores.json"]), "--json",
        str(paths["diagnose.json"]), "--html", str(out / "diagnose.html"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    paths["diagnose.html"] = out / "diagnose.html"
    paths["report.html"] = out / "report.html"
    done = run_edgewise(
        "report", str(paths["scores.json"]), "--out", str(paths["report.html"]), "--diagnosis",
        str(paths["diagnose.json"]), "--bootstrap", str(paths["boot.json"]),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    paths["diagnosis-only.html"] = out / "diagnosis-only.html"
    done = run_edgewise("report", str(paths["diagnose.json"]), "--out", str(paths["diagnosis-only.html"]))
    assert done.returncode == 0, done.stderr
    return paths


def test_ranks_and_top_k_membership_match_the_scores_file(files):
    ranks = expected_ranks(files["scores.json"])
    for page in ("discover.html", "report.html"):
        edges = page_data(files[page])["circuit"]["edges"]
        assert len(edges["name"]) == len(ranks) == 77  # every edge of a small graph is drawn
        assert dict(zip(edges["name"], edges["rank"])) == ranks
        for k in (1, 2, 5, 20, 77):
            page_top = {n for n, r in zip(edges["name"], edges["rank"]) if r <= k}
            assert page_top == {n for n, r in ranks.items() if r <= k}


def test_scores_are_shown_as_the_file_holds_them(files):
    rows = json.loads(files["scores.json"].read_text())["scores"]
    edges = page_data(files["report.html"])["circuit"]["edges"]
    shown = dict(zip(edges["name"], edges["score"]))
    assert shown == {f"{w}->{r}": s for w, r, s in rows}


def test_threshold_counts_the_scores_above_it(files):
    rows = json.loads(files["scores.json"].read_text())["scores"]
    largest = max(abs(s) for _, _, s in rows)
    snapped = sorted((0.0 if abs(s) <= 1e-6 * largest else s for _, _, s in rows), reverse=True)
    page = page_data(files["report.html"])["circuit"]
    assert page["sorted_scores"] == pytest.approx(snapped, rel=1e-5, abs=1e-12)


def test_layout_places_nodes_by_layer_and_qkv_beside_their_head(files):
    nodes = page_data(files["report.html"])["circuit"]["nodes"]
    drawn = zip(nodes["label"], nodes["x"], nodes["y"], nodes["port"])
    place = {label + (" input" if port else ""): (x, y) for label, x, y, port in drawn}
    # tracr-reverse: embeddings, then each of 4 layers' head and MLP, then the output on top
    assert place["Resid Start"][1] == 0
    for layer in range(4):
        assert place[f"A{layer}.0"][1] == 2 * layer + 1
        assert place[f"MLP {layer}"][1] == 2 * layer + 2
        assert place[f"MLP {layer} input"] == (place[f"MLP {layer}"][0], pytest.approx(2 * layer + 2 - 0.4))
        head_x = place[f"A{layer}.0"][0]
        for port, offset in (("Q", -0.25), ("K", 0.0), ("V", 0.25)):
            x, y = place[f"A{layer}.0.{port} input"]
            assert (x, y) == (pytest.approx(head_x + offset), pytest.approx(2 * layer + 1 - 0.4))
    assert place["Resid End"][1] == 9 == page_data(files["report.html"])["circuit"]["n_rows"] - 1


def test_faithfulness_at_a_size_is_the_top_k_circuits(files):
    from edgewise.evaluate import faithfulness
    from edgewise.graph import Edge
    from edgewise.patching import task_ablation

    task = tracr(TASK)
    graph = task.graph()
    ablated = task_ablation(task, graph, "resample")
    ranks = expected_ranks(files["scores.json"])
    by_name = {e.name: e for e in graph.edges}
    curve = page_data(files["report.html"])["faithfulness"]
    at = dict(zip(curve["sizes"], curve["values"]))
    for k in (1, 3, 10):
        edges: set[Edge] = {by_name[n] for n, r in ranks.items() if r <= k}
        assert at[k] == pytest.approx(faithfulness(task, graph, ablated, edges), abs=1e-6)


def test_truths_and_the_method_circuit(files):
    task = tracr(TASK)
    compiler = {e.name for e in task.ground_truth_edges(task.graph())}
    page = page_data(files["report.html"])["circuit"]
    names = page["edges"]["name"]
    circuits = {c["name"]: c for c in page["circuits"]}
    assert {names[i] for i in circuits["compiler truth"]["edges"]} == compiler
    assert {"effective (resample)", "effective (mean)", "effective (zero)"} <= {
        n.removesuffix(" truth") for n in circuits
    }
    # EAP's circuit is its top k edges, k the effective truth's size under its ablation
    effective = circuits["effective (resample) truth"]
    ranks = expected_ranks(files["scores.json"])
    method = circuits["eap circuit"]
    assert method["size"] == effective["size"]
    assert {names[i] for i in method["edges"]} == {n for n, r in ranks.items() if r <= effective["size"]}


def test_diagnose_findings_sit_on_their_edges_and_nodes(files):
    record = json.loads(files["diagnose.json"].read_text())
    resample = record["ablations"]["resample"]
    for page in ("report.html", "diagnose.html", "diagnosis-only.html"):
        data = page_data(files[page])
        view = data["circuit"]
        names = view["edges"]["name"]
        findings = {names[int(i)]: notes for i, notes in view["edges"]["findings"].items()}
        for removed in resample["removable"]:
            name = "->".join(removed["edge"])
            assert any(removed["reason"] in note for note in findings[name]), (page, name)
        flagged = {view["nodes"]["label"][int(i)] for i in view["nodes"]["findings"]}
        assert flagged == {w["writer"] for w in record["constant_writers"]}
        minimal = next(c for c in view["circuits"] if c["name"] == "minimal circuit (resample)")
        assert {names[i] for i in minimal["edges"]} == {"->".join(e) for e in resample["minimal_circuit"]}
        behaviour = data["diagnosis"]["ablations"][0]["behaviour"]
        assert [row["label"] for row in behaviour] == [row["label"] for row in resample["behaviour"]["rows"]]
        assert [row["flags"] for row in behaviour] == [row["flags"] for row in resample["behaviour"]["rows"]]
    assert page_data(files["diagnosis-only.html"])["circuit"]["edges"]["score"] is None


def test_bootstrap_frequencies_colour_the_edges(files):
    boot = json.loads(files["boot.json"].read_text())
    edges = page_data(files["report.html"])["circuit"]["edges"]
    frequency = dict(zip(edges["name"], edges["frequency"]))
    assert frequency == {name: boot["selection_frequency"].get(name, 0.0) for name in edges["name"]}
    assert any(f > 0 for f in frequency.values())
    assert page_data(files["discover.html"])["circuit"]["edges"]["frequency"] == edges["frequency"]


def test_the_page_is_self_contained(files):
    html = files["report.html"].read_text()
    assert not re.search(r"<script[^>]*\bsrc\s*=", html) and "<link" not in html and "<img" not in html
    assert "default-src 'none'" in html  # the browser refuses any request the page's scripts might make


def test_scores_of_no_built_in_task_give_a_page_that_says_what_is_missing(files, tmp_path):
    record = json.loads(files["scores.json"].read_text())
    record["task"] = ""
    unlabelled = tmp_path / "unlabelled.json"
    unlabelled.write_text(json.dumps(record))
    out = tmp_path / "page.html"
    done = run_edgewise("report", str(unlabelled), "--out", str(out))
    assert done.returncode == 0, done.stderr
    data = page_data(out)
    assert data["faithfulness"] is None and data["rocs"] == {}
    assert any("no built-in task" in note for note in data["missing"])
    assert "missing: " in done.stdout


def test_scores_with_nan_fail_before_writing(files, tmp_path):
    record = json.loads(files["scores.json"].read_text())
    record["scores"][5][2] = math.nan
    bad = tmp_path / "nan.json"
    bad.write_text(json.dumps(record))  # Python writes the bare NaN a strict writer refuses
    stderr = refused(tmp_path, str(bad))
    assert "not finite" in stderr and "->" in stderr


def test_a_diagnosis_of_another_task_fails_before_writing(files, tmp_path):
    record = json.loads(files["diagnose.json"].read_text())
    record["task"] = "tracr-sort"
    other = tmp_path / "other.json"
    other.write_text(json.dumps(record))
    stderr = refused(tmp_path, str(files["scores.json"]), "--diagnosis", str(other))
    assert "tracr-sort" in stderr and "edgewise diagnose tracr-reverse" in stderr


def test_a_file_edgewise_did_not_write_fails_naming_what_to_give(tmp_path):
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"nodes": []}))
    assert "discover --json" in refused(tmp_path, str(other))


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    """A bench folder of EAP and random on tracr-reverse."""
    out = tmp_path_factory.mktemp("bench") / "bench"
    done = run_edgewise("bench", "--tasks", TASK, "--methods", "eap,random", "--out", str(out), "--no-plots")
    assert done.returncode == 0, done.stderr
    return out


def test_bench_page_rows_match_results_json(bench, tmp_path):
    out = tmp_path / "bench.html"
    assert run_edgewise("report", str(bench), "--out", str(out)).returncode == 0
    data = page_data(out)
    results = {r["key"]: r for r in json.loads((bench / "results.json").read_text())}
    assert {row["key"] for row in data["rows"]} == set(results)
    for row in data["rows"]:
        record = results[row["key"]]
        for column in ("auroc", "auroc_effective", "cpr", "cmd", "edges_to_95", "circuit_faithfulness", "seed"):
            assert row["cells"][column] == record[column]
        run = data["runs"][row["run"]]
        scores = json.loads((bench / "scores" / f"{row['key']}.json").read_text())["scores"]
        assert dict(zip(run["circuit"]["edges"]["name"], run["circuit"]["edges"]["score"])) == {
            f"{w}->{r}": s for w, r, s in scores
        }
        effective = next(c for c in run["circuit"]["circuits"] if c["truth"])
        names = run["circuit"]["edges"]["name"]
        assert {names[i] for i in effective["edges"]} == {"->".join(e) for e in record["effective_ground_truth"]}
    assert data["missing"] == []


def test_a_half_written_run_is_marked_missing(bench, tmp_path):
    damaged = tmp_path / "damaged"
    shutil.copytree(bench, damaged)
    victim = sorted((damaged / "runs").glob("*.json"))[0]
    victim.write_text(victim.read_text()[:200])  # a write cut short
    out = tmp_path / "bench.html"
    done = run_edgewise("report", str(damaged), "--out", str(out))
    assert done.returncode == 0, done.stderr
    data = page_data(out)
    assert len(data["rows"]) == 1
    assert any(victim.name in note for note in data["missing"])


def test_a_bench_folder_with_no_records_fails_before_writing(tmp_path):
    empty = tmp_path / "empty"
    (empty / "runs").mkdir(parents=True)
    stderr = refused(tmp_path, str(empty))
    assert "nothing to report" in stderr and "edgewise bench --out" in stderr


def test_the_static_diagram_colours_edges_by_bootstrap_frequency(files, tmp_path):
    from matplotlib import colormaps, colors

    from edgewise.graph import Edge
    from edgewise.report import plot_circuit
    from edgewise.report.plots import circuit_dot

    boot = json.loads(files["boot.json"].read_text())
    graph = tracr(TASK).graph()
    by_name = {e.name: e for e in graph.edges}
    frequency = {by_name[name]: f for name, f in boot["selection_frequency"].items()}
    found: set[Edge] = {by_name[name] for name in boot["consensus"]["edges"]}
    truth = tracr(TASK).ground_truth_edges(graph)
    dot = circuit_dot(graph, found, truth, "bootstrap", frequency)
    for edge in found | truth:
        colour = colors.to_hex(colormaps["viridis"](frequency.get(edge, 0.0)))
        reader = graph.reader_node(edge.reader)
        port = f":{reader.input}" if reader.input else ""
        line = next(
            line for line in dot.splitlines() if line.startswith(f'  "{edge.writer}" -> "{reader.component}"{port} ')
        )
        assert f'color="{colour}"' in line
    png, _ = plot_circuit(graph, found, tmp_path / "diagram", truth, "bootstrap", frequency)
    assert png.stat().st_size > 0


@pytest.mark.parametrize("max_nodes", [3000, 10])
def test_a_per_position_view_joins_each_drawn_edge_to_its_own_nodes(monkeypatch, max_nodes):
    import torch

    from edgewise.graph import EdgeScores
    from edgewise.report import circuit_view, page

    monkeypatch.setattr(page, "MAX_NODES", max_nodes)  # 10: only the nodes the drawn edges touch are kept
    graph = tracr(TASK).graph(per_position=True)
    scores = EdgeScores(graph, torch.randn(graph.n_edges, generator=torch.Generator().manual_seed(0)), "random")
    view = circuit_view(graph, scores, max_drawn=25)
    assert len(view.edge_names) == 25
    labels = [n.label for n in view.nodes]
    best = sorted(range(graph.n_edges), key=lambda i: -scores.scores[i].item())[:25]
    assert set(view.edge_names) == {graph.edges[i].name for i in best}
    for d, i in enumerate(sorted(best, key=lambda i: -scores.scores[i].item())):
        edge = graph.edges[i]
        assert view.edge_names[d] == edge.name
        assert labels[view.edge_writer[d]] == f"{edge.writer}@{edge.position}"
        assert labels[view.edge_reader[d]] == f"{edge.reader}@{edge.position}"
        assert view.nodes[view.edge_reader[d]].port or graph.reader_node(edge.reader).kind.value == "output"
    if max_nodes == 10:
        assert len(view.nodes) <= 50
    else:
        assert len(view.nodes) == (len(graph.writers) + len(graph.readers)) * graph.n_positions


def test_scores_labelled_with_another_task_fail_before_writing(files, tmp_path):
    record = json.loads(files["scores.json"].read_text())
    record["task"] = "tracr-proportion"  # a built-in task whose graph is not these scores'
    mislabelled = tmp_path / "mislabelled.json"
    mislabelled.write_text(json.dumps(record))
    stderr = refused(tmp_path, str(mislabelled))
    assert "tracr-proportion" in stderr and "edgewise discover tracr-proportion --json" in stderr


def test_a_run_without_its_scores_keeps_its_row_without_a_page(bench, tmp_path):
    partial = tmp_path / "partial"
    shutil.copytree(bench, partial)
    victim = sorted((partial / "scores").glob("*.json"))[0]
    victim.unlink()
    out = tmp_path / "bench.html"
    done = run_edgewise("report", str(partial), "--out", str(out))
    assert done.returncode == 0, done.stderr
    data = page_data(out)
    rows = {row["key"]: row for row in data["rows"]}
    assert len(rows) == 2 and rows[victim.stem]["run"] is None
    assert len(data["runs"]) == 1
    assert any(victim.stem in note for note in data["missing"])


def test_the_behaviour_check_shows_a_fixed_preference_with_its_ranking(tmp_path):
    from edgewise.graph import Circuit

    empty = tmp_path / "empty.json"
    Circuit(frozenset(), task="tictactoe").save(empty)  # the empty circuit plays the mean board's ranking
    diagnosis, out = tmp_path / "diagnosis.json", tmp_path / "diagnosis.html"
    done = run_edgewise(
        "diagnose", "tictactoe", "--ablations", "mean", "--circuit", str(empty), "--json", str(diagnosis),
        "--html", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = json.loads(diagnosis.read_text())["ablations"]["mean"]["behaviour"]["rows"]
    shown = page_data(out)["diagnosis"]["ablations"][0]["behaviour"]
    flagged = [
        (mine, theirs) for mine, theirs in zip(shown, rows) if any("fixed preference" in f for f in theirs["flags"])
    ]
    assert flagged, "the empty circuit should carry the fixed preference flag"
    for mine, theirs in flagged:
        assert mine["flags"] == theirs["flags"]
        assert any(e.startswith("fixed ranking " + " > ".join(theirs["preference"])) for e in mine["examples"])


def test_a_failed_run_is_named_on_the_bench_page(bench, tmp_path):
    folder = tmp_path / "with-failure"
    shutil.copytree(bench, folder)
    (folder / "failed").mkdir()
    (folder / "failed" / "tracr-reverse_plain_acdc_x.json").write_text(json.dumps({"error": "RuntimeError"}))
    out = tmp_path / "bench.html"
    assert run_edgewise("report", str(folder), "--out", str(out)).returncode == 0
    data = page_data(out)
    assert len(data["rows"]) == 2
    assert any("tracr-reverse_plain_acdc_x" in note and "raised" in note for note in data["missing"])


def test_a_feature_graphs_page_places_features_in_their_writers_row(tmp_path):
    scores, out = tmp_path / "features.json", tmp_path / "features.html"
    done = run_edgewise("discover", TASK, "--features", "oracle", "--method", "eap", "--json", str(scores))
    assert done.returncode == 0, done.stderr
    assert run_edgewise("report", str(scores), "--out", str(out)).returncode == 0
    view = page_data(out)["circuit"]
    edges = view["edges"]
    assert dict(zip(edges["name"], edges["rank"])) == expected_ranks(scores)
    nodes = view["nodes"]
    rows = {label: y for label, y, port in zip(nodes["label"], nodes["y"], nodes["port"]) if not port}
    features = [label for label, kind in zip(nodes["label"], nodes["kind"]) if kind in ("feature", "error")]
    assert features and all(label.startswith(("MLP ", "A", "Resid Start[")) for label in features)
    for label in features:  # `MLP 2[opp_idx:2]` sits in MLP 2's row: 2 * 2 + 2
        writer = label.split("[")[0]
        if writer.startswith("MLP "):
            assert rows[label] == 2 * int(writer.split()[1]) + 2


def test_the_page_never_overwrites_its_input(files, tmp_path):
    copy = tmp_path / "scores.json"
    shutil.copy(files["scores.json"], copy)
    done = run_edgewise("report", str(copy), "--out", str(copy))
    assert done.returncode == 2 and "destroy the input" in done.stderr
    assert json.loads(copy.read_text()) == json.loads(files["scores.json"].read_text())
