"""Choice maps: where a model's answers fall on a board, one panel per variant (the full network, a circuit), so
a mask that always plays one corner shows at a glance."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .plots import save_figure  # noqa: E402


def plot_choice_maps(
    panels: dict[str, list[float]], shape: tuple[int, int], path: str | Path, title: str = ""
) -> list[Path]:
    """Draws one heat map per panel of the share of answers on each square (`panels`: label -> share per class,
    classes in row-major board order) and writes PNG and SVG; returns the written paths.

    Args:
        panels: the share of answers per class (a list of rows x cols shares in row-major order), by panel label;
            one panel per entry, in order.
        shape: the board's (rows, cols).
        path: where to write: its suffix is replaced by .png and .svg; missing folders are made.
        title: the figure's title.

    Returns:
        The PNG and SVG paths.
    """
    rows, cols = shape
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 3.0), squeeze=False)
    for ax, (label, shares) in zip(axes[0], panels.items()):
        grid = [shares[r * cols : (r + 1) * cols] for r in range(rows)]
        ax.imshow(grid, cmap="Oranges", vmin=0, vmax=max(max(shares), 1e-9))
        for r in range(rows):
            for c in range(cols):
                ax.text(c, r, f"{grid[r][c]:.0%}", ha="center", va="center", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(label, fontsize=9)
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)
