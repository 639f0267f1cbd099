"""Task: a model, clean and corrupted inputs, a metric, and (when known) the ground-truth circuit."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch

from .ablation import AblatedOutputs, make_ablation
from .adapters import Adapter, adapter_for
from .errors import BatchShapeError, GraphMismatchError
from .graph import Edge, Graph
from .metrics import Metric
from .patching import patched_forward


@dataclass
class Task:
    """One behaviour of one model; clean row i is paired with corrupted row i for resample ablation."""

    name: str
    model: torch.nn.Module
    clean: torch.Tensor  # [batch, pos] token ids
    corrupt: torch.Tensor  # [batch, pos] token ids, paired row by row with `clean`
    metric: Metric
    scored_positions: torch.Tensor  # [batch, pos] bool: where the metric looks
    ground_truth: list[tuple[str, str]] | None = None  # plain-graph (writer, reader) edges
    ground_truth_split: list[tuple[str, str]] | None = None  # the same, token and position embeddings apart
    bos_position: int | None = None  # a position that holds the same token in every input (tracr's BOS)
    categorical: bool = True  # outputs are logits over classes (else: numbers, one per output dimension)
    description: str = ""
    pairing: str = ""  # how corrupted inputs were made from clean ones
    extras: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.clean.shape != self.corrupt.shape:
            raise BatchShapeError(
                f"task {self.name}: clean batch {tuple(self.clean.shape)} and corrupted batch "
                f"{tuple(self.corrupt.shape)} differ; resample ablation pairs them row by row, so give both the same "
                "number of rows and the same (padded) length"
            )
        if self.scored_positions.shape != self.clean.shape:
            raise BatchShapeError(
                f"task {self.name}: scored_positions {tuple(self.scored_positions.shape)} must match the clean batch "
                f"{tuple(self.clean.shape)}"
            )

    def to(self, device: str | torch.device) -> "Task":
        """Returns this task with its model and token batches on `device` (e.g. "cuda"); every method then runs its
        forwards there, and scores come back to the CPU. The model moves in place, as torch modules do."""
        return dataclasses.replace(
            self, model=self.model.to(device), clean=self.clean.to(device), corrupt=self.corrupt.to(device),
            scored_positions=self.scored_positions.to(device),
        )

    @property
    def adapter(self) -> Adapter:
        return adapter_for(self.model)

    @property
    def n_positions(self) -> int:
        return self.clean.shape[1]

    def graph(self, per_position: bool = False, split_embeddings: bool = False) -> Graph:
        """Returns the task model's graph, unrolled over the task's sequence positions if `per_position`."""
        n_positions = self.n_positions if per_position else None
        return Graph.from_model(self.adapter, per_position, n_positions, split_embeddings)

    def ground_truth_edges(self, graph: Graph, include_bos: bool = True) -> set[Edge]:
        """Returns the ground-truth circuit as edges of `graph`; per-position graphs get each edge at every position.

        Every position keeps the circuit faithful under every ablation. `include_bos=False` drops the BOS position,
        auto-circuit's convention: BOS is identical in clean and corrupted inputs, so resampling it is a no-op.
        """
        split = "Tok Embed" in graph.writers
        truth = self.ground_truth_split if split else self.ground_truth
        if truth is None:
            kind = " for graphs with split embeddings" if split and self.ground_truth is not None else ""
            raise GraphMismatchError(f"task {self.name} has no known ground-truth circuit{kind}")
        if not graph.per_position:
            return {Edge(w, r) for w, r in truth}
        positions = [p for p in range(graph.n_positions) if include_bos or p != self.bos_position]
        return {Edge(w, r, p) for w, r in truth for p in positions}

    def ablation(self, graph: Graph, kind: str = "resample") -> AblatedOutputs:
        """Returns the named ablation: resample uses the corrupted batch, the others average the clean batch."""
        return make_ablation(kind, self.adapter, graph, self.corrupt if kind == "resample" else self.clean)

    @torch.no_grad()
    def full_logits(self) -> torch.Tensor:
        """Returns the unpatched model's logits on the clean batch."""
        return self.adapter.forward(self.clean)

    def answer_score(self, logits: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor:
        """Returns how strongly the outputs give the full model's answers, averaged over scored positions: the
        log-probability of the full model's top class (categorical), or the outputs' covariance with the full
        model's outputs (numerical); [n_masks] or scalar.

        Unlike the faithfulness metrics, its gradient is not zero at the full model, so gradient methods use it.
        The numerical form weighs each output by how far the full model's answer is from its mean: with a plain mean
        of outputs, a corrupted batch that is a permutation of the clean one would cancel out in the sum.
        """
        reference = self.full_logits() if reference is None else reference
        weights = self.scored_positions.to(logits.dtype)
        if self.categorical:
            answers = reference.argmax(-1).expand(logits.shape[:-1])
            per_position = logits.log_softmax(-1).gather(-1, answers.unsqueeze(-1)).squeeze(-1)
        else:
            centred = reference - (reference * weights.unsqueeze(-1)).sum((0, 1)) / weights.sum()
            per_position = (logits * centred).sum(-1)
        return (per_position * weights).sum((-1, -2)) / weights.sum()

    def faithfulness_loss(
        self, graph: Graph, ablated: AblatedOutputs, mask: torch.Tensor, reference: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Returns the metric between the masked model and the full model: scalar, or [n_masks] for batched masks."""
        reference = self.full_logits() if reference is None else reference
        logits = patched_forward(self.adapter, graph, self.clean, ablated, mask)
        return self.metric(logits, reference, self.scored_positions)
