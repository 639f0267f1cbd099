"""The cross-benchmark summary: rank correlation against hand-computed values, family means on hand-made records."""

from __future__ import annotations

import pytest

from edgewise.suite.bench import RunRecord, plot_families
from edgewise.suite.bench.families import FAMILIES, family_markdown, family_of, family_summary, ranks, spearman
from edgewise.suite.tasks.registry import task_names


def test_ranks_share_ties_and_spearman_matches_hand_computation():
    assert ranks([3.0, 1.0, 2.0, 1.0]) == [4.0, 1.5, 3.0, 1.5]
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # ranks (1,2,3,4) and (2,1,4,3): d^2 sums to 4, so rho = 1 - 6*4/(4*15) = 0.6
    assert spearman([1, 2, 3, 4], [2, 1, 4, 3]) == pytest.approx(0.6)
    assert spearman([1, 2, 3], [5, 5, 5]) is None


def test_families_hold_registered_tasks_and_no_task_twice():
    names = set(task_names())
    held = [t for tasks in FAMILIES.values() for t in tasks]
    assert set(held) <= names and len(held) == len(set(held))
    assert family_of("tracr-reverse") == "tracr" and family_of("tracr-redundant-or") == "redundant"
    assert family_of("induction") == "induction" and family_of("smollm2-ioi") is None


def test_family_summary_means_and_correlation(tmp_path):
    def record(task, method, auroc):
        return RunRecord.from_json(
            {"task": task, "graph": "plain", "ablation": "resample", "method": method, "auroc_effective": auroc}
        )

    records = [
        record("tracr-reverse", "a", 1.0),
        record("tracr-sort", "a", 0.8),
        record("tracr-reverse", "b", 0.7),
        record("tracr-sort", "b", 0.7),
        record("tracr-reverse", "c", 0.4),
        record("tracr-sort", "c", 0.6),
        record("induction", "a", 0.9),
        record("induction", "b", 0.6),
        record("induction", "c", 0.8),
        record("smollm2-ioi", "a", None),
        record("induction", "c", None),
    ]
    summary = family_summary(records)
    assert summary.families == ("tracr", "induction")
    assert summary.auroc["a"] == {"tracr": pytest.approx(0.9), "induction": 0.9}
    assert summary.runs == {"tracr": 2, "induction": 1}
    # tracr ranks a > b > c, induction a > c > b: ranks (3,2,1) vs (3,1,2), rho = 1 - 6*2/(3*8) = 0.5
    assert summary.correlation == {"tracr vs induction": pytest.approx(0.5)}
    assert not any(summary.partial.values())
    markdown = family_markdown(summary)
    assert "| a | 0.900 [0.80, 1.00] | 0.900 |" in markdown and "tracr vs induction: +0.50" in markdown
    # paired over the two tracr tasks: a - c = (0.6, 0.2), every resampled mean positive
    assert "- tracr: best a; not apart from it at 95%: none" in markdown  # a - b = (0.3, 0.1), a - c = (0.6, 0.2)
    assert "- induction: best a; not apart from it at 95%: b, c" in markdown  # one run each: no interval
    (a_vs_c,) = [d for d in summary.differences["tracr"] if {d.a, d.b} == {"a", "c"}]
    assert a_vs_c.n_pairs == 2 and a_vs_c.holds and a_vs_c.interval == pytest.approx((0.2, 0.6))
    assert all(p.exists() for p in plot_families(summary, tmp_path / "families"))


def test_a_method_missing_some_of_a_family_is_marked_partial_and_left_out_of_the_correlations(tmp_path):
    def record(task, method, auroc, ablation="resample"):
        return RunRecord.from_json(
            {"task": task, "graph": "plain", "method": method, "auroc_effective": auroc, "ablation": ablation}
        )

    full = [
        record(t, m, v)
        for m, v in (("a", 0.9), ("b", 0.7), ("c", 0.5))
        for t in ("tracr-reverse", "tracr-sort", "induction")
    ]
    # d ran only one of tracr's two tasks (a sweep under way); e ran induction under zero ablation only
    records = [
        *full,
        record("tracr-reverse", "d", 1.0),
        record("induction", "d", 0.1),
        record("tracr-reverse", "e", 0.2, "zero"),
    ]
    summary = family_summary(records)
    # the family's runs are every (task, ablation) any method ran: e's zero run makes tracr's others partial too
    assert summary.partial["d"] == ("tracr",) and summary.partial["a"] == ("tracr",)
    summary = family_summary(records[:-1])
    assert summary.partial == {"a": (), "b": (), "c": (), "d": ("tracr",)}
    assert summary.method_runs["d"] == {"tracr": 1, "induction": 1} and summary.runs == {"tracr": 2, "induction": 1}
    # with d (1.0 on tracr, 0.1 on induction) rho would fall below 1; without it a > b > c in both
    assert summary.correlation == {"tracr vs induction": pytest.approx(1.0)}
    markdown = family_markdown(summary)
    assert "| d | 1.000 (partial: 1 of 2 runs) | 0.100 |" in markdown
    assert "left out of the correlations" in markdown
    assert summary.to_dict()["partial"] == {"d": ["tracr"]}
    assert all(p.exists() for p in plot_families(summary, tmp_path / "families"))


def test_family_summary_keeps_each_preset_of_a_method_apart():
    same = {"graph": "plain", "ablation": "resample", "method": "acdc"}
    records = [
        {**same, "task": "tracr-reverse", "preset": "tuned", "auroc_effective": 1.0},
        {**same, "task": "tracr-reverse", "preset": "published", "auroc_effective": 0.5},
        {**same, "task": "tracr-sort", "auroc_effective": 0.8},
    ]  # records before presets: tuned
    summary = family_summary([RunRecord.from_json(r) for r in records])
    assert summary.methods == ("acdc", "acdc (published)")
    assert summary.auroc == {"acdc": {"tracr": pytest.approx(0.9)}, "acdc (published)": {"tracr": 0.5}}


def test_cli_bench_over_two_families_writes_and_plots_the_cross_benchmark_table(tmp_path):
    from conftest import run_edgewise

    out = tmp_path / "bench"
    result = run_edgewise(
        "bench",
        "--out",
        str(out),
        "--tasks",
        "tracr-reverse,tracr-redundant-or",
        "--methods",
        "random,exact",
        "--ablations",
        "zero",
    )
    assert result.returncode == 0, result.stderr
    table = (out / "families.md").read_text()
    assert "| method | tracr (1 runs) | redundant (1 runs) |" in table and "Spearman" in result.stdout
    assert (out / "plots" / "families.png").exists()
