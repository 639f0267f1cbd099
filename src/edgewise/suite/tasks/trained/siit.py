"""The SIIT tasks (`siit-<program>`): a transformer of realistic shape trained by strict interchange-intervention
training (edgewise.suite.models.siit, InterpBench's recipe) to implement a tracr program's circuit in chosen heads and
MLPs, on the tracr task's data, corruption and metric.

The ground truth is the program's derived circuit (edgewise.suite.tasks.tracr.truth) mapped through the alignment: a
high-level head A{l}.{h} (and its Q, K, V inputs) becomes its aligned low-level head, MLP l stays MLP l, and Resid
Start (the embeddings) and Resid End (the unembedding's input) stay themselves. Training makes the aligned nodes carry
the high-level variables and every other head and MLP irrelevant (strict loss), so these edges are what the model
uses; tests/test_siit.py checks it with interchange interventions written there. SIIT constrains nodes, not edges:
where the trained model joins its aligned nodes by edges the program does not have (NODE_LEVEL below), the truth is
every edge among the aligned nodes instead.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from edgewise.errors import UnknownTaskError
from edgewise.graph import Graph, Node, NodeKind, head_node, mlp_node
from edgewise.tasks import Task

from ...models import Alignment, load_siit
from ..tracr.compile import CompiledProgram
from ..tracr.specs import TRACR_TASKS, all_or_sample
from ..tracr.suite import get_task as tracr_task

# An edge whose removal moves no scored logit by more than this carries nothing (evaluate.effective_truth). Measured
# under resample ablation on both splits (docs/siit.md): removing any one aligned edge moves a scored logit by 2.1 or
# more, so the effective truth is the whole aligned circuit. No logit tolerance separates the edges outside it: these
# models' logits are about 20 apart, and a resampled input that reaches a LayerNorm rescales them all, so one such
# edge moves a logit by up to 12 while the argmax and the KL barely change; the circuit is verified in those terms.
TRUTH_TOLERANCE = 1.0

# Programs whose truth is node-level. redundant-or's trained copies A1.2 and A1.3 also write straight to MLP 2 and the
# output, and MLP 1 to the output: the program's 12 edges alone keep 0.90 of the held-out answers, every edge among
# its aligned nodes (28) keeps all of them (docs/siit.md).
NODE_LEVEL = frozenset({"tracr-redundant-or"})


@dataclass(frozen=True)
class SiitData:
    """A SIIT task's own record (`task.family`): the compiled high-level program the model was trained to implement,
    which low-level head or MLP implements each of its components, and the input sequences.

    Attributes:
        high_level: the compiled tracr program.
        alignment: high-level head or MLP -> the low-level one that implements it.
        sequences: the clean inputs, each a list of values (row i of the clean batch being sequence i).
    """

    high_level: CompiledProgram
    alignment: Alignment
    sequences: list[list]


def high_level_nodes(truth: list[tuple[str, str]], graph: Graph) -> list[Node]:
    """Returns the heads and MLPs that a high-level circuit (plain-graph edges of `graph`) uses, in layer order: its
    writers, and the nodes its readers feed.

    Args:
        truth: the circuit's (writer, reader) edges, by node name.
        graph: the high-level model's plain graph.

    Returns:
        The heads (without inputs) and MLPs, by layer, each layer's heads before its MLP.
    """
    used = set()
    for writer, reader in truth:
        for node in (graph.writer_node(writer), graph.reader_node(reader)):
            if node.kind is NodeKind.HEAD:
                used.add(head_node(node.layer, node.head))
            elif node.kind is NodeKind.MLP:
                used.add(mlp_node(node.layer))
    return sorted(used, key=lambda n: (n.layer, n.kind is NodeKind.MLP, n.head or 0))


def aligned_truth(truth: list[tuple[str, str]], graph: Graph, alignment: Alignment) -> list[tuple[str, str]]:
    """Returns the high-level circuit's edges (of `graph`, the high-level model's) as low-level model edges.

    Args:
        truth: the high-level circuit's (writer, reader) edges, by node name.
        graph: the high-level model's plain graph.
        alignment: which low-level node implements each high-level one.

    Returns:
        The edges as (writer, reader) low-level node names, in the order of `truth`.

    Raises:
        GraphMismatchError: an edge touches a head or MLP the alignment does not map.
    """
    return [
        (alignment.low_node(graph.writer_node(w)).name, alignment.low_node(graph.reader_node(r)).name) for w, r in truth
    ]


def training_inputs(program: str) -> list[list]:
    """Returns every input of the tracr task's form (its discovery inputs' length and vocabulary) but the held-out
    ones: SIIT trains on these and reports its scores on the held-out split.

    Args:
        program: a tracr task's name.

    Returns:
        The input sequences (every one, or a sample of at most `10**6` by `all_or_sample`).

    Raises:
        UnknownTaskError: `program` is not a compiled tracr task with a held-out split, or its inputs have more than
            one length.
    """
    spec = TRACR_TASKS.get(program)
    if spec is None or spec.held_out is None:
        raise UnknownTaskError(
            f"SIIT trains compiled tracr tasks with a held-out split; {program!r} is not one (use "
            f"one of {', '.join(n for n, s in TRACR_TASKS.items() if s.held_out is not None)})"
        )
    lengths = {len(s) for s in spec.sequences()}
    if len(lengths) != 1:
        raise UnknownTaskError(
            f"{program}'s inputs have lengths {sorted(lengths)}; SIIT trains programs whose inputs "
            "have one length, so that every input of that length can be enumerated"
        )
    return all_or_sample(spec.vocab, lengths.pop(), 10**6, exclude=spec.held_out())


def aligned_node_truth(graph: Graph, alignment: Alignment) -> list[tuple[str, str]]:
    """Returns every edge of the low-level `graph` among the aligned nodes, the embeddings and the output: the
    node-level circuit, what SIIT itself constrains.

    Args:
        graph: the low-level model's plain graph.
        alignment: which low-level node implements each high-level one.

    Returns:
        The edges as (writer, reader) node names, in the graph's edge order.
    """
    nodes = {n.name for n in alignment.low_nodes}
    writers, readers = nodes | set(graph.input_writers), nodes | set(graph.output_readers)
    return [(e.writer, e.reader) for e in graph.edges if e.writer in writers and graph.edge_nodes(e)[1] in readers]


def siit_task(program: str, metric: str | None = None, held_out: bool = False) -> Task:
    """Returns task siit-`program`: the SIIT model of tracr task `program` on that task's inputs (or held-out inputs),
    corruption and metric, with the aligned circuit (node-level for the NODE_LEVEL programs) as its ground truth.

    Args:
        program: the tracr task's name (e.g. `tracr-hist`).
        metric: the name of a metric in place of the tracr task's own; None keeps it.
        held_out: build the task on the tracr task's held-out inputs.

    Returns:
        The task, its `family` a SiitData; no split-embedding or feature-level ground truth.

    Raises:
        UnknownTaskError: `program` is not a tracr task, or has no held-out split while `held_out` is asked.
        TrainedWeightsMissingError: the SIIT model's weights for `program` are not there.
    """
    high = tracr_task(program, metric=metric, held_out=held_out)
    low, alignment = load_siit(program)
    truth = (
        aligned_node_truth(Graph.from_model(low), alignment)
        if program in NODE_LEVEL
        else aligned_truth(high.ground_truth, high.graph(), alignment)
    )
    return dataclasses.replace(
        high,
        name=f"siit-{program}",
        model=low,
        ground_truth=truth,
        ground_truth_split=None,  # which embedding a trained model reads is not the compiler's to say
        dictionaries={},
        feature_ground_truth={},
        truth_tolerance=TRUTH_TOLERANCE,
        description=f"SIIT-trained model of {program} ({high.description}); its circuit in "
        f"{', '.join(n.name for n in alignment.low_nodes)}",
        class_label=high.class_label,
        family=SiitData(high.family.compiled, alignment, high.family.sequences),
    )
