"""Subnetwork probing: learn a hard-concrete gate per edge (`edge-sp`) or per writer node (`node-sp`).

Each step samples gates (the last `noise_free_tail` of the steps use the noise-free gates instead), runs the
edge-masked forward (an ablated edge carries the ablation's value) and minimises

    faithfulness(masked outputs, full outputs) + sparsity term,

where faithfulness is the task's metric (KL to the full model for categorical tasks, squared error for numerical
ones). The sparsity term is either

- fixed (`lambda_`): lambda * the *mean* expected L0 over gates, as ACDC's SP does. The mean, not the sum, so one
  lambda means the same trade-off on graphs of any size (a plain and a per-position graph, node and edge gates);
  under Adam a gate with no faithfulness signal moves at the learning rate whatever the penalty's scale; or
- a Lagrangian (`target_edges`), as Edge Pruning does:  l1 * (s - t) + l2 * (s - t)^2  with s the expected kept
  fraction of edges and t a target that falls linearly from 1 to target_edges / n_edges over a warm-up; l1 and l2
  are trained by gradient ascent, so the constraint tightens until it holds. It constrains the *expected* count;
  the deterministic circuit meets the target when at least that many edges carry signal (gates without signal tie,
  see below, and open or close together).

`node-sp` is the ACDC paper's version: one gate per writer node (per writer and position in per-position graphs),
shared by all of the node's outgoing edges. Both variants run the same training; they differ only in which gate
each edge reads. Scores are the learned log_alpha per edge (node-sp: the writer's); `deterministic_circuit` keeps
the edges whose noise-free gate is above 0.5.

Every gate starts at the same value (ACDC's init) and the seed drives only the gate noise, so gates that never get a
faithfulness gradient (edges that are exact no-ops under the ablation) follow identical trajectories and end tied:
the scores say "no evidence" rather than ranking such edges at random.

A step that meets a NaN or infinity stops training with an error naming its cause (`check_step`: the metric's value or
gradient, or the sparsity hyperparameters), before NaN gates would reach the masked forward.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from ..errors import InvalidHyperparameterError, NonFiniteMetricError
from ..graph import Circuit, EdgeScores, Graph, ScoreTrajectory
from ..patching import AblatedOutputs, SparseMasking, check_memory, faithfulness_loss, full_logits
from ..tasks import Task
from . import hard_concrete
from .registry import get_method, register

GATE_DTYPE = torch.float32  # of log_alpha and the Lagrangian multipliers


@dataclass(frozen=True)
class SubnetworkProbingConfig:
    """Hyperparameters of edge-sp and node-sp; defaults are tuned for tracr-sized graphs on CPU.

    Raises:
        InvalidHyperparameterError: a value out of its range (steps or n_samples below 1, a fraction outside
            [0, 1], init_gate not strictly between 0 and 1, an lr that is not positive or would overflow the float32
            gates, a negative lambda_, target_edges or init_spread, candidates below 1, or SP as its own pre-filter
            or warm start).
        UnknownMethodError: `prefilter` or `init` names no registered method.
    """

    lambda_: float = 0.1  # weight of the mean expected L0 (fixed-lambda mode); sweep it with `lambda_sweep`
    target_edges: int | None = None  # kept-edge target: replaces lambda_ by Edge Pruning's Lagrangian
    # ACDC trains 3000-10000 epochs at lr 1e-3. At lr 0.02 the tracr circuits settle by step 80; the Lagrangian's
    # multipliers need longer to bring the expected count to the target. None: 200 with lambda_, 500 with target_edges.
    steps: int | None = None
    lr: float = 0.02  # Adam on log_alpha: a no-signal gate falls ~lr a step; 0.05+ broke reverse's zero chain
    init_gate: float = 0.9  # ACDC's start: every deterministic gate at 0.9 (log_alpha = log 5)
    n_samples: int = 4  # masks per step, in one forward; ACDC samples one, which lost reverse's chain (zero)
    warmup: float = 0.5  # fraction of the steps over which the Lagrangian target ramps down to target_edges
    multiplier_lr: float = 0.1  # plain gradient ascent on l1, l2 (Adam on them overshot and lost tracr circuits)
    # Fraction of the last steps trained on the noise-free gates, one forward each: an edge that matters only while
    # other gates are noisy (reverse's A3.0.Q half score on BOS, zero ablation) then loses its gate to the penalty.
    # Half ranked the tracr truths as well as a quarter did, at less cost.
    noise_free_tail: float = 0.5
    # Attribution pre-filter, as hybrid methods run on large (feature) graphs: score every edge with `prefilter`
    # (eap, eap-ig-inputs, exact, ...) first and train gates on its top `candidates` edges only; the others stay
    # ablated and rank below every candidate, in the pre-filter's order. None: gates on every edge.
    candidates: int | None = None
    prefilter: str = "eap"
    # Warm start, as the strong MIB 2025 entries start edge masks from EAP-IG: None starts every gate at init_gate
    # (ACDC's uniform start); a method's name (eap, eap-ig-inputs, ...) starts each gate from its scores' rank, the
    # best at init_gate's log_alpha + init_spread and the worst at - init_spread (node-sp: a node's best edge)
    init: str | None = None
    init_spread: float = 2.0
    # Which patching forward trains a pre-filtered run: "dense" (every edge's products, the masks gathered from the
    # gates) or "sparse" (`patching.SparseMasking`: products over the gated edges only, the ablated rest folded into
    # constants). Both are exact; sparse measured 0.62x a dense all-edge step on dyck2's per-position feature graph
    # but 1.3x on its plain one (benchmarks/feature_scale.py), so it is chosen, not assumed.
    patching: str = "dense"

    def __post_init__(self):
        if self.steps is None:
            object.__setattr__(self, "steps", 200 if self.target_edges is None else 500)
        if self.steps < 1 or self.n_samples < 1:
            raise InvalidHyperparameterError(
                f"steps and n_samples must be at least 1, got {self.steps} and {self.n_samples}"
            )
        for name in ("warmup", "noise_free_tail"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise InvalidHyperparameterError(
                    f"{name} is a fraction of the steps in [0, 1], got {getattr(self, name)}"
                )
        if not 0.0 < self.init_gate < 1.0:
            raise InvalidHyperparameterError(
                f"init_gate={self.init_gate} must lie strictly between 0 and 1 (a gate at 0 or 1 has an infinite "
                "log_alpha); ACDC starts at 0.9"
            )
        # A first step beyond the float32 range cannot be taken (torch raises an overflow RuntimeError): Adam's is
        # lr / (1 - beta1) = 10 lr (its bias correction), plain gradient ascent's is multiplier_lr. Below that, Adam's
        # steps shrink once the gates saturate, so no lr drives them to infinity.
        for name, first_step in (("lr", 10), ("multiplier_lr", 1)):
            value, limit = getattr(self, name), torch.finfo(GATE_DTYPE).max / first_step
            if not 0 < value < limit:
                raise InvalidHyperparameterError(
                    f"{name}={value} must be a number > 0 and below {limit:.3g}, where its first step would overflow "
                    f"the float32 gates; the default is {getattr(type(self), name)}"
                )
        if not self.lambda_ >= 0:
            raise InvalidHyperparameterError(f"lambda_={self.lambda_} must be a number >= 0 (0: no sparsity penalty)")
        if self.target_edges is not None and self.target_edges < 0:
            raise InvalidHyperparameterError(f"target_edges={self.target_edges} must be >= 0")
        if self.candidates is not None and self.candidates < 1:
            raise InvalidHyperparameterError(f"candidates={self.candidates} must be at least 1 (None: every edge)")
        for name in ("prefilter", "init"):
            if getattr(self, name) is not None and get_method(getattr(self, name)).config is SubnetworkProbingConfig:
                raise InvalidHyperparameterError(
                    f"{name}={getattr(self, name)!r} would train SP to start SP; use an attribution method (eap, "
                    "eap-ig-inputs, exact)"
                )
        if self.patching not in ("dense", "sparse"):
            raise InvalidHyperparameterError(f"patching={self.patching!r} must be 'dense' or 'sparse'")
        if self.patching == "sparse" and self.candidates is None:
            raise InvalidHyperparameterError(
                "patching='sparse' follows the gated edges of a pre-filtered run; set candidates=N (with every edge "
                "gated the dense forward is the one that follows them)"
            )
        if not self.init_spread >= 0:
            raise InvalidHyperparameterError(f"init_spread={self.init_spread} must be a number >= 0")


TRAJECTORY_POINTS = 20  # checkpoints of the gates' log_alpha recorded along training, besides the initial one


def train_gates(
    task: Task,
    graph: Graph,
    ablated: AblatedOutputs,
    gate_of_edge: torch.Tensor,
    n_gates: int,
    config: SubnetworkProbingConfig,
    seed: int,
    progress: bool = False,
    initial: torch.Tensor | None = None,
) -> tuple[torch.Tensor, tuple[int, ...], torch.Tensor]:
    """Returns the trained log_alpha [n_gates] and its trajectory: the steps recorded (0 = before training, the
    last = config.steps) and log_alpha at each [n_checkpoints, n_gates]. Edge e is gated by gate gate_of_edge[e]
    ([n_edges] long), or is always ablated where gate_of_edge[e] == n_gates (an edge the pre-filter left out).

    Args:
        task: the task whose faithfulness metric (or objective) is minimised.
        graph: the graph whose edges are masked.
        ablated: what ablated edges carry.
        gate_of_edge: each edge's gate [n_edges], or n_gates for an edge that stays ablated.
        n_gates: the number of gates.
        config: the training hyperparameters.
        seed: seeds the generator of the gate noise.
        progress: show a progress bar with the metric and the number of kept edges.
        initial: each gate's log_alpha at the start [n_gates] (a warm start); None: every gate at init_gate.

    Returns:
        The trained log_alpha [n_gates], the recorded steps, and log_alpha at each [n_checkpoints, n_gates].

    Raises:
        InvalidHyperparameterError: target_edges is above the graph's number of edges, or the sparsity term or its
            gradient becomes NaN or infinite.
        InsufficientMemoryError: the patched forward's buffers would not fit in the memory available (before any
            step).
        NonFiniteMetricError: the metric, or its gradient, becomes NaN or infinite during training.
    """
    if config.target_edges is not None and not 0 <= config.target_edges <= graph.n_edges:
        raise InvalidHyperparameterError(
            f"target_edges must lie in [0, {graph.n_edges}] for this graph, got {config.target_edges}"
        )
    check_memory(  # n_samples masks a step, each taking gradients: the largest forward training runs
        graph,
        ablated,
        task.clean,
        task.adapter.n_positions(task.clean),
        config.n_samples,
        True,
        f"subnetwork probing on {task.name} ({graph.n_edges} edges) with n_samples={config.n_samples}",
    )
    generator = torch.Generator().manual_seed(seed)
    start = hard_concrete.log_alpha_for(config.init_gate)
    log_alpha = (
        torch.full((n_gates,), start, dtype=GATE_DTYPE) if initial is None else initial.to(GATE_DTYPE).clone()
    ).requires_grad_(True)
    optimizer = torch.optim.Adam([log_alpha], lr=config.lr)
    multipliers = torch.zeros(2, dtype=GATE_DTYPE, requires_grad=True)  # l1, l2 of the Lagrangian
    ascent = torch.optim.SGD([multipliers], lr=config.multiplier_lr, maximize=True)
    full = full_logits(task)
    sparse = _sparse_masking(task, graph, ablated, gate_of_edge, n_gates) if config.patching == "sparse" else None
    warmup_steps = max(1, round(config.warmup * config.steps))
    tail_start = config.steps - round(config.noise_free_tail * config.steps)
    every = max(1, config.steps // TRAJECTORY_POINTS)
    steps, history = [0], [log_alpha.detach().clone()]
    bar = tqdm(range(config.steps), disable=not progress, desc="subnetwork probing", leave=False)
    for step in bar:
        if step >= tail_start:
            gates = hard_concrete.deterministic_mask(log_alpha).unsqueeze(0)
        else:
            gates = hard_concrete.sample_mask(log_alpha, config.n_samples, generator)  # [samples, gates]
        if sparse is None:
            masks = torch.cat([gates, gates.new_zeros(len(gates), 1)], dim=1)[:, gate_of_edge]  # [samples, edges]
            faithfulness = faithfulness_loss(task, graph, ablated, masks, reference=full).mean()
        else:  # the gated edges' forward: its cost follows them, not the graph
            faithfulness = task.metric(sparse.forward(task.clean, gates), full, task.scored_positions).mean()
        target = 1 - min(1.0, (step + 1) / warmup_steps) * (1 - (config.target_edges or 0) / graph.n_edges)
        sparsity_of = functools.partial(
            sparsity_term, config=config, gate_of_edge=gate_of_edge, multipliers=multipliers, target=target
        )
        sparsity = sparsity_of(log_alpha)
        log_alpha.grad = multipliers.grad = None  # what zero_grad does, without its profiler records (1% of a step)
        (faithfulness + sparsity).backward()
        check_step(step, task, config, faithfulness, sparsity, sparsity_of, log_alpha)
        optimizer.step()
        if config.target_edges is not None:
            ascent.step()
        if (step + 1) % every == 0 or step + 1 == config.steps:
            steps.append(step + 1)
            history.append(log_alpha.detach().clone())
        if progress:
            kept_edges = int(
                (log_alpha.detach() > hard_concrete.KEEP_THRESHOLD)[gate_of_edge[gate_of_edge < n_gates]].sum()
            )
            bar.set_postfix({task.metric.name: f"{faithfulness.item():.4g}", "kept_edges": kept_edges})
    return log_alpha.detach(), tuple(steps), torch.stack(history)


def sparsity_term(
    log_alpha: torch.Tensor,
    config: SubnetworkProbingConfig,
    gate_of_edge: torch.Tensor,
    multipliers: torch.Tensor,
    target: float,
) -> torch.Tensor:
    """Returns the step's sparsity term: lambda_ x the expected L0, or with target_edges the Lagrangian of the
    expected kept fraction of edges against this step's target.

    Args:
        log_alpha: the gates' parameters [n_gates].
        config: lambda_ and target_edges.
        gate_of_edge: each edge's gate [n_edges], or n_gates for an edge that stays ablated (it counts as closed).
        multipliers: the Lagrangian's l1 and l2 [2].
        target: this step's target for the kept fraction of edges.

    Returns:
        The sparsity term, a scalar.
    """
    l0 = hard_concrete.expected_l0(log_alpha)
    if config.target_edges is None:
        return config.lambda_ * l0.mean()
    gap = torch.cat([l0, l0.new_zeros(1)])[gate_of_edge].mean() - target
    return multipliers[0] * gap + multipliers[1] * gap**2


def check_step(
    step: int,
    task: Task,
    config: SubnetworkProbingConfig,
    faithfulness: torch.Tensor,
    sparsity: torch.Tensor,
    sparsity_of: Callable[[torch.Tensor], torch.Tensor],
    log_alpha: torch.Tensor,
) -> None:
    """Raises the error that names the cause when a training step met a NaN or infinity, before the optimizer would
    make the gates NaN: the task's metric, its value or its gradient (NonFiniteMetricError), or the sparsity term
    (InvalidHyperparameterError). Finite gradients keep the gates finite under the config's bound on lr. Only a
    non-finite gradient pays for a second look: the sparsity term's own gradient (no forward) says which it was.

    Args:
        step: the step's index, from 0.
        task: the task, for the message.
        config: the training hyperparameters, for the message.
        faithfulness: the step's faithfulness loss, a scalar.
        sparsity: the step's sparsity term, a scalar.
        sparsity_of: the step's sparsity term as a function of log_alpha.
        log_alpha: the gates' parameters [n_gates], with the step's gradient.

    Raises:
        NonFiniteMetricError: the metric's value or its gradient is NaN or infinite.
        InvalidHyperparameterError: the sparsity term or its gradient is NaN or infinite.
    """
    at = f"at step {step + 1} of {config.steps} (lr={config.lr})"
    metric = f"metric {task.metric.name!r} of task {task.name}"
    if not bool(faithfulness.isfinite()):  # the step's one device sync: the gates and their gradient are on the CPU
        raise NonFiniteMetricError(
            f"subnetwork probing: {metric} is {faithfulness.item()} on the sampled, partly ablated masks {at}; make "
            "the metric return a finite distance for any outputs"
        )
    finite_sparsity = bool(sparsity.isfinite())
    if finite_sparsity and bool(log_alpha.grad.isfinite().all()):
        return
    if finite_sparsity:
        gates = log_alpha.detach().requires_grad_(True)
        (sparsity_gradient,) = torch.autograd.grad(sparsity_of(gates), gates)
        finite_sparsity = bool(sparsity_gradient.isfinite().all())
    if not finite_sparsity:
        raise InvalidHyperparameterError(
            f"subnetwork probing: the sparsity term or its gradient is NaN or infinite {at}, with lambda_="
            f"{config.lambda_}, target_edges={config.target_edges}, multiplier_lr={config.multiplier_lr}; lower "
            "lambda_ or multiplier_lr"
        )
    raise NonFiniteMetricError(
        f"subnetwork probing: the gradient of {metric} is NaN or infinite {at} though its value is finite: it is "
        "not differentiable at these outputs (e.g. a square root of a zero distance); train on a smooth metric "
        "such as kl or mse"
    )


def _sparse_masking(
    task: Task, graph: Graph, ablated: AblatedOutputs, gate_of_edge: torch.Tensor, n_gates: int
) -> SparseMasking | None:
    """Returns the sparse forward of a run whose gates each belong to one edge and whose other edges stay ablated
    (edge-sp after a pre-filter), or None where every edge is gated or edges share gates (node-sp): the dense forward
    then costs no more."""
    gated_edges = torch.nonzero(gate_of_edge < n_gates).flatten()
    if len(gated_edges) == graph.n_edges or len(gated_edges) != n_gates:
        return None
    gated = torch.empty(n_gates, dtype=torch.long)
    gated[gate_of_edge[gated_edges]] = gated_edges  # gate i's edge
    return SparseMasking(task.adapter, graph, ablated, gated, torch.zeros(graph.n_edges))


def warm_start(gate_scores: torch.Tensor, config: SubnetworkProbingConfig) -> torch.Tensor:
    """Returns each gate's starting log_alpha from attribution scores: by rank of |score| (ties sharing their mean
    rank), linearly from init_gate's log_alpha - init_spread (the lowest) to + init_spread (the highest).

    Args:
        gate_scores: one attribution score per gate [n_gates].
        config: gives init_gate and init_spread.

    Returns:
        The starting log_alpha [n_gates].
    """
    magnitude = gate_scores.abs().double()
    ordered = magnitude.sort().values
    below = torch.searchsorted(ordered, magnitude)  # gates scoring strictly less
    ties = torch.searchsorted(ordered, magnitude, right=True) - below - 1  # other gates scoring the same
    fraction = (below + ties / 2) / max(len(magnitude) - 1, 1)  # [n_gates] in [0, 1]
    return hard_concrete.log_alpha_for(config.init_gate) + config.init_spread * (2 * fraction - 1)


def _starting_scores(task, graph, ablated, config: SubnetworkProbingConfig, progress: bool) -> dict[str, torch.Tensor]:
    """Returns the scores [n_edges] of the pre-filter (with candidates) and of the warm start (with init), by
    method name: each method runs once, also when it serves both."""
    names = {*([config.prefilter] if config.candidates is not None else []), *([config.init] if config.init else [])}
    return {name: get_method(name).scores(task, graph, ablated, progress=progress) for name in sorted(names)}


def node_gates(graph: Graph) -> tuple[torch.Tensor, int]:
    """Returns (gate of each edge [n_edges], number of gates) for one gate per writer (per writer and position).

    Args:
        graph: the graph whose edges share their writer's gate.

    Returns:
        Each edge's gate index [n_edges], and the number of gates: the writers (times the positions in a
            per-position graph).
    """
    if not graph.per_position:
        return graph.edge_writer, len(graph.writers)
    return graph.edge_writer * graph.n_positions + graph.edge_position, len(graph.writers) * graph.n_positions


def deterministic_circuit(scores: EdgeScores, k: int | None = None) -> Circuit:
    """Returns the edges of edge-sp or node-sp scores whose noise-free gate is above 0.5 (log_alpha above 0): the
    circuit SP reports, whatever size `k` asks for.

    Args:
        scores: edge-sp or node-sp scores (log_alpha per edge).
        k: ignored: the gates decide the circuit.

    Returns:
        The circuit of the edges scoring above `hard_concrete.KEEP_THRESHOLD`.
    """
    return Circuit.from_mask(
        scores.graph,
        scores.scores,
        hard_concrete.KEEP_THRESHOLD,
        description=f"{scores.method}: deterministic gate > 0.5",
        task=scores.task,
    )


# Edge-level SP as auto-circuit's registry runs it ("Subnetwork Edge Probing", prune_algos.py): Adam lr 0.1, 200
# epochs, lambda 0.5, one sample per step (docs/presets.md).
AUTO_CIRCUIT_SEP = {"lr": 0.1, "steps": 200, "lambda_": 0.5, "n_samples": 1, "init_gate": 0.9, "noise_free_tail": 0.0}
# Node-level SP as the ACDC paper ran it (subnetwork_probing/train.py): Adam lr 1e-3, 10000 epochs, one sample per
# step, gates at 0.9; lambda swept 1e-3..1 on a log scale, of which 10**-1.5 (0.032) is the middle (docs/presets.md).
ACDC_SP = {"lr": 1e-3, "steps": 10000, "lambda_": 10**-1.5, "n_samples": 1, "init_gate": 0.9, "noise_free_tail": 0.0}


@register(
    "edge-sp", SubnetworkProbingConfig, circuit=deterministic_circuit, published=AUTO_CIRCUIT_SEP, objectives=True
)
def edge_subnetwork_probing(task, graph, ablated, config: SubnetworkProbingConfig, seed: int, progress: bool):
    """Subnetwork probing with one hard-concrete gate per edge; scores are the learned log_alpha, and their
    trajectory is log_alpha along training (an edge the pre-filter left out keeps its final score throughout).

    With `candidates`, the `prefilter` method (under its default config) scores every edge first and gates are
    trained on its top `candidates` edges by |score| only; the others stay ablated and score below every
    candidate, in the pre-filter's order. With `patching="sparse"` training runs the sparse forward
    (`patching.SparseMasking`), whose products follow the gated edges.

    Args:
        task (Task): the task whose faithfulness metric (or objective) is minimised.
        graph (Graph): the graph whose edges are gated.
        ablated (AblatedOutputs): what ablated edges carry.
        config: the training hyperparameters.
        seed: seeds the gate noise.
        progress: show progress bars.

    Returns:
        (tuple[torch.Tensor, ScoreTrajectory]): The scores [n_edges] and their trajectory.
    """
    if config.candidates is not None and config.candidates > graph.n_edges:
        raise InvalidHyperparameterError(
            f"candidates={config.candidates} exceeds the graph's {graph.n_edges} edges; leave it unset to gate every "
            "edge, or give at most that many"
        )
    scores_of = _starting_scores(task, graph, ablated, config, progress)
    start = scores_of.get(config.init)
    if config.candidates is None or config.candidates == graph.n_edges:
        initial = None if start is None else warm_start(start, config)
        log_alpha, steps, history = train_gates(
            task, graph, ablated, torch.arange(graph.n_edges), graph.n_edges, config, seed, progress, initial
        )
        return log_alpha, ScoreTrajectory(steps, history)
    prior = scores_of[config.prefilter].abs()
    order = prior.argsort(descending=True, stable=True)  # [n_edges]: the pre-filter's ranking
    candidates = order[: config.candidates]
    gate_of_edge = torch.full((graph.n_edges,), config.candidates)
    gate_of_edge[candidates] = torch.arange(config.candidates)
    initial = None if start is None else warm_start(start[candidates], config)
    log_alpha, steps, history = train_gates(
        task, graph, ablated, gate_of_edge, config.candidates, config, seed, progress, initial
    )
    # Left-out edges rank below every candidate and below the keep threshold (they stayed ablated all run, so no
    # circuit may hold them), one apart in the pre-filter's order; equal priors share a score
    left_out = order[config.candidates :]
    descending = -prior[left_out]  # ascending, as searchsorted needs
    scores = torch.empty(graph.n_edges, dtype=log_alpha.dtype)
    scores[candidates] = log_alpha
    ceiling = torch.clamp(log_alpha.min(), max=hard_concrete.KEEP_THRESHOLD)
    scores[left_out] = ceiling - 1 - torch.searchsorted(descending, descending).to(log_alpha.dtype)
    trajectory = scores.expand(len(steps), -1).clone()
    trajectory[:, candidates] = history
    return scores, ScoreTrajectory(steps, trajectory)


@register("node-sp", SubnetworkProbingConfig, circuit=deterministic_circuit, published=ACDC_SP, objectives=True)
def node_subnetwork_probing(task, graph, ablated, config: SubnetworkProbingConfig, seed: int, progress: bool):
    """Subnetwork probing with one gate per writer node (ACDC's SP); each edge scores its writer's log_alpha (and
    has its trajectory).

    Args:
        task (Task): the task whose faithfulness metric (or objective) is minimised.
        graph (Graph): the graph whose writers are gated.
        ablated (AblatedOutputs): what ablated edges carry.
        config: the training hyperparameters; `candidates` does not apply (a node's edges share one gate).
        seed: seeds the gate noise.
        progress: show a progress bar.

    Returns:
        (tuple[torch.Tensor, ScoreTrajectory]): The scores [n_edges] and their trajectory.

    Raises:
        InvalidHyperparameterError: `candidates` is set.
    """
    if config.candidates is not None:
        raise InvalidHyperparameterError(
            f"node-sp gates whole nodes, so candidates={config.candidates} (an edge pre-filter) does not apply; "
            "leave it unset, or use edge-sp"
        )
    gate_of_edge, n_gates = node_gates(graph)
    initial = None
    if config.init is not None:  # a node starts from its best edge's score
        edge_scores = _starting_scores(task, graph, ablated, config, progress)[config.init].abs()
        best = torch.zeros(n_gates, dtype=edge_scores.dtype).scatter_reduce(0, gate_of_edge, edge_scores, "amax")
        initial = warm_start(best, config)
    log_alpha, steps, history = train_gates(
        task, graph, ablated, gate_of_edge, n_gates, config, seed, progress, initial
    )
    return log_alpha[gate_of_edge], ScoreTrajectory(steps, history[:, gate_of_edge])
