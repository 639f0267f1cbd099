"""The HTML report in a real browser: Debian's headless Chromium driven by playwright (one browser for the module).
Pages written by `discover --html` and `bench --html` load from file:// with no console error and no request leaving
file:, the circuit-size control highlights as many edges as the scores file says, clicking an edge shows its score as
the file holds it, the bench table sorts and filters, and a screenshot is not blank. Skipped only where
/usr/bin/chromium is missing (`scripts/setup --test` installs it)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from conftest import run_edgewise, tracr

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium (scripts/setup --test installs it)")
TASK = "tracr-reverse"


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> dict[str, Path]:
    """EAP scores of tracr-reverse with a 3-refit bootstrap and their page, and the page of a bench folder of EAP and
    random."""
    out = tmp_path_factory.mktemp("browser")
    files = {"scores": out / "scores.json", "run": out / "run.html", "bench": out / "bench.html"}
    files["boot"] = out / "boot.json"
    done = run_edgewise(
        "discover", TASK, "--method", "eap", "--json", str(files["scores"]), "--html", str(files["run"]),
        "--bootstrap", "3", "--bootstrap-json", str(files["boot"]),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    files["folder"] = out / "bench"
    done = run_edgewise(
        "bench", "--tasks", TASK, "--methods", "eap,random", "--out", str(files["folder"]), "--no-plots",
        "--html", str(files["bench"]),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return files


class Opened:
    """A page opened from file://, with what it logged and requested."""

    def __init__(self, browser, path: Path):
        self.page = browser.new_page(viewport={"width": 1400, "height": 1000})
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type in ("error", "warning") else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(path.as_uri())
        self.page.wait_for_function("window.edgewiseReportReady === true", timeout=30_000)


def snapped_scores(scores_file: Path) -> list[tuple[str, float, float]]:
    """Returns (edge name, score, snapped score) of every edge, best first (ties in file order); a score within 1e-6
    of the largest |score| counts as zero."""
    rows = json.loads(scores_file.read_text())["scores"]
    largest = max(abs(s) for _, _, s in rows)
    named = [(f"{w}->{r}", s, 0.0 if abs(s) <= 1e-6 * largest else s) for w, r, s in rows]
    return [named[i] for i in sorted(range(len(named)), key=lambda i: (-named[i][2], i))]


def test_pages_load_from_file_without_errors_or_requests(browser, pages):
    for name in ("run", "bench"):
        opened = Opened(browser, pages[name])
        if name == "bench":
            opened.page.click("#bench-table tbody tr >> nth=0")  # the run page it opens draws too
        assert opened.errors == [], (name, opened.errors)
        assert all(url.startswith("file:") for url in opened.requests), opened.requests
        opened.page.close()


def test_the_circuit_size_control_highlights_the_top_k(browser, pages):
    ranked = snapped_scores(pages["scores"])
    opened = Opened(browser, pages["run"])
    page = opened.page
    for k in (1, 3, 10, 40, 77, 0):
        page.fill("#size-input", str(k))
        assert page.locator("#circuit path.edge.hl").count() == k
        highlighted = set(page.eval_on_selector_all("#circuit path.edge.hl", "ps => ps.map(p => p.dataset.name)"))
        assert highlighted == {name for name, _, _ in ranked[:k]}
    for threshold in (0.0, ranked[2][2]):
        page.fill("#threshold-input", repr(threshold))
        expected = sum(s > threshold for _, _, s in ranked)
        assert page.locator("#circuit path.edge.hl").count() == expected
        assert page.inner_text("#circuit-size") == str(expected)
    truth = {e.name for e in tracr(TASK).ground_truth_edges(tracr(TASK).graph())}
    option = next(o for o in page.locator("#size-mode option").all_inner_texts() if o.startswith("compiler truth"))
    page.select_option("#size-mode", label=option)
    highlighted = set(page.eval_on_selector_all("#circuit path.edge.hl", "ps => ps.map(p => p.dataset.name)"))
    assert highlighted == truth
    assert opened.errors == []
    page.close()


def test_clicking_an_edge_shows_its_score_as_in_the_file(browser, pages):
    ranked = snapped_scores(pages["scores"])
    opened = Opened(browser, pages["run"])
    page = opened.page
    for rank, (name, score, _) in enumerate(ranked[:3] + ranked[-2:]):
        page.locator(f'#circuit path.edge[data-name="{name}"]').dispatch_event("click")
        assert page.inner_text("#detail-name") == name
        assert float(page.inner_text('#details li[data-field="score"] .value')) == score
    # a real mouse click on the best-ranked edge (drawn on top of the others), just past its writer
    name, score, _ = ranked[0]
    page.click("#details")  # away from the graph
    point = page.eval_on_selector(
        f'#circuit path.edge[data-name="{name}"]',
        """p => { const m = p.getPointAtLength(p.getTotalLength() * 0.15).matrixTransform(p.getScreenCTM());
        return [m.x, m.y]; }""",
    )
    page.mouse.click(*point)
    assert page.inner_text("#detail-name") == name
    assert float(page.inner_text('#details li[data-field="score"] .value')) == score
    page.fill("#node-search", "mlp 2")  # the MLP and its input port
    assert page.locator("#circuit g.node-group.match").count() == 2
    assert page.inner_text("#detail-name") == "MLP 2"  # the first match's details
    page.locator('#circuit g.node-group[data-label="A3.0"]').dispatch_event("click")
    assert page.inner_text("#detail-name") == "A3.0"
    assert opened.errors == []
    page.close()


def test_the_bench_table_sorts_filters_and_opens_runs(browser, pages):
    results = json.loads((pages["folder"] / "results.json").read_text())
    opened = Opened(browser, pages["bench"])
    page = opened.page
    keys = lambda: page.eval_on_selector_all("#bench-table tbody tr", "rs => rs.map(r => r.dataset.key)")  # noqa: E731
    page.click('#bench-table th[data-column="cpr"]')
    assert keys() == [r["key"] for r in sorted(results, key=lambda r: r["cpr"])]
    page.click('#bench-table th[data-column="cpr"]')
    assert keys() == [r["key"] for r in sorted(results, key=lambda r: -r["cpr"])]
    page.fill("#bench-filter", "random")
    assert keys() == [r["key"] for r in results if r["method"] == "random"]
    page.fill("#bench-filter", "")
    page.click(f'#bench-table tbody tr[data-key="{results[0]["key"]}"]')
    assert page.inner_text("#run .run-title") == f"{results[0]['method']} on {TASK}"
    assert page.locator("#run #circuit path.edge").count() == 77
    assert opened.errors == []
    page.close()


def test_a_screenshot_is_not_blank(browser, pages):
    from PIL import Image

    opened = Opened(browser, pages["run"])
    image = Image.open(io.BytesIO(opened.page.screenshot(full_page=True))).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 100  # text, nodes, coloured edges, curves
    opened.page.close()


def test_edges_can_be_coloured_by_bootstrap_frequency(browser, pages):
    frequency = json.loads(pages["boot"].read_text())["selection_frequency"]
    ranked = snapped_scores(pages["scores"])
    opened = Opened(browser, pages["run"])
    page = opened.page
    page.select_option("#colour-by", "frequency")
    strokes = dict(
        page.eval_on_selector_all("#circuit path.edge", "ps => ps.map(p => [p.dataset.name, p.style.stroke])")
    )
    viridis_ends = {0.0: "rgb(68, 1, 84)", 1.0: "rgb(253, 231, 37)"}  # #440154 and #fde725
    checked = 0
    for name, _, _ in ranked:
        share = frequency.get(name, 0.0)
        if share in viridis_ends:
            assert strokes[name] == viridis_ends[share], name
            checked += 1
    assert checked > 10 and "bootstrap" in page.inner_text("#legend")
    assert opened.errors == []
    page.close()
