// edgewise's HTML report: draws the page data (the JSON in #page-data) with no request to any network.
// A run's page: facts, the circuit view (SVG, laid out by layer in Python), the circuit-size control, details of the
// clicked edge or node, curves (plotly), figures and the diagnose report. A bench page: the summary table, sortable
// and filterable, each row opening its run's page below it.
"use strict";

const PAGE = JSON.parse(document.getElementById("page-data").textContent);
const SVG_NS = "http://www.w3.org/2000/svg";
const X_UNIT = 46, Y_UNIT = 70, MARGIN = 40;

function el(tag, attrs, children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const child of children || []) node.append(child);
  return node;
}

function svg(tag, attrs) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}

function fmt(value, digits) {
  if (value === null || value === undefined) return "n/a";
  if (typeof value !== "number") return String(value);
  if (Number.isInteger(value)) return String(value);
  return value.toPrecision(digits || 4);
}

// viridis, sampled: colour of a value in [0, 1]
const VIRIDIS = ["#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6ece58", "#b5de2b", "#fde725"];
function viridis(t) {
  const i = Math.max(0, Math.min(VIRIDIS.length - 1, Math.round(t * (VIRIDIS.length - 1))));
  return VIRIDIS[i];
}

function table(header, rows, numeric) {
  const head = el("tr", {}, header.map((h) => el("th", { text: h })));
  const body = rows.map((r) => el("tr", {}, r.map((c, i) => el("td", { text: fmt(c), class: numeric && numeric[i] ? "num" : "" }))));
  return el("table", {}, [el("thead", {}, [head]), el("tbody", {}, body)]);
}

// The faithfulness at circuit size k: the curve's value at k, or at the largest evaluated size below it.
function faithfulnessAt(curve, k) {
  if (!curve) return null;
  let best = null;
  for (let i = 0; i < curve.sizes.length; i++) if (curve.sizes[i] <= k) best = i;
  return best === null ? null : { size: curve.sizes[best], value: curve.values[best] };
}

function renderRun(run, root) {
  root.replaceChildren();
  const C = run.circuit;
  const E = C.edges, N = C.nodes;
  const nEdges = E.name.length;
  root.append(el("h2", { text: run.title, class: "run-title" }));
  root.append(el("div", { class: "facts" }, run.facts.map(([k, v]) => el("span", {}, [el("b", { text: k + ": " }), v]))));
  for (const m of run.missing) root.append(el("div", { class: "missing", text: "missing: " + m }));

  // the controls
  const mode = el("select", { id: "size-mode" }, [
    el("option", { value: "top", text: "top k edges" }),
    el("option", { value: "threshold", text: "score above" }),
    ...C.circuits.map((c, i) => el("option", { value: "circuit:" + i, text: c.name + " (" + c.size + ")" })),
  ]);
  if (!E.score) mode.value = C.circuits.length ? "circuit:0" : "top";  // without scores, top k means nothing
  const sizeInput = el("input", { id: "size-input", type: "number", min: 0, max: C.n_edges, value: run.default_size });
  const slider = el("input", { id: "size-slider", type: "range", min: 0, max: Math.min(C.n_edges, Math.max(nEdges, run.default_size)), value: run.default_size });
  const threshold = el("input", { id: "threshold-input", type: "number", step: "any", value: 0 });
  const colour = el("select", { id: "colour-by" }, [el("option", { value: "score", text: "colour by score" })]);
  if (E.frequency) colour.append(el("option", { value: "frequency", text: "colour by bootstrap frequency" }));
  const search = el("input", { id: "node-search", type: "search", placeholder: "search nodes" });
  const status = el("span", { id: "status" });
  root.append(el("div", { class: "controls" }, [
    mode, el("label", {}, ["k ", sizeInput]), slider, el("label", {}, ["threshold ", threshold]), colour, search, status,
  ]));
  const legendText = el("span");
  const legend = el("div", { class: "legend", id: "legend" }, [legendText]);
  root.append(legend);

  // the graph
  const box = el("div", { class: "graph", id: "circuit" });
  const details = el("div", { class: "details", id: "details" }, [el("p", { text: "Click an edge or a node for its details." })]);
  root.append(el("div", { class: "view" }, [box, details]));
  const xs = N.x, ys = N.y;
  const minX = Math.min(...xs), maxX = Math.max(...xs);
  const px = (i) => MARGIN + (xs[i] - minX) * X_UNIT;
  const py = (i) => MARGIN + (C.n_rows - 1 - ys[i]) * Y_UNIT;
  const width = 2 * MARGIN + Math.max((maxX - minX) * X_UNIT, 4 * X_UNIT), height = 2 * MARGIN + (C.n_rows - 1) * Y_UNIT;
  const canvas = svg("svg", { viewBox: `0 0 ${width} ${height}` });
  const edgeLayer = svg("g"), nodeLayer = svg("g");
  canvas.append(edgeLayer, nodeLayer);
  box.append(canvas);
  const maxAbs = E.score ? Math.max(1e-300, ...E.score.map((s) => Math.abs(s || 0))) : 1;
  const paths = [];
  for (let d = 0; d < nEdges; d++) {
    const w = E.writer[d], r = E.reader[d];
    const x1 = px(w), y1 = py(w), x2 = px(r), y2 = py(r);
    // an edge that skips rows arcs sideways, more the more rows it skips, so parallel edges stay apart
    const bend = (y1 - y2) * 0.35;
    const side = (w + r) % 2 ? 1 : -1;
    const off = side * Math.max(0, (y1 - y2) / Y_UNIT - 1) * 9;
    const path = svg("path", {
      class: "edge", "data-index": d, "data-name": E.name[d],
      d: `M${x1},${y1} C${x1 + off},${y1 - bend} ${x2 + off},${y2 + bend} ${x2},${y2}`,
    });
    const strength = E.score ? Math.abs(E.score[d] || 0) / maxAbs : 0.3;
    path.style.strokeWidth = (0.6 + 3.4 * strength).toFixed(2);
    path.addEventListener("click", (event) => { event.stopPropagation(); showEdge(d); });
    const tip = svg("title");
    tip.textContent = `${E.name[d]}\nrank ${E.rank[d]}` + (E.score ? `, score ${fmt(E.score[d])}` : "");
    path.append(tip);
    paths.push(path);
  }
  for (let d = nEdges - 1; d >= 0; d--) edgeLayer.append(paths[d]);  // the best-ranked edges on top
  const groups = [];
  const byNode = N.label.map(() => []);
  for (let d = 0; d < nEdges; d++) { byNode[E.writer[d]].push(d); byNode[E.reader[d]].push(d); }
  for (let i = 0; i < N.label.length; i++) {
    const g = svg("g", { class: "node-group", "data-label": N.label[i] });
    if (N.port[i]) {
      g.append(svg("circle", { class: "port", cx: px(i), cy: py(i), r: 3 }));
    } else {
      const flagged = N.findings[i] ? " flagged" : "";
      g.append(svg("rect", { class: "node " + N.kind[i] + flagged, x: px(i) - 20, y: py(i) - 9, width: 40, height: 18, rx: 3 }));
      const label = svg("text", { class: "label", x: px(i), y: py(i) + 3, "text-anchor": "middle" });
      label.textContent = N.label[i].length > 9 ? N.label[i].slice(0, 8) + "…" : N.label[i];
      g.append(label);
    }
    const title = svg("title");
    title.textContent = N.label[i];
    g.append(title);
    g.addEventListener("click", (event) => { event.stopPropagation(); showNode(i); });
    nodeLayer.append(g);
    groups.push(g);
  }

  // zoom (wheel) and pan (drag) by the viewBox
  let view = [0, 0, width, height];
  const setView = () => canvas.setAttribute("viewBox", view.map((v) => v.toFixed(1)).join(" "));
  // Shows the nodes `indices` (all: null), padded, in the box's aspect ratio.
  function fit(indices) {
    const xsOf = indices ? indices.map(px) : [MARGIN, width - MARGIN];
    const ysOf = indices ? indices.map(py) : [MARGIN, height - MARGIN];
    if (!xsOf.length) return;
    let x0 = Math.min(...xsOf) - MARGIN, x1 = Math.max(...xsOf) + MARGIN;
    let y0 = Math.min(...ysOf) - MARGIN, y1 = Math.max(...ysOf) + MARGIN;
    const aspect = (box.clientWidth || 800) / (box.clientHeight || 560);
    let w = Math.max(x1 - x0, 4 * X_UNIT), h = Math.max(y1 - y0, 2 * Y_UNIT);
    if (w / h < aspect) w = h * aspect; else h = w / aspect;
    view = [(x0 + x1 - w) / 2, (y0 + y1 - h) / 2, w, h];
    setView();
  }
  const circuitNodes = () => [...new Set([...current].flatMap((d) => [E.writer[d], E.reader[d]]))];
  const fitCircuit = el("button", { id: "fit-circuit", type: "button", text: "fit circuit" });
  const fitAll = el("button", { id: "fit-all", type: "button", text: "fit all" });
  fitCircuit.addEventListener("click", () => fit(circuitNodes()));
  fitAll.addEventListener("click", () => fit(null));
  legend.append(" ", fitCircuit, " ", fitAll, " (drag to pan, scroll to zoom)");
  canvas.addEventListener("wheel", (event) => {
    event.preventDefault();
    const rect = canvas.getBoundingClientRect();
    const fx = (event.clientX - rect.left) / rect.width, fy = (event.clientY - rect.top) / rect.height;
    const scale = event.deltaY > 0 ? 1.2 : 1 / 1.2;
    const w2 = view[2] * scale, h2 = view[3] * scale;
    view = [view[0] + (view[2] - w2) * fx, view[1] + (view[3] - h2) * fy, w2, h2];
    setView();
  }, { passive: false });
  let drag = null;
  canvas.addEventListener("mousedown", (event) => { drag = [event.clientX, event.clientY, view[0], view[1]]; });
  window.addEventListener("mouseup", () => { drag = null; });
  canvas.addEventListener("mousemove", (event) => {
    if (!drag) return;
    const rect = canvas.getBoundingClientRect();
    view[0] = drag[2] - (event.clientX - drag[0]) * view[2] / rect.width;
    view[1] = drag[3] - (event.clientY - drag[1]) * view[3] / rect.height;
    setView();
  });

  // colouring
  function paint() {
    const byFrequency = colour.value === "frequency";
    for (let d = 0; d < nEdges; d++) {
      let t;
      if (byFrequency) t = E.frequency[d];
      else t = E.score ? Math.abs(E.score[d] || 0) / maxAbs : 0.5;
      paths[d].style.stroke = E.score && !byFrequency && E.score[d] < 0 ? "#c0392b" : viridis(t);
    }
    legendText.textContent = byFrequency
      ? "Edge colour: bootstrap selection frequency, 0 (dark) to 1 (yellow)."
      : "Edge colour and width: |score| relative to the largest (dark: small, yellow: large; red: negative score).";
  }

  // the highlighted circuit
  let current = new Set();
  function highlight() {
    let members, size, label = null, faith = null;
    if (mode.value === "top" || mode.value === "threshold") {
      let k;
      if (mode.value === "threshold") {
        const t = parseFloat(threshold.value);
        k = C.sorted_scores.filter((s) => s > t).length;
        sizeInput.value = k;
        if (k === C.sorted_scores.length && k < C.n_edges) label = `at least ${k} (the page keeps the best ${k} scores)`;
      } else {
        k = Math.max(0, Math.min(C.n_edges, parseInt(sizeInput.value || "0", 10)));
      }
      slider.value = k;
      members = new Set();
      for (let d = 0; d < nEdges; d++) if (E.rank[d] <= k) members.add(d);
      size = k;
      const at = faithfulnessAt(run.faithfulness, k);
      label = label || `top ${k}`;
      if (at) faith = at.size === k ? fmt(at.value) : `${fmt(at.value)} (at k = ${at.size}, the nearest evaluated size)`;
    } else {
      const c = C.circuits[parseInt(mode.value.split(":")[1], 10)];
      members = new Set(c.edges);
      size = c.size;
      label = c.name;
      if (c.faithfulness !== null) faith = fmt(c.faithfulness);
    }
    current = members;
    for (let d = 0; d < nEdges; d++) paths[d].classList.toggle("hl", members.has(d));
    const inCircuit = new Set();
    for (const d of members) { inCircuit.add(E.writer[d]); inCircuit.add(E.reader[d]); }
    groups.forEach((g, i) => { const r = g.querySelector("rect"); if (r) r.classList.toggle("incircuit", inCircuit.has(i)); });
    status.replaceChildren(
      `${label}: `, el("span", { id: "circuit-size", text: String(size) }), " edges, ",
      el("span", { id: "highlight-count", text: String(members.size) }), " drawn",
      faith === null ? "" : ", faithfulness ", faith === null ? "" : el("span", { id: "faithfulness-at-size", text: faith }),
    );
    if (typeof Plotly !== "undefined" && run.faithfulness && document.getElementById(faithId)) {
      Plotly.relayout(faithId, { shapes: [{ type: "line", x0: Math.max(size, 0.5), x1: Math.max(size, 0.5), y0: 0, y1: 1, yref: "paper", line: { color: "#ff2d95", dash: "dot" } }] });
    }
  }

  function select(d) {
    paths.forEach((p) => p.classList.remove("sel"));
    if (d !== null) paths[d].classList.add("sel");
  }

  function showEdge(d) {
    select(d);
    const items = [
      ["writer", N.label[E.writer[d]]],
      ["reader", N.label[E.reader[d]]],
      ["score", E.score ? String(E.score[d]) : "n/a"],
      ["rank", `${E.rank[d]} of ${C.n_edges}`],
    ];
    if (E.frequency) items.push(["bootstrap frequency", fmt(E.frequency[d], 3)]);
    items.push(["in the highlighted circuit", current.has(d) ? "yes" : "no"]);
    for (const c of C.circuits) items.push([c.truth ? "in " + c.name : "in " + c.name, c.edges.includes(d) ? "yes" : "no"]);
    const findings = E.findings[d] || [];
    details.replaceChildren(
      el("h3", { text: E.name[d], id: "detail-name" }),
      el("ul", {}, items.map(([k, v]) => el("li", { "data-field": k }, [el("b", { text: k + ": " }), el("span", { class: "value", text: v })]))),
      el("h3", { text: "diagnose" }),
      findings.length ? el("ul", {}, findings.map((f) => el("li", { text: f }))) : el("p", { text: "no finding about this edge" }),
    );
  }

  function showNode(i) {
    select(null);
    const edges = byNode[i].slice().sort((a, b) => E.rank[a] - E.rank[b]).slice(0, 12);
    details.replaceChildren(
      el("h3", { text: N.label[i], id: "detail-name" }),
      el("ul", {}, [
        el("li", {}, [el("b", { text: "kind: " }), N.kind[i] + (N.port[i] ? " (input)" : "")]),
        el("li", {}, [el("b", { text: "drawn edges: " }), String(byNode[i].length)]),
      ]),
      el("h3", { text: "diagnose" }),
      N.findings[i] ? el("ul", {}, N.findings[i].map((f) => el("li", { text: f }))) : el("p", { text: "no finding about this node" }),
      el("h3", { text: "best-ranked edges" }),
      el("ul", {}, edges.map((d) => {
        const item = el("li", { text: `#${E.rank[d]} ${E.name[d]}` + (E.score ? ` (${fmt(E.score[d])})` : "") });
        item.style.cursor = "pointer";
        item.addEventListener("click", () => showEdge(d));
        return item;
      })),
    );
  }

  search.addEventListener("input", () => {
    const q = search.value.trim().toLowerCase();
    let first = null, count = 0;
    groups.forEach((g, i) => {
      const hit = q !== "" && N.label[i].toLowerCase().includes(q);
      g.classList.toggle("match", hit);
      if (hit) { count++; if (first === null) first = i; }
    });
    search.title = q ? `${count} nodes match` : "";
    search.dataset.matches = String(count);
    if (first !== null && !N.port[first]) showNode(first);
  });
  const faithId = "faithfulness-plot-" + Math.random().toString(36).slice(2);
  sizeInput.addEventListener("input", () => { if (mode.value !== "top") mode.value = "top"; highlight(); });
  slider.addEventListener("input", () => { sizeInput.value = slider.value; mode.value = "top"; highlight(); });
  threshold.addEventListener("input", () => { mode.value = "threshold"; highlight(); });
  mode.addEventListener("change", highlight);
  colour.addEventListener("change", paint);

  // curves
  const plots = el("div", { class: "plots" });
  if (run.faithfulness || Object.keys(run.rocs).length) root.append(el("h2", { text: "Curves" }), plots);
  if (typeof Plotly !== "undefined") {
    const config = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["toImage"] };
    if (run.faithfulness) {
      const div = el("div", { class: "plot", id: faithId });
      plots.append(div);
      Plotly.newPlot(div, [{ x: run.faithfulness.sizes.map((s) => Math.max(s, 0.5)), y: run.faithfulness.values, mode: "lines", name: "f(k)", hovertemplate: "k=%{x}<br>f=%{y:.4f}<extra></extra>" }], {
        title: { text: "faithfulness of the top-k circuit" }, margin: { t: 40, r: 10 },
        xaxis: { type: "log", title: { text: "edges kept (k)" } }, yaxis: { title: { text: "faithfulness f(k)" } },
        shapes: [],
      }, config);
    }
    const rocNames = Object.keys(run.rocs);
    if (rocNames.length) {
      const div = el("div", { class: "plot", id: "roc-plot" });
      plots.append(div);
      const traces = rocNames.map((name) => ({ x: run.rocs[name].fpr, y: run.rocs[name].tpr, mode: "lines", name: `${name} (${fmt(run.rocs[name].auc, 3)})` }));
      traces.push({ x: [0, 1], y: [0, 1], mode: "lines", line: { dash: "dot", color: "#999" }, showlegend: false, hoverinfo: "skip" });
      Plotly.newPlot(div, traces, {
        title: { text: "ROC against the ground truths" }, margin: { t: 40, r: 10 },
        xaxis: { title: { text: "false positive rate" }, range: [0, 1] }, yaxis: { title: { text: "true positive rate" }, range: [0, 1.02] },
        legend: { x: 0.45, y: 0.05 },
      }, config);
    }
  }
  if (run.figures.length) {
    root.append(el("h2", { text: "Figures" }));
    root.append(table(["figure", "value"], run.figures, [false, true]));
  }
  if (run.stability.length) {
    root.append(el("h2", { text: "Bootstrap" }));
    root.append(table(["figure", "value"], run.stability, [false, true]));
  }
  if (run.diagnosis) renderDiagnosis(run.diagnosis, root);
  paint();
  highlight();
  // a tall graph (SmolLM2's 61 rows) opens on its top 14 rows, the outputs, at a readable scale; drag to go down
  const aspect = (box.clientWidth || 800) / (box.clientHeight || 560);
  if (height > 16 * Y_UNIT) {
    const h = 14 * Y_UNIT, w = h * aspect;
    view = [(width - w) / 2, 0, w, h];
    setView();
  }
}

function renderDiagnosis(D, root) {
  root.append(el("h2", { text: "Diagnosis" }));
  root.append(el("p", { text: D.depends_on_ablation ? "The checked circuits depend on the ablation." : "The checked circuits do not depend on the ablation." }));
  if (D.constant_writers.length) {
    root.append(el("h3", { text: "constant writers" }));
    root.append(table(["writer", "finding"], D.constant_writers));
  }
  for (const a of D.ablations) {
    const section = el("section", { class: "ablation", "data-ablation": a.ablation });
    section.append(el("h3", { text: `${a.ablation} ablation` }));
    const faithful = a.ground_truth_faithful === null ? "no ground truth" : a.ground_truth_faithful ? "the ground truth is faithful" : "the ground truth is not faithful";
    section.append(el("p", { text: faithful + (a.minimal_size === null ? "" : `; minimal circuit: ${a.minimal_size} edges`) }));
    const rows = a.behaviour.map((r) => [r.label, r.n_edges, r.loss, r.agreement, r.flags.join(", ") || "none", r.examples.join("; ")]);
    const behaviour = table(["variant", "edges", "loss", "agreement", "flags", "what it answers"], rows, [false, true, true, true, false, false]);
    behaviour.classList.add("behaviour");
    behaviour.querySelectorAll("tbody tr").forEach((tr, i) => { if (a.behaviour[i].flags.length) tr.children[4].classList.add("flag"); });
    section.append(behaviour);
    if (a.removable.length) {
      section.append(el("p", { text: "removable edges of the ground truth:" }));
      section.append(table(["edge", "reason", "detail"], a.removable));
    }
    if (a.redundant_groups.length) {
      section.append(el("p", { text: "redundant groups:" }));
      section.append(el("ul", {}, a.redundant_groups.map((g) => el("li", { text: g }))));
    }
    if (a.misses.length) {
      section.append(el("p", { text: "where the scores go wrong:" }));
      section.append(table(["edge", "rank", "reason", "detail"], a.misses, [false, true, false, false]));
    }
    root.append(section);
  }
}

function renderBench(bench, root) {
  for (const m of bench.missing) root.append(el("div", { class: "missing", text: "missing: " + m }));
  const filter = el("input", { id: "bench-filter", type: "search", placeholder: "filter rows (all words must match)" });
  const count = el("span", { id: "bench-count" });
  root.append(el("div", { class: "controls" }, [filter, count]));
  const headRow = el("tr", {}, bench.columns.map((c) => el("th", { text: c, "data-column": c })));
  const body = el("tbody");
  const tableEl = el("table", { id: "bench-table" }, [el("thead", {}, [headRow]), body]);
  root.append(tableEl);
  const runRoot = el("div", { id: "run" });
  root.append(runRoot);
  let rows = bench.rows.slice();
  let sortColumn = null, ascending = true;
  function draw() {
    const words = filter.value.toLowerCase().split(/\s+/).filter(Boolean);
    const shown = rows.filter((r) => {
      const text = bench.columns.map((c) => fmt(r.cells[c])).join(" ").toLowerCase();
      return words.every((w) => text.includes(w));
    });
    body.replaceChildren(...shown.map((r) => {
      const tr = el("tr", { "data-key": r.key }, bench.columns.map((c) => el("td", { text: fmt(r.cells[c]), class: typeof r.cells[c] === "number" ? "num" : "" })));
      tr.addEventListener("click", () => {
        if (r.run === null) { runRoot.replaceChildren(el("div", { class: "missing", text: `missing: run ${r.key} has no page (see the notes above)` })); return; }
        renderRun(bench.runs[r.run], runRoot);
        runRoot.scrollIntoView();
      });
      return tr;
    }));
    count.textContent = `${shown.length} of ${rows.length} runs`;
  }
  headRow.querySelectorAll("th").forEach((th) => th.addEventListener("click", () => {
    const c = th.dataset.column;
    ascending = sortColumn === c ? !ascending : true;
    sortColumn = c;
    headRow.querySelectorAll("th").forEach((h) => h.classList.remove("asc", "desc"));
    th.classList.add(ascending ? "asc" : "desc");
    rows.sort((a, b) => {
      const x = a.cells[c], y = b.cells[c];
      if (x === y) return 0;
      if (x === null || x === undefined) return 1;  // missing values last, either way
      if (y === null || y === undefined) return -1;
      const order = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
      return ascending ? order : -order;
    });
    draw();
  }));
  filter.addEventListener("input", draw);
  draw();
}

const ROOT = document.getElementById("page");
if (document.body.dataset.kind === "bench") renderBench(PAGE, ROOT);
else renderRun(PAGE, ROOT);
window.edgewiseReportReady = true;
