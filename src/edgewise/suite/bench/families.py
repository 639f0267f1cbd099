"""Task families and the cross-benchmark table: per method, AUROC against the effective truth on each family (the
tracr suite, SIIT-trained models of its programs, the trained induction models with verified circuits, the
planted-redundancy tracr tasks), and how alike the families rank the methods (Spearman's rank correlation): the
measured answer to "does a method that does better on tracr do better on trained models?"."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from ..tasks import TRACR_TASKS, TRAINED_TASKS
from .intervals import PairedDifference, mean_interval, paired_difference
from .records import RunRecord
from .summary import markdown_table

REDUNDANT = tuple(name for name in TRACR_TASKS if name.startswith("tracr-redundant-"))
FAMILIES: dict[str, tuple[str, ...]] = {
    "tracr": tuple(name for name in TRACR_TASKS if name not in REDUNDANT),
    "siit": tuple(name for name in TRAINED_TASKS if name.startswith("siit-")),  # tracr programs trained by SIIT
    "induction": tuple(name for name in TRAINED_TASKS if name.startswith("induction")),
    "redundant": REDUNDANT,
}


def family_of(task: str) -> str | None:
    """Returns the family that holds the task, or None.

    Args:
        task: a task's name.

    Returns:
        A key of FAMILIES, or None for a task in no family.
    """
    return next((family for family, tasks in FAMILIES.items() if task in tasks), None)


def ranks(values: list[float]) -> list[float]:
    """Returns the rank of each value, 1 for the smallest, ties sharing their mean rank.

    Args:
        values: the values.

    Returns:
        The ranks, in the order of `values`.
    """
    order = sorted(range(len(values)), key=values.__getitem__)
    result = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for i in order[start : end + 1]:
            result[i] = (start + end) / 2 + 1
        start = end + 1
    return result


def spearman(a: list[float], b: list[float]) -> float | None:
    """Returns Spearman's rank correlation of two equally long lists (Pearson's on their ranks), None when either is
    constant.

    Args:
        a: the first list.
        b: the second list, as long as `a`.

    Returns:
        rho in [-1, 1], or None.
    """
    ra, rb = ranks(a), ranks(b)
    ma, mb = sum(ra) / len(ra), sum(rb) / len(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    var = (sum((x - ma) ** 2 for x in ra) * sum((y - mb) ** 2 for y in rb)) ** 0.5
    return None if var == 0 else cov / var


@dataclass(frozen=True)
class FamilySummary:
    """Mean AUROC against the effective truth per method and family, the runs each mean covers, and the rank
    correlation of methods between each pair of families.

    A method that lacks some of a family's tasks or ablations (a long sweep still under way) is `partial` there: its
    mean covers other tasks than the rest, so the table says so and the correlations leave it out.

    Attributes:
        methods: the methods (a method's preset is its own row, `RunRecord.label`), in the records' order.
        families: the families any method has runs on, in FAMILIES order.
        auroc: method -> family -> mean over tasks, ablations and seeds (None: no runs).
        runs: family -> runs with an AUROC, per method (the most of any method).
        correlation: `tracr vs siit` -> Spearman's rho over methods complete in both (None: fewer than 3, or
            constant).
        method_runs: method -> family -> its runs with an AUROC.
        partial: method -> families where it lacks some (task, ablation) the others ran.
        interval: method -> family -> a 95% bootstrap interval of its mean over runs (None: under 2 runs).
        differences: family -> the paired comparisons of every two methods over the runs they share (task, graph,
            ablation, seed), each with its 95% interval.
    """

    methods: tuple[str, ...]
    families: tuple[str, ...]
    auroc: dict[str, dict[str, float | None]]
    runs: dict[str, int]
    correlation: dict[str, float | None]
    method_runs: dict[str, dict[str, int]]
    partial: dict[str, tuple[str, ...]]
    interval: dict[str, dict[str, tuple[float, float] | None]]
    differences: dict[str, tuple[PairedDifference, ...]]

    def to_dict(self) -> dict:
        """Returns the summary as JSON-ready data (`partial` lists only methods with a partial family)."""
        return {
            "methods": list(self.methods),
            "families": list(self.families),
            "auroc": self.auroc,
            "runs": self.runs,
            "correlation": self.correlation,
            "method_runs": self.method_runs,
            "partial": {m: list(f) for m, f in self.partial.items() if f},
            "interval": {
                m: {f: None if v is None else list(v) for f, v in fs.items()} for m, fs in self.interval.items()
            },
            "differences": {f: [d.to_dict() for d in ds] for f, ds in self.differences.items()},
            "best": {f: dict(zip(("method", "not_apart"), tied_with_best(self, f))) for f in self.families},
        }


def family_summary(records: list[RunRecord]) -> FamilySummary:
    """Returns the cross-benchmark summary of bench records (any mix of tasks, ablations, presets and seeds; records
    of tasks in no family and runs without an AUROC are left out); each preset of a method is its own row.

    Args:
        records: the bench's run records.

    Returns:
        The summary.
    """
    values: dict[tuple[str, str], list[float]] = {}
    keyed: dict[tuple[str, str], dict[tuple, float]] = {}  # (method, family) -> run (task, graph, ablation, seed)
    cells: dict[tuple[str, str], set[tuple[str, str | None]]] = {}  # (method, family) -> its (task, ablation)s
    for r in records:
        family, auroc = family_of(r.task), r.figure("auroc", "effective")
        if family is not None and auroc is not None:  # each preset of a method is its own row (RunRecord.label)
            values.setdefault((r.label, family), []).append(auroc)
            keyed.setdefault((r.label, family), {})[(r.task, str(r.graph), str(r.ablation), r.seed)] = auroc
            cells.setdefault((r.label, family), set()).add((r.task, str(r.ablation)))
    methods = tuple(dict.fromkeys(m for m, _ in values))
    families = tuple(f for f in FAMILIES if any((m, f) in values for m in methods))
    auroc = {
        m: {f: (sum(values[m, f]) / len(values[m, f]) if (m, f) in values else None) for f in families} for m in methods
    }
    method_runs = {m: {f: len(values.get((m, f), [])) for f in families} for m in methods}
    runs = {f: max(method_runs[m][f] for m in methods) for f in families}
    family_cells = {f: set().union(*(cells.get((m, f), set()) for m in methods)) for f in families}
    partial = {m: tuple(f for f in families if (m, f) in cells and cells[m, f] != family_cells[f]) for m in methods}
    correlation = {}
    for a, b in itertools.combinations(families, 2):
        shared = [
            m
            for m in methods
            if auroc[m][a] is not None and auroc[m][b] is not None and a not in partial[m] and b not in partial[m]
        ]
        rho = spearman([auroc[m][a] for m in shared], [auroc[m][b] for m in shared]) if len(shared) > 2 else None
        correlation[f"{a} vs {b}"] = rho
    interval = {m: {f: mean_interval(values.get((m, f), [])) for f in families} for m in methods}
    differences = {
        f: tuple(
            d
            for a, b in itertools.combinations(methods, 2)
            if (d := paired_difference(a, b, keyed.get((a, f), {}), keyed.get((b, f), {}))) is not None
        )
        for f in families
    }
    return FamilySummary(methods, families, auroc, runs, correlation, method_runs, partial, interval, differences)


def tied_with_best(summary: "FamilySummary", family: str) -> tuple[str, list[str]]:
    """Returns, for one family, the method with the best mean AUROC and the methods whose paired gap to it does not
    hold at 95%.

    Args:
        summary: the summary of `family_summary`.
        family: one of its families.

    Returns:
        (best method, methods not apart from it), the latter in the summary's order.
    """
    means = {m: summary.auroc[m][family] for m in summary.methods if summary.auroc[m][family] is not None}
    best = max(means, key=means.get)
    tied = [
        m
        for m in means
        if m != best and not any(d.holds for d in summary.differences[family] if {d.a, d.b} == {best, m})
    ]
    return best, tied


def family_markdown(summary: FamilySummary) -> str:
    """Returns the table of mean AUROC per method and family (a partial mean with the runs it covers), and the rank
    correlations beneath it.

    Args:
        summary: the summary of `family_summary`.

    Returns:
        The Markdown, ending in a newline.
    """

    def cell(method: str, family: str) -> str:
        value = summary.auroc[method][family]
        if value is None:
            return "n/a"
        bounds = summary.interval[method][family]
        text = f"{value:.3f}" + ("" if bounds is None else f" [{bounds[0]:.2f}, {bounds[1]:.2f}]")
        if family in summary.partial[method]:
            return f"{text} (partial: {summary.method_runs[method][family]} of {summary.runs[family]} runs)"
        return text

    header = ["method", *(f"{f} ({summary.runs[f]} runs)" for f in summary.families)]
    rows = [[m, *(cell(m, f) for f in summary.families)] for m in summary.methods]
    rho = "; ".join(f"{pair}: {'n/a' if v is None else f'{v:+.2f}'}" for pair, v in summary.correlation.items())
    note = (
        ""
        if not any(summary.partial.values())
        else " (methods with a partial family are left out of the correlations that involve it)"
    )
    held = []
    for family in summary.families:
        best, tied = tied_with_best(summary, family)
        held.append(f"- {family}: best {best}; not apart from it at 95%: {', '.join(tied) or 'none'}")
    return (
        f"{markdown_table(header, rows)}\nMeans with 95% bootstrap intervals over runs. Per family, the best mean and "
        "the methods whose gap to it does not hold at 95% (a paired bootstrap over the runs both have: same task, "
        "graph, ablation and seed); every pairwise comparison is in families.json:\n\n" + "\n".join(held) + "\n\n"
        f"Spearman's rank correlation of the methods between families{note}: {rho}\n"
    )
