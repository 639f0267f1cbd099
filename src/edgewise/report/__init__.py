"""The report stage: circuit diagrams, ROC and faithfulness curves, choice maps and the capability-removal plot; every
figure is saved as PNG and SVG (`save_figure`). The plots of a bench folder live with the bench
(`edgewise.suite.bench`)."""

from .choices import plot_choice_maps
from .plots import draw_circuit, plot_circuit, plot_faithfulness_curves, plot_roc_curves, save_figure
from .removal_plots import plot_removals

__all__ = [
    "draw_circuit",
    "plot_choice_maps",
    "plot_circuit",
    "plot_faithfulness_curves",
    "plot_removals",
    "plot_roc_curves",
    "save_figure",
]
