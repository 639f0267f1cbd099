"""The one-pass edge-masked forward that every method and evaluation uses.

Each reader's input becomes sum over its writers of  mask[e] * out_w + (1 - mask[e]) * ablated_w  plus what the
residual stream carries that no writer produced (biases). The hook at a reader sees the unpatched residual
(sum of out_w + biases), so the forward adds the patch  sum_w (mask[e] - 1) * (out_w - ablated_w):  one matrix
product per reader stage, over a stack of the writers' deltas. Here out_w is the writer's output in this same forward,
computed from its own patched inputs. (The patch adds (mask - 1) where it could subtract (1 - mask): the backward then
negates neither the readers' gradients nor the mask's.)
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from dataclasses import dataclass

import torch

from ..adapters import Adapter, adapter_for
from ..errors import GraphMismatchError
from ..graph import Graph, node_outputs
from .ablation import AblatedOutputs
from .allocator import keep_freed_memory


class _BufferPool:
    """Reuses the patching forward's large CPU buffers across forwards: the delta stacks, their gradients and the
    reader stages' products. A fresh buffer is new memory the allocator maps from the system and faults in page by
    page on its first write: on tracr-sized models that cost about a fifth of an SP step, on SmolLM2 a third of the
    products' time. A buffer returns here when the stack that owns it dies (with its forward's autograd graph), so two
    forwards alive at once never share one; free buffers are kept up to `max_bytes` in all, the shapes given back
    longest ago dropped first (a bench moving on to another model leaves its old shapes behind). GPU memory is left
    to torch's caching allocator, which already reuses it."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.free: OrderedDict[tuple, list[torch.Tensor]] = OrderedDict()  # least recently given back first
        self.free_bytes = 0

    def take(self, like: torch.Tensor, shape: tuple[int, ...], owner: object) -> torch.Tensor:
        """Returns an uninitialised buffer of `shape` with like's dtype and device, handed back when `owner` dies."""
        if like.device.type != "cpu":
            return like.new_empty(shape)
        key = (shape, like.dtype, like.device)
        pooled = self.free.get(key)
        if pooled:
            buffer = pooled.pop()
            self.free_bytes -= buffer.nbytes
            if not pooled:
                del self.free[key]
        else:
            with torch.inference_mode(False):  # a normal tensor: a later forward with autograd may write it in place
                buffer = torch.empty(shape, dtype=like.dtype, device=like.device)
        weakref.finalize(owner, self._give_back, key, buffer)
        return buffer.detach()  # a second tensor on the same memory: autograd may give it a history, not the pool's

    def _give_back(self, key: tuple, buffer: torch.Tensor) -> None:
        if buffer.nbytes > self.max_bytes:
            return
        while self.free_bytes + buffer.nbytes > self.max_bytes:
            oldest = next(iter(self.free))
            self.free_bytes -= sum(b.nbytes for b in self.free.pop(oldest))
        self.free.setdefault(key, []).append(buffer)
        self.free.move_to_end(key)
        self.free_bytes += buffer.nbytes


# Enough for SmolLM2-135M's buffers on a batch of 20 x 15 tokens (about 1.3 GiB with the gradient); larger runs
# allocate the rest afresh each forward.
_POOL = _BufferPool(max_bytes=2 * 2**30)


class _DeltaStack:
    """The writers' deltas (out_w - ablated_w) in writer order, in one [mask, writers, batch, pos, d_model] buffer
    that each writer fills once. Autograd never sees the buffer: `_StagePatch` reads it, and routes gradients back
    to the writers' outputs themselves (`pending`: those written since the last stage; the ablated outputs are
    constants, so d delta = d out).

    A declared model's streams may differ in width (a CNN's stages); narrower deltas are zero-padded to `width`.
    Edges join writers and readers of one stream only, so the padding never reaches a reader."""

    def __init__(self, n_writers: int, width: int):
        self.n_writers = n_writers
        self.width = width
        self.count = 0
        self.buffer: torch.Tensor | None = None
        self.flat: torch.Tensor | None = None  # the buffer as [mask, writers, batch * pos * width], as products read it
        self.grad: torch.Tensor | None = None  # d loss / d buffer, accumulated by the stages during backward
        self.pending: list[tuple[int, torch.Tensor]] = []  # (first slot, output) not yet given to a stage
        self.tracks_grad = False  # whether any output so far needs a gradient

    def append(self, outputs: torch.Tensor, ablated: torch.Tensor) -> None:
        """Writes outputs - ablated ([mask, node, batch, pos, d]; ablated broadcast to it) into the next slots."""
        n, d = outputs.shape[1], outputs.shape[-1]
        if self.buffer is None:
            shape = (outputs.shape[0], self.n_writers, *outputs.shape[2:-1], self.width)
            self.buffer = _POOL.take(outputs, shape, self)
            self.flat = self.buffer.view(shape[0], shape[1], -1)
        slots = self.buffer[:, self.count : self.count + n]
        torch.sub(
            outputs.detach() if outputs.requires_grad else outputs,
            ablated,
            out=slots if d == self.width else slots[..., :d],
        )
        if d < self.width:
            slots[..., d:] = 0
        if ablated.requires_grad:
            outputs = outputs - ablated  # a caller's differentiable stand-in: route its gradient too
        if outputs.requires_grad:
            self.pending.append((self.count, outputs))
            self.tracks_grad = True
        self.count += n

    def grad_buffer(self) -> torch.Tensor:
        if self.grad is None:
            self.grad = _POOL.take(self.buffer, tuple(self.buffer.shape), self).zero_()
        return self.grad


class _StagePatch(torch.autograd.Function):
    """base + sum_w coef[w, r] * delta_w over writers lo:hi, without autograd saving (or copying) the delta stack.

    Backward adds this stage's share of d loss / d delta into the stack's gradient buffer, and hands each delta its
    total gradient at the first product that reads it: every other product reading it lies downstream, so its
    backward has already run. One backward per forward: a second would add into the same gradient buffer.
    """

    @staticmethod
    def forward(
        ctx,
        coef,
        stack: _DeltaStack,
        lo: int,
        hi: int,
        base: torch.Tensor | None,
        slots: list[int],
        *deltas: torch.Tensor,
    ):
        ctx.stack, ctx.lo, ctx.hi, ctx.slots, ctx.shapes = stack, lo, hi, slots, [d.shape for d in deltas]
        ctx.save_for_backward(coef)
        return _weighted_sum(coef, stack, lo, hi, base)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        (coef,) = ctx.saved_tensors
        # the stack's values are written once, never overwritten: this forward's values
        grad_coef = _coef_grad(coef, ctx.stack, ctx.lo, ctx.hi, grad_out) if ctx.needs_input_grad[0] else None
        grad_stack = ctx.stack.grad_buffer()
        _add_stack_grad(grad_stack, ctx.lo, ctx.hi, coef, grad_out)
        grads = [
            grad_stack[:, slot : slot + shape[1], ..., : shape[-1]].clone()
            for slot, shape in zip(ctx.slots, ctx.shapes)
        ]
        grad_base = grad_out if ctx.needs_input_grad[4] else None
        return (grad_coef, None, None, None, grad_base, None, *grads)


def _weighted_sum(
    coef: torch.Tensor, stack: _DeltaStack, lo: int, hi: int, base: torch.Tensor | None = None
) -> torch.Tensor:
    """Returns base + the sum over the stack's writers lo:hi of their coefficients times their deltas (base: that
    shape, or None). Plain coefficients [mask, readers, writers] give [mask, readers, batch * pos * width]: one batched
    matrix product into a pooled buffer that the stack holds (einsum's route permutes and copies the stack first);
    per-position ones [mask, writers, readers, pos] give einsum's [mask, readers, batch, pos, width]."""
    if coef.dim() == 4:
        total = torch.einsum("mwrp,mwbpd->mrbpd", coef, stack.buffer[:, lo:hi])
        return total if base is None else total.add_(base)
    values = stack.flat[:, lo:hi]
    out = _POOL.take(values, (values.shape[0], coef.shape[1], values.shape[2]), stack)
    if base is None:
        return torch.bmm(coef, values, out=out)
    return torch.baddbmm(base, coef, values, out=out)


def _coef_grad(coef: torch.Tensor, stack: _DeltaStack, lo: int, hi: int, grad_out: torch.Tensor) -> torch.Tensor:
    """Returns d loss / d coef from the stack's writers lo:hi and the product's output gradient (its shape)."""
    if coef.dim() == 4:
        return torch.einsum("mwbpd,mrbpd->mwrp", stack.buffer[:, lo:hi], grad_out)
    return torch.bmm(grad_out, stack.flat[:, lo:hi].transpose(1, 2))


def _add_stack_grad(grad_stack: torch.Tensor, lo: int, hi: int, coef: torch.Tensor, grad_out: torch.Tensor) -> None:
    """Adds one product's d loss / d values into the stack's gradient buffer grad_stack [m, W, b, p, width] at
    writers lo:hi, in place."""
    if coef.dim() == 4:
        grad_stack[:, lo:hi] += torch.einsum("mwrp,mrbpd->mwbpd", coef, grad_out)
        return
    grad_stack.view(*grad_stack.shape[:2], -1)[:, lo:hi].baddbmm_(coef.transpose(1, 2), grad_out)


class _PatchRun:
    """State of one patched forward: the writers' deltas so far and each reader stage's correction."""

    def __init__(self, graph: Graph, ablated: AblatedOutputs, masks: torch.Tensor, batch: int):
        self.graph, self.ablated = graph, ablated
        self.n_masks, self.batch = masks.shape[0], batch
        self.deltas = _DeltaStack(len(graph.writers), max(v.shape[-1] for v in ablated.values.values()))
        self.plan = _plan_of(graph)
        self.coefs, self.nonzero = self.plan.coefficients(masks)  # nonzero: None where the masks take gradients
        self.stage_patch: dict[int, torch.Tensor | None] = {}  # by the stage's first reader
        self.block_patch: dict[int, tuple[torch.Tensor, ...] | None] = {}  # by block product: one part per stage

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
            ablated = self.ablated.stacked(group)  # [node, batch, pos, d_model] or broadcastable to it
            if ablated is None or ablated.shape[-1] != value.shape[-1] or ablated.dim() != outputs.dim() - 1:
                raise GraphMismatchError(
                    f"the {self.ablated.kind} ablation holds no outputs of shape {tuple(value.shape[1:])} for "
                    f"{group.hook}: it was recorded on another model or graph; record it with this graph"
                )
            self.deltas.append(outputs.permute(0, 3, 1, 2, 4), ablated)  # [mask, node, batch, pos, d_model]
            return value

        return hook

    def reader_hook(self, group_index: int):
        group = self.graph.groups[group_index]
        stage = self.plan.stages[group_index]

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
            # [mask, readers, batch * pos * width], or per position [mask, readers, batch, pos, width]
            patch = self.stage_patch[stage.r0][stage.part]
            if self.n_masks == 1 and patch.shape[1] == 1 and patch.numel() == value.numel() and patch.is_contiguous():
                return value + patch.view(value.shape)  # one mask, one reader, no padding: the same memory order
            patch = patch.view(*patch.shape[:2], *self.deltas.buffer.shape[2:])
            if patch.shape[-1] != value.shape[-1]:
                patch = patch[..., : value.shape[-1]]  # narrower streams: unpad
            # [mask, batch, pos, readers, d], or [mask, batch, pos, d] for a group of one reader without a head axis;
            # squeeze, not indexing: its backward is a view, where indexing's fills a zero tensor
            patch = patch.movedim(1, 3) if group.per_head else patch.squeeze(1)
            if self.n_masks == 1:
                return value + patch.squeeze(0)
            return (value.view(self.n_masks, self.batch, *value.shape[1:]) + patch).reshape(value.shape)

        return hook

    def _stage_patch(self, stage: "_Stage") -> tuple[torch.Tensor, ...] | None:
        """Returns sum_w (mask - 1) * delta_w for the stage's readers in `_weighted_sum`'s layout, one part per
        reader group (one split, whose backward joins the parts' gradients at once): the block's product over the
        writers before the block, plus the writers added since; None if all zero."""
        if stage.n_before == 0:
            raise GraphMismatchError("a reader group comes before every writer; the graph has no edges into it")
        if stage.block_product not in self.block_patch:
            block = self._product(stage.block_product)
            self.block_patch[stage.block_product] = None if block is None else _split(block, stage.block_sizes)
        block = self.block_patch[stage.block_product]
        total = None if block is None else block[stage.block_part]
        if stage.product is not None:
            total = self._product(stage.product, base=total)
        return None if total is None else _split(total, stage.sizes)

    def _product(self, k: int, base: torch.Tensor | None = None) -> torch.Tensor | None:
        """Returns base + the plan's k-th product: sum over its writers of their coefficients times their deltas
        (base: what the readers' patch holds already, or None), or base when the sum is zero."""
        coef = self.coefs[k]  # [mask, readers, writers], or per position [mask, writers, readers, pos]
        lo, hi = self.plan.products[k][:2]
        if self.nonzero is not None and not self.nonzero[k]:
            return base  # pending deltas wait for the next product that reads them
        if not coef.requires_grad and not self.deltas.tracks_grad:
            return _weighted_sum(coef, self.deltas, lo, hi, base)
        slots = [slot for slot, _ in self.deltas.pending]
        deltas = [delta for _, delta in self.deltas.pending]
        self.deltas.pending = []
        return _StagePatch.apply(coef, self.deltas, lo, hi, base, slots, *deltas)


def _split(patch: torch.Tensor, sizes: tuple[int, ...]) -> tuple[torch.Tensor, ...]:
    """Returns the patch's parts of `sizes` readers each (axis 1); a single part is the patch itself, with no split
    for autograd to record and undo."""
    return (patch,) if len(sizes) == 1 else patch.split(sizes, dim=1)


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
    block_sizes: tuple[int, ...]  # readers of each stage of the block, in order
    block_part: int  # this stage's index in the block
    sizes: tuple[int, ...]  # readers of each group of the stage, in order
    part: int  # this group's index among the stage's groups (its share of the stage's patch)
    block_product: int  # the plan's product over the writers before the block, into the block's readers
    product: int | None  # the plan's product over the writers since the block's start into the stage's, if any


class _Plan:
    """A graph's stages and the coefficients of their products: each product's block of (mask - 1), gathered from the
    mask in one indexing (a writer-reader pair without an edge reads a kept sentinel, so its coefficient is 0). One
    gather and one split give every product its own contiguous coefficients, whose gradients autograd joins in one
    concatenation, instead of slices of a scattered matrix that each fill a full-size zero gradient."""

    def __init__(self, graph: Graph):
        self.stages, self.products = _plan_stages(graph)  # products: (writers lo, hi, readers r0, r1) each
        n_w, n_r, n_p = len(graph.writers), len(graph.readers), graph.n_positions or 1
        edge_at = torch.full((n_w, n_r, n_p), graph.n_edges, dtype=torch.long)
        edge_at[graph.edge_writer, graph.edge_reader, graph.edge_position] = torch.arange(graph.n_edges)
        # plain: [readers, writers], the batched product's left factor as it is; per position: [writers, readers, pos]
        blocks = [edge_at[lo:hi, r0:r1] for lo, hi, r0, r1 in self.products]
        if graph.n_positions is None:
            blocks = [b[..., 0].T for b in blocks]
        self.sizes = [b.numel() for b in blocks]
        self.shapes = [tuple(b.shape) for b in blocks]
        index = torch.cat([b.reshape(-1) for b in blocks]) if blocks else torch.zeros(0, dtype=torch.long)
        # (gather index, product sizes) on each device the masks come on, copied there once
        self.index_on = {index.device: (index, torch.tensor(self.sizes, dtype=torch.long))}

    def coefficients(self, masks: torch.Tensor) -> tuple[list[torch.Tensor], list[bool] | None]:
        """Returns each product's (mask - 1) from masks [n_masks, n_edges], [mask, readers, writers] or per position
        [mask, writers, readers, pos]; and, where they take no gradient, whether each holds a nonzero (one
        reduction and one transfer for all products, where a check per product waits on the device once each)."""
        if masks.device not in self.index_on:
            with torch.inference_mode(False):  # as in _plan_of: kept for later forwards
                self.index_on[masks.device] = tuple(t.to(masks.device) for t in next(iter(self.index_on.values())))
        index, sizes = self.index_on[masks.device]
        coef = torch.nn.functional.pad(masks - 1, (0, 1)).index_select(1, index)
        coefs = [c.view(masks.shape[0], *shape) for c, shape in zip(coef.split(self.sizes, dim=1), self.shapes)]
        if coef.requires_grad:
            return coefs, None
        if not coefs:
            return coefs, []
        totals = torch.segment_reduce(coef.abs().sum(0), "sum", lengths=sizes)
        return coefs, [total != 0 for total in totals.tolist()]


_PLANS: dict[int, _Plan] = {}  # by id of a live graph (graphs compare by value, so are unhashable)


def _plan_of(graph: Graph) -> _Plan:
    """Returns the graph's plan, made once per graph (a graph's groups never change)."""
    key = id(graph)
    if key not in _PLANS:
        with torch.inference_mode(False):  # made in one forward, read by every later one, with autograd or not
            _PLANS[key] = _Plan(graph)
        weakref.finalize(graph, _PLANS.pop, key, None)
    return _PLANS[key]


def reader_runs(graph: Graph) -> list[list[int]]:
    """Returns the runs of reader groups with no writer group between them (a layer's q, k, v inputs), as lists of
    group indices in forward order: the stages a patching forward computes one product for.

    Args:
        graph: the graph whose hook groups are grouped.

    Returns:
        The runs, each a list of consecutive reader groups' indices.
    """
    runs: list[list[int]] = []
    for i, g in enumerate(graph.groups):
        if g.kind == "reader":
            if runs and runs[-1][-1] == i - 1:
                runs[-1].append(i)
            else:
                runs.append([i])
    return runs


def _plan_stages(graph: Graph) -> tuple[dict[int, _Stage], list[tuple[int, int, int, int]]]:
    """Returns the stage of every reader group (by group index), and the products they run in forward order (writers
    lo:hi into readers r0:r1); a block grows while the writers added since its start stay under half of those before
    it."""
    spans = []  # (n_before, r0, r1, group indices)
    for run in reader_runs(graph):
        last = graph.groups[run[-1]]
        spans.append(
            (
                graph.writers_before[run[0]],
                graph.group_offset[run[0]],
                graph.group_offset[run[-1]] + len(last.names),
                run,
            )
        )
    blocks: list[list[tuple]] = []
    for span in spans:
        if not blocks or span[0] - blocks[-1][0][0] > blocks[-1][0][0] // 2:
            blocks.append([span])
        else:
            blocks[-1].append(span)
    plan, products = {}, []
    for block in blocks:
        start, block_r0, block_r1 = block[0][0], block[0][1], block[-1][2]
        block_sizes = tuple(r1 - r0 for _, r0, r1, _ in block)
        block_product = len(products)
        products.append((0, start, block_r0, block_r1))
        for block_part, (n_before, r0, r1, run) in enumerate(block):
            product = None
            if n_before > start:
                product = len(products)
                products.append((start, n_before, r0, r1))
            sizes = tuple(len(graph.groups[i].names) for i in run)
            for part, i in enumerate(run):
                plan[i] = _Stage(n_before, r0, block_sizes, block_part, sizes, part, block_product, product)
    return plan, products


def patched_forward(
    model: object | Adapter, graph: Graph, tokens: torch.Tensor, ablated: AblatedOutputs, mask: torch.Tensor
) -> torch.Tensor:
    """Returns logits of the edge-masked forward: [batch, pos, vocab], or [n_masks, batch, pos, vocab] for a
    mask with a leading batch dimension (all masks run in one forward on the repeated batch). `tokens` are the
    model's inputs: token ids [batch, pos], or any [batch, ...] tensor a declared model takes.

    The mask moves to the tokens' device and the model's dtype (differentiably): methods keep their gate parameters
    where they like, and a GPU or float64 model runs the forward. On the CPU the first call sets glibc's malloc to keep
    freed memory for reuse (`allocator.keep_freed_memory`; EDGEWISE_MALLOC=system leaves it alone).

    Args:
        model: the model, or its adapter (`edgewise.adapters.adapter_for` finds one for a model).
        graph: the model's graph, whose edges the mask weighs.
        tokens: the inputs, `[batch, pos]` token ids or the `[batch, ...]` inputs of a declared model.
        ablated: what an ablated edge carries, recorded on this graph (`task_ablation`).
        mask: the edge weights, float `[n_edges]` or `[n_masks, n_edges]`: each reader's input takes `mask` of the
            writer's output and `1 - mask` of its ablated output; may take gradients.

    Returns:
        The logits, `[batch, pos, vocab]` for a mask `[n_edges]`, `[n_masks, batch, pos, vocab]` for masks `[n_masks,
            n_edges]`.

    Raises:
        GraphMismatchError: the mask is not a float tensor of the graph's edges, a per-position graph's positions
            differ from the batch's, or the graph's hooks or `ablated` do not match the model.
        InvalidMaskError: the mask holds NaN or infinite values.
        BatchShapeError: `ablated` cannot be paired with `tokens` (a resample ablation of another batch shape, or an
            ablation holding another number of positions).
    """
    adapter = adapter_for(model)
    if tokens.device.type == "cpu":
        keep_freed_memory()
    dtype = next(iter(ablated.values.values())).dtype
    masks = graph.check_mask(mask).to(device=tokens.device, dtype=dtype)
    ablated.check_batch(tokens)
    if graph.per_position and adapter.n_positions(tokens) != graph.n_positions:
        raise GraphMismatchError(
            f"the per-position graph has {graph.n_positions} positions but the batch has "
            f"{adapter.n_positions(tokens)}; build "
            "the graph with n_positions equal to the data's sequence length"
        )
    run = _PatchRun(graph, ablated, masks, tokens.shape[0])
    hooks = [
        (g.hook, run.writer_hook(i) if g.kind == "writer" else run.reader_hook(i)) for i, g in enumerate(graph.groups)
    ]
    try:
        with adapter.hooks(hooks):
            repeated = tokens if masks.shape[0] == 1 else tokens.repeat(masks.shape[0], *[1] * (tokens.dim() - 1))
            logits = adapter.forward(repeated)
    finally:
        # Deltas no stage read (every edge out of them kept) would tie the stack, which the stages' autograd nodes
        # hold, to the graph behind those deltas: a cycle through C++ that the garbage collector cannot see, so it
        # would keep the model's weights (a relearning copy's) alive for good, also after a failed forward.
        run.deltas.pending = []
    logits = logits.view(masks.shape[0], tokens.shape[0], *logits.shape[1:])
    return logits if mask.dim() == 2 else logits[0]
