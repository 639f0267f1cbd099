"""The one-pass edge-masked forward that every method and evaluation uses.

Each reader's input becomes sum over its writers of  mask[e] * out_w + (1 - mask[e]) * ablated_w  plus what the
residual stream carries that no writer produced (biases). The hook at a reader sees the unpatched residual
(sum of out_w + biases), so the forward subtracts  sum_w (1 - mask[e]) * (out_w - ablated_w):  one matrix product
per reader stage, over a stack of the writers' deltas. Here out_w is the writer's output in this same forward,
computed from its own patched inputs.
"""

from __future__ import annotations

import torch

from .ablation import AblatedOutputs
from .adapters import Adapter, adapter_for
from .errors import GraphMismatchError
from .graph import Graph


def edge_coefficients(graph: Graph, mask: torch.Tensor) -> torch.Tensor:
    """Returns (1 - mask) scattered to [n_masks, n_writers, n_readers(, pos)]; zero where there is no edge."""
    n_masks = mask.shape[0]
    n_w, n_r = len(graph.writers), len(graph.readers)
    n_p = graph.n_positions or 1
    flat = (graph.edge_writer * n_r + graph.edge_reader) * n_p + graph.edge_position
    coef = torch.zeros(n_masks, n_w * n_r * n_p, dtype=mask.dtype, device=mask.device)
    coef = coef.index_copy(1, flat.to(mask.device), 1 - mask)
    shape = (n_masks, n_w, n_r) if graph.n_positions is None else (n_masks, n_w, n_r, n_p)
    return coef.view(shape)


class _DeltaStack:
    """The writers' deltas (out_w - ablated_w) in writer order, as one [writers, mask, batch, pos, d_model] tensor.

    Without autograd the deltas are written into one preallocated buffer; with autograd the stack is concatenated
    when a reader needs it, since writing into a tensor that autograd has saved would invalidate it.
    """

    def __init__(self, n_writers: int):
        self.n_writers = n_writers
        self.count = 0
        self.in_place = not torch.is_grad_enabled()
        self.buffer: torch.Tensor | None = None
        self.parts: list[torch.Tensor] = []

    def append(self, delta: torch.Tensor) -> None:
        n = delta.shape[0]
        if self.in_place:
            if self.buffer is None:
                self.buffer = delta.new_empty(self.n_writers, *delta.shape[1:])
            self.buffer[self.count : self.count + n] = delta
        else:
            self.parts.append(delta)
        self.count += n

    def first(self, n: int) -> torch.Tensor:
        """Returns the deltas of the first n writers."""
        if self.in_place:
            return self.buffer[:n]
        if len(self.parts) > 1:
            self.parts = [torch.cat(self.parts)]
        return self.parts[0][:n]


class _PatchRun:
    """State of one patched forward: the writers' deltas so far and each reader stage's correction."""

    def __init__(self, graph: Graph, ablated: AblatedOutputs, coef: torch.Tensor, batch: int):
        self.graph, self.ablated, self.coef = graph, ablated, coef
        self.n_masks, self.batch = coef.shape[0], batch
        self.deltas = _DeltaStack(len(graph.writers))
        self.stage_patch: dict[int, torch.Tensor | None] = {}

    def writer_hook(self, group_index: int):
        group = self.graph.groups[group_index]

        def hook(value: torch.Tensor, hook) -> torch.Tensor:
            if self.graph.writers_before[group_index] != self.deltas.count:
                raise GraphMismatchError(
                    f"writer hook {group.hook} ran after {self.deltas.count} writers, but the graph places it after "
                    f"{self.graph.writers_before[group_index]}: the adapter's hook order does not match the model"
                )
            value_by_mask = value.reshape(self.n_masks, self.batch, *value.shape[1:])
            delta = value_by_mask - self.ablated.values[group.hook]
            delta = delta if group.per_head else delta.unsqueeze(-2)  # [mask, batch, pos, head, d_model]
            self.deltas.append(delta.permute(3, 0, 1, 2, 4))
            return value

        return hook

    def reader_hook(self, group_index: int):
        group = self.graph.groups[group_index]
        n_before = self.graph.writers_before[group_index]
        # A stage is a run of reader groups with no writer between them: they share one matrix product.
        stage = group_index
        while stage > 0 and self.graph.groups[stage - 1].kind == "reader":
            stage -= 1
        stage_end = group_index
        while stage_end + 1 < len(self.graph.groups) and self.graph.groups[stage_end + 1].kind == "reader":
            stage_end += 1
        r0 = self.graph.group_offset[stage]
        r1 = self.graph.group_offset[stage_end] + len(self.graph.groups[stage_end].names)
        g0 = self.graph.group_offset[group_index] - r0
        g1 = g0 + len(group.names)

        def hook(value: torch.Tensor, hook) -> torch.Tensor:
            if self.deltas.count != n_before:
                raise GraphMismatchError(
                    f"reader hook {group.hook} ran after {self.deltas.count} writers, but the graph places it after "
                    f"{n_before}: the adapter's hook order does not match the model"
                )
            if stage not in self.stage_patch:
                self.stage_patch[stage] = self._stage_patch(n_before, r0, r1)
            if self.stage_patch[stage] is None:  # every edge into this stage is kept
                return value
            patch = self.stage_patch[stage][:, g0:g1].permute(0, 2, 3, 1, 4)  # [mask, batch, pos, readers, d_model]
            if not group.per_head:
                patch = patch.squeeze(-2)
            return (value.view(self.n_masks, self.batch, *value.shape[1:]) - patch).reshape(value.shape)

        return hook

    def _stage_patch(self, n_before: int, r0: int, r1: int) -> torch.Tensor | None:
        """Returns sum_w (1 - mask) * delta_w for readers r0:r1 as [mask, readers, batch, pos, d_model], or None
        when all those coefficients are zero and no gradient needs them."""
        if n_before == 0:
            raise GraphMismatchError("a reader group comes before every writer; the graph has no edges into it")
        coef = self.coef[:, :n_before, r0:r1]  # [mask, writers, readers(, pos)]
        if not coef.requires_grad and not coef.any():
            return None
        stack = self.deltas.first(n_before)  # [writers, mask, batch, pos, d_model]
        if coef.dim() == 4:
            return torch.einsum("mwrp,wmbpd->mrbpd", coef, stack)
        # One plain matrix product per mask: far faster on CPU than einsum's batched route for these shapes.
        flat = stack.reshape(n_before, self.n_masks, -1)
        patches = [torch.mm(coef[m].T, flat[:, m]) for m in range(self.n_masks)]  # each [readers, b*p*d]
        patch = patches[0].unsqueeze(0) if self.n_masks == 1 else torch.stack(patches)
        return patch.view(self.n_masks, r1 - r0, *stack.shape[2:])


def patched_forward(
    model: object | Adapter, graph: Graph, tokens: torch.Tensor, ablated: AblatedOutputs, mask: torch.Tensor
) -> torch.Tensor:
    """Returns logits of the edge-masked forward: [batch, pos, vocab], or [n_masks, batch, pos, vocab] for a
    mask with a leading batch dimension (all masks run in one forward on the repeated batch)."""
    adapter = adapter_for(model)
    masks = graph.check_mask(mask)
    ablated.check_batch(tokens)
    if graph.per_position and tokens.shape[1] != graph.n_positions:
        raise GraphMismatchError(
            f"the per-position graph has {graph.n_positions} positions but the batch has {tokens.shape[1]}; build "
            "the graph with n_positions equal to the data's sequence length"
        )
    run = _PatchRun(graph, ablated, edge_coefficients(graph, masks), tokens.shape[0])
    hooks = [
        (g.hook, run.writer_hook(i) if g.kind == "writer" else run.reader_hook(i)) for i, g in enumerate(graph.groups)
    ]
    with adapter.hooks(hooks):
        logits = adapter.forward(tokens.repeat(masks.shape[0], 1))
    logits = logits.view(masks.shape[0], *tokens.shape, -1)
    return logits if mask.dim() == 2 else logits[0]
