"""The data of the HTML report's pages: typed views of one run (its circuit laid out by layer, the edges drawn with
their scores, ranks, ground-truth membership and diagnose findings, its curves) and of a bench folder (one row per
run, each opening its run's page). `edgewise.report.html` renders them; nothing here draws.

A large graph (SmolLM2's 70,651 edges, a feature graph of 10^5) keeps its page small and responsive by drawing the
`max_drawn` best-ranked edges (plus every edge of a ground truth, of the method's circuit, or named by a diagnosis,
up to the same number again); the rest are summarised by their count and the share of the total |score| they hold.
The page keeps every edge's score, sorted, so a threshold still gives the exact circuit size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ..diagnostics import Diagnosis
from ..errors import GraphMismatchError, ScoresFileError
from ..evaluate import FaithfulnessCurve, RocCurve, RunFigures, Stability
from ..graph import Edge, EdgeScores, Graph

MAX_DRAWN = 1000  # edges a circuit view draws: SVG stays responsive to a few thousand paths
MAX_NODES = 3000  # nodes drawn whether an edge touches them or not; past it (per-position LMs), only those touched
MAX_SORTED = 100_000  # best scores a page keeps for its threshold control; past them a threshold gives "at least"
INPUT_OFFSET = {"q": -0.25, "k": 0.0, "v": 0.25}  # where a head's q, k and v inputs sit beside it (in node widths)
READER_DROP = 0.4  # how far below its node a reader's input port sits (in rows)


@dataclass(frozen=True)
class NodeView:
    """One node of the drawing: a writer (a box) or a reader's input port (a dot beside the node it feeds).

    Attributes:
        label: the node's name as files show it (`A0.0@2` at a position).
        kind: the node's kind (`NodeKind` value).
        x: horizontal place, in node widths.
        y: vertical place, in rows: embeddings at 0, outputs at the top.
        port: whether this is a reader's input port rather than a node of its own.
        findings: what the diagnosis says about the node (a constant writer), one sentence each.
    """

    label: str
    kind: str
    x: float
    y: float
    port: bool
    findings: tuple[str, ...] = ()


@dataclass(frozen=True)
class NamedCircuit:
    """A set of edges the page can highlight: the method's circuit, a ground truth, a minimal circuit.

    Attributes:
        name: what the page calls it (`effective truth (resample)`).
        edges: indices into the view's drawn edges.
        size: the circuit's full size (drawn or not).
        faithfulness: its faithfulness where measured, else None.
        truth: whether it is a ground truth (edge details say whether each edge is in it).
    """

    name: str
    edges: tuple[int, ...]
    size: int
    faithfulness: float | None = None
    truth: bool = False


@dataclass(frozen=True)
class CircuitView:
    """A graph with its drawn edges, best-ranked first, and what the page says about each.

    Attributes:
        nodes: every node of the drawing.
        n_rows: the number of rows (the top row holds the outputs).
        edge_names: each drawn edge's name (`writer->reader`).
        edge_writer: each drawn edge's writer, an index into `nodes`.
        edge_reader: each drawn edge's reader port, an index into `nodes`.
        edge_score: each drawn edge's score, as the scores file holds it (None: a view without scores).
        edge_rank: each drawn edge's rank among all edges (1: the best; ties keep graph order).
        edge_frequency: each drawn edge's bootstrap selection frequency, or None without a bootstrap.
        edge_findings: what the diagnosis says about drawn edges, by drawn index.
        circuits: the circuits the page can highlight.
        n_edges: the graph's edges.
        sorted_scores: the snapped scores of the best MAX_SORTED edges, best first (what a threshold counts); empty
            without scores.
        undrawn_share: the share of the total |score| held by edges not drawn.
    """

    nodes: tuple[NodeView, ...]
    n_rows: int
    edge_names: tuple[str, ...]
    edge_writer: tuple[int, ...]
    edge_reader: tuple[int, ...]
    edge_score: tuple[float, ...] | None
    edge_rank: tuple[int, ...]
    edge_frequency: tuple[float, ...] | None
    edge_findings: dict[int, tuple[str, ...]]
    circuits: tuple[NamedCircuit, ...]
    n_edges: int
    sorted_scores: tuple[float, ...]
    undrawn_share: float


@dataclass(frozen=True)
class BehaviourRow:
    """One variant's behaviour in the diagnose report (the full model, a circuit, the empty circuit).

    Attributes:
        label: the variant's name.
        n_edges: the edges it keeps.
        loss: the task metric to the full model.
        agreement: the share of scored positions answered as the full model does.
        flags: the behaviour flags (`fixed preference`, `constant output`, ...).
        examples: what the flags point at: the answer distribution and, for `fixed preference`, the ranking.
    """

    label: str
    n_edges: int
    loss: float | None
    agreement: float | None
    flags: tuple[str, ...]
    examples: tuple[str, ...]


@dataclass(frozen=True)
class AblationFindings:
    """What `diagnose` found under one ablation.

    Attributes:
        ablation: the ablation's kind.
        ground_truth_faithful: whether the ground truth keeps every scored output (None: no ground truth).
        minimal_size: the minimal circuit's size (None: none).
        removable: (edge, reason, detail) of each edge the minimisation removed.
        redundant_groups: each redundant group in words, with how many copies the checked circuit keeps.
        misses: (edge, rank, reason, detail) of the scores' misses: true edges ranked low, false ones ranked high.
        behaviour: the behaviour check's rows.
    """

    ablation: str
    ground_truth_faithful: bool | None
    minimal_size: int | None
    removable: tuple[tuple[str, str, str], ...]
    redundant_groups: tuple[str, ...]
    misses: tuple[tuple[str, int, str, str], ...]
    behaviour: tuple[BehaviourRow, ...]


@dataclass(frozen=True)
class DiagnosisFindings:
    """The diagnose report as the page shows it: per ablation its findings, and the findings per node and per edge.

    Attributes:
        task: the diagnosed task's name.
        n_edges: the edges of the diagnosed graph.
        constant_writers: (writer, sentence) of each writer constant beyond BOS.
        ablations: each ablation's findings, in the report's order.
        edge_findings: sentences about edges, by edge.
        minimal_circuits: each ablation's minimal circuit, by ablation.
        depends_on_ablation: whether the checked circuits differ between ablations.
    """

    task: str
    n_edges: int
    constant_writers: tuple[tuple[str, str], ...]
    ablations: tuple[AblationFindings, ...]
    edge_findings: dict[Edge, tuple[str, ...]]
    minimal_circuits: dict[str, frozenset[Edge]]
    depends_on_ablation: bool


@dataclass(frozen=True)
class RunView:
    """One run's page: what ran, its circuit view, curves, figures and diagnosis, and what is missing.

    Attributes:
        title: the page's heading.
        facts: (name, value) lines about the run: task, method, ablation, graph, seed, seconds.
        circuit: the circuit view.
        faithfulness: the faithfulness curve of the top-k circuits, or None where not measured.
        rocs: the ROC curves by name (`edges vs compiler`, ...).
        figures: (name, value) of the run's figures (AUROC, CPR, CMD, edges to 95%), None where missing.
        diagnosis: the diagnose report, or None.
        default_size: the circuit size the page opens at.
        stability: (name, value) of a bootstrap's figures, or ().
        missing: what the page could not show, and why, one sentence each.
    """

    title: str
    facts: tuple[tuple[str, str], ...]
    circuit: CircuitView
    faithfulness: FaithfulnessCurve | None
    rocs: dict[str, RocCurve]
    figures: tuple[tuple[str, float | None], ...]
    diagnosis: DiagnosisFindings | None
    default_size: int
    stability: tuple[tuple[str, float | None], ...] = ()
    missing: tuple[str, ...] = ()


@dataclass(frozen=True)
class BenchRow:
    """One run of a bench folder in the summary table.

    Attributes:
        key: the run's key (its file stem).
        cells: the row's values by column name (numbers or text; None where the record lacks it).
        run: the index of its page in `BenchView.runs`, or None where its page could not be built.
    """

    key: str
    cells: dict[str, float | int | str | None]
    run: int | None


@dataclass(frozen=True)
class BenchView:
    """A bench folder's page: the summary table, a page per run, and what could not be read.

    Attributes:
        title: the page's heading.
        columns: the table's columns, in order.
        rows: one row per finished run.
        runs: the run pages the rows open.
        missing: what the page could not show (damaged run files, missing scores), one sentence each.
    """

    title: str
    columns: tuple[str, ...]
    rows: tuple[BenchRow, ...]
    runs: tuple[RunView, ...]
    missing: tuple[str, ...] = ()


def _row_of_writers(graph: Graph) -> dict[str, int]:
    """Returns the row of each writer: its writer group's place among the writer groups (residual-stream order, or a
    declared model's declared order)."""
    rows: dict[str, int] = {}
    for row, group in enumerate(g for g in graph.groups if g.kind == "writer"):
        rows.update(dict.fromkeys(group.names, row))
    return rows


def layout(
    graph: Graph,
) -> tuple[list[NodeView], dict[tuple[str, int | None], int], dict[tuple[str, int | None], int], int]:
    """Returns the nodes of `graph` placed by layer: a row per writer group (embeddings at the bottom, then each
    layer's heads and MLP, feature and error nodes in their writer's row), each reader as a port just below the node
    it feeds (a head's q, k and v side by side), readers that feed no writer (the outputs) in a row on top; a
    per-position graph repeats the layout once per position, side by side.

    Args:
        graph: the graph to lay out; its typed nodes and hook groups decide the places.

    Returns:
        The nodes; the index of each writer and of each reader port, by (name, position); and the number of rows.
    """
    rows = _row_of_writers(graph)
    n_rows = max(rows.values(), default=-1) + 2
    x_of: dict[str, float] = {}
    width = 1
    for group in (g for g in graph.groups if g.kind == "writer"):
        names = group.names
        width = max(width, len(names))
        x_of.update({n: i - (len(names) - 1) / 2 for i, n in enumerate(names)})
    top = [n for n in graph.reader_nodes if not graph.fed_writers(n.name)]
    width = max(width, len(top))
    x_of.update({f"reader:{n.name}": i - (len(top) - 1) / 2 for i, n in enumerate(top)})
    nodes: list[NodeView] = []
    writer_index: dict[tuple[str, int | None], int] = {}
    reader_index: dict[tuple[str, int | None], int] = {}
    positions = [None] if graph.n_positions is None else list(range(graph.n_positions))
    for position in positions:
        shift = 0.0 if position is None else position * (width + 1)
        for node in graph.writer_nodes:
            writer_index[node.name, position] = len(nodes)
            label = node.at(position).label
            nodes.append(NodeView(label, node.kind.value, x_of[node.name] + shift, rows[node.name], False))
        for node in graph.reader_nodes:
            fed = [graph.writer_nodes[i].name for i in graph.fed_writers(node.name)]
            label = node.at(position).label
            reader_index[node.name, position] = len(nodes)
            if not fed:
                nodes.append(NodeView(label, node.kind.value, x_of[f"reader:{node.name}"] + shift, n_rows - 1, False))
                continue
            x = sum(x_of[w] for w in fed) / len(fed) + INPUT_OFFSET.get(node.input or "k", 0.0)
            nodes.append(NodeView(label, node.kind.value, x + shift, rows[fed[0]] - READER_DROP, True))
    return nodes, writer_index, reader_index, n_rows


def _edge_rank(snapped: torch.Tensor) -> torch.Tensor:
    """Returns each edge's 1-based rank by snapped score, ties in graph order (as `EdgeScores.ranked`)."""
    order = torch.argsort(-snapped, stable=True)
    rank = torch.empty(len(order), dtype=torch.long)
    rank[order] = torch.arange(1, len(order) + 1)
    return rank


def check_finite_scores(scores: EdgeScores) -> None:
    """Raises ScoresFileError naming the first edge whose score is NaN or infinite: a page would rank it anywhere.

    Args:
        scores: the scores to check.

    Raises:
        ScoresFileError: a score is not a finite number.
    """
    bad = (~torch.isfinite(scores.scores)).nonzero().flatten().tolist()
    if bad:
        edge = scores.graph.edges[bad[0]]
        raise ScoresFileError(
            f"{len(bad)} of {scores.graph.n_edges} scores of {scores.method} are not finite numbers (e.g. "
            f"{edge.name} = {scores.scores[bad[0]].item()}); no page ranks them: rerun `edgewise discover` for these "
            "scores"
        )


def circuit_view(
    graph: Graph,
    scores: EdgeScores | None = None,
    circuits: tuple[tuple[str, frozenset[Edge] | set[Edge], float | None, bool], ...] = (),
    findings: DiagnosisFindings | None = None,
    frequency: torch.Tensor | None = None,
    max_drawn: int = MAX_DRAWN,
) -> CircuitView:
    """Returns the circuit view of `graph`: its nodes laid out by layer (`layout`) and its drawn edges, best-ranked
    first, with scores, ranks, selection frequencies and findings.

    Args:
        graph: the graph to draw.
        scores: the edges' scores, on `graph`'s edges; None draws the graph without scores (in graph order).
        circuits: (name, edges, faithfulness or None, whether it is a ground truth) of each circuit to offer.
        findings: the diagnose report whose edge and node findings the details show.
        frequency: each edge's bootstrap selection frequency [n_edges], or None.
        max_drawn: the most best-ranked edges drawn (named circuits' edges may add as many again).

    Returns:
        The view.

    Raises:
        ScoresFileError: a score is NaN or infinite.
        GraphMismatchError: the scores, a circuit, the findings or the frequencies are of another graph.
    """
    if scores is not None:
        check_finite_scores(scores)
        if scores.graph.edges != graph.edges:
            raise GraphMismatchError(
                f"the scores' graph ({scores.graph.n_edges} edges) is not the graph drawn ({graph.n_edges} edges); "
                "give scores of this task and graph"
            )
    if frequency is not None and frequency.numel() != graph.n_edges:
        raise GraphMismatchError(f"{frequency.numel()} selection frequencies for a graph of {graph.n_edges} edges")
    if findings is not None and findings.n_edges != graph.n_edges:
        raise GraphMismatchError(
            f"the diagnosis is of a graph of {findings.n_edges} edges, not of this one ({graph.n_edges}); give the "
            "diagnose output of the same task and graph (--per-position, --features)"
        )
    nodes, writer_index, reader_index, n_rows = layout(graph)
    if findings is not None:
        constant = dict(findings.constant_writers)
        nodes = [
            NodeView(n.label, n.kind, n.x, n.y, n.port, (constant[n.label],)) if n.label in constant else n
            for n in nodes
        ]
    snapped = scores.snapped() if scores is not None else torch.zeros(graph.n_edges, dtype=torch.float64)
    rank = _edge_rank(snapped)
    order = torch.argsort(rank).tolist()  # edge indices, best first
    named = [set(edges) for _, edges, _, _ in circuits]
    noted = set(findings.edge_findings) if findings is not None else set()
    extra = [i for i in order[max_drawn:] if any(graph.edges[i] in s for s in named) or graph.edges[i] in noted]
    drawn = order[:max_drawn] + extra[:max_drawn]
    drawn.sort(key=lambda i: rank[i].item())
    place = {i: d for d, i in enumerate(drawn)}
    edges = [graph.edges[i] for i in drawn]
    ends = [(writer_index[e.writer, e.position], reader_index[e.reader, e.position]) for e in edges]
    if len(nodes) > MAX_NODES:  # keep the nodes the drawn edges touch, renumbered
        kept = sorted({i for pair in ends for i in pair})
        renumber = {old: new for new, old in enumerate(kept)}
        nodes = [nodes[i] for i in kept]
        ends = [(renumber[w], renumber[r]) for w, r in ends]
    magnitude = snapped.abs()
    total = magnitude.sum().item()
    undrawn = total - magnitude[drawn].sum().item() if drawn else total
    views = []
    for name, members, faithful, truth in circuits:
        indices = tuple(sorted(place[graph.edge_index(e)] for e in members if graph.edge_index(e) in place))
        views.append(NamedCircuit(name, indices, len(members), faithful, truth))
    edge_findings = {}
    if findings is not None:
        edge_findings = {d: findings.edge_findings[e] for d, e in enumerate(edges) if e in findings.edge_findings}
    return CircuitView(
        nodes=tuple(nodes),
        n_rows=n_rows,
        edge_names=tuple(e.name for e in edges),
        edge_writer=tuple(w for w, _ in ends),
        edge_reader=tuple(r for _, r in ends),
        edge_score=None if scores is None else tuple(scores.scores[drawn].tolist()),
        edge_rank=tuple(rank[drawn].tolist()),
        edge_frequency=None if frequency is None else tuple(frequency[drawn].double().tolist()),
        edge_findings=edge_findings,
        circuits=tuple(views),
        n_edges=graph.n_edges,
        sorted_scores=() if scores is None else tuple(snapped[order[:MAX_SORTED]].tolist()),
        undrawn_share=undrawn / total if total > 0 else 0.0,
    )


def _edge_by_endpoints(graph: Graph, endpoints: list) -> Edge:
    """Returns the graph's edge a diagnose record names by its endpoints, or raises GraphMismatchError."""
    edge = Edge.from_endpoints(*endpoints)
    graph.edge_index(edge)
    return edge


def _behaviour_row(record: dict) -> BehaviourRow:
    """Returns a behaviour row of diagnose's JSON (`OutputBehaviour.to_dict`)."""
    examples = []
    distribution = record.get("distribution") or {}
    if distribution:
        shown = sorted(distribution.items(), key=lambda item: -item[1])[:6]
        examples.append("answers: " + ", ".join(f"{k} {v:.0%}" if v <= 1 else f"{k} {v:.3g}" for k, v in shown))
    if record.get("preference"):
        share = record.get("preference_share")
        examples.append(
            "fixed ranking " + " > ".join(record["preference"]) + ("" if share is None else f" explains {share:.0%}")
        )
    if record.get("fixed_positions"):
        examples.append("same answer on every input at positions " + ", ".join(map(str, record["fixed_positions"])))
    return BehaviourRow(
        record["label"],
        record["n_edges"],
        record.get("loss"),
        record.get("agreement"),
        tuple(record["flags"]),
        tuple(examples),
    )


def diagnosis_findings(record: dict, graph: Graph) -> DiagnosisFindings:
    """Returns the findings of `edgewise diagnose --json` output (`Diagnosis.to_dict`, its file contract) on `graph`.

    Args:
        record: the diagnose output: a file's JSON, or `Diagnosis.to_dict()` of an in-process run.
        graph: the diagnosed graph, whose edges the record names.

    Returns:
        The findings.

    Raises:
        GraphMismatchError: the record is of a graph of another size, or names an edge `graph` does not hold.
        ScoresFileError: the record is not diagnose output.
    """
    if not isinstance(record, dict) or "ablations" not in record or "constant_writers" not in record:
        raise ScoresFileError(
            "this is not `edgewise diagnose --json` output (no `ablations` and `constant_writers`); give that file"
        )
    n_edges = record.get("graph", {}).get("n_edges", graph.n_edges)
    if n_edges != graph.n_edges:
        raise GraphMismatchError(
            f"the diagnosis is of a graph of {n_edges} edges, task {record.get('task')!r}'s graph has {graph.n_edges}; "
            "give the diagnose output of the same task and graph (--per-position, --features)"
        )
    edge_notes: dict[Edge, list[str]] = {}
    ablations, minimal = [], {}
    for kind, a in record["ablations"].items():
        removable = []
        for r in a.get("removable") or []:
            edge = _edge_by_endpoints(graph, r["edge"])
            removable.append((edge.name, r["reason"], r["detail"]))
            edge_notes.setdefault(edge, []).append(f"{kind}: removable, {r['reason']} ({r['detail']})")
        for k in a.get("kept") or []:
            edge = _edge_by_endpoints(graph, k["edge"])
            note = "in the minimal circuit" + (", redundant alone" if k.get("redundant") else "")
            edge_notes.setdefault(edge, []).append(f"{kind}: {note}")
        if a.get("minimal_circuit") is not None:
            minimal[kind] = frozenset(_edge_by_endpoints(graph, e) for e in a["minimal_circuit"])
        names = {e.name: e for e in graph.edges}
        groups = []
        for g in a.get("redundant_groups") or []:
            groups.append(f"{g['description']} (the checked circuit keeps {g['copies_kept']} of {len(g['copies'])})")
            for copy, members in zip(g["copies"], g["edges"]):
                for name in members:
                    if name not in names:
                        raise GraphMismatchError(f"the diagnosis names edge {name}, which this graph does not hold")
                    edge_notes.setdefault(names[name], []).append(
                        f"{kind}: redundant group, copy {copy} of {g['description']}"
                    )
        misses = []
        for part, what in (("missed", "missed (true, ranked low)"), ("false_high", "false, ranked high")):
            for m in (a.get("misses") or {}).get(part, []):
                edge = _edge_by_endpoints(graph, m["edge"])
                misses.append((edge.name, m["rank"], m["reason"], m["detail"]))
                edge_notes.setdefault(edge, []).append(f"{kind}: {what}: {m['reason']} ({m['detail']})")
        behaviour = tuple(_behaviour_row(r) for r in a["behaviour"]["rows"])
        ablations.append(
            AblationFindings(
                kind,
                a.get("ground_truth_faithful"),
                None if a.get("minimal_circuit") is None else len(a["minimal_circuit"]),
                tuple(removable),
                tuple(groups),
                tuple(misses),
                behaviour,
            )
        )
    constant = tuple(
        (w["writer"], "constant writer at positions " + ", ".join(map(str, w["positions"])))
        for w in record["constant_writers"]
    )
    return DiagnosisFindings(
        record.get("task", ""),
        graph.n_edges,
        constant,
        tuple(ablations),
        {e: tuple(notes) for e, notes in edge_notes.items()},
        minimal,
        bool(record.get("depends_on_ablation")),
    )


def findings_of(diagnosis: Diagnosis) -> DiagnosisFindings:
    """Returns the findings of an in-process diagnosis, read through its `--json` contract (one reading for files and
    runs alike).

    Args:
        diagnosis: the diagnosis.

    Returns:
        The findings.
    """
    return diagnosis_findings(diagnosis.to_dict(), diagnosis.graph)


def _figure_rows(figures: RunFigures | None) -> tuple[tuple[str, float | None], ...]:
    """Returns the run's figures as (name, value) rows, truths' figures named by truth."""
    if figures is None:
        return ()
    rows: list[tuple[str, float | None]] = []
    for truth, t in figures.truths.items():
        rows += [(f"AUROC vs {truth}", t.auroc), (f"node AUROC vs {truth}", t.node_auroc)]
        rows.append((f"faithfulness at {truth} size", t.faithfulness_at_truth_size))
    rows += [
        ("circuit edges", figures.circuit_edges),
        ("circuit faithfulness", figures.circuit_faithfulness),
        ("CPR", figures.cpr),
        ("CMD", figures.cmd),
        ("edges to 95%", figures.edges_to_95),
    ]
    return tuple(rows)


@dataclass(frozen=True)
class BootstrapSummary:
    """What bootstrap refits of the method say, as the page shows it.

    Attributes:
        frequency: each edge's selection frequency: the share of refits whose circuit holds it [n_edges].
        figures: (name, value) of the bootstrap's figures: refits, mean Jaccard with its interval, consensus.
        consensus: the consensus circuit's edges.
        consensus_faithfulness: its faithfulness, or None.
    """

    frequency: torch.Tensor
    figures: tuple[tuple[str, float | None], ...]
    consensus: frozenset[Edge]
    consensus_faithfulness: float | None


def _bootstrap(
    frequency: torch.Tensor,
    n_refits: int,
    mean: float,
    interval: tuple[float, float],
    consensus: frozenset[Edge],
    consensus_faithfulness: float | None,
) -> BootstrapSummary:
    """Returns the summary of a bootstrap's figures, with the rows the page shows."""
    figures = (
        ("bootstrap refits", n_refits),
        ("mean Jaccard of refits' circuits", mean),
        ("its 95% interval, low", interval[0]),
        ("its 95% interval, high", interval[1]),
        ("consensus edges", len(consensus)),
        ("consensus faithfulness", consensus_faithfulness),
    )
    return BootstrapSummary(frequency.double(), figures, consensus, consensus_faithfulness)


def bootstrap_summary(stability: Stability) -> BootstrapSummary:
    """Returns the page's summary of an in-process bootstrap (`edgewise.evaluate.bootstrap_stability`).

    Args:
        stability: the bootstrap's result.

    Returns:
        The summary.
    """
    return _bootstrap(
        stability.selection_frequency,
        stability.n_refits,
        stability.stability,
        stability.stability_interval,
        frozenset(stability.consensus.edges),
        stability.consensus_faithfulness,
    )


def bootstrap_from_record(record: dict, graph: Graph) -> BootstrapSummary:
    """Returns the page's summary of `edgewise discover --bootstrap N --bootstrap-json FILE` output
    (`Stability.to_dict`, its file contract), on `graph`; edges are looked up by name, edges it does not list have
    frequency 0.

    Args:
        record: the bootstrap JSON.
        graph: the graph of the scores the bootstrap refitted.

    Returns:
        The summary.

    Raises:
        ScoresFileError: the record is not bootstrap output.
        GraphMismatchError: it names an edge `graph` does not hold.
    """
    if not isinstance(record, dict) or "selection_frequency" not in record or "stability" not in record:
        raise ScoresFileError(
            "this is not bootstrap output (no `selection_frequency` and `stability`); give the file of "
            "`edgewise discover --bootstrap N --bootstrap-json FILE`"
        )
    index = {e.name: i for i, e in enumerate(graph.edges)}
    unknown = [name for name in [*record["selection_frequency"], *record["consensus"]["edges"]] if name not in index]
    if unknown:
        raise GraphMismatchError(
            f"the bootstrap names {len(unknown)} edges the scores' graph does not hold, e.g. {unknown[0]}; give the "
            "bootstrap of the same task and graph"
        )
    frequency = torch.zeros(graph.n_edges, dtype=torch.float64)
    for name, value in record["selection_frequency"].items():
        frequency[index[name]] = value
    stability, consensus = record["stability"], record["consensus"]
    edges = frozenset(graph.edges[index[name]] for name in consensus["edges"])
    interval = tuple(stability["interval"])
    return _bootstrap(
        frequency, stability["n_refits"], stability["mean_jaccard"], interval, edges, consensus.get("faithfulness")
    )


@dataclass(frozen=True)
class RunParts:
    """What one run's page is built from; every part but the graph may be missing, and the page says so.

    Attributes:
        graph: the graph drawn.
        scores: the run's scores (None: a diagnose-only page).
        task: the task's name.
        truths: the ground truths by name (`compiler`, `effective (resample)`); {} without.
        method_circuit: the method's own circuit, or None.
        circuit_faithfulness: that circuit's faithfulness, or None.
        faithfulness: the top-k faithfulness curve, or None.
        rocs: the ROC curves by name.
        figures: the run's figures, or None.
        diagnosis: the diagnose findings, or None.
        bootstrap: what bootstrap refits of the method say, or None.
        circuit_size: the size the page opens at (None: the method circuit's size, else 20).
        facts: extra (name, value) lines about the run.
        missing: what is known to be missing, one sentence each.
    """

    graph: Graph
    scores: EdgeScores | None = None
    task: str = ""
    truths: dict[str, set[Edge]] = field(default_factory=dict)
    method_circuit: frozenset[Edge] | None = None
    circuit_faithfulness: float | None = None
    faithfulness: FaithfulnessCurve | None = None
    rocs: dict[str, RocCurve] = field(default_factory=dict)
    figures: RunFigures | None = None
    diagnosis: DiagnosisFindings | None = None
    bootstrap: BootstrapSummary | None = None
    circuit_size: int | None = None
    facts: tuple[tuple[str, str], ...] = ()
    missing: tuple[str, ...] = ()


def _finite_or_none(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value


def run_view(parts: RunParts, max_drawn: int = MAX_DRAWN) -> RunView:
    """Returns the page of one run from its parts, noting each part that is missing.

    Args:
        parts: the run's scores, truths, curves, figures and diagnosis.
        max_drawn: the most best-ranked edges the circuit view draws.

    Returns:
        The run's page.

    Raises:
        ScoresFileError: a score is NaN or infinite.
        GraphMismatchError: a part is of another graph, or the diagnosis of another task.
    """
    scores, graph = parts.scores, parts.graph
    if parts.diagnosis is not None and parts.task and parts.diagnosis.task and parts.diagnosis.task != parts.task:
        raise GraphMismatchError(
            f"the diagnosis is of task {parts.diagnosis.task!r}, the scores of {parts.task!r}; give the diagnose "
            f"output of {parts.task} (`edgewise diagnose {parts.task} --json FILE`)"
        )
    circuits = []
    if parts.method_circuit is not None and scores is not None:
        circuits.append(
            (f"{scores.method} circuit", parts.method_circuit, _finite_or_none(parts.circuit_faithfulness), False)
        )
    circuits += [(f"{name} truth", edges, None, True) for name, edges in parts.truths.items()]
    if parts.diagnosis is not None:
        circuits += [(f"minimal circuit ({k})", e, None, False) for k, e in parts.diagnosis.minimal_circuits.items()]
    if parts.bootstrap is not None:
        circuits.append(
            ("bootstrap consensus", parts.bootstrap.consensus, parts.bootstrap.consensus_faithfulness, False)
        )
    frequency = None if parts.bootstrap is None else parts.bootstrap.frequency
    view = circuit_view(graph, scores, tuple(circuits), parts.diagnosis, frequency, max_drawn)
    missing = list(parts.missing)
    if scores is None:
        missing.append("no edge scores: edges are drawn in graph order, uncoloured")
    if scores is not None and parts.faithfulness is None:
        missing.append("no faithfulness curve: the circuit size shows no faithfulness")
    if scores is not None and not parts.truths:
        missing.append("no ground truth: no ROC curve, and edges are not marked true or false")
    if parts.faithfulness is not None and all(math.isnan(f) for f in parts.faithfulness.faithfulness):
        missing.append("the faithfulness curve is undefined (the ablation changes nothing)")
    facts = [("task", parts.task or "unknown"), ("graph", repr(graph))]
    if scores is not None:
        facts += [
            ("method", scores.method),
            ("ablation", scores.ablation),
            ("seed", str(scores.seed)),
            ("seconds", f"{scores.seconds:.2f}"),
        ]
    facts += list(parts.facts)
    if view.n_edges > len(view.edge_names):
        facts.append(
            (
                "drawn",
                f"{len(view.edge_names)} of {view.n_edges} edges; the rest hold {view.undrawn_share:.1%} of |score|",
            )
        )
    default = parts.circuit_size
    if default is None and scores is None:
        default = 0  # without scores the page opens at a named circuit, if any
    elif default is None:
        default = len(parts.method_circuit) if parts.method_circuit is not None else min(20, graph.n_edges)
    title = f"{scores.method} on {parts.task}" if scores is not None else f"diagnosis of {parts.task}"
    return RunView(
        title=title,
        facts=tuple(facts),
        circuit=view,
        faithfulness=parts.faithfulness,
        rocs=dict(parts.rocs),
        figures=_figure_rows(parts.figures),
        diagnosis=parts.diagnosis,
        default_size=min(default, graph.n_edges),
        stability=() if parts.bootstrap is None else parts.bootstrap.figures,
        missing=tuple(missing),
    )
