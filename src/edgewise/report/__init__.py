"""The report stage: circuit diagrams, ROC and faithfulness curves, choice maps, the plots of a bench folder, and
the capability-removal plot."""

from .bench_plots import plot_bench, plot_families
from .choices import plot_choice_maps
from .plots import draw_circuit, plot_circuit, plot_faithfulness_curves, plot_roc_curves
from .removal_plots import plot_removals

__all__ = ["draw_circuit", "plot_bench", "plot_choice_maps", "plot_circuit", "plot_faithfulness_curves",
           "plot_families", "plot_removals", "plot_roc_curves"]
