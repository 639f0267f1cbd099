"""Declared adapter: any HookedRootModule, described by the names of its writer and reader hook points.

A writer hook point's value adds into a shared stream (a residual block's branch, a stem, an embedding); a reader
hook point's value is that stream as some computation receives it, the sum of the earlier writers that feed it plus a
constant (biases). The declaration is checked numerically when the adapter is built, and the order of the hook
points is taken from the model's own forward, so a user names hook points and nothing else.

Values of any shape work: edgewise sees each value as [batch, pos, d] — [batch, 1, numel] for a model without a
sequence axis (a CNN's [batch, channels, height, width]), [batch, pos, rest] with `sequence=True` — and the model's
output likewise as [batch, pos, n_outputs].
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator, Mapping, Sequence

import torch

from ..errors import DeclarationError
from ..graph import HookGroup, Node, NodeKind
from .base import Adapter


def _named(hooks: Sequence[str] | Mapping[str, str], role: str) -> dict[str, str]:
    """Returns {node name: hook name}; a list of hook names names each node after its hook."""
    named = dict(hooks) if isinstance(hooks, Mapping) else {h: h for h in hooks}
    if not named:
        raise DeclarationError(f"declare at least one {role} hook point")
    return named


class DeclaredAdapter(Adapter):
    """Writers and readers of a HookedRootModule, declared by hook names and verified on example inputs.

    `writers` and `readers` map node names to hook names (or list hook names). A reader named like a writer is that
    writer's input (a block reads the stream, then writes its branch); a writer no reader feeds is where the stream
    starts (an embedding, a stem), and a reader that feeds no writer is an output (a head reading the final stream).
    `feeds` maps a reader to the writers whose sum it is, where that is not every earlier writer.

    Constructing it runs the model once on `example_inputs`, takes the order of the hook points from that forward,
    and checks that every reader's input is the sum of its writers' outputs plus a constant.

    Args:
        model: a HookedRootModule whose declared outputs and inputs are HookPoints (`self.setup()` called).
        writers: the writer hook points: {node name: hook name}, or hook names that name their nodes.
        readers: the reader hook points, in the same form.
        example_inputs: at least two different inputs [batch, ...] to verify the declaration on.
        feeds: for a reader that sees only some earlier writers: {reader: the writers whose sum it is}. None: every
            reader reads every writer before it.
        split: writers whose output becomes one node per channel (axis 1 of the value, as a transformer's
            attention output is one node per head): `block 0.c3` carries channel 3 of block 0's output. Only for
            models without a sequence axis.
        sequence: the values' axis 1 is a sequence axis, [batch, pos, ...]; False: one position per input.
        output: turns the model's return value into one tensor (e.g. picks the logits from a tuple); None: the
            return value is that tensor.
        run: replaces the model's forward (e.g. a method that skips a step outside the stream); None: the model.
        tolerance: the relative mismatch allowed between a reader's input and the sum of its writers.

    Raises:
        DeclarationError: the model has no hook points, a declared name is unknown, a hook point is declared twice,
            never runs or runs twice, the example inputs cannot verify anything, or a reader's input is not the sum
            of its writers plus a constant.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        writers: Sequence[str] | Mapping[str, str],
        readers: Sequence[str] | Mapping[str, str],
        example_inputs: torch.Tensor,
        feeds: Mapping[str, Sequence[str]] | None = None,
        split: Sequence[str] = (),
        sequence: bool = False,
        output: Callable[[object], torch.Tensor] | None = None,
        run: Callable[[torch.Tensor], object] | None = None,
        tolerance: float = 1e-4,
    ):
        if not hasattr(model, "hook_dict"):
            raise DeclarationError(
                f"{type(model).__name__} has no hook points: subclass transformer_lens.hook_points.HookedRootModule, "
                "wrap the outputs and inputs you declare in HookPoint modules and call self.setup() (docs/any-model.md)"
            )
        self.model = model
        self.sequence = sequence
        self.tolerance = tolerance
        self._output = output
        self._run = model if run is None else run
        self._writers, self._readers = _named(writers, "writer"), _named(readers, "reader")
        self._feeds = {r: tuple(ws) for r, ws in (feeds or {}).items()}
        self._split = tuple(split)
        self._check_names()
        values, order = self._record(example_inputs)
        self._order = order
        self._n_channels = {w: values[("writer", w)].shape[1] for w in self._split}  # raw [batch, channels, ...]
        values = {key: self.canonical(value) for key, value in values.items()}
        self._width = max(v.shape[-1] for v in values.values())  # the widest stream, for describe()
        self._groups = self._build_groups(order)
        self._verify(values)

    def _check_names(self) -> None:
        for role, named in (("writer", self._writers), ("reader", self._readers)):
            missing = [h for h in named.values() if h not in self.model.hook_dict]
            if missing:
                raise DeclarationError(
                    f"{role} hook points {missing} are not in {type(self.model).__name__}; its hook points are "
                    f"{sorted(self.model.hook_dict)}"
                )
        unknown = [w for w in self._split if w not in self._writers]
        if unknown:
            raise DeclarationError(f"split names {unknown}, which are not declared writers: {list(self._writers)}")
        if self._split and self.sequence:
            raise DeclarationError("split writers into channels on models without a sequence axis (sequence=False)")
        for reader, fed in self._feeds.items():
            if reader not in self._readers:
                raise DeclarationError(f"feeds names {reader!r}, which is not a declared reader: {list(self._readers)}")
            unknown = [w for w in fed if w not in self._writers]
            if unknown:
                raise DeclarationError(
                    f"feeds of {reader!r} name {unknown}, which are not declared writers: {list(self._writers)}"
                )

    def canonical(self, value: torch.Tensor) -> torch.Tensor:
        """Returns a hook value (or output) [batch, ...] viewed as [batch, pos, d]: what the rest of edgewise sees.

        Args:
            value: a hook value or model output [batch, ...] ([batch, pos, ...] with `sequence=True`).

        Returns:
            The value reshaped to [batch, pos, d]: [batch, 1, numel] without a sequence axis.

        Raises:
            DeclarationError: `sequence=True` and the value has fewer than two axes.
        """
        if self.sequence:
            if value.dim() < 2:
                raise DeclarationError(f"sequence=True needs values [batch, pos, ...]; got shape {tuple(value.shape)}")
            return value.reshape(value.shape[0], value.shape[1], -1)
        return value.reshape(value.shape[0], 1, -1)

    def channels(self, value: torch.Tensor) -> torch.Tensor:
        """Returns a split writer's value [batch, channels, ...] as one output per channel in the stream's space,
        [batch, 1, channels, d]: channel c's slice in place, zeros elsewhere, so the channels sum to the value.

        Args:
            value: a split writer's raw hook value [batch, channels, ...].

        Returns:
            One output per channel [batch, 1, channels, d], d the value's size per example.
        """
        per_channel = value.reshape(value.shape[0], value.shape[1], -1)  # [batch, channels, rest]
        eye = torch.eye(value.shape[1], dtype=value.dtype, device=value.device)
        spread = per_channel.unsqueeze(2) * eye[None, :, :, None]  # [batch, channel, channel slot, rest]
        return spread.reshape(value.shape[0], 1, value.shape[1], -1)

    @contextmanager
    def hooks(self, fwd_hooks: list[tuple[str, Callable]]) -> Iterator[None]:
        """Adds forward hooks that see each value as [batch, pos, d] ([batch, 1, channels, d] at a split writer)
        and may return a replacement of that shape. A split writer's value is read, never replaced.

        Args:
            fwd_hooks: (hook point name, hook function) pairs, as `Adapter.hooks` takes them.

        Yields:
            Nothing; the hooks are in place inside the `with` block.

        Raises:
            GraphMismatchError: the model has no hook point of a given name.
        """
        split_hooks = {self._writers[w] for w in self._split}

        def viewed(name: str, fn: Callable) -> Callable:
            def hook(value: torch.Tensor, hook) -> torch.Tensor | None:
                if name in split_hooks:
                    fn(self.channels(value), hook)
                    return None
                replaced = fn(self.canonical(value), hook)
                return None if replaced is None else replaced.reshape(value.shape)

            return hook

        with super().hooks([(name, viewed(name, fn)) for name, fn in fwd_hooks]):
            yield

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Returns the model's output on `inputs` [batch, ...] as [batch, pos, n_outputs].

        Args:
            inputs: the model's inputs [batch, ...].

        Returns:
            The output of `run` (or the model), passed through `output`, viewed as [batch, pos, n_outputs].
        """
        out = self._run(inputs)
        return self.canonical(out if self._output is None else self._output(out))

    def n_positions(self, inputs: torch.Tensor) -> int:
        """Returns the stream's positions: the inputs' second axis with `sequence=True`, else one.

        Args:
            inputs: the model's inputs [batch, ...].

        Returns:
            The number of positions.
        """
        return inputs.shape[1] if self.sequence else 1

    def hook_groups(self, split_embeddings: bool = False) -> list[HookGroup]:
        """Returns one group per declared node, in the order the model's forward reaches their hook points.

        Args:
            split_embeddings: ignored: a declared model's writers are the ones declared.

        Returns:
            The hook groups: a writer no reader is named after is an embedding, a reader no writer is named after an
                output, the others modules; a split writer's group has one node per channel.
        """
        return list(self._groups)

    @property
    def n_layers(self) -> int:
        """Returns the number of declared writers."""
        return sum(1 for g in self._groups if g.kind == "writer")

    def describe(self) -> dict:
        """Returns the declaration's size: modules (writers), no heads, and the widest stream value."""
        return {"n_layers": self.n_layers, "n_heads": 0, "d_model": self._width}

    def to(self, device: str | torch.device) -> "DeclaredAdapter":
        """Moves the model to `device` in place and returns this adapter (Task.to moves a task's model).

        Args:
            device: the device to move the model to.

        Returns:
            This adapter.
        """
        self.model.to(device)
        return self

    @torch.no_grad()
    def _record(self, inputs: torch.Tensor) -> tuple[dict[tuple[str, str], torch.Tensor], list[tuple[str, str]]]:
        """Returns every declared hook's raw value on `inputs` by (role, node), and the (role, node) order in which
        the forward reached them; raises DeclarationError for a hook that never runs, or runs twice."""
        if inputs.shape[0] < 2 or bool((inputs == inputs[:1]).all()):
            raise DeclarationError(
                f"example_inputs of shape {tuple(inputs.shape)} cannot verify the declaration: give at least two "
                "different inputs, so that a reader's input that is not the sum of its writers shows up as a mismatch"
            )
        values: dict[str, torch.Tensor] = {}
        order: list[tuple[str, str]] = []
        by_hook: dict[str, list[tuple[str, str]]] = {}
        for role, named in (("writer", self._writers), ("reader", self._readers)):
            for node, hook in named.items():
                by_hook.setdefault(hook, []).append((role, node))
        twice = {hook: keys for hook, keys in by_hook.items() if len(keys) > 1}
        if twice:
            raise DeclarationError(
                f"hook points declared more than once: {twice}; give each writer and each reader "
                "its own HookPoint (a head and a branch reading the same stream: one HookPoint each)"
            )

        def saver(hook_name: str):
            def save(value: torch.Tensor, hook) -> None:
                key = by_hook[hook_name][0]
                if key in values:
                    raise DeclarationError(
                        f"hook point {hook_name} runs more than once per forward; declare hook points that run once "
                        "(give a module reused in a loop one HookPoint per use)"
                    )
                values[key] = value.detach().clone()
                order.append(key)

            return save

        with super().hooks([(h, saver(h)) for h in by_hook]):
            self._run(inputs)
        silent = [
            f"{role} {node}"
            for role, named in (("writer", self._writers), ("reader", self._readers))
            for node in named
            if (role, node) not in values
        ]
        if silent:
            raise DeclarationError(f"declared hook points never ran in the model's forward: {silent}")
        return values, order

    def _build_groups(self, order: list[tuple[str, str]]) -> list[HookGroup]:
        groups = []
        for role, name in order:
            if role == "writer":
                kind = NodeKind.MODULE if name in self._readers else NodeKind.EMBEDDING
                if name not in self._split:
                    groups.append(HookGroup("writer", self._writers[name], (Node(name, kind),), False))
                    continue
                nodes = tuple(
                    Node(f"{name}.c{c}", kind, index=c, component=name) for c in range(self._n_channels[name])
                )
                groups.append(HookGroup("writer", self._writers[name], nodes, True))
            else:
                kind = NodeKind.MODULE if name in self._writers else NodeKind.OUTPUT
                fed = self._feeds.get(name)
                groups.append(HookGroup("reader", self._readers[name], (Node(name, kind),), False, fed))
        return groups

    def _verify(self, values: dict[tuple[str, str], torch.Tensor]) -> None:
        """Raises DeclarationError naming the first reader whose input ([batch, pos, d] by (role, node)) is not the sum
        of its writers' outputs plus a constant, with the size of the mismatch."""
        earlier: list[str] = []
        for role, name in self._order:
            if role == "writer":
                earlier.append(name)
                continue
            fed = self._feeds.get(name, tuple(earlier))
            late = [w for w in fed if w not in earlier]
            if late:
                raise DeclarationError(
                    f"reader {name!r} is declared to read {late}, which the forward reaches only "
                    "after it; a reader can only sum writers that ran before it"
                )
            reader = values[("reader", name)]
            if not fed:
                raise DeclarationError(f"reader {name!r} runs before every declared writer, so no edge reaches it")
            rest = reader.clone()
            for writer in fed:
                out = values[("writer", writer)]
                if out.shape != reader.shape:
                    raise DeclarationError(
                        f"reader {name!r} has shape {tuple(reader.shape)} (as [batch, pos, d]) but its writer "
                        f"{writer!r} has {tuple(out.shape)}: a reader must be a sum of its writers; declare `feeds` "
                        "where a reader sees only some earlier writers (after a change of shape)"
                    )
                rest -= out
            mismatch = (rest - rest[:1]).abs().max().item()
            scale = max(reader.abs().max().item(), 1.0)
            if mismatch > self.tolerance * scale:
                raise DeclarationError(
                    f"reader {name!r}'s input is not the sum of its writers {list(fed)} plus a constant: they differ "
                    f"by up to {mismatch:.3g} across the example inputs (input size {scale:.3g}). A writer feeding it "
                    "is not declared, or something non-additive (a norm, a nonlinearity, a concatenation) sits between "
                    "the writers and this hook point"
                )
