"""The bench's Markdown summary: one row per task, graph, ablation and method, means over seeds."""

from __future__ import annotations

from .intervals import mean_interval
from .records import RunRecord


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """Returns a Markdown table: the header, the separator, then one line per row of already formatted cells.

    Args:
        header: the column names.
        rows: the rows, each as many formatted cells as `header`.

    Returns:
        The table, ending in a newline.
    """
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines) + "\n"


def _cell(values: list, digits: int = 3) -> str:
    """Returns the mean of the values [with its 95% bootstrap interval over seeds], counting how many exist when some
    are None."""
    present = [float(v) for v in values if v is not None]
    if not present:
        return "n/a"
    text = f"{sum(present) / len(present):.{digits}f}"
    bounds = mean_interval(present)
    if bounds is not None:
        text += f" [{bounds[0]:.{digits}f}, {bounds[1]:.{digits}f}]"
    return text if len(present) == len(values) else f"{text} ({len(present)}/{len(values)})"


_SUMMARY_COLUMNS = (  # (header, figure, truth, digits): RunRecord.figure(figure, truth)
    ("AUROC", "auroc", "compiler", 3),
    ("AUROC eff.", "auroc", "effective", 3),
    ("node AUROC", "node_auroc", "compiler", 3),
    ("node AUROC eff.", "node_auroc", "effective", 3),
    ("f at eff. size", "faithfulness_at_truth_size", "effective", 3),
    ("CPR", "cpr", None, 3),
    ("CMD", "cmd", None, 3),
    ("edges to 95%", "edges_to_95", None, 1),
    ("seconds", "seconds", None, 2),
    ("peak MiB", "peak_memory_mib", None, 1),
)


def copies_kept(record: RunRecord) -> str:
    """Returns how many copies of each redundant group the run's circuit keeps, `2/2` (both), `1/2`, `0/2`
    (neither), groups apart by `; `, or an empty string for a setting without redundancy.

    Args:
        record: a run record; its `redundancy` is read.

    Returns:
        The copies kept per group.
    """
    return "; ".join(f"{g['copies_kept']}/{len(g['copies'])}" for g in record.redundancy)


def _circuit_faithfulness_cell(records: list[RunRecord]) -> str:
    """Returns the faithfulness of the method's own circuit: over seeds as `_cell` gives it, or for one seed with
    its 95% interval over inputs (marked `inputs`), where the record holds one."""
    if len(records) != 1 or records[0].figures.circuit_faithfulness_interval is None:
        return _cell([r.figures.circuit_faithfulness for r in records])
    value, (low, high) = records[0].figures.circuit_faithfulness, records[0].figures.circuit_faithfulness_interval
    return "n/a" if value is None else f"{value:.3f} [{low:.3f}, {high:.3f}] inputs"


def _copies_cell(records: list[RunRecord]) -> str:
    """Returns the copies kept over seeds: one value when every seed agrees, else each seed's, in order."""
    kept = list(dict.fromkeys(copies_kept(r) for r in records))
    return " | ".join(kept) if len(kept) > 1 else kept[0]


def summary_markdown(records: list[RunRecord]) -> str:
    """Returns the Markdown summary: one row per task, graph, ablation and method, with means over seeds, and for
    settings with redundant copies how many of them the circuits keep.

    Args:
        records: the bench's run records.

    Returns:
        The Markdown page: a title, notes on the columns, and the table.
    """
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault((r.task, str(r.graph), str(r.ablation), r.variant, r.preset), []).append(r)
    redundant = any(r.redundancy for r in records)
    rows = [
        [
            *key,
            str(len(rs)),
            _circuit_faithfulness_cell(rs),
            *(
                _cell([r.figure(name, truth or "compiler") for r in rs], digits)
                for _, name, truth, digits in _SUMMARY_COLUMNS
            ),
            *([_copies_cell(rs)] if redundant else []),
        ]
        for key, rs in groups.items()
    ]
    header = [
        "task",
        "graph",
        "ablation",
        "method",
        "preset",
        "seeds",
        "circuit f",
        *(h for h, *_ in _SUMMARY_COLUMNS),
        *(["copies kept"] if redundant else []),
    ]
    notes = (
        "Methods fit on each task's discovery inputs and are scored on its held-out inputs (tracr-reverse has none: "
        "its 6 inputs serve both). Circuit f: the faithfulness of the method's own circuit (its rule: open gates, kept "
        "edges, else the top k); with one seed, its 95% bootstrap interval over the inputs (`inputs`). Preset: "
        "tuned = edgewise's defaults (tuned on these tasks), published = the "
        "method authors' settings (docs/presets.md). AUROC: against the compiler's ground truth; eff.: against its "
        "edges that change the outputs under the ablation. Node AUROC: a node scores its best edge's score. f at eff. "
        "size: faithfulness of the top-k circuit, k the effective truth's size. CPR and CMD: MIB's areas under f and "
        "|1 - f| "
        "over the fraction of edges kept. Edges to 95%: the smallest top-k circuit with faithfulness >= 0.95 (runs "
        "that reach it, of all, in brackets). Seconds and peak MiB: the method alone; peak memory on CPU is the "
        "sampled rise of the process's resident set, approximate. Means over seeds [95% bootstrap interval over "
        "seeds, with 2 or more]. Copies kept "
        "(tasks with redundant copies of one computation, docs/ground-truth.md): how many copies of each redundant "
        "group the method's circuit keeps whole, of how many."
    )
    return f"# edgewise bench\n\n{notes}\n\n{markdown_table(header, rows)}"
