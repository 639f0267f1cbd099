"""What the patching forward's buffers will take, known before it runs: a training run whose masked forward would
not fit stops with the estimate and what to reduce, instead of failing (or swapping) after minutes of work.

The buffers: the writers' deltas [masks, writers, batch, pos, width], their gradient (when the masks train), and each
reader product's output [masks, readers, batch, pos, width] (forward.py's plan: one product per block of reader
stages, one per stage for the writers added since). The model's own activations on the repeated batch come on top.
"""

from __future__ import annotations

import psutil
import torch

from ..errors import InsufficientMemoryError
from ..graph import Graph
from .ablation import AblatedOutputs
from .forward import _plan_of

HEADROOM = 0.8  # the share of the memory available now that a run may plan to fill


def patching_bytes(
    graph: Graph, ablated: AblatedOutputs, batch: int, n_positions: int, n_masks: int, gradients: bool
) -> int:
    """Returns the bytes of the patching forward's buffers for one forward (and backward, with `gradients`).

    Args:
        graph: the graph whose writers and readers are patched.
        ablated: the ablation the forward reads (its values give the stream's width and dtype).
        batch: the rows of the batch (before it is repeated per mask).
        n_positions: the positions of a row.
        n_masks: masks in one forward.
        gradients: the masks take gradients (a training step), so the deltas' gradient is kept too.

    Returns:
        The bytes of the delta stack, its gradient and the reader products' outputs.
    """
    values = next(iter(ablated.values.values()))
    width = max(v.shape[-1] for v in ablated.values.values())
    per_node = n_masks * batch * n_positions * width * values.element_size()  # one writer's or reader's slice
    readers = sum(r1 - r0 for _, _, r0, r1 in _plan_of(graph).products)
    return per_node * (len(graph.writers) * (2 if gradients else 1) + readers)


def available_bytes(device: torch.device) -> int:
    """Returns the memory free for new tensors on `device`: the GPU's free memory on CUDA, else the machine's
    available memory.

    Args:
        device: where the tensors would live.

    Returns:
        The bytes available now.
    """
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    return psutil.virtual_memory().available


def check_memory(
    graph: Graph,
    ablated: AblatedOutputs,
    tokens: torch.Tensor,
    n_positions: int,
    n_masks: int,
    gradients: bool,
    what: str,
) -> int:
    """Returns the estimate of `patching_bytes`, or raises InsufficientMemoryError when it exceeds HEADROOM of the
    memory available now (the GPU's free memory for tokens on CUDA, the machine's available memory otherwise).

    Args:
        graph: the graph whose writers and readers are patched.
        ablated: the ablation the forward reads.
        tokens: the batch the forward runs on (its rows and device).
        n_positions: the positions of a row.
        n_masks: masks in one forward.
        gradients: the masks take gradients.
        what: names the run in the message, with the settings that size it (e.g. "edge-sp with n_samples=4").

    Returns:
        The estimate, in bytes.

    Raises:
        InsufficientMemoryError: the buffers would not fit; the message gives the estimate, what is available and what
            to reduce.
    """
    needed = patching_bytes(graph, ablated, tokens.shape[0], n_positions, n_masks, gradients)
    available = available_bytes(tokens.device)
    if needed > HEADROOM * available:
        raise InsufficientMemoryError(
            f"{what}: the patched forward's buffers need about {needed / 2**30:.1f} GiB ({len(graph.writers)} writers "
            f"x {n_masks} masks x {tokens.shape[0]} rows x {n_positions} positions), more than {HEADROOM:.0%} of the "
            f"{available / 2**30:.1f} GiB available; reduce the masks a step (n_samples), the rows or positions of the "
            "task's batch, or the graph (fewer features: a smaller dictionary set, or a plain instead of a "
            "per-position graph)"
        )
    return needed
