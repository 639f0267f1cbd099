"""The one-pass edge-masked forward that every method and evaluation uses.

Each reader's input becomes sum over its writers of  mask[e] * out_w + (1 - mask[e]) * ablated_w  plus what the
residual stream carries that no writer produced (biases). The hook at a reader sees the unpatched residual
(sum of out_w + biases), so the forward subtracts  sum_w (1 - mask[e]) * (out_w - ablated_w):  one matrix product
per reader stage, over a stack of the writers' deltas. Here out_w is the writer's output in this same forward,
computed from its own patched inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..adapters import Adapter, adapter_for
from ..adapters.dictionary import node_outputs
from ..errors import GraphMismatchError
from ..graph import Graph
from .ablation import AblatedOutputs


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
    """The writers' deltas (out_w - ablated_w) in writer order, in one preallocated [mask, writers, batch, pos,
    d_model] buffer that each writer fills once. Autograd never sees the buffer: `_StagePatch` reads it, and routes
    gradients back to the delta tensors themselves (`pending`: those written since the last stage).

    A declared model's streams may differ in width (a CNN's stages); narrower deltas are zero-padded to `width`.
    Edges join writers and readers of one stream only, so the padding never reaches a reader."""

    def __init__(self, n_writers: int, width: int):
        self.n_writers = n_writers
        self.width = width
        self.count = 0
        self.buffer: torch.Tensor | None = None
        self.grad: torch.Tensor | None = None  # d loss / d buffer, accumulated by the stages during backward
        self.pending: list[tuple[int, torch.Tensor]] = []  # (first slot, delta) not yet given to a stage
        self.tracks_grad = False  # whether any delta so far needs a gradient

    def append(self, delta: torch.Tensor) -> None:
        n, d = delta.shape[1], delta.shape[-1]
        if self.buffer is None:
            self.buffer = delta.new_empty(delta.shape[0], self.n_writers, *delta.shape[2:-1], self.width)
        self.buffer[:, self.count : self.count + n, ..., :d] = delta.detach()
        self.buffer[:, self.count : self.count + n, ..., d:] = 0
        if delta.requires_grad:
            self.pending.append((self.count, delta))
            self.tracks_grad = True
        self.count += n

    def grad_buffer(self) -> torch.Tensor:
        if self.grad is None:
            self.grad = torch.zeros_like(self.buffer)
        return self.grad


class _StagePatch(torch.autograd.Function):
    """sum_w coef[w, r] * delta_w over writers lo:hi, without autograd saving (or copying) the delta stack.

    Backward adds this stage's share of d loss / d delta into the stack's gradient buffer, and hands each delta its
    total gradient at the first product that reads it: every other product reading it lies downstream, so its
    backward has already run. One backward per forward: a second would add into the same gradient buffer.
    """

    @staticmethod
    def forward(ctx, coef, stack: _DeltaStack, lo: int, hi: int, slots: list[int], *deltas: torch.Tensor):
        ctx.stack, ctx.lo, ctx.hi, ctx.slots, ctx.shapes = stack, lo, hi, slots, [d.shape for d in deltas]
        ctx.save_for_backward(coef)
        return _weighted_sum(coef, stack.buffer[:, lo:hi])

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        (coef,) = ctx.saved_tensors
        values = ctx.stack.buffer[:, ctx.lo : ctx.hi]  # written once, never overwritten: this forward's values
        grad_coef = _coef_grad(coef, values, grad_out) if ctx.needs_input_grad[0] else None
        grad_stack = ctx.stack.grad_buffer()
        grad_stack[:, ctx.lo : ctx.hi] += _stack_grad(coef, grad_out)
        grads = [grad_stack[:, slot : slot + shape[1], ..., : shape[-1]].clone()
                 for slot, shape in zip(ctx.slots, ctx.shapes)]
        return (grad_coef, None, None, None, None, *grads)


def _weighted_sum(coef: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Returns sum_w coef[m, w, r(, p)] * values[m, w, b, p, d] as [mask, readers, batch, pos, d_model]."""
    n_m, n_w = values.shape[:2]
    if coef.dim() == 4:
        return torch.einsum("mwrp,mwbpd->mrbpd", coef, values)
    flat = values.reshape(n_m, n_w, -1)
    # One plain matrix product per mask: far faster on CPU than einsum's batched route for these shapes.
    out = [torch.mm(coef[m].T, flat[m]) for m in range(n_m)]
    out = out[0].unsqueeze(0) if n_m == 1 else torch.stack(out)
    return out.view(n_m, coef.shape[2], *values.shape[2:])


def _coef_grad(coef: torch.Tensor, values: torch.Tensor, grad_out: torch.Tensor) -> torch.Tensor:
    """Returns d loss / d coef from the stage's values [m, w, b, p, d] and output gradient [m, r, b, p, d]."""
    if coef.dim() == 4:
        return torch.einsum("mwbpd,mrbpd->mwrp", values, grad_out)
    n_m, n_w = values.shape[:2]
    flat_values, flat_grad = values.reshape(n_m, n_w, -1), grad_out.reshape(n_m, grad_out.shape[1], -1)
    return torch.stack([torch.mm(flat_values[m], flat_grad[m].T) for m in range(n_m)])


def _stack_grad(coef: torch.Tensor, grad_out: torch.Tensor) -> torch.Tensor:
    """Returns d loss / d values [m, w, b, p, d] of one stage."""
    if coef.dim() == 4:
        return torch.einsum("mwrp,mrbpd->mwbpd", coef, grad_out)
    n_m = coef.shape[0]
    flat = grad_out.reshape(n_m, grad_out.shape[1], -1)
    out = torch.stack([torch.mm(coef[m], flat[m]) for m in range(n_m)])
    return out.view(n_m, coef.shape[1], *grad_out.shape[2:])


class _PatchRun:
    """State of one patched forward: the writers' deltas so far and each reader stage's correction."""

    def __init__(self, graph: Graph, ablated: AblatedOutputs, coef: torch.Tensor, batch: int):
        self.graph, self.ablated, self.coef = graph, ablated, coef
        self.n_masks, self.batch = coef.shape[0], batch
        self.deltas = _DeltaStack(len(graph.writers), max(v.shape[-1] for v in ablated.values.values()))
        self.stages = _plan_stages(graph)
        self.stage_patch: dict[int, torch.Tensor | None] = {}
        self.block_patch: dict[int, torch.Tensor | None] = {}

    def writer_hook(self, group_index: int):
        group = self.graph.groups[group_index]

        def hook(value: torch.Tensor, hook) -> torch.Tensor:
            if self.graph.writers_before[group_index] != self.deltas.count:
                raise GraphMismatchError(
                    f"writer hook {group.hook} ran after {self.deltas.count} writers, but the graph places it after "
                    f"{self.graph.writers_before[group_index]}: the adapter's hook order does not match the model"
                )
            value_by_mask = value.reshape(self.n_masks, self.batch, *value.shape[1:])
            outputs = node_outputs(group, self.graph.dictionaries, value_by_mask)  # [mask, batch, pos, node, d]
            ablated = self.ablated.values.get(group.hook)
            if ablated is None or ablated.shape[-1] != value.shape[-1] or ablated.dim() != (
                    outputs.dim() - 1 if group.node_axis else outputs.dim() - 2):
                raise GraphMismatchError(
                    f"the {self.ablated.kind} ablation holds no outputs of shape {tuple(value.shape[1:])} for "
                    f"{group.hook}: it was recorded on another model or graph; record it with this graph"
                )
            delta = outputs - (ablated if group.node_axis else ablated.unsqueeze(-2))
            self.deltas.append(delta.permute(0, 3, 1, 2, 4))  # [mask, node, batch, pos, d_model]
            return value

        return hook

    def reader_hook(self, group_index: int):
        group = self.graph.groups[group_index]
        stage = self.stages[group_index]
        g0 = self.graph.group_offset[group_index] - stage.r0
        g1 = g0 + len(group.names)

        def hook(value: torch.Tensor, hook) -> torch.Tensor:
            if self.deltas.count != stage.n_before:
                raise GraphMismatchError(
                    f"reader hook {group.hook} ran after {self.deltas.count} writers, but the graph places it after "
                    f"{stage.n_before}: the adapter's hook order does not match the model"
                )
            if stage.r0 not in self.stage_patch:
                self.stage_patch[stage.r0] = self._stage_patch(stage)
            if self.stage_patch[stage.r0] is None:  # every edge into this stage is kept
                return value
            patch = self.stage_patch[stage.r0][:, g0:g1, ..., : value.shape[-1]]  # narrower streams: unpad
            patch = patch.permute(0, 2, 3, 1, 4)  # [mask, batch, pos, readers, d]
            if not group.per_head:
                patch = patch.squeeze(-2)
            return (value.view(self.n_masks, self.batch, *value.shape[1:]) - patch).reshape(value.shape)

        return hook

    def _stage_patch(self, stage: "_Stage") -> torch.Tensor | None:
        """Returns sum_w (1 - mask) * delta_w for the stage's readers as [mask, readers, batch, pos, d_model]: the
        block's product over the writers before the block, plus the writers added since; None if all zero."""
        if stage.n_before == 0:
            raise GraphMismatchError("a reader group comes before every writer; the graph has no edges into it")
        if stage.block_r0 not in self.block_patch:
            self.block_patch[stage.block_r0] = self._product(0, stage.block_start, stage.block_r0, stage.block_r1)
        block = self.block_patch[stage.block_r0]
        parts = [] if block is None else [block[:, stage.r0 - stage.block_r0 : stage.r1 - stage.block_r0]]
        if stage.n_before > stage.block_start:
            recent = self._product(stage.block_start, stage.n_before, stage.r0, stage.r1)
            parts += [] if recent is None else [recent]
        return None if not parts else parts[0] if len(parts) == 1 else parts[0] + parts[1]

    def _product(self, lo: int, hi: int, r0: int, r1: int) -> torch.Tensor | None:
        """Returns sum over writers lo:hi of coef * delta for readers r0:r1, or None when it is zero."""
        coef = self.coef[:, lo:hi, r0:r1]  # [mask, writers, readers(, pos)]
        if not coef.requires_grad and not coef.any():
            return None  # pending deltas wait for the next product that reads them
        if not coef.requires_grad and not self.deltas.tracks_grad:
            return _weighted_sum(coef, self.deltas.buffer[:, lo:hi])
        slots = [slot for slot, _ in self.deltas.pending]
        deltas = [delta for _, delta in self.deltas.pending]
        self.deltas.pending = []
        return _StagePatch.apply(coef, self.deltas, lo, hi, slots, *deltas)


@dataclass(frozen=True)
class _Stage:
    """A run of reader groups with no writer between them (a layer's q, k, v inputs): they share their writers.

    Stages are gathered into blocks: the first stage of a block computes the product over all earlier writers for
    every reader of the block at once, and later stages add only the writers that arrived since. The deltas are
    then read from memory once per block instead of once per stage: memory traffic, not arithmetic, bounds this
    forward on CPU.
    """

    n_before: int  # writers before the stage
    r0: int  # first reader of the stage
    r1: int
    block_start: int  # writers before the block's first stage
    block_r0: int
    block_r1: int


def _plan_stages(graph: Graph) -> dict[int, _Stage]:
    """Returns the stage of every reader group (by group index); a block grows while the writers added since its
    start stay under half of those before it."""
    runs: list[list[int]] = []
    for i, g in enumerate(graph.groups):
        if g.kind == "reader":
            if runs and runs[-1][-1] == i - 1:
                runs[-1].append(i)
            else:
                runs.append([i])
    spans = []  # (n_before, r0, r1, group indices)
    for run in runs:
        last = graph.groups[run[-1]]
        spans.append((graph.writers_before[run[0]], graph.group_offset[run[0]],
                      graph.group_offset[run[-1]] + len(last.names), run))
    blocks: list[list[tuple]] = []
    for span in spans:
        if not blocks or span[0] - blocks[-1][0][0] > blocks[-1][0][0] // 2:
            blocks.append([span])
        else:
            blocks[-1].append(span)
    plan = {}
    for block in blocks:
        start, block_r0, block_r1 = block[0][0], block[0][1], block[-1][2]
        for n_before, r0, r1, run in block:
            for i in run:
                plan[i] = _Stage(n_before, r0, r1, start, block_r0, block_r1)
    return plan


def patched_forward(
    model: object | Adapter, graph: Graph, tokens: torch.Tensor, ablated: AblatedOutputs, mask: torch.Tensor
) -> torch.Tensor:
    """Returns logits of the edge-masked forward: [batch, pos, vocab], or [n_masks, batch, pos, vocab] for a
    mask with a leading batch dimension (all masks run in one forward on the repeated batch). `tokens` are the
    model's inputs: token ids [batch, pos], or any [batch, ...] tensor a declared model takes.

    The mask moves to the tokens' device and the model's dtype (differentiably): methods keep their gate parameters
    where they like, and a GPU or float64 model runs the forward."""
    adapter = adapter_for(model)
    dtype = next(iter(ablated.values.values())).dtype
    masks = graph.check_mask(mask).to(device=tokens.device, dtype=dtype)
    ablated.check_batch(tokens)
    if graph.per_position and adapter.n_positions(tokens) != graph.n_positions:
        raise GraphMismatchError(
            f"the per-position graph has {graph.n_positions} positions but the batch has "
            f"{adapter.n_positions(tokens)}; build "
            "the graph with n_positions equal to the data's sequence length"
        )
    run = _PatchRun(graph, ablated, edge_coefficients(graph, masks), tokens.shape[0])
    hooks = [
        (g.hook, run.writer_hook(i) if g.kind == "writer" else run.reader_hook(i)) for i, g in enumerate(graph.groups)
    ]
    try:
        with adapter.hooks(hooks):
            logits = adapter.forward(tokens.repeat(masks.shape[0], *[1] * (tokens.dim() - 1)))
    finally:
        # Deltas no stage read (every edge out of them kept) would tie the stack, which the stages' autograd nodes
        # hold, to the graph behind those deltas: a cycle through C++ that the garbage collector cannot see, so it
        # would keep the model's weights (a relearning copy's) alive for good, also after a failed forward.
        run.deltas.pending = []
    logits = logits.view(masks.shape[0], tokens.shape[0], *logits.shape[1:])
    return logits if mask.dim() == 2 else logits[0]
