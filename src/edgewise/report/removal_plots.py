"""The capability-removal plot: per intervention, how much of the forget task it took (accuracy drop) against how
much of the retain tasks it kept; the ideal removal sits top right."""

from __future__ import annotations

from pathlib import Path

from .plots import plt, save_figure  # plt: Agg backend

KIND_STYLE = {"circuit": ("o", "tab:blue"), "nodes": ("s", "tab:cyan"), "random": ("x", "grey"),
              "removal mask": ("*", "tab:red"), "task vector": ("^", "tab:green"),
              "gradient ascent": ("v", "tab:purple")}


LABEL_SPOT = 0.04  # points closer than this share one label


def removal_point(removal: dict) -> tuple[float, float] | None:
    """Returns (retain kept, forget removed) of one removal record: the mean over retain tasks of accuracy after /
    before (1 without retain tasks) and the forget task's accuracy drop as a share of its accuracy before; None
    where the forget task has no accuracy (numerical outputs) or none to lose."""
    forget = removal["forget"]
    if forget["accuracy_after"] is None or not forget["accuracy_before"]:
        return None
    kept = [m["accuracy_after"] / m["accuracy_before"] for m in removal["retain"] if m["accuracy_before"]]
    return (sum(kept) / len(kept) if kept else 1.0,
            (forget["accuracy_before"] - forget["accuracy_after"]) / forget["accuracy_before"])


def short_label(removal: dict) -> str:
    """Returns an intervention's label as the plot prints it: the method of a circuit (`eap`, `acdc nodes`,
    `acdc - retain` for a circuit less the retain tasks'), the alpha of a task vector, `removal mask`."""
    if removal["kind"] in ("circuit", "nodes"):
        return (removal["label"].split(":")[0] + (" - retain" if "minus retain" in removal["label"] else "")
                + (" nodes" if removal["kind"] == "nodes" else ""))
    return removal["label"].split(" (")[0]


def plot_removals(comparison: dict, path: str | Path) -> list[Path]:
    """Draws forget removed against retain kept, one point per intervention of a removal comparison
    (`RemovalComparison.to_dict()`), circuits and the mask labelled; PNG and SVG."""
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    seen, labels = set(), {}
    for removal in comparison["removals"]:
        point = removal_point(removal)
        if point is None:
            continue
        marker, colour = KIND_STYLE.get(removal["kind"], ("o", "black"))
        ax.scatter(*point, marker=marker, color=colour, s=60 if removal["kind"] != "random" else 30,
                   label=None if removal["kind"] in seen else removal["kind"], zorder=3)
        seen.add(removal["kind"])
        if removal["kind"] != "random":  # interventions that land together share one label
            spot = (round(point[0] / LABEL_SPOT) * LABEL_SPOT, round(point[1] / LABEL_SPOT) * LABEL_SPOT)
            labels.setdefault(spot, []).append(short_label(removal))
    for point, names in labels.items():
        names = list(dict.fromkeys(names))
        text = ", ".join(names) if len(names) <= 3 else f"{len(names)} here: {', '.join(names[:2])}, ..."
        ax.annotate(text, point, fontsize=7, xytext=(4, 3), textcoords="offset points")
    ax.set_xlim(-0.05, 1.1)
    ax.set_ylim(-0.05, 1.1)
    ax.axvline(1, color="grey", linewidth=0.6, linestyle=":")
    ax.axhline(1, color="grey", linewidth=0.6, linestyle=":")
    retain = ", ".join(comparison["retain"]) or "nothing"
    ax.set_xlabel(f"retain kept (accuracy after / before; {retain})", fontsize=8)
    ax.set_ylabel(f"forget removed (accuracy drop / before; {comparison['task']})", fontsize=8)
    ax.set_title(f"removing {comparison['task']} ({comparison['ablation']} ablation, {comparison['measured_on']} "
                 "inputs)", fontsize=9)
    ax.legend(fontsize=7, loc="lower left")
    return save_figure(fig, path)
