"""Plots: circuit diagrams on a model's graph, and tables of edge effects; PNG and SVG via matplotlib."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .graph import Edge, Graph  # noqa: E402

_INPUT_STYLE = {"Q": ("tab:blue", "q input"), "K": ("tab:green", "k input"), "V": ("tab:red", "v input")}


def _component(reader: str) -> tuple[str, str]:
    """Returns (the node a reader belongs to, its input kind: Q, K, V or '')."""
    if reader.startswith("A") and reader[-2] == ".":
        return reader[:-2], reader[-1]
    return reader, ""


def _layout(graph: Graph) -> dict[str, tuple[float, float]]:
    """Returns (x, y) per node: embeddings at the bottom, then one row per writer group (a layer's heads, an MLP)."""
    rows: list[list[str]] = []
    for group in graph.groups:
        if group.kind != "writer":
            continue
        embedding = "Embed" in group.names[0] and rows and "Embed" in rows[-1][0]
        if embedding:
            rows[-1].extend(group.names)
        else:
            rows.append(list(group.names))
    rows.append(["Resid End"])
    return {name: ((i + 1) / (len(row) + 1), float(y)) for y, row in enumerate(rows) for i, name in enumerate(row)}


def plot_circuit(
    graph: Graph,
    found: set[Edge],
    path: str | Path,
    truth: set[Edge] | None = None,
    title: str = "",
) -> list[Path]:
    """Draws the circuit on the plain graph and writes PNG and SVG; returns the written paths.

    With `truth`, edges in both are green, found-only edges orange, missed ground-truth edges dashed red; without it,
    found edges are coloured by the reader input they enter (q, k, v, or residual).
    """
    pos = _layout(graph)
    height = max(y for _, y in pos.values()) + 1
    fig, ax = plt.subplots(figsize=(7, 1.0 + 0.8 * height))
    truth = truth or set()
    for edge in sorted(found | truth):
        target, kind = _component(edge.reader)
        (x0, y0), (x1, y1) = pos[edge.writer], pos[target]
        if truth and edge in found and edge in truth:
            color, style = "tab:green", "-"
        elif truth and edge in found:
            color, style = "tab:orange", "-"
        elif truth:
            color, style = "tab:red", "--"
        else:
            color, style = _INPUT_STYLE.get(kind, ("black", ""))[0], "-"
        offset = {"Q": -0.02, "K": 0.0, "V": 0.02}.get(kind, 0.0)
        ax.annotate(
            "",
            xy=(x1 + offset, y1 - 0.15),
            xytext=(x0, y0 + 0.15),
            arrowprops={"arrowstyle": "->", "color": color, "linestyle": style, "lw": 1.4,
                        "connectionstyle": "arc3,rad=0.15" if abs(y1 - y0) > 1 else "arc3"},
        )
    for name, (x, y) in pos.items():
        ax.text(x, y, name, ha="center", va="center", fontsize=8,
                bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "gray"})
    if truth:
        handles = [plt.Line2D([], [], color=c, linestyle=s, label=lab) for c, s, lab in
                   (("tab:green", "-", "found and true"), ("tab:orange", "-", "found, not true"),
                    ("tab:red", "--", "true, missed"))]
    else:
        handles = [plt.Line2D([], [], color=c, label=lab) for c, lab in _INPUT_STYLE.values()]
        handles.append(plt.Line2D([], [], color="black", label="residual (MLP / output)"))
    ax.legend(handles=handles, loc="upper left", fontsize=7, bbox_to_anchor=(1.0, 1.0))
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.6, height - 0.4)
    ax.axis("off")
    ax.set_title(title, fontsize=10)
    return _save(fig, path)


def plot_edge_effects(
    rows: list[str], columns: list[str], values: list[list[float]], path: str | Path, title: str, label: str
) -> list[Path]:
    """Draws a heatmap with one row per edge and one column per setting, numbers printed in the cells."""
    fig, ax = plt.subplots(figsize=(2.0 + 1.3 * len(columns), 0.8 + 0.32 * len(rows)))
    image = ax.imshow(values, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(columns)), columns)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    peak = max((v for row in values for v in row), default=0.0)
    for i, row in enumerate(values):
        for j, v in enumerate(row):
            ax.text(j, i, f"{v:.3f}", ha="center", va="center", fontsize=7, color="white" if v < peak / 2 else "black")
    fig.colorbar(image, ax=ax, label=label)
    ax.set_title(title, fontsize=10)
    return _save(fig, path)


def _save(fig, path: str | Path) -> list[Path]:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for suffix in (".png", ".svg"):
        out = path.with_suffix(suffix)
        fig.savefig(out, bbox_inches="tight", dpi=130)
        written.append(out)
    plt.close(fig)
    return written
