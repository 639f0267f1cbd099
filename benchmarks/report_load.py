"""How large and how fast the HTML report is on a real language model: SmolLM2-135M's IOI graph (`smollm2-ioi`, 70,651
edges) with EAP's scores, the page `edgewise report` builds (the `MAX_DRAWN` best-ranked edges drawn, the rest
summarised), its file size, the seconds to build it in Python, and in headless Chromium (Debian's, driven by
playwright) the seconds from navigation until the page has drawn, and the milliseconds a circuit-size change takes.
The same for a synthetic feature graph of about 10^5 edges (8 layers of 4 heads, each MLP split into 400 features and
an error node; random scores), whose nodes (over 3000) are drawn only where a drawn edge touches them. Not a test: it
prints a table and writes benchmarks/results/report_load.json.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/report_load.py [--sizes 41] [--loads 5] [--drawn 1000]
        [--feature-layers 8] [--features 400]

The faithfulness curve takes `--sizes` circuit sizes (`circuit_sizes`' log-and-linear subset; `edgewise report`
takes 201), to keep the run to minutes on a CPU; the page's weight does not depend on it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from datetime import date
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

from edgewise.evaluate import faithfulness, faithfulness_curve  # noqa: E402
from edgewise.graph import (  # noqa: E402
    EdgeScores,
    Graph,
    HookGroup,
    embedding_node,
    error_node,
    feature_node,
    head_node,
    mlp_node,
    output_node,
)
from edgewise.methods import discover, method_circuit  # noqa: E402
from edgewise.outputs import write_text  # noqa: E402
from edgewise.patching import task_ablation  # noqa: E402
from edgewise.report import RunParts, run_view, write_report  # noqa: E402
from edgewise.suite.tasks import get_task  # noqa: E402

RESULTS = Path(__file__).parent / "results"
CHROMIUM = "/usr/bin/chromium"
CIRCUIT_SIZE = 20  # discover's k for a top-k method on a task without a ground truth


def _commit() -> str | None:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() or None


def build_page(sizes: int, drawn: int, path: Path) -> dict:
    """Scores smollm2-ioi with EAP, builds its page and writes it to `path`; returns the timings."""
    task = get_task("smollm2-ioi")
    graph = task.graph()
    start = time.perf_counter()
    scores = discover(task, "eap", graph=graph)
    discover_seconds = time.perf_counter() - start
    ablated = task_ablation(task, graph, scores.ablation)
    start = time.perf_counter()
    curve = faithfulness_curve(task, scores, ablated, n_sampled=sizes)
    circuit = method_circuit(scores, CIRCUIT_SIZE)
    circuit_faithfulness = faithfulness(task, graph, ablated, set(circuit.edges))
    curve_seconds = time.perf_counter() - start
    start = time.perf_counter()
    parts = RunParts(
        graph,
        scores,
        task.name,
        method_circuit=frozenset(circuit.edges),
        circuit_faithfulness=circuit_faithfulness,
        faithfulness=curve,
        circuit_size=len(circuit),
    )
    view = run_view(parts, max_drawn=drawn)
    write_report(view, path)
    return {
        "graph": repr(graph),
        "n_edges": graph.n_edges,
        "drawn": len(view.circuit.edge_names),
        "curve_sizes": len(curve.sizes),
        "discover_seconds": round(discover_seconds, 2),
        "curve_seconds": round(curve_seconds, 2),
        "page_build_seconds": round(time.perf_counter() - start, 3),
        "file_bytes": path.stat().st_size,
    }


def feature_graph_page(layers: int, heads: int, features: int, drawn: int, path: Path) -> dict:
    """Builds the page of a synthetic feature graph (each MLP split into `features` features and an error node, heads
    with q/k/v inputs) with random scores, and writes it to `path`; returns its size and build time. No model is
    needed: the page shows what a feature graph of this many edges costs a browser."""
    groups = [HookGroup("writer", "embed", (embedding_node(),), False)]
    for layer in range(layers):
        groups.append(HookGroup("reader", f"{layer}.qkv", tuple(
            head_node(layer, h, i) for i in ("q", "k", "v") for h in range(heads)), True))  # fmt: skip
        groups.append(HookGroup("writer", f"{layer}.attn", tuple(head_node(layer, h) for h in range(heads)), True))
        groups.append(HookGroup("reader", f"{layer}.mlp_in", (mlp_node(layer),), False))
        mlp = mlp_node(layer)
        split = tuple(feature_node(mlp, str(i), i) for i in range(features)) + (error_node(mlp),)
        groups.append(HookGroup("writer", f"{layer}.mlp_out", split, False))
    groups.append(HookGroup("reader", "final", (output_node(),), False))
    graph = Graph(groups, features="synthetic")
    scores = EdgeScores(graph, torch.randn(graph.n_edges, generator=torch.Generator().manual_seed(0)) ** 3, "random")
    start = time.perf_counter()
    view = run_view(RunParts(graph, scores, "synthetic"), max_drawn=drawn)
    write_report(view, path)
    return {
        "graph": repr(graph),
        "n_edges": graph.n_edges,
        "drawn": len(view.circuit.edge_names),
        "drawn_nodes": len(view.circuit.nodes),
        "page_build_seconds": round(time.perf_counter() - start, 3),
        "file_bytes": path.stat().st_size,
    }


def load_in_chromium(path: Path, loads: int) -> dict:
    """Opens the page from file:// `loads` times in a fresh tab; returns load and interaction timings."""
    from playwright.sync_api import sync_playwright

    load_seconds, change_ms, errors = [], [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        version = browser.version
        for _ in range(loads):
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("pageerror", lambda e: errors.append(str(e)))
            start = time.perf_counter()
            page.goto(path.as_uri())
            page.wait_for_function("window.edgewiseReportReady === true", timeout=120_000)
            load_seconds.append(time.perf_counter() - start)
            for k in (1000, 100, 5000):
                ms = page.evaluate(
                    """k => { const input = document.getElementById("size-input"); const t = performance.now();
                    input.value = k; input.dispatchEvent(new Event("input")); return performance.now() - t; }""",
                    k,
                )
                change_ms.append(ms)
            page.close()
        browser.close()
    return {
        "chromium": version,
        "load_seconds": [round(s, 3) for s in load_seconds],
        "load_seconds_median": round(statistics.median(load_seconds), 3),
        "size_change_ms": [round(m, 1) for m in change_ms],
        "size_change_ms_median": round(statistics.median(change_ms), 1),
        "page_errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, default=41, help="circuit sizes on the faithfulness curve")
    parser.add_argument("--loads", type=int, default=5, help="page loads to time")
    parser.add_argument("--drawn", type=int, default=1000, help="edges the circuit view draws")
    parser.add_argument("--feature-layers", type=int, default=8, help="layers of the synthetic feature graph")
    parser.add_argument("--features", type=int, default=400, help="features per MLP of the synthetic feature graph")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "smollm2-ioi-eap.html"
        built = build_page(args.sizes, args.drawn, path)
        loaded = load_in_chromium(path, args.loads)
        synthetic_path = Path(folder) / "feature-graph.html"
        synthetic = feature_graph_page(args.feature_layers, 4, args.features, args.drawn, synthetic_path)
        synthetic.update(load_in_chromium(synthetic_path, args.loads))
    record = {
        "task": "smollm2-ioi",
        "method": "eap",
        **built,
        **loaded,
        "feature_graph": synthetic,
        "date": date.today().isoformat(),
        "commit": _commit(),
        "machine": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    print(
        f"{'graph':<12} {'edges':>8} {'drawn':>6} {'MB':>6} {'build s':>8} {'load s (median)':>16} "
        f"{'size change ms':>15}"
    )
    for name, row in (("smollm2-ioi", {**built, **loaded}), ("features", synthetic)):
        print(
            f"{name:<12} {row['n_edges']:>8} {row['drawn']:>6} {row['file_bytes'] / 1e6:>6.2f} "
            f"{row['page_build_seconds']:>8.2f} {row['load_seconds_median']:>16.2f} "
            f"{row['size_change_ms_median']:>15.1f}"
        )
    RESULTS.mkdir(exist_ok=True)
    write_text(RESULTS / "report_load.json", json.dumps(record, indent=1))
    print(f"wrote {RESULTS / 'report_load.json'}")


if __name__ == "__main__":
    main()
