"""Constant writers: nodes whose output is the same on every input of a task, at some or all positions.

Such a writer carries nothing that resample (or per-position-mean) ablation can take away: its corrupted output
equals its clean one. Circuit discovery under those ablations may then drop it, and the circuit it finds can be far
smaller than the computation the model performs (tracr-reverse: docs/diagnostics.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..graph import Graph
from ..patching import AblatedOutputs, record_writer_outputs
from ..tasks import Task

# Relative to 1 + the writer's largest |output|: float32 sums of tracr's unit-sized values differ by ~1e-7.
WRITER_TOLERANCE = 1e-6


@dataclass(frozen=True)
class WriterVariation:
    """Where one writer's output is the same on every input of the task, and where it is zero.

    Attributes:
        writer: the writer's node name.
        constant_positions: the positions where its output is the same on every input.
        varying_positions: the positions where it is not.
        zero_positions: the positions where its output is zero on every input.
        scale: the writer's largest |output|: what the tolerance is relative to.
        max_deviation: the largest deviation from the per-position mean over the constant positions.
    """

    writer: str
    constant_positions: tuple[int, ...]
    varying_positions: tuple[int, ...]
    zero_positions: tuple[int, ...]
    scale: float
    max_deviation: float

    @property
    def constant(self) -> bool:
        """Returns whether the writer's output is the same on every input at every position."""
        return not self.varying_positions

    def to_dict(self) -> dict:
        """Returns the writer's variation as JSON-ready data; `positions` are the constant ones."""
        return {
            "writer": self.writer,
            "constant": self.constant,
            "positions": list(self.constant_positions),
            "varying_positions": list(self.varying_positions),
            "zero_positions": list(self.zero_positions),
            "scale": self.scale,
            "max_deviation": self.max_deviation,
        }


def live_tokens(task: Task, tokens: torch.Tensor) -> torch.Tensor:
    """Returns [batch, pos] True where the token is not padding (the model's `cfg.pad_token_id`): attention masks
    padding out as keys and no answer is scored there, so what writers output at padding does not count.

    Args:
        task: the task whose model's pad token is read.
        tokens: [batch, pos] token ids (a declared model: any [batch, ...] inputs it takes).

    Returns:
        [batch, pos] bool; all True for a model without a pad token.
    """
    pad = getattr(getattr(task.model, "cfg", None), "pad_token_id", None)
    if pad is None:  # also a declared model's inputs of any shape: every position of its stream counts
        return torch.ones(tokens.shape[0], task.adapter.n_positions(tokens), dtype=torch.bool, device=tokens.device)
    return tokens != pad


def writer_outputs(graph: Graph, hook_values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Returns each writer's output [..., pos, d_model] by name, taken from its writer group's hook value (one slot
    per head, or per feature and error node in a group a dictionary splits).

    Args:
        graph: the graph whose writer groups are read.
        hook_values: each writer group's recorded hook value by hook name, as `record_writer_outputs` returns them.

    Returns:
        Each writer's output by node name.
    """
    outputs = {}
    for group in graph.groups:
        if group.kind == "writer":
            value = hook_values[group.hook]
            for i, name in enumerate(group.names):
                outputs[name] = value[..., i, :] if group.per_head or group.split else value
    return outputs


@torch.no_grad()
def writer_variation(task: Task, graph: Graph, tolerance: float = WRITER_TOLERANCE) -> list[WriterVariation]:
    """Returns, for every writer, the positions where its output is the same on all of the task's inputs (clean and
    corrupted: resample ablation draws from both) and those where it is zero; padded entries are left out.

    Args:
        task: the task whose clean and corrupted inputs are run.
        graph: the graph whose writers are recorded.
        tolerance: the largest spread over inputs that counts as constant, relative to 1 + the writer's largest
            |output| (absolute for zero).

    Returns:
        One WriterVariation per writer, in graph order.
    """
    tokens = torch.cat([task.clean, task.corrupt])
    live = live_tokens(task, tokens)
    result = []
    for name, out in writer_outputs(graph, record_writer_outputs(task.adapter, graph, tokens)).items():
        scale = out[live].abs().max().item()
        constant, varying, zero, deviation = [], [], [], 0.0
        for p in range(out.shape[1]):
            at_p = out[live[:, p], p]  # [rows, d_model]
            if len(at_p) == 0:
                continue
            spread = (at_p - at_p.mean(0)).abs().max().item()
            if spread <= tolerance * (1 + scale):
                constant.append(p)
                deviation = max(deviation, spread)
            else:
                varying.append(p)
            if at_p.abs().max().item() <= tolerance:
                zero.append(p)
        result.append(WriterVariation(name, tuple(constant), tuple(varying), tuple(zero), scale, deviation))
    return result


def constant_beyond_bos(writers: list[WriterVariation], bos_position: int | None) -> list[WriterVariation]:
    """Returns the writers whose output is the same on every input at some position other than the BOS position.

    Every writer of a causal tracr model is constant at BOS, which holds the same token in every input: listing them
    all for that would hide the writers that matter. A writer is constant everywhere when `varying_positions` is
    empty, partly constant otherwise.

    Args:
        writers: the writers' variation, as `writer_variation` returns it.
        bos_position: the task's BOS position, or None.

    Returns:
        The writers of `writers` constant at some position other than `bos_position`, in their order.
    """
    return [w for w in writers if any(p != bos_position for p in w.constant_positions)]


def constant_writers(task: Task, graph: Graph, tolerance: float = WRITER_TOLERANCE) -> list[WriterVariation]:
    """Returns the task's writers that are constant at some position other than BOS (see constant_beyond_bos).

    Args:
        task: the task whose inputs are run; its `bos_position` is the position left out.
        graph: the graph whose writers are recorded.
        tolerance: as in `writer_variation`.

    Returns:
        The variation of each such writer, in graph order.
    """
    return constant_beyond_bos(writer_variation(task, graph, tolerance), task.bos_position)


@torch.no_grad()
def no_op_positions(
    task: Task, graph: Graph, ablated: AblatedOutputs, tolerance: float = WRITER_TOLERANCE
) -> dict[str, torch.Tensor]:
    """Returns per writer a bool [pos]: True where its ablated value equals its clean output on every clean input,
    so ablating an edge that reads it there replaces a value by itself (padded entries are left out).

    Args:
        task: the task whose clean inputs are run.
        graph: the graph whose writers are compared.
        ablated: the ablation whose writer values are compared with the clean outputs.
        tolerance: the largest difference that counts as equal, relative to 1 + the writer's largest |output|.

    Returns:
        A [pos] bool tensor per writer name.
    """
    clean = writer_outputs(graph, record_writer_outputs(task.adapter, graph, task.clean))
    replaced = writer_outputs(graph, ablated.values)
    live = live_tokens(task, task.clean).unsqueeze(-1)
    return {
        name: ((out - replaced[name]).abs() * live).amax(dim=(0, 2)) <= tolerance * (1 + out.abs().max().item())
        for name, out in clean.items()
    }
