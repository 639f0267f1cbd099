"""How large and how fast the HTML report is on a real language model: SmolLM2-135M's IOI graph (`smollm2-ioi`, 70,651
edges) with EAP's scores, the page `edgewise report` builds (the `MAX_DRAWN` best-ranked edges drawn, the rest
summarised), its file size, the seconds to build it in Python, and in headless Chromium (Debian's, driven by
playwright) the seconds from navigation until the page has drawn, and the milliseconds a circuit-size change takes.
Not a test: it prints a table and writes benchmarks/results/report_load.json.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/report_load.py [--sizes 41] [--loads 5] [--drawn 1000]

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
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "smollm2-ioi-eap.html"
        built = build_page(args.sizes, args.drawn, path)
        loaded = load_in_chromium(path, args.loads)
    record = {
        "task": "smollm2-ioi",
        "method": "eap",
        **built,
        **loaded,
        "date": date.today().isoformat(),
        "commit": _commit(),
        "machine": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    print(f"{'graph':<12} {'drawn':>6} {'MB':>6} {'build s':>8} {'load s (median)':>16} {'size change ms':>15}")
    print(
        f"{'smollm2-ioi':<12} {built['drawn']:>6} {built['file_bytes'] / 1e6:>6.2f} "
        f"{built['page_build_seconds']:>8.2f} {loaded['load_seconds_median']:>16.2f} "
        f"{loaded['size_change_ms_median']:>15.1f}"
    )
    RESULTS.mkdir(exist_ok=True)
    write_text(RESULTS / "report_load.json", json.dumps(record, indent=1))
    print(f"wrote {RESULTS / 'report_load.json'}")


if __name__ == "__main__":
    main()
