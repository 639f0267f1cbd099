"""Optimal ablation (Li & Janson 2024): each writer node is replaced by the constant that best keeps the task's
behaviour when that node alone is removed, the rest of the model intact.

Resample, mean and zero ablation each fill a removed node with a value chosen without looking at the task, and a
circuit found under one of them partly describes that choice: a node whose mean is far from any value it takes on
the task looks necessary under mean ablation only because the mean itself is off-distribution. Optimal ablation
asks instead for the constant c minimising the task's faithfulness loss E_x[L(model with node := c)]: what is
left of the node's effect is then what no constant can replace, which is the information it carries.

Each node's constant is found by gradient descent from the node's mean output, in steps scaled by the spread of its
outputs. Nodes are learned side by side: the clean batch is repeated once per node in a chunk, and copy r ablates
only its own node, so one forward computes every node's loss with the rest of the model intact, and each
constant's gradient comes from its own copy alone (the copies never mix). A per-position graph learns one constant
per node and position (its nodes are ablated at each position separately by its edges); a feature node's constant
replaces its contribution (activation x decoder row) in the writer's output.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from ..errors import UsageError
from ..graph import Graph, HookGroup, node_outputs
from ..tasks import Task
from .ablation import AblatedOutputs, Ablation, record_writer_outputs


@dataclass(frozen=True)
class OptimalAblationSettings:
    """How the constants are learned.

    Attributes:
        steps: gradient steps per node (Adam); each node keeps the best constant any step reached.
        lr: Adam's step size, in units of the node's output spread (its standard deviation over the batch).
        nodes_per_forward: nodes learned in one forward, each on its own copy of the clean batch: bounds memory at
            this many times a forward.
    """

    steps: int = 100  # losses settle within ~50 steps on tracr and SmolLM2 prompts; 100 leaves margin
    lr: float = 0.1  # a tenth of the output's spread per step: crosses the typical range in ~10 steps
    nodes_per_forward: int = 32

    def __post_init__(self):
        for name in ("steps", "nodes_per_forward"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise UsageError(f"optimal ablation's {name} must be a positive integer, got {getattr(self, name)!r}")
        if not self.lr > 0:
            raise UsageError(f"optimal ablation's lr must be positive, got {self.lr!r}")


@dataclass(frozen=True)
class _Slot:
    """One writer node: its group, its position on the group's node axis."""

    group: HookGroup
    index: int


def optimal_ablation(
    task: Task,
    graph: Graph,
    settings: OptimalAblationSettings | None = None,
    progress: bool = False,
) -> AblatedOutputs:
    """Returns each writer node's optimal constant (see the module's description) as ablated outputs:
    [1, 1 or pos, (node,) d_model] per writer hook, pos on a per-position graph.

    Args:
        task: the task: its model, clean batch, metric and scored positions define the loss.
        graph: the graph whose writer nodes get constants.
        settings: steps, step size and chunk size; None: the defaults.
        progress: show a progress bar over chunks of nodes.

    Returns:
        The constants, as an `AblatedOutputs` of kind `optimal` that the patching forward reads like any other.

    Raises:
        UsageError: bad settings.
        GraphMismatchError: the graph does not fit the task's model.
    """
    settings = settings or OptimalAblationSettings()
    adapter = task.adapter
    with torch.no_grad():
        recorded = record_writer_outputs(adapter, graph, task.clean)
        reference = adapter.forward(task.clean)
    per_position = graph.per_position
    start = {}  # hook -> [1, P, n_nodes, d_model]: the mean (per position on a per-position graph)
    spread = {}  # hook -> [n_nodes]: the spread of each node's output, the scale of its steps
    for group in graph.groups:
        if group.kind != "writer":
            continue
        value = recorded[group.hook]
        value = value if group.node_axis else value.unsqueeze(-2)  # [batch, pos, n_nodes, d_model]
        start[group.hook] = value.mean(0, keepdim=True) if per_position else value.mean((0, 1), keepdim=True)
        spread[group.hook] = value.flatten(0, 1).std(0, correction=0).mean(-1).clamp_min(1e-6)
    constants = {hook: value.clone() for hook, value in start.items()}
    slots = [_Slot(g, i) for g in graph.groups if g.kind == "writer" for i in range(len(g.nodes))]
    chunks = [slots[i : i + settings.nodes_per_forward] for i in range(0, len(slots), settings.nodes_per_forward)]
    for chunk in tqdm(chunks, desc="optimal ablation", unit="chunk", disable=not progress):
        for slot, value in zip(chunk, _learn_chunk(task, graph, chunk, start, spread, reference, settings)):
            constants[slot.group.hook][:, :, slot.index] = value
    values = {}
    for group in graph.groups:
        if group.kind == "writer":
            value = constants[group.hook]
            values[group.hook] = value if group.node_axis else value.squeeze(-2)
    return AblatedOutputs(Ablation.OPTIMAL, values)


def _learn_chunk(
    task: Task,
    graph: Graph,
    chunk: list[_Slot],
    start: dict[str, torch.Tensor],
    spread: dict[str, torch.Tensor],
    reference: torch.Tensor,
    settings: OptimalAblationSettings,
) -> list[torch.Tensor]:
    """Returns the best constant found for each node of `chunk` [1, P, d_model], each learned on its own copy of
    the clean batch."""
    copies = len(chunk)
    origin = torch.stack([start[s.group.hook][0, :, s.index] for s in chunk])  # [copies, P, d_model]
    scale = torch.stack([spread[s.group.hook][s.index] for s in chunk]).view(copies, 1, 1)
    step = torch.zeros_like(origin, requires_grad=True)  # the constant is origin + scale * step
    optimizer = torch.optim.Adam([step], lr=settings.lr)
    tokens = task.clean.repeat(copies, *([1] * (task.clean.dim() - 1)))
    current: dict[str, torch.Tensor] = {}  # this step's constants [copies, P, d_model], read by the hooks
    hooks = []
    for group in {s.group.hook: s.group for s in chunk}.values():
        rows = {r: s.index for r, s in enumerate(chunk) if s.group.hook == group.hook}
        hooks.append((group.hook, _replacing_hook(graph, group, rows, copies, current)))
    best_loss = torch.full((copies,), float("inf"))
    best = origin.clone()
    for _ in range(settings.steps + 1):  # the last pass only scores the last step
        current["constants"] = constant = origin + scale * step
        with task.adapter.hooks(hooks):
            logits = task.adapter.forward(tokens)
        losses = task.metric(logits.view(copies, -1, *logits.shape[1:]), reference, task.scored_positions)
        with torch.no_grad():
            better = losses < best_loss
            best_loss = torch.where(better, losses, best_loss)
            best[better] = constant[better]
        # autograd.grad, not backward: the model's own parameters gather no gradients
        (step.grad,) = torch.autograd.grad(losses.sum(), step)
        optimizer.step()
    return list(best.unsqueeze(1))


def _replacing_hook(graph: Graph, group: HookGroup, rows: dict[int, int], copies: int, current: dict):
    """Returns a hook that sets, in copy r of the batch, node `rows[r]`'s output to `current["constants"][r]`,
    leaving every other copy and node as it was."""
    components = list(dict.fromkeys(n.component for n in group.nodes))  # the hook value's head axis, in order

    def replace(value: torch.Tensor, hook) -> torch.Tensor:
        copied = value.view(copies, -1, *value.shape[1:])  # [copies, batch, pos, (head,) d_model]
        out = []
        for r in range(copies):
            if r not in rows:
                out.append(copied[r])
                continue
            index = rows[r]
            own = node_outputs(group, graph.dictionaries, copied[r], [index])[..., 0, :]  # [batch, pos, d_model]
            change = current["constants"][r].unsqueeze(0) - own  # [batch, pos, d_model]
            if group.per_head:
                head = torch.zeros(copied.shape[-2], dtype=value.dtype, device=value.device)
                head[components.index(group.nodes[index].component)] = 1.0
                change = change.unsqueeze(-2) * head.unsqueeze(-1)
            out.append(copied[r] + change)
        return torch.stack(out).view_as(value)

    return replace
