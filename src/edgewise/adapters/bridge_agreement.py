"""Checks, when a bridge adapter is built, that the TransformerBridge computes what its Hugging Face model computes
and that its hooks fire as the edge graph places them: the bridge's faults are refused before any work, naming the
bridge, not found later as a patching error.

Four checks on one short batch, once per bridge:

    logits        the bridge's logits against the plain Hugging Face model's (built from the same config, sharing
                  the bridge's weights, with the attention a user gets: SDPA where the model has it): a bridge that
                  computes attention another way (Falcon's ALiBi, scaled with the scores in eager mode) differs.
    hook order    every hook of the graph fires exactly once, in the graph's order: a reader hook that never fires
                  (no per-head copy was made) would leave its edges unpatched.
    reader sums   every reader's value is the sum of the writers that feed it plus a constant (biases): the
                  residual decomposition the patching forward relies on.
    reader edits  an edit of each reader hook of the first and last block (and of every parallel MLP's) changes the
                  logits: a hook that fires on a copy the model never uses would make every patch through it a
                  no-op that the edge checks, going through the same hook, cannot see.
"""

from __future__ import annotations

import copy
import weakref
from itertools import chain
from typing import TYPE_CHECKING

import torch

from ..errors import BridgeDisagreesError

if TYPE_CHECKING:
    from .bridge import BridgeAdapter

# The largest logit difference from the plain model that counts as agreement, relative to the largest |logit| (when
# over 1), in float32 (coarser types allow 8 of their epsilons): float32 reorderings between the two forwards stay
# near 1e-6 on every agreeing architecture; a bridge that computes another function (Falcon's ALiBi scores) is off
# by 1e-2 or more.
LOGIT_AGREEMENT = 1e-4
# The largest spread (over batch and positions) of reader value minus the sum of its writers, relative to the sum of
# the magnitudes of the terms: biases are the same everywhere, float32 rounding of a sum of ~10-300 terms is ~1e-6.
READER_SUM_AGREEMENT = 1e-4

_VERIFIED: "weakref.WeakKeyDictionary[torch.nn.Module, bool]" = weakref.WeakKeyDictionary()


@torch.no_grad()
def verify_bridge(adapter: "BridgeAdapter") -> None:
    """Returns None once the adapter's bridge has passed the four checks (run once per bridge object).

    Args:
        adapter: a bridge adapter whose hooks are switched on.

    Raises:
        BridgeDisagreesError: the bridge's logits differ from the plain Hugging Face model's, a hook of the graph
            fires never, twice or out of order, or a reader is not the sum of its writers; the message names the
            hooks and the bridge's attention class.
    """
    bridge = adapter.model
    if _VERIFIED.get(bridge):
        return
    device = next(bridge.parameters()).device
    tokens = (torch.arange(12, device=device).reshape(2, 6) * 7 + 3) % int(bridge.cfg.d_vocab)  # [batch, pos]
    problems = _hook_problems(adapter, tokens)
    difference = _logit_difference(bridge, tokens)
    if difference is not None:
        problems.insert(0, difference)
    if problems:
        attn = type(bridge.blocks[0].attn).__name__
        positions = getattr(bridge.cfg, "positional_embedding_type", "standard")
        alibi = " (for Falcon: alibi=False)" if positions == "alibi" else ""
        raise BridgeDisagreesError(
            f"{adapter._model_name()}: TransformerBridge (transformer-lens {_version('transformer-lens')}, "
            f"transformers {_version('transformers')}) does not run this model as its edge graph needs: "
            + "; ".join(problems)
            + f". Its attention is {attn}, with {positions} positions. The cause is the bridge's wrapping of this "
            "configuration, so every patch through it would be wrong; edgewise refuses it. To use it: a "
            f"transformer-lens release that fixes this configuration, a configuration the bridge runs exactly{alibi}, "
            "or describe the model yourself with edgewise.DeclaredAdapter (docs/any-model.md)"
        )
    _VERIFIED[bridge] = True


def _logit_difference(bridge, tokens: torch.Tensor) -> str | None:
    """Returns a sentence on how far the bridge's logits are from the plain Hugging Face model's, or None if they
    agree (or no plain model can be built to compare with)."""
    plain = _plain_model(bridge)
    if plain is None:
        return None
    ours = bridge(tokens, return_type="logits")
    theirs = plain(tokens).logits.to(ours.dtype)
    difference = (ours - theirs).abs().max().item()
    if difference <= _agreement(LOGIT_AGREEMENT, ours.dtype) * max(1.0, theirs.abs().max().item()):
        return None
    return (
        f"its logits differ from the plain Hugging Face model's ({type(plain).__name__}, same weights, "
        f"{plain.config._attn_implementation} attention) by "
        f"{difference:.3g} (largest |logit| {theirs.abs().max().item():.3g})"
    )


def _plain_model(bridge) -> torch.nn.Module | None:
    """Returns the bridge's Hugging Face model without the bridge: built from its config on the meta device, then
    given the bridge's own parameters and buffers (shared, not copied). None where a tensor has no counterpart."""
    from transformers import AutoModelForCausalLM

    wrapped = bridge.original_model
    tensors = {}
    for name, tensor in chain(
        wrapped.named_parameters(remove_duplicate=False), wrapped.named_buffers(remove_duplicate=False)
    ):
        # the bridge nests each Hugging Face module under `_original_component` (or `original_component`)
        plain_name = ".".join(p for p in name.split(".") if p not in ("_original_component", "original_component"))
        tensors.setdefault(plain_name, tensor)
    # The bridge runs eager attention and asks for attention weights; the plain model runs as from_pretrained gives
    # it to a user (SDPA where the model has it, no attention weights), so a bridge that takes another path through
    # the modeling code (Falcon's ALiBi scores differ between the two) is compared with the model as used.
    config = copy.deepcopy(wrapped.config)
    config.output_attentions = False
    plain = None
    for attention in ("sdpa", "eager"):
        try:
            with torch.device("meta"):
                plain = AutoModelForCausalLM.from_config(config, attn_implementation=attention)
            break
        except (ValueError, TypeError, RuntimeError, ImportError):
            continue
    if plain is None:
        return None
    for name, tensor in chain(
        plain.named_parameters(remove_duplicate=False), plain.named_buffers(remove_duplicate=False)
    ):
        if name not in tensors:
            return None
        module_name, _, attr = name.rpartition(".")
        module = plain.get_submodule(module_name)
        if attr in module._parameters:
            module._parameters[attr] = torch.nn.Parameter(tensors[name], requires_grad=False)
        else:
            module._buffers[attr] = tensors[name]
    return plain.eval()


def _hook_problems(adapter: "BridgeAdapter", tokens: torch.Tensor) -> list[str]:
    """Returns sentences naming the graph's hooks that fire never, more than once or out of order, and the readers
    whose value is not the sum of their writers plus a constant; empty when all is well."""
    groups = adapter.hook_groups()
    fired: list[str] = []
    values: dict[str, torch.Tensor] = {}

    def record(value: torch.Tensor, hook) -> None:
        fired.append(hook.name)
        values[hook.name] = value.detach().clone()

    with adapter.hooks([(g.hook, record) for g in groups]):
        adapter.forward(tokens)
    expected = [g.hook for g in groups]
    problems = []
    never = [h for h in expected if h not in fired]
    if never:
        problems.append(f"hooks that never fired: {', '.join(never)}")
    twice = sorted({h for h in fired if fired.count(h) > 1})
    if twice:
        problems.append(f"hooks that fired more than once: {', '.join(twice)}")
    if not never and not twice and fired != expected:
        wrong = next(i for i, (a, b) in enumerate(zip(fired, expected)) if a != b)
        problems.append(
            f"hooks out of the graph's order: {fired[wrong]} fired where the graph places {expected[wrong]}"
        )
    if not problems:
        problems += _reader_sum_problems(groups, values)
    if not problems:
        problems += _ignored_reader_problems(adapter, groups, tokens)
    return problems


def _ignored_reader_problems(adapter: "BridgeAdapter", groups, tokens: torch.Tensor) -> list[str]:
    """Returns sentences naming the readers of the first and last block (and `Resid End`) whose hook fires but whose
    edited value does not reach the model: an edit of the hook's value (the first head's copy, for a per-head
    reader) must change the logits. The edge checks cannot see such a hook: the patch and its references go through
    the same dead hook and agree."""
    last = adapter.n_layers - 1
    probed = [
        g
        for g in groups
        if g.kind == "reader" and (g.hook.startswith(("blocks.0.", f"blocks.{last}.")) or g.fed_by is not None)
    ]
    plain = adapter.forward(tokens)
    ignored = []
    for g in probed:

        def edit(value: torch.Tensor, hook, per_head=g.per_head) -> torch.Tensor:
            value = value.clone()
            target = value[..., 0, :] if per_head else value
            # random, not a constant shift: a layer norm removes a vector's mean, so a constant would reach nothing
            noise = torch.randn(target.shape, generator=torch.Generator().manual_seed(0)).to(target)
            target.add_(noise * (target.std() + 0.1))
            return value

        with adapter.hooks([(g.hook, edit)]):
            if torch.equal(adapter.forward(tokens), plain):
                ignored.append(g.hook)
    if not ignored:
        return []
    return [
        f"hooks whose edited value never reaches the model (a patch there would change nothing): {', '.join(ignored)}"
    ]


def _reader_sum_problems(groups, values: dict[str, torch.Tensor]) -> list[str]:
    """Returns sentences naming the readers whose value minus the sum of their feeding writers is not the same at
    every batch row and position (biases are; anything else means the graph's edges are not what the model sums)."""
    problems = []
    outputs: list[tuple[str, torch.Tensor]] = []  # (writer component, output [batch, pos, d_model])
    for g in groups:
        value = values[g.hook]
        if g.kind == "writer":
            outputs += [(n.name, value[..., i, :] if g.per_head else value) for i, n in enumerate(g.nodes)]
            continue
        feeding = [out for component, out in outputs if g.fed_by is None or component in g.fed_by]
        total = torch.stack(feeding).sum(0)  # [batch, pos, d_model]
        scale = torch.stack(feeding).abs().sum(0).max().item() + value.abs().max().item()
        remainder = value - (total.unsqueeze(-2) if g.per_head else total)  # biases only, if the graph is right
        spread = (remainder - remainder[:1, :1]).abs().max().item()
        if spread > _agreement(READER_SUM_AGREEMENT, value.dtype) * max(1.0, scale):
            problems.append(
                f"reader {g.hook} is not the sum of the {len(feeding)} writers the graph feeds it (off by {spread:.3g})"
            )
    return problems


def _agreement(float32_tolerance: float, dtype: torch.dtype) -> float:
    """Returns a relative tolerance for `dtype`: the float32 one, or 8 epsilons of a coarser type (bfloat16: 0.06),
    whose rounding alone would fail the float32 one."""
    return max(float32_tolerance, 8 * torch.finfo(dtype).eps)


def _version(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "not installed"
