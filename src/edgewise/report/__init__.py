"""The report stage: circuit diagrams, ROC and faithfulness curves, choice maps and the capability-removal plot; every
figure is saved as PNG and SVG (`save_figure`). The HTML report (`write_report`): one self-contained interactive page
of a run (`run_view`) or of a bench folder (`BenchView`). The plots of a bench folder live with the bench
(`edgewise.suite.bench`)."""

from .choices import plot_choice_maps
from .html import render_report, write_report
from .page import (
    MAX_DRAWN,
    BenchRow,
    BenchView,
    BootstrapSummary,
    CircuitView,
    DiagnosisFindings,
    RunParts,
    RunView,
    bootstrap_from_record,
    bootstrap_summary,
    check_finite_scores,
    circuit_view,
    diagnosis_findings,
    findings_of,
    layout,
    run_view,
)
from .plots import draw_circuit, frequency_colour, plot_circuit, plot_faithfulness_curves, plot_roc_curves, save_figure
from .removal_plots import plot_removals
from .runs import effective_truths, run_parts

__all__ = [
    "MAX_DRAWN",
    "BenchRow",
    "BenchView",
    "BootstrapSummary",
    "CircuitView",
    "DiagnosisFindings",
    "RunParts",
    "RunView",
    "bootstrap_from_record",
    "bootstrap_summary",
    "check_finite_scores",
    "circuit_view",
    "diagnosis_findings",
    "draw_circuit",
    "effective_truths",
    "findings_of",
    "frequency_colour",
    "layout",
    "plot_choice_maps",
    "plot_circuit",
    "plot_faithfulness_curves",
    "plot_removals",
    "plot_roc_curves",
    "render_report",
    "run_parts",
    "run_view",
    "save_figure",
    "write_report",
]
