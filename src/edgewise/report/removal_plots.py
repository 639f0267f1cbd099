"""The capability-removal plot: per intervention, how much of the forget task it took (accuracy drop) against how
much of the retain tasks it kept; the ideal removal sits top right."""

from __future__ import annotations

from pathlib import Path

from ..interventions import (
    CircuitNodes,
    ComparedRemoval,
    DiscoveredCircuit,
    GivenCircuit,
    RandomEdges,
    RemovalComparison,
    RemovalKind,
    RemovalMask,
)
from .plots import plt, save_figure  # plt: Agg backend

KIND_STYLE = {
    RemovalKind.CIRCUIT: ("o", "tab:blue"),
    RemovalKind.NODES: ("s", "tab:cyan"),
    RemovalKind.RANDOM: ("x", "grey"),
    RemovalKind.REMOVAL_MASK: ("*", "tab:red"),
    RemovalKind.TASK_VECTOR: ("^", "tab:green"),
    RemovalKind.GRADIENT_ASCENT: ("v", "tab:purple"),
}


LABEL_SPOT = 0.04  # points closer than this share one label


def removal_point(row: ComparedRemoval) -> tuple[float, float] | None:
    """Returns (retain kept, forget removed) of one removal row: the mean over retain tasks of accuracy after /
    before (1 without retain tasks) and the forget task's accuracy drop as a share of its accuracy before; None
    where the forget task has no accuracy (numerical outputs) or none to lose.

    Args:
        row: one row of a `RemovalComparison`; its result's `forget` and `retain` measures are read.

    Returns:
        The point (x, y), or None.
    """
    forget = row.result.forget
    if forget.accuracy_after is None or not forget.accuracy_before:
        return None
    kept = [m.accuracy_after / m.accuracy_before for m in row.result.retain if m.accuracy_before]
    return (
        sum(kept) / len(kept) if kept else 1.0,
        (forget.accuracy_before - forget.accuracy_after) / forget.accuracy_before,
    )


def short_label(row: ComparedRemoval) -> str:
    """Returns an intervention's label as the plot prints it: the method of a discovered circuit (`eap`, `acdc
    nodes`, `acdc - retain` for a circuit less the retain tasks'), a given circuit's description, the alpha of a
    task vector (`task vector, alpha 2`), `removal mask`, `random 20 edges`.

    Args:
        row: one row of a `RemovalComparison`; what it removed is read.

    Returns:
        The short label.
    """
    removed = row.removed
    nodes = isinstance(removed, CircuitNodes)
    circuit, suffix = (removed.circuit, " nodes") if nodes else (removed, "")
    if isinstance(circuit, DiscoveredCircuit):
        return circuit.method + (" - retain" if circuit.minus_retain else "") + suffix
    if isinstance(circuit, GivenCircuit):
        return circuit.label + suffix
    if isinstance(removed, RandomEdges):
        return f"random {removed.size} edges"
    if isinstance(removed, RemovalMask):
        return "removal mask"
    return removed.label  # a task vector's alpha, gradient ascent's steps


def plot_removals(comparison: RemovalComparison, path: str | Path) -> list[Path]:
    """Draws forget removed against retain kept, one point per intervention of a removal comparison, circuits and
    the mask labelled; PNG and SVG.

    Args:
        comparison: the removal comparison (`compare_removals`, or `RemovalComparison.from_dict` of its JSON).
        path: where to write: its suffix is replaced by .png and .svg; missing folders are made.

    Returns:
        The PNG and SVG paths.
    """
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    seen, labels = set(), {}
    for row in comparison.rows:
        point = removal_point(row)
        if point is None:
            continue
        marker, colour = KIND_STYLE.get(row.kind, ("o", "black"))
        ax.scatter(
            *point,
            marker=marker,
            color=colour,
            s=60 if row.kind is not RemovalKind.RANDOM else 30,
            label=None if row.kind in seen else row.kind.value,
            zorder=3,
        )
        seen.add(row.kind)
        if row.kind is not RemovalKind.RANDOM:  # interventions that land together share one label
            spot = (round(point[0] / LABEL_SPOT) * LABEL_SPOT, round(point[1] / LABEL_SPOT) * LABEL_SPOT)
            labels.setdefault(spot, []).append(short_label(row))
    for point, names in labels.items():
        names = list(dict.fromkeys(names))
        text = ", ".join(names) if len(names) <= 3 else f"{len(names)} here: {', '.join(names[:2])}, ..."
        ax.annotate(text, point, fontsize=7, xytext=(4, 3), textcoords="offset points")
    ax.set_xlim(-0.05, 1.1)
    ax.set_ylim(-0.05, 1.1)
    ax.axvline(1, color="grey", linewidth=0.6, linestyle=":")
    ax.axhline(1, color="grey", linewidth=0.6, linestyle=":")
    retain = ", ".join(comparison.retain) or "nothing"
    ax.set_xlabel(f"retain kept (accuracy after / before; {retain})", fontsize=8)
    ax.set_ylabel(f"forget removed (accuracy drop / before; {comparison.forget})", fontsize=8)
    ax.set_title(
        f"removing {comparison.forget} ({comparison.ablation} ablation, {comparison.measured_on} inputs)", fontsize=9
    )
    ax.legend(fontsize=7, loc="lower left")
    return save_figure(fig, path)
