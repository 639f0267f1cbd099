"""EdgeScores: one importance score per edge of a graph (higher = more important), with the run that made them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import GraphMismatchError, ScoresFileError
from .files import load_json, write_json
from .graph import Edge, Graph

# Near-zero: within this fraction of the largest |score|. Gradient methods give edges with no effect float32 rounding
# noise of either sign, up to ~2e-7 of the largest score (tracr-sort, EAP-IG: 1.3e-7 against 0.61; float64 gives
# 1e-16); 1e-6 (about 8 float32 ulps) snaps it to zero in both precisions, while real effects on these models are
# orders of magnitude larger. Without it, float32 noise breaks ties at random (that AUROC moved from 0.75 to 1.0).
ZERO_TOLERANCE = 1e-6


@dataclass(frozen=True)
class ScoreTrajectory:
    """How a training method's scores moved: every edge's score [n_checkpoints, n_edges] at the training steps
    `steps` (0: before the first step; the last row is the final score). SP records its gates' log_alpha.

    Attributes:
        steps: the training steps of the checkpoints, one per row of `values`.
        values: every edge's score at each checkpoint [n_checkpoints, n_edges], in graph edge order.

    Raises:
        GraphMismatchError: `values` is not a matrix with one row per step.
    """

    steps: tuple[int, ...]
    values: torch.Tensor

    def __post_init__(self):
        if self.values.dim() != 2 or self.values.shape[0] != len(self.steps):
            raise GraphMismatchError(
                f"a score trajectory needs one row per step: {len(self.steps)} steps, values of "
                f"shape {tuple(self.values.shape)}"
            )

    def of(self, index: int) -> list[tuple[int, float]]:
        """Returns (step, score) of the edge with this graph index at every checkpoint.

        Args:
            index: the edge's index in its graph (`Graph.edge_index`).

        Returns:
            One (step, score) pair per checkpoint, in step order.
        """
        return list(zip(self.steps, self.values[:, index].tolist()))

    def to_dict(self) -> dict:
        """Returns the trajectory as JSON-ready data, its values rounded to 4 decimals."""
        return {"steps": list(self.steps), "values": [[round(v, 4) for v in row] for row in self.values.tolist()]}

    @classmethod
    def from_dict(cls, record: dict) -> "ScoreTrajectory":
        """Returns the trajectory a `to_dict` record describes, its values in float64.

        Args:
            record: a record with `steps` and `values` (one row per step).

        Returns:
            The trajectory.

        Raises:
            GraphMismatchError: the record has not one row of values per step.
        """
        return cls(tuple(record["steps"]), torch.tensor(record["values"], dtype=torch.float64))


@dataclass
class EdgeScores:
    """Scores [n_edges] in the graph's edge order, and the method, hyperparameters, seed and seconds behind them.

    Sign convention, for every method: a higher score means the edge matters more to the task's behaviour.

    Attributes:
        graph: the graph whose edges are scored.
        scores: one score per edge [n_edges], in graph edge order; stored detached, flat, in float64.
        method: the name of the method that made them.
        hyperparameters: the method's config as run (and the objective it minimised, if any).
        seed: the seed of the run.
        seconds: how long the method ran.
        ablation: the kind of ablation ablated edges carried (`resample`, `mean`, `zero`, ...).
        task: the name of the task ("" unknown).
        trajectory: training methods: the scores along training; None otherwise.

    Raises:
        GraphMismatchError: the number of scores, or of the trajectory's edges, is not the graph's number of edges.
    """

    graph: Graph
    scores: torch.Tensor
    method: str
    hyperparameters: dict = field(default_factory=dict)
    seed: int = 0
    seconds: float = 0.0
    ablation: str = "resample"
    task: str = ""
    trajectory: ScoreTrajectory | None = None

    def __post_init__(self):
        self.scores = self.scores.detach().to(torch.float64).flatten()
        if self.scores.numel() != self.graph.n_edges:
            raise GraphMismatchError(
                f"{self.method} returned {self.scores.numel()} scores for a graph of {self.graph.n_edges} edges"
            )
        if self.trajectory is not None and self.trajectory.values.shape[1] != self.graph.n_edges:
            raise GraphMismatchError(
                f"{self.method}'s score trajectory has {self.trajectory.values.shape[1]} edges, "
                f"its graph {self.graph.n_edges}"
            )

    def __getitem__(self, edge: Edge | tuple) -> float:
        return self.scores[self.graph.edge_index(edge)].item()

    def snapped(self, zero_tolerance: float = ZERO_TOLERANCE) -> torch.Tensor:
        """Returns the scores [n_edges] with those within `zero_tolerance` of zero (relative to the largest |score|)
        set to exactly zero: the one rule by which AUROC, circuits and faithfulness curves see near-zero scores.

        Args:
            zero_tolerance: the fraction of the largest |score| at or below which a score counts as zero.

        Returns:
            A copy of the scores [n_edges]; the stored scores are unchanged.
        """
        values = self.scores.clone()
        values[values.abs() <= zero_tolerance * values.abs().max()] = 0.0
        return values

    def ranked(self) -> list[tuple[Edge, float]]:
        """Returns (edge, score) pairs, most important first, by the snapped scores; ties keep graph order.

        Returns:
            One (edge, snapped score) pair per edge of the graph.
        """
        values = self.snapped()
        order = torch.argsort(-values, stable=True).tolist()
        return [(self.graph.edges[i], values[i].item()) for i in order]

    def to_dict(self) -> dict:
        """Returns the scores as JSON-ready data: the run's records, each edge's [writer, reader, score], the graph,
        and the trajectory (or None)."""
        return {
            "method": self.method,
            "task": self.task,
            "ablation": self.ablation,
            "per_position": self.graph.per_position,
            "seed": self.seed,
            "seconds": self.seconds,
            "hyperparameters": self.hyperparameters,
            "scores": [[*e.endpoints(), s] for e, s in zip(self.graph.edges, self.scores.tolist())],
            "graph": self.graph.to_dict(),
            "trajectory": None if self.trajectory is None else self.trajectory.to_dict(),  # in graph edge order
        }

    @classmethod
    def from_dict(cls, record: dict) -> "EdgeScores":
        """Returns the scores a `to_dict` record describes, in the order of the graph it records.

        Args:
            record: a record written by `to_dict`.

        Returns:
            The scores, on a graph without dictionaries.

        Raises:
            GraphMismatchError: the record lacks a score for an edge of its graph, or holds no hook groups.
        """
        graph = Graph.from_dict(record["graph"])
        by_edge = {Edge.from_endpoints(w, r): s for w, r, s in record["scores"]}
        missing = [e.name for e in graph.edges if e not in by_edge]
        if missing:
            raise GraphMismatchError(f"scores file lacks {len(missing)} edges of its graph, e.g. {missing[0]}")
        scores = torch.tensor([by_edge[e] for e in graph.edges], dtype=torch.float64)
        trajectory = record.get("trajectory")
        return cls(
            graph,
            scores,
            record["method"],
            record.get("hyperparameters", {}),
            record.get("seed", 0),
            record.get("seconds", 0.0),
            record.get("ablation", "resample"),
            record.get("task", ""),
            None if trajectory is None else ScoreTrajectory.from_dict(trajectory),
        )

    def save(self, path: str | Path) -> None:
        """Writes the scores as strict JSON; a NaN or infinite number raises ScoresFileError naming where it sits.

        Args:
            path: the file to write.

        Raises:
            ScoresFileError: a score, hyperparameter or other number is NaN or infinite.
        """
        write_json(path, self.to_dict(), ScoresFileError)

    @classmethod
    def load(cls, path: str | Path, task: str | None = None) -> "EdgeScores":
        """Returns the scores saved at `path`; raises ScoresFileError for a missing, non-JSON or malformed file, and
        GraphMismatchError when `task` is given and the file records another task.

        Args:
            path: a file written by `save` or `edgewise discover --json FILE`.
            task: the task the scores are for; None (or a file that records no task) skips the check.

        Returns:
            The scores, on a graph without dictionaries.

        Raises:
            ScoresFileError: the file is missing, not JSON, or not edge scores.
            GraphMismatchError: the file records another task than `task`, or its graph or scores do not fit
                together (see `from_dict`).
        """
        scores = load_json(
            path,
            cls.from_dict,
            ScoresFileError,
            "edge scores written by EdgeScores.save or `edgewise discover --json FILE`",
        )
        if task is not None and scores.task and scores.task != task:
            raise GraphMismatchError(
                f"these scores were computed on task {scores.task!r}, not {task!r}; give scores of {task} (e.g. from "
                f"`edgewise discover {task} --json FILE`)"
            )
        return scores
