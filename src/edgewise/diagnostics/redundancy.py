"""Redundant groups: copies of one computation in a circuit that back each other up under an ablation, so that
removing either alone changes nothing while removing both breaks the task. Found from the effective truth's partner
pairs (`edgewise.evaluate.effective_truth`); each group says how many of its copies suffice, and a found circuit is
scored by how many copies it keeps (all, one, none)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass

import torch

from ..evaluate import MAX_PAIRS, EffectiveTruth, effective_truth, removal_changes, truth_tolerance
from ..graph import Edge, Graph, NodeKind
from ..patching import AblatedOutputs, patched_forward
from ..tasks import Task


@dataclass(frozen=True)
class RedundantGroup:
    """Copies of one computation: each copy's edges, its name (the nodes only it uses) and how many copies, any of
    them, keep every scored output with the rest of the effective truth.

    Attributes:
        copies: each copy's edges.
        names: each copy's name: the heads only it touches (else other nodes only it touches, else its edges), or
            the writer for a group of whole writers.
        suffice: the fewest copies, any of them, that keep every scored output.
    """

    copies: tuple[frozenset[Edge], ...]
    names: tuple[str, ...]
    suffice: int

    def describe(self) -> str:
        """Returns the group in words: `A1.0 and A1.1 each suffice`, `any 2 of A1.0, A1.1 and A1.2 suffice`."""
        listed = " and ".join([", ".join(self.names[:-1]), self.names[-1]])
        return f"{listed} each suffice" if self.suffice == 1 else f"any {self.suffice} of {listed} suffice"

    def copies_kept(self, edges: set[Edge] | frozenset[Edge]) -> int:
        """Returns how many copies a circuit keeps whole (every edge of the copy in `edges`).

        Args:
            edges: the circuit's edges.

        Returns:
            The number of copies all of whose edges are in `edges`.
        """
        return sum(copy <= edges for copy in self.copies)

    def to_dict(self) -> dict:
        """Returns the group as JSON-ready data: the copies' names, `suffice`, and each copy's edge names."""
        return {
            "copies": list(self.names),
            "suffice": self.suffice,
            "edges": [sorted(e.name for e in copy) for copy in self.copies],
        }


def _components(partners: tuple[tuple, ...]) -> list[set]:
    """Returns the connected components of the partner graph (of edges, or of writers)."""
    neighbours: dict = {}
    for a, b in partners:
        neighbours.setdefault(a, set()).add(b)
        neighbours.setdefault(b, set()).add(a)
    components, seen = [], set()
    for start in neighbours:
        if start in seen:
            continue
        component, frontier = set(), [start]
        while frontier:
            edge = frontier.pop()
            if edge not in component:
                component.add(edge)
                frontier += neighbours[edge] - component
        seen |= component
        components.append(component)
    return components


def _copies(component: set[Edge], partners: tuple[tuple[Edge, Edge], ...], graph: Graph) -> list[frozenset[Edge]]:
    """Returns the copies of one group: edges are one copy when they have the same partners (removing any of them
    takes away that copy; a partner is an edge of another copy)."""
    partner_sets = {e: frozenset(b if a == e else a for a, b in partners if e in (a, b)) for e in component}
    copies: dict[frozenset[Edge], set[Edge]] = {}
    for edge in sorted(component, key=graph.edge_index):
        copies.setdefault(partner_sets[edge], set()).add(edge)
    return [frozenset(c) for c in copies.values()]


def _copy_names(copies: list[frozenset[Edge]], graph: Graph) -> tuple[list[str], bool]:
    """Returns each copy's name: the heads its edges touch and no other copy's do (else such nodes of any kind; a
    majority's adder MLP or a shared embedding is not what a copy is), else its edges; and whether any copy fell
    back to its edges (a group the pair search mixed)."""
    kinds = {}
    for e in (e for copy in copies for e in copy):
        writer, component = graph.edge_nodes(e)
        kinds[writer], kinds[component] = graph.writer_node(e.writer).kind, graph.reader_node(e.reader).kind
    touched = [{n for e in copy for n in graph.edge_nodes(e)} for copy in copies]
    names, mixed = [], False
    for i, (copy, nodes) in enumerate(zip(copies, touched)):
        own = nodes - set().union(*(t for j, t in enumerate(touched) if j != i))
        own = {n for n in own if kinds[n] is NodeKind.HEAD} or own
        ordered = [n for n in graph.nodes if n in own]
        names.append("+".join(ordered) if ordered else ", ".join(sorted(e.name for e in copy)))
        mixed = mixed or not ordered
    return names, mixed


@torch.no_grad()
def redundant_groups(
    task: Task,
    graph: Graph,
    ablated: AblatedOutputs,
    truth: EffectiveTruth | None = None,
    tolerance: float | None = None,
) -> list[RedundantGroup]:
    """Returns the redundant groups of the task's circuit under this ablation, in graph order; none where single
    removals already find a faithful truth. `truth` is the effective truth when already computed; `tolerance` as
    in `effective_truth`.

    Groups of edges come from the effective truth's partner pairs. Where the pair search mixes them (a copy with no
    node of its own, named by its edges), groups of whole writers (every circuit edge out of a head removed at once)
    over the nodes those groups touch replace them, if there are any: when roles are fully connected (two
    previous-token heads each feeding two induction heads) no pair of single edges breaks the task, and only whole
    heads show the copies.

    Args:
        task: the task whose circuit is examined; it must know its ground truth on `graph`.
        graph: the graph the circuit's edges are taken on.
        ablated: the ablation removed edges take.
        truth: the effective truth on `graph` under `ablated`; None computes it.
        tolerance: the largest scored output change that counts as none; None: the task's (`truth_tolerance`).

    Returns:
        The groups, in graph order (groups of whole writers last).

    Raises:
        GraphMismatchError: the task has no ground truth for this kind of graph.
    """
    tolerance = truth_tolerance(task, tolerance)
    truth = truth or effective_truth(task, graph, ablated, tolerance)
    derived = task.ground_truth_edges(graph)
    reference = patched_forward(task.model, graph, task.clean, ablated, graph.mask_for(derived).unsqueeze(0))
    circuit = set(truth.edges)
    named = []  # (copies, names, whether the pair search mixed them)
    for component in sorted(_components(truth.partners), key=lambda c: min(map(graph.edge_index, c))):
        copies = _copies(component, truth.partners, graph)
        named.append((copies, *_copy_names(copies, graph)))
    touched = {n for copies, _, mixed in named if mixed for copy in copies for e in copy for n in _ends(e, graph)}
    writer_groups = _writer_groups(task, graph, ablated, circuit, touched, reference, tolerance) if touched else []
    return [
        RedundantGroup(
            tuple(copies), tuple(names), _suffice(task, graph, ablated, circuit, copies, reference, tolerance)
        )
        for copies, names, mixed in named
        if not (mixed and writer_groups)
    ] + writer_groups


def _ends(edge: Edge, graph: Graph) -> tuple[str, str]:
    """Returns the writer and the reader's component an edge joins, at every position (`graph.edge_nodes` without
    the position)."""
    return edge.writer, graph.reader_node(edge.reader).component


def _suffice(
    task: Task,
    graph: Graph,
    ablated: AblatedOutputs,
    circuit: set[Edge],
    removals: list[Iterable[Edge]],
    reference: torch.Tensor,
    tolerance: float,
) -> int:
    """Returns the fewest copies, any of them, that keep every scored output with the rest of `circuit`;
    removals[i] is what removing copy i takes out of the circuit."""
    for k in range(1, len(removals)):
        dropped = [
            tuple(e for j, c in enumerate(removals) if j not in kept for e in c)
            for kept in itertools.combinations(range(len(removals)), k)
        ]
        if max(removal_changes(task, graph, ablated, circuit, dropped, reference)) <= tolerance:
            return k
    return len(removals)


def _writer_groups(
    task: Task,
    graph: Graph,
    ablated: AblatedOutputs,
    circuit: set[Edge],
    among: set[str],
    reference: torch.Tensor,
    tolerance: float,
) -> list[RedundantGroup]:
    """Returns the groups of whole writers of `circuit` (those in `among`): writers each removable alone (every edge
    out of it) but not together with a partner. A copy is every circuit edge into or out of its writer."""
    outgoing: dict[str, tuple[Edge, ...]] = {}
    for edge in sorted(circuit, key=graph.edge_index):
        if edge.writer in among:
            outgoing[edge.writer] = outgoing.get(edge.writer, ()) + (edge,)
    writers = sorted(outgoing, key=graph.writers.index)
    alone = removal_changes(task, graph, ablated, circuit, [outgoing[w] for w in writers], reference)
    free = [w for w, change in zip(writers, alone) if change <= tolerance]
    pairs = list(itertools.combinations(free, 2))
    if not pairs or len(pairs) > MAX_PAIRS:
        return []
    joint = removal_changes(task, graph, ablated, circuit, [outgoing[a] + outgoing[b] for a, b in pairs], reference)
    partners = tuple(pair for pair, change in zip(pairs, joint) if change > tolerance)
    groups = []
    for component in sorted(_components(partners), key=lambda c: min(writers.index(w) for w in c)):
        names = [w for w in writers if w in component]
        copies = [frozenset(e for e in circuit if w in _ends(e, graph)) for w in names]
        suffice = _suffice(task, graph, ablated, circuit, [outgoing[w] for w in names], reference, tolerance)
        groups.append(RedundantGroup(tuple(copies), tuple(names), suffice))
    return groups
