"""Faithfulness per input: a circuit that is faithful on average can be wrong on a third of the inputs, and only the
distribution shows it (per-example faithfulness has an interquartile range of up to 50% on IOI circuits).

For input i, f_i = 1 - loss_i(circuit) / loss_i(empty circuit), with loss_i the task's metric on that row alone; an
input whose empty-circuit loss is 0 (the ablation changes nothing there) has no faithfulness (NaN) and is left out of
the quantiles and shares.

A circuit's faithfulness is a figure over the batch's inputs, so it carries an interval over inputs too
(`faithfulness_interval`): the batch's rows are drawn with replacement and the faithfulness taken again on them, from
the circuit's and the empty circuit's outputs computed once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..graph import Edge, Graph
from ..patching import AblatedOutputs, full_logits, patched_forward
from ..tasks import Task
from .rows import on_rows

RECOVERED_LEVEL = 0.8  # an input counts as recovered when its faithfulness is at least this
INPUT_RESAMPLES = 1000  # bootstrap draws of the batch's rows behind a faithfulness interval
LEVEL = 0.95


@dataclass(frozen=True)
class ExampleFaithfulness:
    """A circuit's faithfulness on each input of a batch.

    Attributes:
        values: f_i per input [batch], NaN where the empty circuit's loss is 0.
    """

    values: torch.Tensor

    @property
    def defined(self) -> torch.Tensor:
        """Returns the values of the inputs that have one (the ablation changes something there)."""
        return self.values[~torch.isnan(self.values)]

    def quantiles(self) -> dict[str, float]:
        """Returns the minimum, quartiles and maximum of the defined values (NaN for each when none is defined)."""
        values = self.defined
        if not len(values):
            return dict.fromkeys(("min", "q25", "median", "q75", "max"), float("nan"))
        q = torch.quantile(values, torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0], dtype=values.dtype)).tolist()
        return dict(zip(("min", "q25", "median", "q75", "max"), q))

    def share_recovered(self, level: float = RECOVERED_LEVEL) -> float:
        """Returns the share of the defined inputs whose faithfulness is at least `level` (NaN when none is defined).

        Args:
            level: the faithfulness an input needs to count as recovered.

        Returns:
            A share in [0, 1].
        """
        values = self.defined
        return float((values >= level).double().mean()) if len(values) else float("nan")

    def worst(self, n: int = 5) -> list[int]:
        """Returns the indices of the n inputs with the lowest defined faithfulness, lowest first.

        Args:
            n: how many inputs.

        Returns:
            Row indices into the batch.
        """
        values = torch.where(torch.isnan(self.values), torch.inf, self.values)
        order = torch.argsort(values, stable=True).tolist()
        return [i for i in order if not torch.isnan(self.values[i])][:n]

    def to_dict(self, n_worst: int = 5) -> dict:
        """Returns the distribution as JSON values: quantiles, the share recovered, the worst inputs and every value.

        Args:
            n_worst: how many of the worst inputs to name.

        Returns:
            A dict with `quantiles`, `share_recovered` (with its `level`), `worst` ([row, faithfulness] pairs),
                `undefined` (inputs the ablation does not change) and `values` (None where undefined).
        """
        return {
            "quantiles": self.quantiles(),
            "share_recovered": {"level": RECOVERED_LEVEL, "share": self.share_recovered()},
            "worst": [[i, float(self.values[i])] for i in self.worst(n_worst)],
            "undefined": int(torch.isnan(self.values).sum()),
            "values": [None if v != v else v for v in self.values.tolist()],
        }


@dataclass(frozen=True)
class _Outputs:
    """The full model's, the circuit's and the empty circuit's outputs on the clean batch [batch, pos, vocab], cut
    to the positions some row scores (a metric reads no other), with the scored positions and the metric cut alike."""

    full: torch.Tensor
    circuit: torch.Tensor
    empty: torch.Tensor
    scored: torch.Tensor
    keep: torch.Tensor  # [pos] (bool): the positions kept

    @classmethod
    def of(cls, task: Task, graph: Graph, ablated: AblatedOutputs, edges: set[Edge]) -> "_Outputs":
        keep = task.scored_positions.bool().any(0)
        full = full_logits(task)
        circuit = patched_forward(task.model, graph, task.clean, ablated, graph.mask_for(edges))
        empty = patched_forward(task.model, graph, task.clean, ablated, graph.mask_for(set()))
        return cls(full[:, keep], circuit[:, keep], empty[:, keep], task.scored_positions[:, keep], keep)

    def losses(self, task: Task, rows: torch.Tensor, positions: torch.Tensor) -> tuple[float, float]:
        """Returns the empty circuit's and the circuit's loss on the drawn rows with `positions` [rows, kept pos]
        scored."""
        n = self.full.shape[0]
        metric = on_rows(task.metric, rows, n, self.keep)
        picked = rows.to(self.full.device)
        full = self.full[picked]
        return (
            metric(self.empty[picked], full, positions).item(),
            metric(self.circuit[picked], full, positions).item(),
        )


@torch.no_grad()
def per_example_faithfulness(
    task: Task, graph: Graph, ablated: AblatedOutputs, edges: set[Edge]
) -> ExampleFaithfulness:
    """Returns the circuit's faithfulness on each input of the task's batch (see the module's description): one
    patched forward for the circuit and one for the empty circuit, the metric then taken with one row's positions
    scored at a time (every edgewise metric averages over the scored positions).

    Args:
        task: the task (its model, clean batch, metric and scored positions).
        graph: the graph whose edges `edges` are.
        ablated: what an ablated edge carries.
        edges: the circuit, as the edges kept.

    Returns:
        The per-input faithfulness.
    """
    outputs = _Outputs.of(task, graph, ablated, edges)
    every = torch.arange(task.clean.shape[0])
    values = []
    for i in range(task.clean.shape[0]):
        # the whole batch with only row i's positions scored: a metric averages over the scored positions, and one
        # bound to the batch's rows (a prompts file's answers) keeps its rows aligned
        positions = torch.zeros_like(outputs.scored)
        positions[i] = outputs.scored[i]
        empty_loss, circuit_loss = outputs.losses(task, every, positions)
        values.append(1.0 - circuit_loss / empty_loss if empty_loss > 0 else float("nan"))
    return ExampleFaithfulness(torch.tensor(values, dtype=torch.float64))


@torch.no_grad()
def faithfulness_interval(
    task: Task,
    graph: Graph,
    ablated: AblatedOutputs,
    edges: set[Edge],
    resamples: int = INPUT_RESAMPLES,
    seed: int = 0,
) -> tuple[float, float] | None:
    """Returns a 95% percentile-bootstrap interval over inputs of the circuit's faithfulness: the batch's rows drawn
    with replacement `resamples` times, the faithfulness (1 - loss(circuit) / loss(empty circuit), the metric on
    the drawn rows) taken on each draw. The ablation's values stay as recorded on the whole batch.

    Args:
        task: the task (its model, clean batch, metric and scored positions).
        graph: the graph whose edges `edges` are.
        ablated: what an ablated edge carries.
        edges: the circuit, as the edges kept.
        resamples: how many draws.
        seed: the draws' seed.

    Returns:
        (low, high); None for fewer than 2 inputs, or when fewer than half the draws have a faithfulness (the
            empty circuit's loss is 0 on them).
    """
    n = task.clean.shape[0]
    if n < 2:
        return None
    outputs = _Outputs.of(task, graph, ablated, edges)
    generator = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(resamples):
        rows = torch.randint(0, n, (n,), generator=generator)
        empty_loss, circuit_loss = outputs.losses(task, rows, outputs.scored[rows.to(outputs.scored.device)])
        if empty_loss > 0:
            values.append(1.0 - circuit_loss / empty_loss)
    if len(values) < resamples / 2:
        return None
    tails = torch.tensor([(1 - LEVEL) / 2, (1 + LEVEL) / 2], dtype=torch.float64)
    low, high = torch.quantile(torch.tensor(values, dtype=torch.float64), tails).tolist()
    return low, high
