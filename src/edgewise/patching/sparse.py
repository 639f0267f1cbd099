"""A patching forward whose cost follows the trained edges: for runs that train gates on a few candidate edges and
hold every other edge fixed (kept or ablated) for the whole run, as subnetwork probing after an attribution
pre-filter does.

With m the edge's weight (1 kept, 0 ablated, the gate for a gated edge; a writer-reader pair without an edge counts
as kept), reader r's patched input is  value_r + sum_w (m - 1) * (out_w - abl_w), value_r its unpatched input. Each
reader takes the cheaper of two exact forms, chosen once when the masking is built:

    (a) few fixed-ablated writers:  value_r + sum_{ablated} (abl_w - out_w) + sum_{gated} (g - 1) * (out_w - abl_w)
    (b) few fixed-kept writers:     (value_r - T_r) + C_r + sum_{kept} out_w + sum_{gated} g * (out_w - abl_w)

where T_r is the sum of every writer's output before r in this forward (a running sum: one add per writer) and
C_r = sum_{ablated or gated} abl_w, a constant of the build (ablated outputs are constants of a run; their gradients
are not taken). Form (b) needs value_r = biases + T_r, so a reader that sees only some writers (`fed_by`) takes (a).
Per reader the work is one product per gated edge plus one per fixed edge of the rarer kind; a per-position graph
counts edges per position, each a [batch, d_model] slice.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

from ..adapters import Adapter, adapter_for
from ..errors import GraphMismatchError, InvalidMaskError
from ..graph import Graph, node_outputs
from .ablation import AblatedOutputs
from .allocator import keep_freed_memory
from .forward import _POOL, reader_runs

_DELTA, _OUT = 0, 1  # what a term's row holds: out_w - abl_w, or out_w


@dataclass(frozen=True)
class _SparseStage:
    """A run of reader groups with no writer between them (a layer's q, k, v inputs): one product for all their
    readers, so that every later product reading a writer's rows lies downstream of the first (see `_Product`)."""

    n_before: int  # writers before the stage
    r0: int  # first reader of the stage
    sizes: tuple[int, ...]  # readers of each group of the stage, in order
    terms: slice  # the stage's terms among all terms
    constant: torch.Tensor | None  # C_r of its form-(b) readers [readers, batch or 1, pos or 1, width]; None: none
    form_b: torch.Tensor | None  # [readers, 1, 1, 1]: 1 where a reader takes form (b); None: every reader does


class _RowStack:
    """The rows of the writers some term reads, for one forward, in one buffer that autograd never sees,
    [mask, kinds, slots, P, X]: per mask, kind (delta, output) and read writer (its slot), P = 1 row of X = batch *
    pos * width values on a plain graph, or P = pos rows of X = batch * width values on a per-position graph (`rows`
    views it as [mask * kinds * slots * P, X]). Writers no term reads take no slot, and their outputs are never split
    out of their hook values. `_Product` reads it and routes gradients back to the writers' outputs themselves
    (`pending`); narrower streams are zero-padded to `width`, as in `forward._DeltaStack`, and its buffers come
    from that forward's pool."""

    def __init__(self, kinds: tuple[int, ...], n_slots: int, width: int, per_position: bool):
        self.kinds, self.n_slots, self.width, self.per_position = kinds, n_slots, width, per_position
        self.count = 0
        self.buffer: torch.Tensor | None = None
        self.rows: torch.Tensor | None = None  # the buffer as [mask * kinds * slots * P, X]
        self.grad: torch.Tensor | None = None  # d loss / d buffer, accumulated by the products during backward
        self.pending: list[tuple[int, torch.Tensor]] = []  # (first slot, outputs) not yet given to a product
        self.tracks_grad = False

    @property
    def rows_per_mask(self) -> int:
        """Returns the number of rows one mask's part of the buffer holds: kinds * slots * P."""
        return self.buffer[0].numel() // self.buffer.shape[-1]

    def _node_layout(self, t: torch.Tensor) -> torch.Tensor:
        """Returns a [mask, node, P, X] slice of the buffer as [mask, node, batch, pos, width] (a view)."""
        m, n, p, x = t.shape
        if self.per_position:
            return t.view(m, n, p, x // self.width, self.width).transpose(2, 3)
        return t.view(m, n, self.batch, -1, self.width)

    def append(self, outputs: torch.Tensor, ablated: torch.Tensor) -> None:
        """Writes the rows of outputs [mask, node, batch, pos, d] (and outputs - ablated, ablated [node, batch or 1,
        pos, d] broadcast to them) into the next slots."""
        m, n, b, p, d = outputs.shape
        if self.buffer is None:
            n_pos = p if self.per_position else 1
            x = b * self.width if self.per_position else b * p * self.width
            self.batch = b
            self.buffer = _POOL.take(outputs, (m, len(self.kinds), self.n_slots, n_pos, x), self)
            self.rows = self.buffer.view(-1, x)
        values = outputs.detach()
        for k, kind in enumerate(self.kinds):
            slots = self._node_layout(self.buffer[:, k, self.count : self.count + n])
            if d < self.width:
                slots[..., d:] = 0  # a narrower stream: its padding must hold zeros, which gradients read too
                slots = slots[..., :d]
            if kind == _OUT:
                slots.copy_(values)
            else:
                torch.sub(values, ablated.unsqueeze(0), out=slots)
        if outputs.requires_grad:
            self.pending.append((self.count, outputs))
            self.tracks_grad = True
        self.count += n

    def grad_rows(self) -> torch.Tensor:
        """Returns d loss / d rows (as `rows`), zero until the products' backwards add to it."""
        if self.grad is None:
            self.grad = _POOL.take(self.buffer, tuple(self.buffer.shape), self).zero_()
        return self.grad.view_as(self.rows)

    def output_grad(self, slot: int, shape: torch.Size) -> torch.Tensor:
        """Returns d loss / d outputs [mask, node, batch, pos, d] of the writers in slots from `slot`, summed over
        kinds."""
        n, d = shape[1], shape[-1]
        grad = self.grad[:, :, slot : slot + n]  # [mask, kinds, node, P, X]
        grad = self._node_layout(grad[:, 0] if len(self.kinds) == 1 else grad.sum(1))
        return grad if d == self.width else grad[..., :d]

    def patch_layout(self, rows: torch.Tensor, n_masks: int) -> torch.Tensor:
        """Returns a product's rows [mask * readers * P, X] as [mask, readers, batch, pos, width] (a view)."""
        return self._node_layout(rows.view(n_masks, -1, self.buffer.shape[3], rows.shape[-1]))


class _Terms:
    """A stage's terms as sparse matrices, for n_masks masks: entry (mask * n_dst + dst[t], mask * n_src + src[t])
    holds term t's coefficient, block-diagonal over masks; built once per (stage, n_masks) and reused."""

    def __init__(self, src: torch.Tensor, dst: torch.Tensor, n_dst: int, n_src: int, n_masks: int):
        offsets = torch.arange(n_masks, device=src.device).unsqueeze(1)
        rows = (offsets * n_dst + dst).flatten()
        columns = (offsets * n_src + src).flatten()
        self.shape = (n_masks * n_dst, n_masks * n_src)
        self.indices = torch.stack([rows, columns])  # sorted by row, then column: the terms' order
        self.transposed_order = torch.sort(columns * self.shape[0] + rows).indices
        self.transposed_indices = self.indices.flip(0)[:, self.transposed_order]
        counts = torch.bincount(rows, minlength=self.shape[0])
        self.row_starts = torch.cat([counts.new_zeros(1), counts.cumsum(0)])

    def matrix(self, values: torch.Tensor) -> torch.Tensor:
        """Returns the sparse [mask * n_dst, mask * n_src] matrix with the terms' values (flattened [mask, terms])."""
        return torch.sparse_coo_tensor(self.indices, values, self.shape, is_coalesced=True, check_invariants=False)

    def transposed(self, values: torch.Tensor) -> torch.Tensor:
        """Returns the transpose of `matrix(values)`, coalesced."""
        return torch.sparse_coo_tensor(
            self.transposed_indices,
            values[self.transposed_order],
            self.shape[::-1],
            is_coalesced=True,
            check_invariants=False,  # built sorted and in range by construction
        )

    def sampled_products(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        """Returns, for every term, the dot product of left's and right's rows at its entry, [mask * terms]."""
        with warnings.catch_warnings():  # torch calls its CSR support beta; sampled_addmm is what this needs
            warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta", UserWarning)
            pattern = torch.sparse_csr_tensor(
                self.row_starts,
                self.indices[1],
                left.new_ones(self.indices.shape[1]),
                self.shape,
                check_invariants=False,
            )
            return torch.sparse.sampled_addmm(pattern, left, right.t(), beta=0.0).values()


def _product(terms: _Terms, coef: torch.Tensor, stack: _RowStack) -> torch.Tensor:
    """Returns [mask * n_dst, X]: each reader row's sum of its terms' coef * stack.rows[src] (one sparse matrix
    product, whose work follows the number of terms), in a buffer of the stack's forward."""
    out = _POOL.take(stack.rows, (terms.shape[0], stack.rows.shape[-1]), stack).zero_()
    return out.addmm_(terms.matrix(coef.flatten()), stack.rows)


class _Product(torch.autograd.Function):
    """`_product` over the row stack, without autograd saving (or copying) the stack.

    Backward adds this product's d loss / d rows into the stack's gradient buffer and hands each pending output its
    total gradient: every later product reading its rows lies downstream of this one (a writer sits between any two
    stages), so their backwards have run. One backward per forward, as in `forward._StagePatch`."""

    @staticmethod
    def forward(ctx, coef, stack: _RowStack, terms: _Terms, slots: list[int], *outputs: torch.Tensor):
        ctx.stack, ctx.terms, ctx.slots, ctx.shapes = stack, terms, slots, [o.shape for o in outputs]
        ctx.save_for_backward(coef)
        return _product(terms, coef, stack)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (coef,) = ctx.saved_tensors
        stack, terms = ctx.stack, ctx.terms
        grad = grad.contiguous()
        grad_coef = None
        if ctx.needs_input_grad[0]:
            grad_coef = terms.sampled_products(grad, stack.rows).view_as(coef)
        stack.grad_rows().addmm_(terms.transposed(coef.flatten()), grad)
        grads = [stack.output_grad(slot, shape) for slot, shape in zip(ctx.slots, ctx.shapes)]
        return (grad_coef, None, None, None, *grads)


class SparseMasking:
    """An edge-masked forward for runs that train gates on a few edges and hold the rest fixed: built once per run
    (the per-reader plan, and the ablated constants C_r), then `forward(tokens, gates)` per step. It equals
    `patched_forward` on the mask `full_mask(gates)` to float rounding, gradients with respect to the gates included.

    Args:
        model: the model, or its adapter.
        graph: the model's graph.
        ablated: what an ablated edge carries, recorded on this graph (`task_ablation`); treated as constants.
        gated: the trained edges' indices, long `[n_gated]`, each edge at most once.
        fixed: float `[n_edges]`: 1 keeps a non-gated edge for the whole run, 0 ablates it; values at `gated` are
            ignored.

    Raises:
        GraphMismatchError: `gated` or `fixed` do not index this graph's edges, or `ablated` holds no outputs for
            one of its writer hooks.
        InvalidMaskError: `gated` repeats an edge, or `fixed` holds a value other than 0 or 1 off `gated`.
    """

    def __init__(
        self, model: object | Adapter, graph: Graph, ablated: AblatedOutputs, gated: torch.Tensor, fixed: torch.Tensor
    ):
        self.adapter, self.graph, self.ablated = adapter_for(model), graph, ablated
        self.gated, self.fixed = _check_gated_and_fixed(graph, gated, fixed)
        self.n_gated = len(self.gated)
        writer_groups = [g for g in graph.groups if g.kind == "writer"]
        stacked = [ablated.stacked(g) for g in writer_groups]
        for group, value in zip(writer_groups, stacked):
            if value is None or value.dim() != 4:
                raise GraphMismatchError(
                    f"the {ablated.kind} ablation holds no outputs for {group.hook}: it was recorded on another model "
                    "or graph; record it with this graph"
                )
        self.width = max(v.shape[-1] for v in stacked)
        self._plan(stacked)
        self._on_device: dict[torch.device, tuple] = {}
        self._terms: dict[tuple, _Terms] = {}

    def _plan(self, stacked: list[torch.Tensor]) -> None:
        """Chooses each reader's form and lays out the terms, stage by stage, and the stages' constants C_r."""
        graph = self.graph
        n_w, n_r, n_pos = len(graph.writers), len(graph.readers), graph.n_positions or 1
        writer, reader, position = graph.edge_writer, graph.edge_reader, graph.edge_position
        state = self.fixed.round().long()  # 0 ablated, 1 kept, 2 gated
        state[self.gated] = 2
        n_ablated = torch.bincount(reader[state == 0], minlength=n_r)
        n_kept = torch.bincount(reader[state == 1], minlength=n_r)
        open_reader = torch.tensor(
            [g.fed_by is None for g in graph.groups if g.kind == "reader" for _ in g.names], dtype=torch.bool
        )
        self.form_b = (n_kept < n_ablated) & open_reader  # [readers]
        b = self.form_b[reader]  # per edge: its reader takes form (b)

        runs = reader_runs(graph)  # the stages, as the dense forward has them
        stage_of_reader = torch.empty(n_r, dtype=torch.long)
        firsts = []
        for s, run in enumerate(runs):
            r0 = graph.group_offset[run[0]]
            r1 = graph.group_offset[run[-1]] + len(graph.groups[run[-1]].names)
            stage_of_reader[r0:r1] = s
            firsts.append(r0)

        # Terms: (a) reads gated and ablated edges' deltas; (b) gated edges' deltas and kept edges' outputs
        is_term = (state == 2) | ((state == 0) & ~b) | ((state == 1) & b)
        edges = is_term.nonzero().squeeze(1)
        kind = (state[edges] == 1).long()  # _OUT for kept edges, else _DELTA
        self.kinds = tuple(k for k in (_DELTA, _OUT) if (kind == k).any())
        kind_slot = torch.tensor([self.kinds.index(k) if k in self.kinds else 0 for k in (_DELTA, _OUT)])
        stage = stage_of_reader[reader[edges]]
        gate_of_edge = torch.full((graph.n_edges,), self.n_gated, dtype=torch.long)
        gate_of_edge[self.gated] = torch.arange(self.n_gated)
        self.gate_column = gate_of_edge[edges]  # the zero column for a fixed edge
        st, eb = state[edges], b[edges]
        # gated: g - 1 in form (a), g in (b); fixed: -1 for an ablated delta, +1 for a kept output
        self.constant = torch.where(st == 2, torch.where(eb, 0.0, -1.0), torch.where(st == 0, -1.0, 1.0))
        w, r, p = writer[edges], reader[edges], position[edges]
        read = torch.unique(w)  # the writers some term reads, ascending: only they take slots in the stack
        slot_of_writer = torch.full((n_w,), -1, dtype=torch.long)
        slot_of_writer[read] = torch.arange(len(read))
        self.n_slots = len(read)
        src = (kind_slot[kind] * len(read) + slot_of_writer[w]) * n_pos + p  # its row: kind, slot, position
        dst = (r - torch.tensor(firsts, dtype=torch.long)[stage]) * n_pos + p  # its reader's, in the stage
        # Within a stage, terms in (reader row, writer row) order: the order of a sparse matrix's entries (`_Product`)
        n_rows = max(len(self.kinds), 1) * len(read) * n_pos
        order = torch.sort((stage * (n_r * n_pos) + dst) * n_rows + src).indices
        self.src, self.dst, stage = src[order], dst[order], stage[order]
        self.gate_column, self.constant = self.gate_column[order], self.constant[order]
        counts = torch.bincount(stage, minlength=len(runs)).tolist()

        self.read_nodes: dict[int, list[int]] = {}  # writer group index -> its read nodes, ascending
        self.read_ablated: dict[int, torch.Tensor] = {}  # writer group index -> their ablated outputs
        read_set, group_stacked = set(read.tolist()), iter(stacked)
        for i, group in enumerate(graph.groups):
            if group.kind == "writer":
                first, value = graph.writers_before[i], next(group_stacked)
                self.read_nodes[i] = [n for n in range(len(group.names)) if first + n in read_set]
                self.read_ablated[i] = value[self.read_nodes[i]]
        constants = self._constants(stacked, (state != 1) & b)
        self.stages: list[_SparseStage] = []
        self.stage_of_group: dict[int, tuple[int, int]] = {}  # group index -> (stage, part)
        start = 0
        for s, run in enumerate(runs):
            r0 = firsts[s]
            sizes = tuple(len(graph.groups[i].names) for i in run)
            r1 = r0 + sum(sizes)
            stage_b = self.form_b[r0:r1]
            constant, form_b = None, None
            if stage_b.any():
                constant = constants[r0:r1]
                if not stage_b.all():
                    form_b = stage_b.to(constant.dtype).view(-1, 1, 1, 1)
            self.stages.append(
                _SparseStage(graph.writers_before[run[0]], r0, sizes, slice(start, start + counts[s]), constant, form_b)
            )
            start += counts[s]
            for part, i in enumerate(run):
                self.stage_of_group[i] = (s, part)

    def _constants(self, stacked: list[torch.Tensor], into_b: torch.Tensor) -> torch.Tensor | None:
        """Returns C_r for every reader, [readers, batch or 1, pos or 1, width]: the sum of the ablated outputs of its
        fixed-ablated and gated edges for form-(b) readers (others: 0); None if no reader takes form (b)."""
        graph = self.graph
        if not self.form_b.any():
            return None
        n_w, n_r, n_pos = len(graph.writers), len(graph.readers), graph.n_positions or 1
        n_batch = max(v.shape[1] for v in stacked)
        n_abl_pos = n_pos if graph.per_position else max(v.shape[2] for v in stacked)
        like = stacked[0]
        ablated = like.new_zeros(n_w, n_batch, n_abl_pos, self.width)
        slot = 0
        for value in stacked:
            n, d = value.shape[0], value.shape[-1]
            ablated[slot : slot + n, ..., :d] = value.detach().expand(n, n_batch, n_abl_pos, d)
            slot += n
        # One 0/1 matrix product [readers * P, writers * P] @ [writers * P, row] (P positions of a per-position graph)
        ones = into_b.nonzero().squeeze(1)
        w, r, p = graph.edge_writer[ones], graph.edge_reader[ones], graph.edge_position[ones]
        counts = like.new_zeros(n_r * n_pos, n_w * n_pos)
        counts[r * n_pos + p, w * n_pos + p] = 1.0
        if graph.per_position:
            rows = ablated.permute(0, 2, 1, 3).reshape(n_w * n_pos, -1)
            return (counts @ rows).view(n_r, n_pos, n_batch, self.width).permute(0, 2, 1, 3)
        return (counts @ ablated.reshape(n_w, -1)).view(n_r, n_batch, n_abl_pos, self.width)

    def _device_plan(self, device: torch.device) -> tuple:
        """Returns (src, dst, constant, gate column, the stages' C_r and form-(b) weights) on `device`, moved once."""
        if device not in self._on_device:
            move = lambda t: None if t is None else t.to(device)  # noqa: E731
            self._on_device[device] = (
                self.src.to(device),
                self.dst.to(device),
                self.constant.to(device),
                self.gate_column.to(device),
                [(move(s.constant), move(s.form_b)) for s in self.stages],
            )
        return self._on_device[device]

    def stage_terms(self, s: int, n_masks: int, n_src: int, device: torch.device) -> _Terms:
        """Returns stage s's terms as sparse matrices for n_masks masks over n_src rows per mask (cached)."""
        key = (s, n_masks, n_src, device)
        if key not in self._terms:
            src, dst = self._device_plan(device)[:2]
            stage = self.stages[s]
            n_dst = sum(stage.sizes) * (self.graph.n_positions or 1)
            self._terms[key] = _Terms(src[stage.terms], dst[stage.terms], n_dst, n_src, n_masks)
        return self._terms[key]

    def full_mask(self, gates: torch.Tensor) -> torch.Tensor:
        """Returns the dense mask this masking stands for: `fixed` with the gates written in (differentiably).

        Args:
            gates: the gated edges' weights, `[n_gated]` or `[n_masks, n_gated]`.

        Returns:
            The mask, `[n_edges]` or `[n_masks, n_edges]`, as `patched_forward` takes it.

        Raises:
            GraphMismatchError: `gates` is not a float tensor `[n_gated]` or `[n_masks, n_gated]`.
        """
        masks = self._check_gates(gates)
        fixed = self.fixed.to(device=masks.device, dtype=masks.dtype)
        mask = fixed.expand(masks.shape[0], -1).index_copy(1, self.gated.to(masks.device), masks)
        return mask if gates.dim() == 2 else mask[0]

    def _check_gates(self, gates: torch.Tensor) -> torch.Tensor:
        """Returns gates as [n_masks, n_gated], or raises naming the expected shape."""
        if not isinstance(gates, torch.Tensor) or not gates.is_floating_point():
            raise GraphMismatchError(
                f"gates must be a float tensor [{self.n_gated}] or [n_masks, {self.n_gated}] (one per gated edge); "
                f"got {_described(gates)}"
            )
        if gates.dim() not in (1, 2) or gates.shape[-1] != self.n_gated:
            raise GraphMismatchError(
                f"gates have shape {tuple(gates.shape)} but this masking gates {self.n_gated} edges: pass "
                f"[{self.n_gated}] or [n_masks, {self.n_gated}], in the order of `gated`"
            )
        if not torch.isfinite(gates).all():
            raise InvalidMaskError("the gates hold NaN or infinite values; gates are weights in [0, 1] per edge")
        return gates if gates.dim() == 2 else gates.unsqueeze(0)

    def forward(self, tokens: torch.Tensor, gates: torch.Tensor) -> torch.Tensor:
        """Returns the logits of the edge-masked forward on the mask `full_mask(gates)`, as `patched_forward` does.

        Args:
            tokens: the inputs, `[batch, pos]` token ids or the `[batch, ...]` inputs of a declared model.
            gates: the gated edges' weights, float `[n_gated]` or `[n_masks, n_gated]` in the order of `gated`; may
                take gradients (one backward per forward).

        Returns:
            The logits, `[batch, pos, vocab]` for gates `[n_gated]`, `[n_masks, batch, pos, vocab]` for gates
                `[n_masks, n_gated]`.

        Raises:
            GraphMismatchError: the gates' shape, a per-position graph's positions, or the hooks do not match.
            InvalidMaskError: the gates hold NaN or infinite values.
            BatchShapeError: `ablated` cannot be paired with `tokens`.
        """
        if tokens.device.type == "cpu":
            keep_freed_memory()  # as patched_forward: page faults on fresh buffers cost a third of a small forward
        dtype = next(iter(self.ablated.values.values())).dtype
        masks = self._check_gates(gates).to(device=tokens.device, dtype=dtype)
        self.ablated.check_batch(tokens)
        if self.graph.per_position and self.adapter.n_positions(tokens) != self.graph.n_positions:
            raise GraphMismatchError(
                f"the per-position graph has {self.graph.n_positions} positions but the batch has "
                f"{self.adapter.n_positions(tokens)}; build the graph with n_positions equal to the data's sequence "
                "length"
            )
        _, _, constant, gate_column, stage_constants = self._device_plan(tokens.device)
        coef = constant.to(dtype) + torch.nn.functional.pad(masks, (0, 1)).index_select(1, gate_column)
        coefs = coef.split([s.terms.stop - s.terms.start for s in self.stages], dim=1)  # [mask, terms] each
        run = _SparseRun(self, masks.shape[0], tokens.shape[0], coefs, stage_constants)
        hooks = [
            (g.hook, run.writer_hook(i) if g.kind == "writer" else run.reader_hook(i))
            for i, g in enumerate(self.graph.groups)
        ]
        try:
            with self.adapter.hooks(hooks):
                repeated = tokens if masks.shape[0] == 1 else tokens.repeat(masks.shape[0], *[1] * (tokens.dim() - 1))
                logits = self.adapter.forward(repeated)
        finally:
            run.stack.pending = []  # as in patched_forward: unread outputs would tie the stack to the model for good
        logits = logits.view(masks.shape[0], tokens.shape[0], *logits.shape[1:])
        return logits if gates.dim() == 2 else logits[0]

    __call__ = forward


class _SparseRun:
    """State of one sparse forward: the writers' rows, the running sum of their outputs, each stage's patch."""

    def __init__(self, masking: SparseMasking, n_masks: int, batch: int, coefs, stage_constants):
        self.masking, self.graph = masking, masking.graph
        self.n_masks, self.batch = n_masks, batch
        self.coefs, self.stage_constants = coefs, stage_constants
        self.needs_total = bool(masking.form_b.any())
        self.stack = _RowStack(masking.kinds, masking.n_slots, masking.width, self.graph.per_position)
        self.n_written = 0  # writers whose hooks have run
        self.total: torch.Tensor | None = None  # T: the sum of every writer's output so far, [mask, batch, pos, width]
        self.patches: dict[int, tuple[torch.Tensor, ...] | None] = {}  # by stage

    def writer_hook(self, group_index: int):
        group = self.graph.groups[group_index]
        ablated = self.masking.ablated.stacked(group)
        read, read_ablated = self.masking.read_nodes[group_index], self.masking.read_ablated[group_index]

        def hook(value: torch.Tensor, hook) -> torch.Tensor:
            if self.graph.writers_before[group_index] != self.n_written:
                raise GraphMismatchError(
                    f"writer hook {group.hook} ran after {self.n_written} writers, but the graph places it after "
                    f"{self.graph.writers_before[group_index]}: the adapter's hook order does not match the model"
                )
            if ablated.shape[-1] != value.shape[-1]:
                raise GraphMismatchError(
                    f"the {self.masking.ablated.kind} ablation holds no outputs of shape {tuple(value.shape[1:])} for "
                    f"{group.hook}: it was recorded on another model or graph; record it with this graph"
                )
            value_by_mask = value.reshape(self.n_masks, self.batch, *value.shape[1:])
            if self.needs_total:  # a group's node outputs sum to its hook value (over heads, if per head)
                total = value_by_mask.sum(-2) if group.per_head else value_by_mask
                if total.shape[-1] < self.masking.width:
                    total = torch.nn.functional.pad(total, (0, self.masking.width - total.shape[-1]))
                self.total = total if self.total is None else self.total + total
            if read:
                nodes = None if len(read) == len(group.names) else read
                outputs = node_outputs(group, self.graph.dictionaries, value_by_mask, nodes)  # [m, b, p, node, d]
                self.stack.append(outputs.movedim(3, 1), read_ablated)
            self.n_written += len(group.names)
            return value

        return hook

    def reader_hook(self, group_index: int):
        group = self.graph.groups[group_index]
        s, part = self.masking.stage_of_group[group_index]
        stage = self.masking.stages[s]

        def hook(value: torch.Tensor, hook) -> torch.Tensor:
            if self.n_written != stage.n_before:
                raise GraphMismatchError(
                    f"reader hook {group.hook} ran after {self.n_written} writers, but the graph places it after "
                    f"{stage.n_before}: the adapter's hook order does not match the model"
                )
            if s not in self.patches:
                self.patches[s] = self._stage_patch(s)
            if self.patches[s] is None:  # nothing changes this stage's inputs
                return value
            patch = self.patches[s][part]  # [mask, readers, batch, pos, width]
            if patch.shape[-1] != value.shape[-1]:
                patch = patch[..., : value.shape[-1]]  # a narrower stream: unpad
            patch = patch.movedim(1, 3) if group.per_head else patch.squeeze(1)  # [mask, batch, pos, (readers,) d]
            if self.n_masks == 1:
                return value + patch[0]
            return (value.reshape(self.n_masks, self.batch, *value.shape[1:]) + patch).reshape(value.shape)

        return hook

    def _stage_patch(self, s: int) -> tuple[torch.Tensor, ...] | None:
        """Returns the stage's patch, one part per reader group [mask, readers, batch, pos, width]; None if zero."""
        stage = self.masking.stages[s]
        if stage.n_before == 0:
            raise GraphMismatchError("a reader group comes before every writer; the graph has no edges into it")
        total = None
        coef = self.coefs[s]
        if coef.shape[1]:
            stack = self.stack
            terms = self.masking.stage_terms(s, self.n_masks, stack.rows_per_mask, coef.device)
            if not coef.requires_grad and not stack.tracks_grad:
                rows = _product(terms, coef, stack)
            else:
                slots = [slot for slot, _ in stack.pending]
                outputs = [o for _, o in stack.pending]
                stack.pending = []
                rows = _Product.apply(coef, stack, terms, slots, *outputs)
            total = stack.patch_layout(rows, self.n_masks)  # [mask, readers, batch, pos, width]
        constant, form_b = self.stage_constants[s]
        if constant is not None:
            base = self.total.unsqueeze(1)  # T for every reader: [mask, 1, batch, pos, width]
            base = constant - (base if form_b is None else base * form_b)
            total = base if total is None else total + base
        if total is None:
            return None
        return (total,) if len(stage.sizes) == 1 else total.split(stage.sizes, dim=1)


def _check_gated_and_fixed(graph: Graph, gated: torch.Tensor, fixed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns (gated as long [n_gated], fixed as float [n_edges]) on the CPU, or raises naming the fix."""
    if not isinstance(gated, torch.Tensor) or gated.dim() != 1 or gated.is_floating_point() or gated.is_complex():
        raise GraphMismatchError(
            "gated must be a 1-D integer tensor of edge indices, e.g. torch.tensor([graph.edge_index(e) for e in "
            f"edges]); got {_described(gated)}"
        )
    gated = gated.detach().to("cpu", torch.long)
    if len(gated) and (gated.min() < 0 or gated.max() >= graph.n_edges):
        raise GraphMismatchError(
            f"gated holds edge index {int(gated.min() if gated.min() < 0 else gated.max())}, outside this graph's "
            f"{graph.n_edges} edges: index edges with graph.edge_index on this graph"
        )
    if len(torch.unique(gated)) != len(gated):
        raise InvalidMaskError("gated repeats an edge index; gate each edge once (torch.unique(gated))")
    if not isinstance(fixed, torch.Tensor) or not fixed.is_floating_point() or tuple(fixed.shape) != (graph.n_edges,):
        raise GraphMismatchError(
            f"fixed must be a float tensor [{graph.n_edges}] (1 keeps, 0 ablates each non-gated edge); got "
            f"{_described(fixed)}"
        )
    fixed = fixed.detach().to("cpu").clone()
    off = torch.ones(graph.n_edges, dtype=torch.bool)
    off[gated] = False
    bad = off & (fixed != 0) & (fixed != 1)
    if bad.any():
        e = int(bad.nonzero()[0])
        raise InvalidMaskError(
            f"fixed holds {fixed[e].item()} at edge {graph.edges[e].name}, which is not gated: a fixed edge is kept "
            "(1) or ablated (0) for the whole run; gate it, or round it"
        )
    fixed[~off] = 0.0
    return gated, fixed


def _described(value: object) -> str:
    """Returns a value's type, and a tensor's shape and dtype, for error messages."""
    if not isinstance(value, torch.Tensor):
        return type(value).__name__
    return f"a tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
