"""ACDC (Conmy et al. 2023): greedy edge removal from the output backwards, one threshold on the metric's increase.

The rule, as ACDC's `TLACDCExperiment.step` applies it:

    circuit = every edge;  current = metric(circuit)
    for reader in reverse topological order (Resid End, then readers of later layers before earlier ones):
        for edge into reader (latest writer first):
            change = metric(circuit without edge) - current
            if change < threshold:  circuit -= edge;  current = metric(circuit)

The metric is the task's distance to the full model (KL for categorical outputs, squared error for numerical ones);
removed edges carry the given ablation's value. Readers are visited in reversed graph order: `Resid End`, `MLP L-1`,
the last layer's V, K and Q inputs (heads last to first), then the layer before, and so on; every reader comes after
every reader its node feeds. The edges into one reader are visited in reversed graph order too: latest writer first
(ACDC's default sender order, which follows its graph built from the output backwards) and, in per-position graphs,
last position first within a writer.

Score of an edge = the metric change measured when it was considered (higher = more important). ACDC keeps exactly
the edges with change >= threshold, so every kept edge outranks every removed one, and `acdc_circuit` recovers the
circuit from the scores. The decisions are sequential: an edge's change is measured against the circuit as it stood
at its turn, so scores of edges considered at different times are not effects on one common circuit.

Batching, exactly equal to the sequential rule. The edges into one reader are evaluated in one forward with a mask
batch: row j is the circuit with candidate j removed *and* every earlier candidate that is guessed to be removed.
Decisions are then taken in order; row j is the exact sequential evaluation as long as every guess before j was right.
At the first wrong guess the decision is still exact (its own row is valid), and the remaining candidates go into a
new forward, guessed from the stale rows' marginal changes. The first guess is "removed" (ACDC's circuits are
sparse), so a reader costs one forward plus one per wrong guess. Guesses change only the cost, never the result.

Dead nodes (on by default, as ACDC's `increment_current_node`, which drops the inputs of a node that
`current_node_connected` finds feeding nothing): when every outgoing edge of a reader's node has been removed, the
node's output reaches nothing, so edges into that reader cannot change the metric. They are removed without a forward
and scored 0, which is what the rule would measure up to rounding. A head's K and V inputs at one position feed its
output at every position, so in per-position graphs they are dead only when the head's outgoing edges are removed at
every position. Skipping equals the rule only for threshold > 0 (a zero change is then removed), so it is off
otherwise. ACDC's optional `remove_redundant` also drops the outgoing edges of a node left without incoming edges;
edgewise does not: that is exact only under resample ablation, and `connected_edges` drops such edges when a circuit
is made.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from ..errors import InvalidHyperparameterError
from ..graph import Circuit, EdgeScores, Graph
from ..patching import AblatedOutputs, faithfulness_loss, full_logits
from ..tasks import Task
from .registry import register


@dataclass(frozen=True)
class AcdcConfig:
    """ACDC's hyperparameters: the threshold on the metric's increase, and two execution knobs.

    Raises:
        InvalidHyperparameterError: masks_per_forward is below 1.
    """

    threshold: float = 1e-3  # tau; the middle (log scale) of ACDC's tracr sweep 10^-5..10^-1 (its metric range 0-0.1)
    skip_dead_nodes: bool = True  # ACDC drops the inputs of a node that feeds nothing without testing them
    masks_per_forward: int = 64  # memory knob, not ACDC's: rows of one batched forward (results do not depend on it)

    def __post_init__(self):
        if self.masks_per_forward < 1:
            raise InvalidHyperparameterError(f"masks_per_forward must be at least 1, got {self.masks_per_forward}")


def acdc_circuit(scores: EdgeScores, k: int | None = None) -> Circuit:
    """Returns the circuit ACDC kept: the edges whose measured change reached the run's threshold, whatever size `k`
    asks for.

    Args:
        scores: ACDC's scores, with the run's `threshold` among their hyperparameters.
        k: ignored: ACDC's threshold decides the circuit.

    Returns:
        The circuit of the edges scoring at least the threshold.
    """
    threshold = scores.hyperparameters["threshold"]
    kept = {e for e, s in zip(scores.graph.edges, scores.scores.tolist()) if s >= threshold}
    return Circuit(
        frozenset(kept),
        scores.graph.per_position,
        f"acdc: change >= {threshold}",
        task=scores.task,
        n_graph_edges=scores.graph.n_edges,
    )


# ACDC's tracr runs sweep the threshold over 10**linspace(-5, -1, 21) and have no default (--threshold is required);
# 1e-3, the sweep's geometric middle, stands for it (docs/presets.md), so the published preset equals the default.
@register("acdc", AcdcConfig, circuit=acdc_circuit, published={"threshold": 1e-3})
def acdc_scores(
    task: Task, graph: Graph, ablated: AblatedOutputs, config: AcdcConfig, seed: int, progress: bool
) -> torch.Tensor:
    """ACDC's measured metric change per edge; the kept edges (change >= threshold) outrank every removed one.

    Args:
        task: the task whose faithfulness metric ACDC measures.
        graph: the graph whose edges are considered, reader by reader from the output backwards.
        ablated: what removed edges carry.
        config: the threshold and execution knobs.
        seed: unused: ACDC is deterministic.
        progress: show a progress bar over the readers.

    Returns:
        Each edge's measured metric change [n_edges] in float64; dead-node edges skipped without a forward score 0.
    """
    with torch.no_grad():
        reference = full_logits(task)

        def metric(masks: torch.Tensor) -> list[float]:  # masks [n_masks, n_edges] -> metric per mask
            return faithfulness_loss(task, graph, ablated, masks, reference).tolist()

        mask = torch.ones(graph.n_edges)
        scores = torch.zeros(graph.n_edges, dtype=torch.float64)
        current = metric(mask.unsqueeze(0))[0]
        skip = config.skip_dead_nodes and config.threshold > 0
        readers = list(reversed(range(len(graph.readers))))
        for reader in tqdm(readers, desc="acdc", leave=False, disable=not progress):
            candidates = torch.nonzero(graph.edge_reader == reader).flatten().flip(0).tolist()
            if skip:
                dead = set(_dead_inputs(graph, mask, reader, candidates))
                mask[list(dead)] = 0.0  # scores stay 0: the measured change would be 0 up to rounding
                candidates = [e for e in candidates if e not in dead]
            current = _decide(metric, mask, scores, candidates, current, config)
    return scores


def _decide(
    metric, mask: torch.Tensor, scores: torch.Tensor, candidates: list[int], current: float, config: AcdcConfig
) -> float:
    """Applies the greedy rule to `candidates` in order, updating `mask` and `scores`; returns the new metric.

    Each forward evaluates a block of candidates under a guess of the earlier decisions (see the module docstring);
    decisions are kept up to and including the first wrong guess.
    """
    guesses = [True] * len(candidates)  # True = removed
    start = 0
    while start < len(candidates):
        block = candidates[start : start + config.masks_per_forward]
        guess = guesses[start : start + len(block)]
        rows = mask.repeat(len(block), 1)  # [n_block, n_edges]
        for j, edge in enumerate(block):  # row j drops its candidate; later rows too if it is guessed removed
            if guess[j]:
                rows[j:, edge] = 0.0
            else:
                rows[j, edge] = 0.0
        measured = metric(rows)
        # The metric of the guessed circuit each row starts from: the last row guessed removed before it.
        bases, base = [], current
        for j in range(len(block)):
            bases.append(base)
            base = measured[j] if guess[j] else base
        consumed = len(block)
        for j, edge in enumerate(block):
            change = measured[j] - current
            scores[edge] = change
            removed = change < config.threshold
            if removed:
                mask[edge] = 0.0
                current = measured[j]
            if removed != guess[j]:
                consumed = j + 1
                break
        for j in range(consumed, len(block)):  # guess the rest from their stale marginal changes
            guesses[start + j] = measured[j] - bases[j] < config.threshold
        start += consumed
    return current


def _dead_inputs(graph: Graph, mask: torch.Tensor, reader: int, candidates: list[int]) -> list[int]:
    """Returns the candidate edges into `reader` whose node's output reaches no kept edge (so cannot matter)."""
    name = graph.readers[reader]
    nodes = graph.fed_writers(name)  # the head a q/k/v input feeds (or its features); an MLP feeds itself
    if not nodes:  # the output feeds the logits directly
        return []
    kept_out = torch.isin(graph.edge_writer, torch.tensor(nodes)) & (mask > 0)
    if not graph.per_position:
        return list(candidates) if not kept_out.any() else []
    alive = set(graph.edge_position[kept_out].tolist())
    return [e for e in candidates if not alive.intersection(graph.reached_positions(name, int(graph.edge_position[e])))]
