"""Plots: circuit diagrams on a model's graph, ROC and faithfulness curves (PNG and SVG via matplotlib, or Graphviz
for diagrams when `dot` is installed)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ..evaluate import FaithfulnessCurve, RocCurve  # noqa: E402
from ..graph import Edge, Graph, NodeKind  # noqa: E402
from ..outputs import atomic_path, write_text  # noqa: E402

_INPUT_STYLE = {"Q": ("tab:blue", "q input"), "K": ("tab:green", "k input"), "V": ("tab:red", "v input")}
# An edge against the ground truth: (matplotlib colour, line style, Graphviz colour, Graphviz style) per status.
_DIFF_STYLE = {
    "found and true": ("tab:green", "-", "forestgreen", "solid"),
    "found, not true": ("tab:orange", "-", "darkorange", "solid"),
    "true, missed": ("tab:red", "--", "red", "dashed"),
}
# Methods often give identical curves (every exact method on a tracr task); line styles keep them apart.
_LINE_STYLES = ("-", "--", "-.", ":")


def _edge_status(edge: Edge, found: set[Edge], truth: set[Edge]) -> str:
    """Returns the `_DIFF_STYLE` key of an edge in `found | truth`: found and true, found only, or missed."""
    if edge in found:
        return "found and true" if edge in truth else "found, not true"
    return "true, missed"


def _layout(graph: Graph) -> dict[str, tuple[float, float]]:
    """Returns (x, y) per node: embeddings at the bottom, then one row per writer group (a layer's heads, an MLP), the
    output on top. Heads spread over the left part and MLPs sit to the right, so edges that skip layers do not run
    through nodes."""
    rows: list[list] = []
    for group in graph.groups:
        if group.kind != "writer":
            continue
        if group.nodes[0].kind is NodeKind.EMBEDDING and rows and rows[-1][0].kind is NodeKind.EMBEDDING:
            rows[-1].extend(group.nodes)
        else:
            rows.append(list(group.nodes))
    rows.append([graph.reader_node(name) for name in graph.output_readers])
    spans = {NodeKind.HEAD: (0.0, 0.62), NodeKind.MLP: (0.55, 1.0)}
    pos = {}
    for y, row in enumerate(rows):
        left, right = spans.get(row[0].kind, (0.0, 1.0))
        for i, node in enumerate(row):
            pos[node.name] = (left + (right - left) * (i + 1) / (len(row) + 1), float(y))
    parts: dict[str, list] = {}  # a writer split into features: labelled above its parts, where its readers' arrows end
    for node in graph.writer_nodes:
        if node.component != node.name:
            parts.setdefault(node.component, []).append(pos[node.name])
    for component, points in parts.items():
        pos.setdefault(component, (sum(x for x, _ in points) / len(points), points[0][1] + 0.4))
    return pos


PORT_DROP = 0.32  # how far below its head a head's q, k and v inputs sit, in rows


def _input_ports(graph: Graph, pos: dict[str, tuple[float, float]]) -> dict[tuple[str, str], tuple[float, float]]:
    """Returns (x, y) of each head's q, k and v inputs, by (head, 'Q'/'K'/'V'): side by side just below the head,
    so that edges into different inputs of one head end apart, spread as far as the head's neighbours allow."""
    heads = [node for node in graph.writer_nodes if node.kind is NodeKind.HEAD and node.name == node.component]
    per_row: dict[float, int] = {}
    for node in heads:
        per_row[pos[node.name][1]] = per_row.get(pos[node.name][1], 0) + 1
    ports = {}
    for node in heads:
        x, y = pos[node.name]
        spread = min(0.035, 0.62 / (per_row[y] + 1) / 3)  # a third of the gap to the next head (`_layout`'s span)
        for i, kind in enumerate("QKV"):
            ports[node.name, kind] = (x + (i - 1) * spread, y - PORT_DROP)
    return ports


def frequency_colour(frequency: float) -> str:
    """Returns the colour of an edge chosen by this share of bootstrap refits: viridis, dark at 0, yellow at 1.

    Args:
        frequency: the edge's selection frequency, in [0, 1] (values outside are clipped).

    Returns:
        The colour as `#rrggbb`.
    """
    return matplotlib.colors.to_hex(matplotlib.colormaps["viridis"](min(max(frequency, 0.0), 1.0)))


def _target(graph: Graph, edge: Edge) -> tuple[str, str]:
    """Returns (the component an edge enters, its attention input as 'Q'/'K'/'V' or '' for other readers)."""
    node = graph.reader_node(edge.reader)
    return node.component, (node.input or "").upper()


def plot_circuit(
    graph: Graph,
    found: set[Edge],
    path: str | Path,
    truth: set[Edge] | None = None,
    title: str = "",
    frequency: dict[Edge, float] | None = None,
) -> list[Path]:
    """Draws the circuit on the plain graph and writes PNG and SVG; returns the written paths.

    Each head's q, k and v inputs are drawn apart, as small labelled ports below it, and an edge into one of them ends
    at its port. With `truth`, edges in both are green, found-only edges orange, missed ground-truth edges dashed red;
    without it, found edges are coloured by the reader input they enter (q, k, v, or residual). With `frequency`,
    every edge is coloured by its bootstrap selection frequency instead (`frequency_colour`, with a colour bar),
    missed true edges still dashed.

    Args:
        graph: the plain graph the edges belong to; writers split into features are drawn as their parts.
        found: the circuit's edges.
        path: where to write: its suffix is replaced by .png and .svg; missing folders are made.
        truth: the ground-truth edges to compare with; None (or empty): no comparison.
        title: the figure's title.
        frequency: each edge's bootstrap selection frequency (`Stability.selection_frequency`; edges not in it: 0);
            None colours as above.

    Returns:
        The PNG and SVG paths.
    """
    pos = _layout(graph)
    ports = _input_ports(graph, pos)
    height = max(y for _, y in pos.values()) + 1
    row_height = 1.4 if graph.features else 0.8  # feature labels stand upright
    fig, ax = plt.subplots(figsize=(9 if graph.features else 7, 1.0 + row_height * height))
    truth = truth or set()
    for edge in sorted(found | truth):
        target, kind = _target(graph, edge)
        (x0, y0), (x1, y1) = pos[edge.writer], ports.get((target, kind), pos[target])
        if truth:
            color, style = _DIFF_STYLE[_edge_status(edge, found, truth)][:2]
        else:
            color, style = _INPUT_STYLE.get(kind, ("black", ""))[0], "-"
        if frequency is not None:
            color = frequency_colour(frequency.get(edge, 0.0))
        ax.annotate(
            "",
            xy=(x1, y1 - (0.07 if (target, kind) in ports else 0.15)),
            xytext=(x0, y0 + 0.15),
            arrowprops={
                "arrowstyle": "->",
                "color": color,
                "linestyle": style,
                "lw": 1.4,
                "connectionstyle": "arc3,rad=0.15" if abs(y1 - y0) > 1 else "arc3",
            },
        )
    for (head, kind), (x, y) in ports.items():
        ax.plot([x, pos[head][0]], [y + 0.06, pos[head][1] - 0.12], color="gray", lw=0.6)
        ax.text(
            x,
            y,
            kind.lower(),
            ha="center",
            va="center",
            fontsize=6,
            color=_INPUT_STYLE[kind][0],
            bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": _INPUT_STYLE[kind][0], "lw": 0.6},
        )
    for name, (x, y) in pos.items():
        node = graph.writer_node(name) if name in graph.writers else None
        if node is not None and node.part != name:  # a feature: its label within the writer, upright to fit a row
            ax.text(
                x,
                y,
                node.part,
                ha="center",
                va="center",
                fontsize=6,
                rotation=90,
                bbox={"boxstyle": "round", "facecolor": "#eef4ff", "edgecolor": "gray"},
            )
            continue
        ax.text(
            x,
            y,
            name,
            ha="center",
            va="center",
            fontsize=8,
            bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "gray"},
        )
    if frequency is not None:
        bar = matplotlib.cm.ScalarMappable(matplotlib.colors.Normalize(0, 1), matplotlib.colormaps["viridis"])
        fig.colorbar(bar, ax=ax, fraction=0.03, pad=0.02, label="bootstrap selection frequency")
        handles = [plt.Line2D([], [], color="gray", linestyle="--", label="true, missed")] if truth else []
    elif truth:
        handles = [plt.Line2D([], [], color=c, linestyle=s, label=lab) for lab, (c, s, _, _) in _DIFF_STYLE.items()]
    else:
        handles = [plt.Line2D([], [], color=c, label=lab) for c, lab in _INPUT_STYLE.values()]
        handles.append(plt.Line2D([], [], color="black", label="residual (MLP / output)"))
    if handles:
        ax.legend(handles=handles, loc="upper left", fontsize=7, bbox_to_anchor=(1.0, 1.0))
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.6, height - 0.4)
    ax.axis("off")
    ax.set_title(title, fontsize=10)
    return save_figure(fig, path)


def circuit_dot(
    graph: Graph, found: set[Edge], truth: set[Edge], title: str = "", frequency: dict[Edge, float] | None = None
) -> str:
    """Returns a plain graph's circuit as Graphviz DOT source: edges in `found | truth` from writer to component,
    bottom to top, coloured as `plot_circuit` colours them. A head that an edge enters through its query, key or value
    input is a record node with q, k and v ports below its name, and such an edge ends at its port, so the three
    inputs are drawn apart.

    Args:
        graph: the plain graph the edges belong to.
        found: the circuit's edges.
        truth: the ground-truth edges.
        title: the diagram's label (double quotes become single quotes).
        frequency: each edge's bootstrap selection frequency (edges not in it: 0), which then colours the edges
            (`frequency_colour`); None colours them by their status against the truth.

    Returns:
        The DOT source, one line per edge in graph order.
    """
    quoted_title = title.replace('"', "'")  # a double quote would end DOT's string
    lines = [
        "digraph circuit {",
        "  rankdir=BT;",
        f'  label="{quoted_title}";',
        "  node [shape=box, style=rounded, fontsize=10];",
    ]
    edges = sorted(found | truth, key=graph.edge_index)
    heads = dict.fromkeys(target for target, kind in (_target(graph, e) for e in edges) if kind)
    lines += [f'  "{head}" [shape=record, label="{{{head}|{{<q> q|<k> k|<v> v}}}}"];' for head in heads]
    for edge in edges:
        target, kind = _target(graph, edge)
        color, style = _DIFF_STYLE[_edge_status(edge, found, truth)][2:]
        if frequency is not None:
            color = f'"{frequency_colour(frequency.get(edge, 0.0))}"'
        port = f":{kind.lower()}" if kind else ""
        lines.append(f'  "{edge.writer}" -> "{target}"{port} [color={color}, style={style}];')
    return "\n".join([*lines, "}"]) + "\n"


def plot_circuit_graphviz(
    graph: Graph,
    found: set[Edge],
    path: str | Path,
    truth: set[Edge],
    title: str = "",
    frequency: dict[Edge, float] | None = None,
) -> list[Path]:
    """Draws the circuit against the truth with Graphviz's `dot`; writes the DOT source, PNG and SVG and returns the
    two images' paths.

    Args:
        graph: the plain graph the edges belong to.
        found: the circuit's edges.
        path: where to write: its suffix is replaced by .dot, .png and .svg; missing folders are made.
        truth: the ground-truth edges.
        title: the diagram's label.
        frequency: each edge's bootstrap selection frequency, which then colours the edges; None: by status.

    Returns:
        The PNG and SVG paths.

    Raises:
        subprocess.CalledProcessError: `dot` fails; the previous images are unchanged.
        OutputPathError: a file cannot be written; the previous file is unchanged.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    source = path.with_suffix(".dot")
    write_text(source, circuit_dot(graph, found, truth, title, frequency))
    written = []
    for fmt in ("png", "svg"):
        out = path.with_suffix(f".{fmt}")
        with atomic_path(out) as temporary:  # a failed `dot` or a full disk leaves the previous image
            subprocess.run(["dot", f"-T{fmt}", str(source), "-o", str(temporary)], check=True, capture_output=True)
        written.append(out)
    return written


def draw_circuit(
    graph: Graph,
    found: set[Edge],
    path: str | Path,
    truth: set[Edge],
    title: str = "",
    frequency: dict[Edge, float] | None = None,
) -> list[Path]:
    """Draws a plain graph's circuit against the truth (true, found-only and missed edges apart) with Graphviz when
    `dot` is installed, else with `plot_circuit`; returns the written PNG and SVG paths.

    Args:
        graph: the plain graph the edges belong to.
        found: the circuit's edges.
        path: where to write: its suffix is replaced by .png and .svg (and .dot with Graphviz); missing folders are
            made.
        truth: the ground-truth edges.
        title: the figure's title.
        frequency: each edge's bootstrap selection frequency (`Stability.selection_frequency` by edge; edges not in
            it: 0), which then colours the edges; None colours them by their status against the truth.

    Returns:
        The PNG and SVG paths.
    """
    if shutil.which("dot"):
        return plot_circuit_graphviz(graph, found, path, truth, title, frequency)
    return plot_circuit(graph, found, path, truth, title, frequency)


def plot_roc_curves(panels: dict[str, dict[str, RocCurve]], path: str | Path, title: str = "") -> list[Path]:
    """Draws ROC curves, one panel per ground truth and one line per method (its AUROC in the legend); writes PNG and
    SVG and returns their paths.

    Args:
        panels: the ROC curves by method name, by ground-truth name (one panel each, in order).
        path: where to write: its suffix is replaced by .png and .svg; missing folders are made.
        title: the figure's title.

    Returns:
        The PNG and SVG paths.
    """
    fig, axes = plt.subplots(1, len(panels), figsize=(4.3 * len(panels), 4.2), squeeze=False)
    for ax, (truth_name, curves) in zip(axes[0], panels.items()):
        for i, (method, curve) in enumerate(curves.items()):
            ax.plot(
                curve.false_positive_rate,
                curve.true_positive_rate,
                linestyle=_LINE_STYLES[i % len(_LINE_STYLES)],
                lw=1.5,
                label=f"{method} ({curve.auc:.2f})",
            )
        ax.plot([0, 1], [0, 1], color="gray", linestyle=":", lw=0.8)
        ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="false positive rate", ylabel="true positive rate", title=truth_name)
        ax.legend(fontsize=7, loc="lower right", title="method (AUROC)", title_fontsize=7)
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def plot_faithfulness_curves(
    curves: dict[str, FaithfulnessCurve], path: str | Path, title: str = "", level: float = 0.95
) -> list[Path]:
    """Draws faithfulness against the number of edges kept, one line per method, with a line at `level`; writes PNG
    and SVG and returns their paths. The x axis is logarithmic past one edge (symlog): methods differ at small sizes.

    Args:
        curves: the faithfulness curves by method name, one line each.
        path: where to write: its suffix is replaced by .png and .svg; missing folders are made.
        title: the figure's title.
        level: the faithfulness the horizontal reference line marks.

    Returns:
        The PNG and SVG paths.
    """
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for i, (method, curve) in enumerate(curves.items()):
        ax.plot(curve.sizes, curve.faithfulness, linestyle=_LINE_STYLES[i % len(_LINE_STYLES)], lw=1.5, label=method)
    ax.axhline(level, color="gray", linestyle=":", lw=0.8, label=f"{level:.0%} faithful")
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xlim(left=0)
    ax.set(xlabel="edges kept (top k by score)", ylabel="faithfulness f(k)", title=title)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return save_figure(fig, path)


def save_figure(fig, path: str | Path) -> list[Path]:
    """Writes the figure as PNG and SVG at `path` (its suffix replaced), each atomically, closes it, and returns the
    two paths.

    Args:
        fig (matplotlib.figure.Figure): the figure; it is closed afterwards, also when a write fails.
        path: where to write: its suffix is replaced by .png and .svg; missing folders are made.

    Returns:
        The PNG and SVG paths.

    Raises:
        OutputPathError: a file cannot be written; the previous file is unchanged.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    written = []
    try:
        for suffix in (".png", ".svg"):
            out = path.with_suffix(suffix)
            with atomic_path(out) as temporary:  # a full disk leaves the previous image, not half of a new one
                fig.savefig(temporary, format=suffix[1:], bbox_inches="tight", dpi=130)
            written.append(out)
    finally:
        plt.close(fig)
    return written
