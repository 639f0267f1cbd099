"""Task: a model, clean and corrupted inputs, a metric, and (when known) the ground-truth circuit; plain data.

What runs the model with a mask (ablations, the faithfulness loss, the answer score) lives in `edgewise.patching`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable, Literal

import torch

from ..adapters import Adapter, adapter_for
from ..errors import (
    BatchShapeError,
    EmptyInputsError,
    GraphMismatchError,
    InvalidMetricError,
    MetricNotZeroError,
    NonFiniteMetricError,
    UnknownObjectiveError,
    UsageError,
)
from ..graph import Edge, Graph, feature_graph
from .metrics import METRICS, Metric

# The largest |metric(logits, logits)| that counts as 0: a distance computed from two equal tensors is exactly 0, and a
# cosine or a ratio of them is within float32 rounding; a quantity such as a logit difference is not.
METRIC_ZERO_TOLERANCE = 1e-5


@dataclass
class Task:
    """One behaviour of one model; clean row i is paired with corrupted row i for resample ablation.

    Attributes:
        name: the task's name, as records and screens show it.
        model: the model whose circuit is discovered.
        clean: [batch, pos] token ids (a declared model: any [batch, ...] inputs it takes).
        corrupt: the same shape, paired row by row with `clean`.
        metric: the distance a method minimises between the patched and the full model's outputs.
        scored_positions: [batch, pos] bool: where the metric looks.
        ground_truth: plain-graph (writer, reader) edges of the known circuit, or None.
        ground_truth_split: the same, token and position embeddings apart, or None.
        bos_position: a position that holds the same token in every input (tracr's BOS), or None.
        categorical: outputs are logits over classes (else: numbers, one per output dimension).
        description: a sentence about the task, for screens.
        pairing: how corrupted inputs were made from clean ones.
        dictionaries: named sets of dictionaries that split writers into features
            (`{"oracle": {"MLP 1": Dictionary, ...}}`).
        feature_ground_truth: the feature-level ground truth of those sets where it is known: (feature, reader) edges
            of plain feature graphs, by set name.
        objectives: named objectives beyond faithfulness, each a Metric that a method minimises in place of `metric`
            when asked (`discover(..., minimise=name)`): e.g. the game task's `worst-move`, the value of the move the
            policy picks.
        truth_tolerance: the largest scored output change that counts as none when the effective truth is taken
            (None: float noise of compiled weights, edgewise.evaluate's OUTPUT_TOLERANCE); a trained model, where
            every edge moves something a little, sets its own.
        truth_measure: what a removal changes, for the effective truth and its redundant copies: `logits`, the
            largest |output change| over the scored positions; `argmax`, the fraction of scored positions whose top
            output changes (a trained model's copies add up in the logits, so half a logit shift is no change of
            behaviour; docs/induction.md).
        answers: the correct class at each scored position [batch, pos] (-1 elsewhere), where the task knows it:
            removal's accuracy and the weight edits train toward it (None: the full model's top class).
        offered: the classes the task offers at each position [batch, pos, classes] bool (a game's legal moves);
            the behaviour check reads it.
        answer_values: the true value of each class [batch, pos, classes] (a game's minimax values); the behaviour
            check reads it.
        class_label: names an output class on screens: a compiled program's value, the token a tokenizer decodes
            (None: its index).
        dictionary_reports: how each named dictionary set was made, where it was fitted (trained SAEs: per writer,
            statistics and recovery).
        family: the task family's own typed record (a built-in family's inputs, compiled program, prompts, ...); no
            library stage reads it.

    Raises:
        InvalidMetricError: `metric`, or one of `objectives`, is not a Metric (e.g. a plain function).
        UsageError: `truth_measure` is neither `logits` nor `argmax`.
        BatchShapeError: `clean` and `corrupt` differ in shape, or `scored_positions` is not [batch, pos] of the
            clean batch.
        EmptyInputsError: the clean batch holds no rows, or no position is scored.
    """

    name: str
    model: torch.nn.Module
    clean: torch.Tensor
    corrupt: torch.Tensor
    metric: Metric
    scored_positions: torch.Tensor
    ground_truth: list[tuple[str, str]] | None = None
    ground_truth_split: list[tuple[str, str]] | None = None
    bos_position: int | None = None
    categorical: bool = True
    description: str = ""
    pairing: str = ""
    dictionaries: dict[str, dict] = field(default_factory=dict)
    feature_ground_truth: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    objectives: dict[str, Metric] = field(default_factory=dict)
    truth_tolerance: float | None = None
    truth_measure: Literal["logits", "argmax"] = "logits"
    answers: torch.Tensor | None = None
    offered: torch.Tensor | None = None
    answer_values: torch.Tensor | None = None
    class_label: Callable[[int], str] | None = None
    dictionary_reports: dict[str, dict] = field(default_factory=dict)
    family: object | None = None

    def __post_init__(self):
        _check_is_metric(self.metric, f"task {self.name}: metric")
        for name, objective in self.objectives.items():
            _check_is_metric(objective, f"task {self.name}: objective {name!r}")
        if self.truth_measure not in ("logits", "argmax"):
            raise UsageError(
                f"task {self.name}: truth_measure must be 'logits' or 'argmax', got {self.truth_measure!r}"
            )
        if self.clean.shape != self.corrupt.shape:
            raise BatchShapeError(
                f"task {self.name}: clean batch {tuple(self.clean.shape)} and corrupted batch "
                f"{tuple(self.corrupt.shape)} differ; resample ablation pairs them row by row, so give both the same "
                "number of rows and the same (padded) length"
            )
        n_positions = self.adapter.n_positions(self.clean)
        if tuple(self.scored_positions.shape) != (self.clean.shape[0], n_positions):
            raise BatchShapeError(
                f"task {self.name}: scored_positions {tuple(self.scored_positions.shape)} must be [batch, pos] = "
                f"{(self.clean.shape[0], n_positions)} for the clean batch {tuple(self.clean.shape)} (a model without "
                "a sequence axis has one position)"
            )
        if self.clean.shape[0] == 0:
            raise EmptyInputsError(
                f"task {self.name}: the clean batch {tuple(self.clean.shape)} holds no rows, so every metric would be "
                "0 / 0; give at least two inputs (resample ablation pairs each with another)"
            )
        # Only a batch without any scored position is an error. Every metric, and the answer score, averages over the
        # scored positions of all rows together, so a row without one (an empty tracr sequence: BOS and padding only)
        # adds nothing to either side of the mean; a batch without any makes every value 0 / 0.
        if not bool(self.scored_positions.any()):
            raise EmptyInputsError(
                f"task {self.name}: scored_positions is False at every position of its {self.clean.shape[0]} rows, so "
                "every metric would be 0 / 0 (NaN); mark at least one position for the metric to score (tracr: give "
                "sequences of at least one value)"
            )

    @torch.no_grad()
    def check_metric(self) -> None:
        """Raises MetricNotZeroError unless the task's metric is 0 (within METRIC_ZERO_TOLERANCE) on the full model's
        own outputs, and NonFiniteMetricError if it is NaN or infinite there; costs one forward of the clean inputs.

        The metric is a distance from the full model: a circuit that keeps every edge is the full model, so its
        distance must be 0. A metric that is not (an accuracy, a logit difference) makes every faithfulness value
        meaningless; `discover` calls this before any method runs.

        Raises:
            NonFiniteMetricError: the metric is NaN or infinite on the full model against itself.
            MetricNotZeroError: the metric is finite but not 0 there; the message gives the value.
        """
        logits = self.adapter.forward(self.clean)  # [batch, pos, vocab]
        value = torch.as_tensor(self.metric(logits, logits, self.scored_positions)).detach().double()
        if not bool(torch.isfinite(value).all()):
            bad = value[~torch.isfinite(value)].flatten()[0].item()
            raise NonFiniteMetricError(
                f"task {self.name}: metric {self.metric.name!r} is {bad} on the full model against itself; every "
                "method measures masked outputs with it, so its scores would be NaN. Make the metric return a finite "
                f"distance for any outputs (guard divisions by zero and logs of 0) or use one of {', '.join(METRICS)}"
            )
        furthest = value.flatten()[value.abs().argmax()].item()  # the value furthest from 0, with its sign
        if abs(furthest) > METRIC_ZERO_TOLERANCE:
            raise MetricNotZeroError(
                f"task {self.name}: metric {self.metric.name!r} gives {furthest:.6g} on the full model's own outputs "
                f"(metric(logits, logits, positions)), not 0 (within {METRIC_ZERO_TOLERANCE:g}). A task's metric is "
                "the distance of a circuit's outputs from the full model's: the circuit of every edge is the full "
                "model, at distance 0, and faithfulness is measured from there, so with this metric it would be "
                "meaningless (reported as 0). Make it a distance that is 0 when the logits equal the reference, or "
                f"use one of {', '.join(METRICS)} (edgewise.tasks.METRICS); to maximise or minimise some other "
                "quantity, pass it as an objective: discover(..., minimise=Metric(name, fn))"
            )

    def to(self, device: str | torch.device) -> "Task":
        """Returns this task with its model and token batches on `device` (e.g. "cuda"); every method then runs its
        forwards there, and scores come back to the CPU. The model moves in place, as torch modules do.

        Args:
            device: the device to move the model, `clean`, `corrupt` and `scored_positions` to.

        Returns:
            A copy of the task that holds the moved model and tensors (the other fields are shared).
        """
        return dataclasses.replace(
            self,
            model=self.model.to(device),
            clean=self.clean.to(device),
            corrupt=self.corrupt.to(device),
            scored_positions=self.scored_positions.to(device),
        )

    def with_objective(self, objective: "str | Metric") -> "Task":
        """Returns this task with `objective` (one of its named objectives, or any Metric) as the metric a method
        minimises; raises UnknownObjectiveError naming the task's objectives.

        Args:
            objective: the name of one of the task's `objectives`, or a Metric to use as it is.

        Returns:
            A copy of the task whose `metric` is the objective.

        Raises:
            UnknownObjectiveError: `objective` is a name the task's `objectives` lack.
            InvalidMetricError: `objective` is neither a name nor a Metric (e.g. a plain function).
        """
        if isinstance(objective, Metric):
            return dataclasses.replace(self, metric=objective)
        if not isinstance(objective, str):
            _check_is_metric(objective, f"task {self.name}: objective")
        if objective not in self.objectives:
            raise UnknownObjectiveError(
                f"task {self.name} has no objective {objective!r}; it has {', '.join(self.objectives) or 'none'} "
                "(pass an edgewise.tasks.Metric to minimise your own)"
            )
        return dataclasses.replace(self, metric=self.objectives[objective])

    @property
    def adapter(self) -> Adapter:
        """Returns the adapter that describes the task's model (`adapter_for`)."""
        return adapter_for(self.model)

    @property
    def n_positions(self) -> int:
        """Returns the number of sequence positions: the width of `scored_positions`."""
        return self.scored_positions.shape[1]

    def graph(self, per_position: bool = False, split_embeddings: bool = False, features: str | None = None) -> Graph:
        """Returns the task model's graph, unrolled over the task's sequence positions if `per_position`; with
        `features`, the writers its named dictionaries cover are split into feature and error nodes.

        Args:
            per_position: unroll every node over the task's sequence positions.
            split_embeddings: token and position embeddings as two writers rather than one.
            features: the name of one of the task's `dictionaries` sets whose writers are split; None: no features.

        Returns:
            The graph (a feature graph when `features` is given).

        Raises:
            GraphMismatchError: the task has no dictionary set named `features`.
        """
        groups = self.adapter.hook_groups(split_embeddings=split_embeddings)
        n_positions = self.n_positions if per_position else None
        if features is None:
            return Graph(groups, n_positions)
        if features not in self.dictionaries:
            known = ", ".join(self.dictionaries) or "none"
            raise GraphMismatchError(
                f"task {self.name} has no {features!r} features (it has: {known}); tracr tasks have 'oracle' "
                "features, and `--features sae:DIR` loads sparse autoencoders saved in SAELens's format"
            )
        return feature_graph(groups, n_positions, features, self.dictionaries[features])

    def ground_truth_edges(self, graph: Graph, include_bos: bool = True) -> set[Edge]:
        """Returns the ground-truth circuit as edges of `graph`; per-position graphs get each edge at every position.

        Every position keeps the circuit faithful under every ablation. `include_bos=False` drops the BOS position,
        auto-circuit's convention: BOS is identical in clean and corrupted inputs, so resampling it is a no-op.

        Args:
            graph: the graph the edges are taken on; its kind (split embeddings, feature set) picks the truth.
            include_bos: keep the edges at `bos_position` in a per-position graph.

        Returns:
            The true edges that `graph` holds.

        Raises:
            GraphMismatchError: the task has no ground truth for this kind of graph.
        """
        truth = self._truth_pairs(graph)
        if not graph.per_position:
            return {Edge(w, r) for w, r in truth}
        positions = [p for p in range(graph.n_positions) if include_bos or p != self.bos_position]
        return {Edge(w, r, p) for w, r in truth for p in positions}

    def knows_truth(self, graph: Graph) -> bool:
        """Returns whether the task has a ground truth for this kind of graph (head/MLP, or its feature set).

        Args:
            graph: the graph whose kind (split embeddings, feature set) is asked about.

        Returns:
            True where `ground_truth_edges` would succeed on `graph`.
        """
        if graph.features is not None:
            return graph.features in self.feature_ground_truth
        return (self.ground_truth_split if graph.split_embeddings else self.ground_truth) is not None

    def _truth_pairs(self, graph: Graph) -> list[tuple[str, str]]:
        """Returns the (writer, reader) pairs of the ground truth that `graph` holds, or raises GraphMismatchError."""
        if graph.features is not None:
            truth = self.feature_ground_truth.get(graph.features)
            if truth is None:
                known = ", ".join(self.feature_ground_truth) or "no feature set"
                raise GraphMismatchError(
                    f"task {self.name} has no ground truth for its {graph.features!r} features (it is known for "
                    f"{known}); score such a graph by faithfulness, or use tracr's oracle features"
                )
            writers, readers = set(graph.writers), set(graph.readers)  # truths cover merged and split embeddings
            return [(w, r) for w, r in truth if w in writers and r in readers]
        split = graph.split_embeddings
        truth = self.ground_truth_split if split else self.ground_truth
        if truth is None:
            kind = " for graphs with split embeddings" if split and self.ground_truth is not None else ""
            raise GraphMismatchError(f"task {self.name} has no known ground-truth circuit{kind}")
        return truth


def _check_is_metric(metric: object, what: str) -> None:
    """Returns nothing; raises InvalidMetricError unless `metric` is a Metric, saying how to make one."""
    if isinstance(metric, Metric):
        return
    name = getattr(metric, "__name__", None)
    wrap = f"Metric({name!r}, {name})" if callable(metric) and name and name != "<lambda>" else "Metric('name', fn)"
    raise InvalidMetricError(
        f"{what} must be an edgewise.tasks.Metric, got {type(metric).__name__} {metric!r}; wrap a function "
        f"fn(logits, reference, positions) -> distance as {wrap}, or use METRICS[name] for one of "
        f"{', '.join(METRICS)}"
    )
