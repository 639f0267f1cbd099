"""Attribution methods: edge attribution patching (EAP), its integrated-gradients variants, and exact patching.

All four score an edge by how much of the task's behaviour is lost when that edge alone is ablated: exact patching
measures it, the others estimate it from gradients. "Behaviour" B(mask) is the objective the config names:

    answer   task.answer_score: mean log-probability of the full model's answers (or mean output, numerically)
    metric   minus the task's faithfulness metric (KL, MSE, L2 to the full model's outputs)

Both are largest at the full model, so for every method the signed score is  B(full) - B(edge ablated)  or an
estimate of it: positive when the edge supports the behaviour. The metric's gradient is exactly zero at the full
model (a distance at its minimum), so the one-point estimate (EAP) needs `answer`; the paths of the IG variants
leave the full model, so they can use either.

The gradient methods read edges off the patching forward's mask. A reader's input there is
    input_v = bias_v + sum_u  m_(u->v) * out_u + (1 - m_(u->v)) * ablated_u,
so  d B / d m_(u->v) = (out_u - ablated_u) . d B / d input_v  for every edge at once, from one backward pass, in plain
and per-position graphs alike. At mask = ones this is EAP (Syed et al. 2023): the first-order estimate of
B(full) - B(edge ablated), i.e. (ablated_u - clean_u) . d L / d input_v with L = -B.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from ..errors import InvalidHyperparameterError
from ..graph import Graph
from ..patching import AblatedOutputs, answer_score, full_logits, patched_forward, record_writer_outputs
from ..tasks import Task
from .registry import register

OBJECTIVES = ("answer", "metric")


def _check(method: str, objective: str | None = None, **at_least_one: int) -> None:
    """Raises InvalidHyperparameterError for an unknown objective or a count below 1."""
    if objective is not None and objective not in OBJECTIVES:
        raise InvalidHyperparameterError(
            f"{method}: unknown objective {objective!r}; choose one of {', '.join(OBJECTIVES)}"
        )
    for name, value in at_least_one.items():
        if not isinstance(value, int) or value < 1:
            raise InvalidHyperparameterError(f"{method}: {name} must be an integer >= 1; got {value!r}")


def behaviour(task: Task, logits: torch.Tensor, reference: torch.Tensor, objective: str) -> torch.Tensor:
    """Returns B(logits): higher = closer to the full model's behaviour; [n_masks] for batched logits, else scalar.

    Args:
        task: the task whose answers or metric define the behaviour.
        logits: outputs [batch, pos, vocab], or [n_masks, batch, pos, vocab] from a batch of masks.
        reference: the full model's outputs [batch, pos, vocab].
        objective: `answer` (task.answer_score) or `metric` (minus the task's metric).

    Returns:
        B [n_masks], or a scalar for unbatched logits.

    Raises:
        InvalidHyperparameterError: `objective` is not one of `OBJECTIVES`.
    """
    if objective == "answer":
        return answer_score(task, logits, reference)
    if objective == "metric":
        return -task.metric(logits, reference, task.scored_positions)
    raise InvalidHyperparameterError(f"unknown objective {objective!r}; choose one of {', '.join(OBJECTIVES)}")


def mask_gradient(
    task: Task, graph: Graph, ablated: AblatedOutputs, mask: torch.Tensor, reference: torch.Tensor, objective: str
) -> torch.Tensor:
    """Returns d B / d mask at `mask` [n_edges]: (out_u - ablated_u) . d B / d input_v per edge, summed over the
    batch (and over positions in plain graphs); [n_edges].

    Args:
        task: the task, run on its clean inputs.
        graph: the graph whose mask is differentiated.
        ablated: what ablated edges carry.
        mask: the mask [n_edges] at which the gradient is taken.
        reference: the full model's outputs [batch, pos, vocab].
        objective: `answer` or `metric` (see `behaviour`).

    Returns:
        d B / d mask [n_edges].
    """
    mask = mask.detach().clone().requires_grad_(True)
    logits = patched_forward(task.adapter, graph, task.clean, ablated, mask)
    (grad,) = torch.autograd.grad(behaviour(task, logits, reference, objective), mask)
    return grad


def _finish(signed: torch.Tensor, absolute: bool) -> torch.Tensor:
    signed = signed.detach().to(torch.float64)
    return signed.abs() if absolute else signed


def _steps(steps: int, progress: bool, name: str):
    alphas = [k / steps for k in range(1, steps + 1)]  # right Riemann sum: the last point is the clean run
    return tqdm(alphas, desc=name, leave=False) if progress else alphas


# ----------------------------------------------------------------------------------------------------------------- EAP


@dataclass(frozen=True)
class EAPConfig:
    """Edge attribution patching (Syed et al. 2023).

    Raises:
        InvalidHyperparameterError: an unknown objective.
    """

    objective: str = "answer"  # `metric` (KL/MSE) has zero gradient at the full model: EAP would score every edge 0
    absolute: bool = True  # EAP papers rank edges by |attribution|: an edge that hurts the behaviour matters too

    def __post_init__(self):
        _check("eap", self.objective)


@register("eap", EAPConfig, published={"absolute": True})
def eap_scores(task: Task, graph: Graph, ablated: AblatedOutputs, config: EAPConfig, seed: int, progress: bool):
    """Edge attribution patching: (ablated_u - clean_u) . d loss / d input_v on the clean run, one backward pass.

    Args:
        task: the task whose behaviour is measured, on its clean inputs.
        graph: the graph whose edges are scored.
        ablated: what ablated edges carry.
        config: the method's hyperparameters.
        seed: unused: the method is deterministic.
        progress: show a progress bar.

    Returns:
        (torch.Tensor): The scores [n_edges] in float64, their absolute values with `absolute`:
            d B / d mask at mask = ones.
    """
    reference = full_logits(task)
    grad = mask_gradient(task, graph, ablated, torch.ones(graph.n_edges), reference, config.objective)
    return _finish(grad, config.absolute)


# ------------------------------------------------------------------------------------------------------ EAP-IG (inputs)


@dataclass(frozen=True)
class EAPIGInputsConfig:
    """EAP with integrated gradients over the input embeddings (Hanna et al. 2024, "EAP-IG").

    Raises:
        InvalidHyperparameterError: an unknown objective, or steps below 1.
    """

    steps: int = 5  # Hanna et al.'s default m = 5: enough for faithful circuits at five times EAP's cost
    objective: str = "answer"  # the paper scores logit differences; `metric` (e.g. KL) has gradients off the full model
    absolute: bool = True  # circuits are built from the edges of largest |score|, as in the paper

    def __post_init__(self):
        _check("eap-ig-inputs", self.objective, steps=self.steps)


def _input_writer_groups(graph: Graph) -> list[int]:
    """Returns the indices of the writer groups before the first reader: the embeddings (one group, or token and
    position embeddings when split)."""
    first_reader = next(i for i, g in enumerate(graph.groups) if g.kind == "reader")
    return [i for i in range(first_reader) if graph.groups[i].kind == "writer"]


def _interpolation(clean: torch.Tensor, difference: torch.Tensor, alpha: float, split: bool):
    """Returns a hook that replaces a writer's output by ablated + alpha * (clean - ablated) [batch, pos, d_model];
    a writer split into features records its nodes' outputs [batch, pos, node, d_model], whose sum the hook carries."""
    value_at_alpha = clean - (1 - alpha) * difference
    if split:
        value_at_alpha = value_at_alpha.sum(-2)

    def hook(value: torch.Tensor, hook) -> torch.Tensor:
        return value_at_alpha

    return hook


@register("eap-ig-inputs", EAPIGInputsConfig, published={"steps": 5, "absolute": True})
def eap_ig_inputs_scores(
    task: Task, graph: Graph, ablated: AblatedOutputs, config: EAPIGInputsConfig, seed: int, progress: bool
):
    """EAP-IG: (ablated_u - clean_u) . mean_k d loss / d input_v, embeddings interpolated from ablated to clean.

    Step k (k = 1..steps) runs the clean batch with the embedding writers' output replaced by
    ablated + (k / steps) * (clean - ablated); everything downstream is recomputed from it. The gradient at each
    reader's input is taken on that run, but is always dotted with the fixed clean-minus-ablated difference of the
    writer (computed on the real clean and ablated runs), as in Hanna et al. 2024, eq. 3. With steps = 1 this is EAP.
    Hanna et al.'s code sums k = 0..steps-1 instead (the corrupted end, not the clean one); the difference vanishes as
    steps grows. Under mean or zero ablation the embeddings start from their mean or zero value.

    How: on the interpolated run the mask gradient at ones is (out_u^k - ablated_u) . grad_v^k. Patching with the
    stand-in ablated values  out_u^k - (clean_u - ablated_u)  (out_u^k recorded on the same interpolated run, without
    gradients) turns it into (clean_u - ablated_u) . grad_v^k; at mask = ones they do not change the forward.

    Args:
        task: the task whose behaviour is measured, on its clean inputs.
        graph: the graph whose edges are scored.
        ablated: what ablated edges carry.
        config: the method's hyperparameters.
        seed: unused: the method is deterministic.
        progress: show a progress bar over the steps.

    Returns:
        (torch.Tensor): The scores [n_edges] in float64, their absolute values with `absolute`:
            (clean_u - ablated_u) . d B / d input_v, averaged over the steps.
    """
    adapter = task.adapter
    reference = full_logits(task)
    clean = record_writer_outputs(adapter, graph, task.clean)
    # Clean minus ablated output of every writer hook: [batch, pos, (head,) d_model]
    difference = {hook: value - ablated.values[hook] for hook, value in clean.items()}
    input_groups = [graph.groups[i] for i in _input_writer_groups(graph)]
    total = torch.zeros(graph.n_edges)
    for alpha in _steps(config.steps, progress, "eap-ig-inputs"):
        # Registered before patching's writer hooks on the same points, so those see the interpolated embeddings.
        with adapter.hooks(
            [(g.hook, _interpolation(clean[g.hook], difference[g.hook], alpha, g.split)) for g in input_groups]
        ):
            interpolated = record_writer_outputs(adapter, graph, task.clean)
            stand_in = AblatedOutputs(
                ablated.kind, {h: interpolated[h] - difference[h] for h in interpolated}, tuple(task.clean.shape)
            )
            total += mask_gradient(task, graph, stand_in, torch.ones(graph.n_edges), reference, config.objective)
    return _finish(total / config.steps, config.absolute)


# ------------------------------------------------------------------------------------------------- EAP-IG (activations)


@dataclass(frozen=True)
class EAPIGActivationsConfig:
    """Integrated gradients over the edge mask, from every edge ablated to the full model.

    Raises:
        InvalidHyperparameterError: an unknown objective, or steps below 1.
    """

    steps: int = 5  # as EAP-IG (inputs), so the two variants cost the same; raise it for completeness to hold tightly
    objective: str = "answer"  # off the full model `metric` has gradients too; `answer` keeps the scale of EAP
    absolute: bool = True  # rank by |attribution|, as for EAP and EAP-IG

    def __post_init__(self):
        _check("eap-ig-activations", self.objective, steps=self.steps)


@register("eap-ig-activations", EAPIGActivationsConfig, published={"steps": 5, "absolute": True})
def eap_ig_activations_scores(
    task: Task, graph: Graph, ablated: AblatedOutputs, config: EAPIGActivationsConfig, seed: int, progress: bool
):
    """IG over edges: mean over k of d B / d mask at mask = (k / steps) * ones, k = 1..steps.

    What is integrated: B along the straight line in mask space from all edges ablated (mask = 0, every reader sees
    only ablated outputs) to the full model (mask = 1). Every reader's input moves from its ablated to its clean
    value, each writer's output recomputed from its own interpolated inputs: the gradient of an edge at alpha is
    (out_u(alpha) - ablated_u) . d B / d input_v(alpha), and the factor (clean - ablated) of input-IG is already
    inside it. Completeness: the scores sum to B(full) - B(all ablated), up to the right Riemann sum's O(1/steps)
    error. With steps = 1 this is EAP. (Hanna et al.'s `ig-activations` instead interpolates one layer's outputs at a
    time and keeps the clean-minus-corrupted factor fixed.)

    Args:
        task: the task whose behaviour is measured, on its clean inputs.
        graph: the graph whose edges are scored.
        ablated: what ablated edges carry.
        config: the method's hyperparameters.
        seed: unused: the method is deterministic.
        progress: show a progress bar over the steps.

    Returns:
        (torch.Tensor): The scores [n_edges] in float64, their absolute values with `absolute`:
            d B / d mask averaged over the steps' masks.
    """
    reference = full_logits(task)
    total = torch.zeros(graph.n_edges)
    for alpha in _steps(config.steps, progress, "eap-ig-activations"):
        total += mask_gradient(task, graph, ablated, torch.full((graph.n_edges,), alpha), reference, config.objective)
    return _finish(total / config.steps, config.absolute)


# ---------------------------------------------------------------------------------------------------------- exact


@dataclass(frozen=True)
class ExactConfig:
    """Exact edge patching: one forward per edge, batched.

    Raises:
        InvalidHyperparameterError: an unknown objective, or chunk_size below 1.
    """

    objective: str = "metric"  # the task's own metric, as ACDC and EAP-IG's exact scores use
    absolute: bool = True  # rank by the size of the change; for a distance metric the change is already >= 0
    chunk_size: int = 64  # masks per patched forward: a whole small graph in a few forwards, bounded memory on large

    def __post_init__(self):
        _check("exact", self.objective, chunk_size=self.chunk_size)


@register("exact", ExactConfig)
def exact_scores(task: Task, graph: Graph, ablated: AblatedOutputs, config: ExactConfig, seed: int, progress: bool):
    """Exact patching: B(full) - B(edge alone ablated), all other edges kept: what the estimates approximate.

    Args:
        task: the task whose behaviour is measured, on its clean inputs.
        graph: the graph whose edges are scored.
        ablated: what ablated edges carry.
        config: the method's hyperparameters.
        seed: unused: the method is deterministic.
        progress: show a progress bar over the chunks.

    Returns:
        (torch.Tensor): The scores [n_edges] in float64, their absolute values with `absolute`:
            B(full) - B(edge ablated).
    """
    reference = full_logits(task)
    adapter = task.adapter
    scores = torch.empty(graph.n_edges, dtype=torch.float64)
    starts = range(0, graph.n_edges, config.chunk_size)
    with torch.no_grad():
        full = behaviour(
            task,
            patched_forward(adapter, graph, task.clean, ablated, torch.ones(graph.n_edges)),
            reference,
            config.objective,
        )
        for start in tqdm(starts, desc="exact", leave=False) if progress else starts:
            edges = torch.arange(start, min(start + config.chunk_size, graph.n_edges))
            masks = torch.ones(len(edges), graph.n_edges)
            masks[torch.arange(len(edges)), edges] = 0.0  # [chunk, n_edges]: mask i ablates edge start + i
            logits = patched_forward(adapter, graph, task.clean, ablated, masks)
            scores[edges] = (full - behaviour(task, logits, reference, config.objective)).to("cpu", torch.float64)
    return _finish(scores, config.absolute)
