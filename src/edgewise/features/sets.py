"""Dictionary sets for a task beyond its built-in ones: sparse autoencoders loaded from SAELens folders
(`--features sae:DIR`) or trained here on the task's own writer outputs (`--features train`). Each set is stored on
the task (`task.dictionaries[name]`), so `task.graph(features=name)` splits the writers it covers."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import torch

from ..errors import DuplicateSAEError, GraphMismatchError, SAEFormatError, SAEHookError
from ..graph import Dictionary, HookGroup
from ..tasks import Task
from .sae import (
    DirectionRecovery,
    SAETrainingConfig,
    cached_sparse_autoencoder,
    direction_recovery,
    sae_statistics,
)
from .saelens import load_saelens

TRAINED = "train"


@torch.no_grad()
def writer_outputs(task: Task, groups: Sequence[HookGroup] | None = None) -> dict[str, torch.Tensor]:
    """Returns each writer's output on the task's clean and corrupted inputs, one row per position: [rows, d_model].

    Args:
        task: the task whose model runs on its clean, then its corrupted inputs.
        groups: the writer groups to record; None: those of the model's graph.

    Returns:
        Each writer's outputs [rows, d_model], one row per input and position, clean rows first, by writer name; each
            head of a per-head group is a writer of its own.
    """
    groups = [g for g in (task.adapter.hook_groups() if groups is None else groups) if g.kind == "writer"]
    parts: dict[str, list[torch.Tensor]] = {}

    def saver(group):
        def save(value: torch.Tensor, hook) -> None:
            for slot, node in enumerate(group.nodes):
                part = value[..., slot, :] if group.per_head else value
                parts.setdefault(node.name, []).append(part.flatten(0, -2))

        return save

    with task.adapter.hooks([(g.hook, saver(g)) for g in groups]):
        for tokens in (task.clean, task.corrupt):
            task.adapter.forward(tokens)
    return {name: torch.cat(rows) for name, rows in parts.items()}


def _active(dictionary: Dictionary, outputs: torch.Tensor) -> Dictionary:
    """Returns the dictionary restricted to the features active on `outputs` (the others move into the error)."""
    return dictionary.restricted(dictionary.active(outputs))


def add_sae_features(task: Task, folder: str | Path) -> str:
    """Returns the name (`sae:FOLDER`) of the dictionary set read from SAELens folders: `folder` itself or each of
    its sub-folders holding a cfg.json; each SAE splits the writer whose hook its cfg names (`hook_name`, and
    `hook_head_index` for one attention head), keeping the features active on the task's inputs.

    The set is stored as `task.dictionaries["sae:FOLDER"]`, replacing any set of that name. Every folder is loaded
    and matched to its writer before the model runs, so a bad folder costs no forward.

    Args:
        task: the task whose writers the SAEs split.
        folder: a SAELens folder, or a folder of SAELens folders.

    Returns:
        The set's name, for `task.graph(features=name)`.

    Raises:
        SAEFormatError: no SAELens folder is found, or one cannot be read or is not supported (`load_saelens`,
            including its SAEConfigError and NonFiniteSAEWeightsError).
        SAEHookError: an SAE's hook is not a writer of the model, its hook_head_index is missing on a per-head hook,
            set on one without heads or beyond the hook's heads, or its d_in is not the writer's width.
        DuplicateSAEError: two folders split the same writer (the message names both).
    """
    folder = Path(folder)
    found = [folder] if (folder / "cfg.json").exists() else sorted(p.parent for p in folder.glob("*/cfg.json"))
    if not found:
        raise SAEFormatError(
            f"{folder} holds no SAELens folder (a cfg.json beside sae_weights.safetensors, or sub-folders that do)"
        )
    adapter = task.adapter
    groups = [g for g in adapter.hook_groups() if g.kind == "writer"]
    # an attention layer whose heads are writers of their own, as one writer: for SAEs on its whole output
    whole = [g for g in map(adapter.whole_attention_group, range(adapter.n_layers)) if g is not None]
    saes, sources = {}, {}  # by writer: the SAE, and the folder it came from
    for path in found:
        sae, cfg = load_saelens(path)
        metadata = cfg.get("metadata", {})  # load_saelens returns SAELens 6's layout, hook fields under metadata
        _check_model(metadata.get("model_name"), adapter.model_source, path)
        hook = metadata.get("hook_name")
        writer = _writer_at(
            groups + whole,
            hook,
            None if hook is None else adapter.canonical_hook(hook),
            metadata.get("hook_head_index"),
            path,
        )
        if writer in sources:
            raise DuplicateSAEError(
                f"the SAEs in {sources[writer]} and {path} both split {writer} (hook {metadata.get('hook_name')!r}"
                f"{_head_text(metadata.get('hook_head_index'))}); a writer is split by one dictionary, so keep one "
                f"of the two folders in {folder}"
            )
        saes[writer], sources[writer] = sae, path
    wholes = {g.nodes[0].name: g for g in whole if g.nodes[0].name in saes}
    outputs = writer_outputs(task, groups + list(wholes.values()))
    dictionaries = {}
    for writer, sae in saes.items():
        if sae.d_in != outputs[writer].shape[-1]:
            raise SAEHookError(
                f"the SAE in {sources[writer]} reads {sae.d_in} dimensions, but {writer} writes "
                f"{outputs[writer].shape[-1]}; it was trained on another model's hook (d_in in its cfg.json must be "
                "the writer's width)"
            )
        dictionaries[writer] = _active(Dictionary.from_sae(sae.eval()), outputs[writer])
        if writer in wholes:  # the layer's heads give way to one attention writer in the feature graph
            layer = wholes[writer].nodes[0].layer
            heads = next(g.names for g in groups if g.per_head and g.nodes[0].layer == layer)
            dictionaries[writer] = dictionaries[writer].on_writer_group(wholes[writer], heads)
    name = f"sae:{folder}"
    task.dictionaries[name] = dictionaries
    return name


def _head_text(head: int | None) -> str:
    """Returns ", head N" for a per-head SAE, else ""."""
    return "" if head is None else f", head {head}"


def _check_model(trained_on: str | None, model: str | None, path: Path) -> None:
    """Raises SAEHookError when the SAE's cfg names the model it was trained on (model_name) and that is not the
    model loaded (its folder or hub name, compared by last path part, case aside); passes when either is unknown."""
    if trained_on is None or model is None or not isinstance(trained_on, str):
        return
    if Path(trained_on).name.lower() != Path(model).name.lower():
        raise SAEHookError(
            f"the SAE in {path} was trained on model {trained_on!r} (model_name in its cfg.json), but the model here "
            f"is {model!r}; its features describe that model's activations. Load SAEs trained on this model, or, if "
            f"{trained_on!r} is this model under another name, set model_name in its cfg.json to {model!r}"
        )


def _writer_at(groups, hook: str | None, canonical: str | None, head: int | None, path: Path) -> str:
    """Returns the writer whose output a hook (and head) carries, `canonical` being the hook's own name where `hook`
    is an alias; raises SAEHookError naming why a hook that is no writer's cannot be split (the residual stream, an
    attention layer's summed heads) and the writer hooks, or the heads the hook has."""
    for group in groups:
        if group.hook != canonical:
            continue
        n_heads = len(group.nodes)
        if not group.per_head:
            if head is not None:
                raise SAEHookError(
                    f"the SAE in {path} reads {hook} at hook_head_index={head}, but {hook} carries one output, not "
                    "one per head; set hook_head_index to null in its cfg.json"
                )
            return group.nodes[0].name
        if head is None:
            raise SAEHookError(
                f"the SAE in {path} reads {hook}, which holds one output per head; set "
                f"hook_head_index in its cfg.json to the head it splits (0..{n_heads - 1})"
            )
        if head >= n_heads:
            raise SAEHookError(
                f"the SAE in {path} reads head {head} of {hook}, but that hook has {n_heads} heads; set "
                f"hook_head_index in its cfg.json to one of 0..{n_heads - 1}"
            )
        return group.nodes[head].name
    hooks = ", ".join(g.hook for g in groups)
    heads = next((g.hook for g in groups if g.per_head), None)
    written = f"hook {hook!r}" + ("" if canonical == hook else f" (the model's {canonical})")
    if hook is not None and "hook_resid_" in hook:
        why = (
            "the residual stream there is the sum of every writer before it, not one writer's output, and edgewise "
            "splits writers into features; a residual SAE fits only where the stream is one writer, "
            "blocks.0.hook_resid_pre (the embeddings). Use SAEs on hook_mlp_out"
            + (f", or per head on {heads} with hook_head_index" if heads else ", hook_attn_out")
        )
    elif hook is not None and "hook_attn_out" in hook and heads is not None:
        why = (
            "that is the sum of a layer's heads (and the output bias), while this model's graph has one writer per "
            f"head; train per-head SAEs on {heads} (hook_head_index in cfg.json), or use a model whose attention "
            "layer is one writer (post-attention norms: Gemma 2 and 3)"
        )
    else:
        why = "it is not a writer of this model"
    raise SAEHookError(f"the SAE in {path} reads {written}: {why}. This model's writer hooks: {hooks}")


def add_trained_features(
    task: Task, expansion: int = 2, k: int = 1, seed: int = 0, decoder_bias: str = "zero", progress: bool = False
) -> dict[str, dict]:
    """Trains a TopK SAE (expansion x d_model features, k active) on every writer's outputs on the task's inputs
    (cached), stores them as the set `train`, and returns per writer its reconstruction statistics and, where the
    task has oracle features, how well the SAE recovers them (best cosine per oracle direction); where the oracle
    features have a ground truth, the trained ones get the truth of the oracle features they recover
    (`matched_truth`). `decoder_bias` "zero" (default) suits writer outputs that are sums of features (a
    component writes nothing at 0); "mean" centres them, as for a language model's residual stream.

    Writers that write nothing on the task's inputs get no SAE.

    Args:
        task: the task whose writers are split; its `dictionaries` (and `feature_ground_truth`) gain the set.
        expansion: features per dimension of d_model.
        k: features kept per input (at most expansion x d_model).
        seed: the training seed.
        decoder_bias: `zero` or `mean` (`SAETrainingConfig.decoder_bias`).
        progress: show training progress bars.

    Returns:
        Per writer: `fvu` (None where undefined), `l0`, `dead_fraction`, `n_features`, `n_active` (features active
            on the task's inputs, which the set keeps); with oracle features also `oracle_recovered` (the fraction
            of the oracle directions the writer writes that the SAE recovers) and `oracle_best_cosine` (per oracle
            feature label).

    Raises:
        GraphMismatchError: no writer writes anything on the task's inputs.
        InvalidHyperparameterError: expansion, k or decoder_bias is invalid (raised when the first SAE's config is
            built).
    """
    outputs = writer_outputs(task)
    oracle = task.dictionaries.get("oracle", {})
    dictionaries, report, matches = {}, {}, {}
    for writer, rows in outputs.items():
        if rows.abs().max() == 0:
            continue  # writes nothing on these inputs: no feature to find
        d_model = rows.shape[-1]
        config = SAETrainingConfig(
            expansion * d_model, "topk", min(k, expansion * d_model), seed=seed, decoder_bias=decoder_bias
        )
        sae = cached_sparse_autoencoder(rows, config, progress=progress)
        dictionaries[writer] = _active(Dictionary.from_sae(sae), rows)
        stats = sae_statistics(sae, rows)
        report[writer] = {
            "fvu": None if math.isnan(stats.fvu) else stats.fvu,
            "l0": stats.l0,
            "dead_fraction": stats.dead_fraction,
            "n_features": sae.d_sae,
            "n_active": dictionaries[writer].n_features,
        }
        if writer in oracle:
            # directions the writer writes on these inputs: above a tenth of its largest, so interference in a
            # compressed model (a direction read through its neighbours, ~1e-2) does not count as writing
            scale = oracle[writer].encode(rows).abs().max().item()
            used = oracle[writer].active(rows, tolerance=max(0.1 * scale, 1e-6))
            recovery: DirectionRecovery = direction_recovery(sae.decoder, oracle[writer].decoder[used])
            report[writer]["oracle_recovered"] = recovery.fraction_recovered
            report[writer]["oracle_best_cosine"] = dict(
                zip([oracle[writer].labels[i] for i in used], recovery.best_cosine)
            )
            kept = {index: label for label, index in zip(dictionaries[writer].labels, dictionaries[writer].indices)}
            matches.update(
                {  # oracle feature name -> the trained feature that recovers it
                    f"{writer}[{oracle[writer].labels[i]}]": f"{writer}[{kept[feature]}]"
                    for i, feature, cosine in zip(used, recovery.best_feature, recovery.best_cosine)
                    if cosine >= recovery.threshold and feature in kept
                }
            )
    if not dictionaries:
        raise GraphMismatchError(f"no writer of task {task.name} writes anything on its inputs; nothing to train on")
    task.dictionaries[TRAINED] = dictionaries
    if "oracle" in task.feature_ground_truth:
        task.feature_ground_truth[TRAINED] = matched_truth(task.feature_ground_truth["oracle"], matches)
    return report


def matched_truth(oracle_truth: list[tuple[str, str]], matches: dict[str, str]) -> list[tuple[str, str]]:
    """Returns the feature-level truth of trained features: a trained feature that recovers an oracle feature (best
    cosine >= 0.9) inherits that feature's true edges; the others, and every error node, have none. A method that
    finds the circuit through unmatched features or the error node is scored down: the SAE missed the feature.

    Args:
        oracle_truth: the oracle features' true edges, as (feature node, reader) names.
        matches: oracle feature node name -> the trained feature node name that recovers it.

    Returns:
        The trained features' true edges, sorted.
    """
    return sorted({(matches[feature], reader) for feature, reader in oracle_truth if feature in matches})
