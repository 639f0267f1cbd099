"""Adapter for transformer_lens' TransformerBridge: Hugging Face causal LMs run through their own modeling code.

The bridge exposes TransformerLens-style hooks once three flags are on (`enable_edge_hooks`):

    blocks.L.attn.hook_q_input   [batch, pos, n_heads, d_model]     reader: one residual copy per query head
    blocks.L.attn.hook_k_input   [batch, pos, n_kv_heads, d_model]  reader: one copy per key/value head (GQA as is)
    blocks.L.attn.hook_v_input   [batch, pos, n_kv_heads, d_model]  reader
    blocks.L.attn.hook_result    [batch, pos, n_heads, d_model]     writer: per-head output, before the sum and b_O
    blocks.L.hook_mlp_in         [batch, pos, d_model]              reader: ln2's input
    blocks.L.mlp.hook_out        [batch, pos, d_model]              writer

The reader copies are taken before the block's norm (the bridge re-applies ln1 per copy, and hook_mlp_in fires on
ln2's input), so each reader sees the raw residual stream: the sum of all earlier writers plus biases.

Parallel blocks (GPT-NeoX/Pythia, Phi, Cohere, Falcon: `ParallelBlockBridge`) add attention and MLP to the same
residual: the MLP reads the block's input, so its reader is fed by the writers before the block only (`fed_by`), not
by the same layer's heads. Where attention and MLP share one norm (Phi, Cohere, Falcon), the adapter gives the MLP
its own copy of the block's input: hook_mlp_in fires on it and the MLP takes ln1 of the (patched) copy.

Post-sublayer norms (Gemma 2 and 3: `ln1_post`, `ln2_post`) normalise a sublayer's output before the residual add.
The MLP node simply includes its norm (its writer hook is after ln2_post). The attention's norm mixes the heads, so a
post-norm block's attention is one writer, `Attn L` (after ln1_post), while its heads stay per-head readers feeding it.

Scaled residual adds (Granite: `residual + sublayer * residual_multiplier`, `ScaledResidualBlockBridge`) stay a sum
with the constant carried into the writer: the bridge fires `hook_result` and the block's own `hook_mlp_out` on the
scaled contributions, which is what enters the residual stream, and an edited contribution reaches the stream as
written (the bridge divides it by the scale before Hugging Face multiplies). Those hooks fire only when a
TransformerLens hook is registered on them, so `hooks` registers every hook there as one.

Building the adapter checks the bridge against its model once (`verify_bridge`): its logits against the plain Hugging
Face model's, every hook of the graph firing once, in the graph's order, readers that sum their writers, and readers
whose edited value reaches the model.

The groups use the bridge's canonical hook names, not TransformerLens' aliases (`blocks.L.hook_q_input`,
`blocks.L.hook_mlp_out`, `blocks.0.hook_resid_pre`, ...): a hook function receives `hook.name` in canonical form,
so only canonical names key the recorded writer outputs consistently.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

import torch

from ..errors import UnsupportedArchitectureError
from ..graph import HookGroup, Node, NodeKind
from .base import Adapter, layered_hook_groups
from .bridge_agreement import verify_bridge

if TYPE_CHECKING:
    from transformer_lens import TransformerBridge


def enable_edge_hooks(bridge: "TransformerBridge") -> None:
    """Switches on the bridge hooks an edge graph reads and patches: split q/k/v inputs per head, per-head
    attention results, and hook_mlp_in. `use_attn_in` (one shared q/k/v input) excludes split inputs: it is
    switched off."""
    if getattr(bridge.cfg, "use_attn_in", False):
        bridge.set_use_attn_in(False)
    bridge.set_use_split_qkv_input(True)
    bridge.set_use_attn_result(True)
    bridge.set_use_hook_mlp_in(True)


def boot_bridge(hf_folder: Path) -> "TransformerBridge":
    """Returns a TransformerBridge booted offline from a local fp32 Hugging Face folder, in eval mode. The hooks an
    edge graph needs are switched on by its adapter (`BridgeAdapter`), at first use.

    The bridge loads the folder's tokenizer itself (as `bridge.tokenizer`; it prepends BOS).

    Args:
        hf_folder: a Hugging Face model folder (config, weights, tokenizer) on this machine.

    Returns:
        The booted bridge, on the CPU in float32.
    """
    from transformer_lens import TransformerBridge

    bridge = TransformerBridge.boot_transformers(str(hf_folder), device="cpu", dtype=torch.float32)
    bridge.eval()
    return bridge


class BridgeAdapter(Adapter):
    """Writers and readers of a TransformerBridge with pre-norm blocks, sequential (Llama, Mistral, Qwen, GPT-2...),
    parallel (GPT-NeoX/Pythia, Phi, Cohere, Falcon without ALiBi), with constant-scaled residual adds (Granite) or
    with post-sublayer norms (Gemma 2 and 3: each attention layer one writer, its heads readers).

    Constructing it checks every block (see `_check_architecture`), switches on the hooks it needs and, once per
    bridge, runs it against its plain Hugging Face model (`verify_bridge`). Raises UnsupportedArchitectureError,
    before any work, for blocks whose heads have no inputs of their own (a query/key norm over all heads: OLMo 2) or
    that do not write additively into the residual stream, for attention the bridge wraps whole with no per-head
    q/k/v fork (GPT-Neo, GPT-J, MLA), and for a bridge that disagrees with its model or whose hooks do not fire as
    the graph places them (Falcon with ALiBi).

    Args:
        bridge: the booted bridge (`boot_bridge`, or `TransformerBridge.boot_transformers`); its hook switches are
            turned on in place.

    Raises:
        UnsupportedArchitectureError: a block does not add its heads' and MLP's outputs to the residual stream
            directly, the bridge cannot switch on a hook the graph needs, or the bridge disagrees with its Hugging
            Face model (`BridgeDisagreesError`).
    """

    def __init__(self, bridge: "TransformerBridge"):
        self.model = bridge
        self._check_architecture()
        try:
            enable_edge_hooks(bridge)
        except NotImplementedError as err:
            raise UnsupportedArchitectureError(f"{self._model_name()}: {err}") from err
        for block in bridge.blocks:
            if self._parallel(block) and "ln2" not in block.submodules:
                _fork_parallel_mlp_input(block)
        verify_bridge(self)

    def copy(self) -> "BridgeAdapter":
        """Returns an adapter over a fresh boot of the same Hugging Face folder carrying this model's current weights.
        Not a deep copy: the bridge's capture hooks close over their own bridge's modules, so a deep copy would keep
        writing its pre-norm residuals into this bridge and fork post-norm ones into its own q/k/v hooks.

        Returns:
            A new adapter over a fresh bridge with this model's weights and train/eval mode.

        Raises:
            UnsupportedArchitectureError: the model was not booted from a local folder.
        """
        folder = Path(self.model.original_model.config._name_or_path)
        if not folder.is_dir():
            raise UnsupportedArchitectureError(
                f"{self._model_name()} was not booted from a local folder ({folder}), so "
                "it cannot be copied; boot it with edgewise.adapters.boot_bridge"
            )
        bridge = boot_bridge(folder)
        bridge.load_state_dict(self.model.state_dict())
        bridge.train(self.model.training)
        return BridgeAdapter(bridge)

    @property
    def n_heads(self) -> int:
        """Returns the number of query heads per layer."""
        return int(self.model.cfg.n_heads)

    @property
    def n_kv_heads(self) -> int:
        """Returns the number of key-value heads per layer (`n_heads` without grouped-query attention)."""
        return int(getattr(self.model.cfg, "n_key_value_heads", None) or self.model.cfg.n_heads)

    def describe(self) -> dict:
        """Returns n_layers, n_heads, n_kv_heads and d_model."""
        cfg = self.model.cfg
        return {
            "n_layers": cfg.n_layers,
            "n_heads": self.n_heads,
            "n_kv_heads": self.n_kv_heads,
            "d_model": cfg.d_model,
        }

    @contextmanager
    def hooks(self, fwd_hooks: list[tuple[str, Callable]]) -> Iterator[None]:
        """Adds forward hooks `fn(value, hook)` for the duration of the block (see `Adapter.hooks`). On a scaled
        contribution (Granite's hook_result and hook_mlp_out) the bridge fires the hook point only when it holds a
        TransformerLens hook, so a no-op one is registered there first (a real one: `Adapter.hooks` would replace
        a bare point's forward instead) and the caller's hooks follow it.

        Args:
            fwd_hooks: (hook point name, hook function) pairs; a hook function returns a replacement value, or None.

        Yields:
            Nothing; the hooks are in place inside the `with` block.
        """
        held = []
        try:
            for name in dict.fromkeys(n for n, _ in fwd_hooks):
                if name in self._scaled:
                    point = self.model.hook_dict[name]
                    held.append((point, point.add_hook(_leave_unchanged)))
            with super().hooks(fwd_hooks):
                yield
        finally:
            for point, handle in held:
                handle.hook.remove()
                point.fwd_hooks.remove(handle)

    @property
    def _scaled(self) -> frozenset[str]:
        """Returns the canonical names of the hook points that carry a scaled residual contribution."""
        if not hasattr(self, "_scaled_points"):
            points = set()
            for layer, block in enumerate(self.model.blocks):
                if self._scaled_block(block):  # also at scale 1: the block's hook still needs a registered hook
                    points |= {f"blocks.{layer}.attn.hook_result", f"blocks.{layer}.hook_mlp_out"}
            self._scaled_points = frozenset(points)
        return self._scaled_points

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Returns logits [batch, pos, vocab] for token ids [batch, pos] (no BOS is added; no padding mask).

        Args:
            tokens: token ids [batch, pos], BOS included where the model expects one.

        Returns:
            The model's logits [batch, pos, vocab].
        """
        return self.model(tokens, return_type="logits")

    def hook_groups(self, split_embeddings: bool = False) -> list[HookGroup]:
        """Returns `Resid Start`, then per layer q/k/v input readers, head writers, MLP reader and writer, then
        `Resid End` (the last block's output, before the final norm).

        Args:
            split_embeddings: make the token embedding and the learned position embedding separate writers
                (`Tok Embed`, `Pos Embed`) instead of one `Resid Start` (the residual entering block 0).

        Returns:
            The hook groups, in residual-stream order, under the bridge's canonical hook names.

        Raises:
            UnsupportedArchitectureError: `split_embeddings` on a model without a learned position embedding
                (rotary, alibi), or a hook the groups need is missing.
        """
        split = {"embed_hooks": self._embedding_hooks()} if split_embeddings else {}
        groups = layered_hook_groups(
            n_layers=self.n_layers,
            n_heads=self.n_heads,
            n_kv_heads=self.n_kv_heads,
            final_hook=f"blocks.{self.n_layers - 1}.hook_out",
            split_embeddings=split_embeddings,
            merged_embed_hook="blocks.0.hook_in",  # the residual entering block 0, after any embedding scale
            **split,
        )
        parallel_mlp_in = {f"blocks.{i}.hook_mlp_in" for i, b in enumerate(self.model.blocks) if self._parallel(b)}
        post_norm = {i for i, b in enumerate(self.model.blocks) if "ln1_post" in (b.submodules or {})}
        result, before_block = [], ()
        for g in groups:
            if g.hook.endswith(".hook_q_input"):
                before_block = tuple(n.name for w in result if w.kind == "writer" for n in w.nodes)
            layer = g.nodes[0].layer
            if layer in post_norm and g.nodes[0].kind is NodeKind.HEAD:
                g = _attention_layer_group(g, layer)
            # A parallel block's MLP reads the block's input: the writers before the block, not this layer's heads
            fed_by = before_block if g.hook in parallel_mlp_in else None
            result.append(HookGroup(g.kind, self._canonical_hook(g.hook), g.nodes, g.per_head, fed_by))
        return result

    @staticmethod
    def _scaled_block(block) -> bool:
        """Whether `block` scales its sublayers' outputs before the residual add (`ScaledResidualBlockBridge`)."""
        from transformer_lens.model_bridge.generalized_components.block import ScaledResidualBlockBridge

        return isinstance(block, ScaledResidualBlockBridge)

    @staticmethod
    def _parallel(block) -> bool:
        """Whether attention and MLP of `block` both read the block's input (`ParallelBlockBridge`)."""
        from transformer_lens.model_bridge.generalized_components.block import ParallelBlockBridge

        return isinstance(block, ParallelBlockBridge)

    def _embedding_hooks(self) -> tuple[str, str]:
        """Returns the token and learned position embedding hooks, or raises for models without the latter."""
        cfg = self.model.cfg
        pos_type = getattr(cfg, "positional_embedding_type", "standard")
        pos_embed = getattr(self.model, "pos_embed", None)
        if pos_type != "standard" or pos_embed is None or getattr(pos_embed, "original_component", None) is None:
            raise UnsupportedArchitectureError(
                f"{self._model_name()} has no position embedding in the residual stream (positional embedding type "
                f"{pos_type!r}: rotary and alibi positions act inside attention), so the embeddings cannot be split "
                "into token and position writers. Use split_embeddings=False: the single writer `Resid Start` is the "
                "token embedding."
            )
        return ("embed.hook_out", "pos_embed.hook_out")

    def canonical_hook(self, name: str) -> str:
        """Returns the bridge's own name of the hook point `name`: TransformerLens aliases (`blocks.L.hook_mlp_out`,
        `blocks.L.hook_resid_pre`, `blocks.L.hook_attn_out`) resolved to the point they alias (`blocks.L.mlp.hook_out`,
        `blocks.L.hook_in`, `blocks.L.attn.hook_out`, or `blocks.L.ln1_post.hook_out` after a post-attention norm).

        Args:
            name: a hook name, e.g. the `hook_name` of an SAE's cfg.

        Returns:
            The canonical name; `name` itself where the bridge has no such hook.
        """
        point = self.model.hook_dict.get(name)
        return name if point is None else point.name

    def whole_attention_group(self, layer: int) -> HookGroup | None:
        """Returns layer `layer`'s attention as one writer, `Attn L`, on `blocks.L.attn.hook_out` (the heads' sum plus
        the output bias, which the residual add takes as it is in sequential and parallel blocks); None for a
        post-norm block (its graph has that writer already, after the norm) and a scaled one (the hook is before the
        scale).

        Args:
            layer: the attention layer.

        Returns:
            The one-writer group, or None.
        """
        block = self.model.blocks[layer]
        if "ln1_post" in (block.submodules or {}) or self._scaled_block(block):
            return None
        return HookGroup(
            "writer", self._canonical_hook(f"blocks.{layer}.attn.hook_out"), (_attention_node(layer),), False
        )

    @property
    def model_source(self) -> str | None:
        """Returns the folder or hub name the bridge was booted from (`cfg.model_name`), or None."""
        return getattr(self.model.cfg, "model_name", None)

    def _canonical_hook(self, name: str) -> str:
        hook_dict = self.model.hook_dict
        if name not in hook_dict:
            raise UnsupportedArchitectureError(
                f"{self._model_name()} has no hook {name!r}; edgewise's bridge adapter needs TransformerLens-style "
                "blocks (blocks.L.attn.hook_q_input, blocks.L.attn.hook_result, blocks.L.hook_mlp_in, ...)"
            )
        return hook_dict[name].name

    def _model_name(self) -> str:
        """Returns e.g. `LlamaForCausalLM (path/or/hub-name)`, for error messages."""
        cfg = self.model.cfg
        architecture = getattr(cfg, "architecture", None) or type(self.model).__name__
        source = getattr(cfg, "model_name", None)
        return f"{architecture} ({source})" if source else str(architecture)

    def _check_architecture(self) -> None:
        """Raises UnsupportedArchitectureError unless every block is a pre-norm attention + MLP block, sequential or
        parallel, whose heads and MLP add their outputs to the residual stream unscaled and unnormalised, and whose
        attention the bridge forks per head."""
        from transformer_lens.model_bridge.generalized_components.joint_qkv_attention import (
            JointQKVAttentionBridge,
        )
        from transformer_lens.model_bridge.generalized_components.position_embeddings_attention import (
            PositionEmbeddingsAttentionBridge,
        )

        name, cfg = self._model_name(), self.model.cfg
        byo = "describe the model's writers and readers yourself with edgewise.DeclaredAdapter (docs/any-model.md)"

        def unsupported(reason: str) -> UnsupportedArchitectureError:
            return UnsupportedArchitectureError(
                f"{name}: {reason}. This is the architecture's shape, not a fault of the bridge: edgewise's edge graph "
                "needs each head to read q/k/v inputs of its own and every head (or attention layer, behind a "
                "post-norm) and MLP to add its output to the residual stream, up to a constant scale (sequential or "
                f"parallel blocks, as in Llama, Pythia, Granite or Gemma 2); {byo}"
            )

        if getattr(cfg, "gated_q_proj", False):
            raise unsupported("the query projection is gated, which the bridge cannot split per head")
        blocks = getattr(self.model, "blocks", None)
        if not blocks:
            raise unsupported("the bridge has no `blocks`")
        for layer, block in enumerate(blocks):
            where = f"block {layer} ({type(block).__name__})"
            if type(block) not in _additive_block_types():
                raise unsupported(f"{where}: the block is not a plain attention + MLP block")
            if self._scaled_block(block) and getattr(block, "scaled_mlp_submodule", None) != "mlp":
                raise unsupported(f"{where}: the scaled MLP-side add sums several modules, with no one hook for it")
            submodules = block.submodules or {}
            if getattr(submodules.get("attn"), "_qk_norm_phase", None) == "pre_reshape":
                raise unsupported(
                    f"{where}: the query/key norm spans all heads at once (OLMo 2), so one head's query depends on "
                    "every head's input and no head has a q or k input of its own"
                )
            wanted = ("ln1", "attn", "mlp") if self._parallel(block) else ("ln1", "attn", "ln2", "mlp")
            missing = [n for n in wanted if n not in submodules]
            if missing:
                raise unsupported(f"{where}: no {', '.join(missing)}; expected ln1 -> attn, ln2 -> mlp")
            attn = submodules["attn"]
            per_head_fork = (
                isinstance(attn, (JointQKVAttentionBridge, PositionEmbeddingsAttentionBridge))
                and attn.supports_split_qkv_fork
                and attn.supports_attn_result
            )
            if not per_head_fork:
                raise UnsupportedArchitectureError(
                    f"{name}: {where}: TransformerBridge wraps this model's attention whole ({type(attn).__name__}), "
                    "with no per-head q/k/v input fork and no per-head result, so no edge into or out of a single "
                    "head can be patched. The cause is the bridge (transformer-lens "
                    f"{_transformer_lens_version()}), not the architecture: its heads add into the residual stream "
                    "like Llama's. To use it: a transformer-lens release whose bridge gives this architecture a "
                    f"per-head attention component (as Llama and GPT-NeoX have), or {byo}"
                )
            if getattr(submodules["ln1"], "original_component", None) is None:
                # Without ln1 wired the bridge forks the q/k/v copies after the norm: readers would not see the
                # residual stream itself.
                raise unsupported(f"{where}: the attention input norm ln1 is not wired to a module")
            scale = float(getattr(attn, "_result_contribution_scale", 1.0))
            if scale != float(getattr(block, "residual_contribution_scale", 1.0)):
                raise unsupported(f"{where}: attention results are rescaled before the residual add by {scale}")
            attn_cfg = getattr(attn, "config", None) or cfg
            heads = (
                int(getattr(attn_cfg, "n_heads", self.n_heads)),
                int(getattr(attn_cfg, "n_key_value_heads", None) or getattr(attn_cfg, "n_heads", self.n_heads)),
            )
            if heads != (self.n_heads, self.n_kv_heads):
                raise unsupported(
                    f"{where}: {heads[0]} query / {heads[1]} key-value heads, but the model declares "
                    f"{self.n_heads} / {self.n_kv_heads}; layers with different head counts are not supported"
                )


def _additive_block_types() -> tuple[type, ...]:
    """Returns the bridge's block classes whose heads and MLP add straight into the residual stream."""
    from transformer_lens.model_bridge.generalized_components.block import (
        BlockBridge,
        ParallelBlockBridge,
        ScaledResidualBlockBridge,
    )

    return (BlockBridge, ParallelBlockBridge, ScaledResidualBlockBridge)


def _attention_node(layer: int) -> Node:
    """Returns `Attn {layer}`, an attention layer as one writer."""
    return Node(f"Attn {layer}", NodeKind.MODULE, layer=layer)


def _attention_layer_group(group: HookGroup, layer: int) -> HookGroup:
    """Returns the group of a post-norm block's attention (Gemma 2/3): its head writers become one writer, `Attn
    {layer}`, the normalised sum of the heads (hook_attn_out, after ln1_post); its q/k/v readers stay per head, and
    feed that writer. The norm mixes the heads, so no head's share of what enters the residual stream exists."""
    attention = _attention_node(layer)
    if group.kind == "writer":
        return HookGroup("writer", f"blocks.{layer}.hook_attn_out", (attention,), False)
    return HookGroup(group.kind, group.hook, tuple(replace(n, component=attention.name) for n in group.nodes), True)


def _leave_unchanged(value: torch.Tensor, hook) -> None:
    """A hook that changes nothing: holding it makes the bridge fire a scaled contribution's hook point."""
    return None


def _transformer_lens_version() -> str:
    from importlib.metadata import version

    return version("transformer-lens")


def _fork_parallel_mlp_input(block) -> None:
    """Gives the MLP of a parallel block whose attention and MLP share ln1 (Phi, Cohere, Falcon) its own copy of
    the block's input: `hook_mlp_in` fires on the residual entering the block, and the MLP takes ln1 of the value
    the hook returns. Without it the MLP would take the one normalised tensor the attention takes, and no hook
    would see (or patch) the MLP's input apart from the heads'.

    Idempotent: each adapter over the same bridge calls it.
    """
    if getattr(block, "_edgewise_mlp_fork", False):
        return
    ln1, mlp = block.submodules["ln1"], block.submodules["mlp"]
    norm = ln1.original_component  # the plain norm: calling the bridge's ln1 again would fire its hooks twice
    entering: list[torch.Tensor] = []

    def capture(_module, args) -> None:
        if args and isinstance(args[0], torch.Tensor):
            entering[:] = [args[0]]

    def fork(_module, args):
        if not block._read_use_hook_mlp_in() or not entering or not args:
            return None
        residual = entering.pop()
        return (norm(block.hook_mlp_in(residual)),) + tuple(args[1:])

    ln1.register_forward_pre_hook(capture)
    mlp.register_forward_pre_hook(fork)
    block._edgewise_mlp_fork = True
