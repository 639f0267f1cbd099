"""The induction task: the trained model copies in context; attention identifies its previous-token and induction
heads; path patching written here with plain TransformerLens hooks (independent of edgewise.patching) verifies the
task's ground truth: removing it destroys copying, keeping only it preserves copying, and every edge of it matters
alone while no other edge does. edgewise's patched forward agrees with that reference, and ACDC ranks the truth
first. The numbers asserted on are in docs/induction.md."""

from __future__ import annotations

import pytest
import torch

from edgewise.evaluate import roc_auc
from edgewise.methods import discover
from edgewise.patching import patched_forward, task_ablation
from edgewise.suite.tasks import get_task, task_names
from edgewise.suite.tasks.registry import held_out_size
from edgewise.suite.tasks.trained.induction import INDUCTION_CIRCUIT
from edgewise.suite.tasks.trained.sequences import N_TOKENS

CHANCE = 1 / N_TOKENS
PREVIOUS_TOKEN_HEAD, INDUCTION_HEAD = (0, 1), (1, 0)
POSITION_EDGES = {("Resid Start", "A0.1.Q"), ("Resid Start", "A0.1.K")}  # resample keeps positions: mean sees them


@pytest.fixture(scope="module")
def task():
    return get_task("induction")


@pytest.fixture(scope="module")
def held_out():
    return get_task("induction", held_out=True)


# --- path patching by hand ------------------------------------------------------------------------------------------


def writer_hooks(cfg) -> dict[str, tuple[str, int | None]]:
    """Returns {writer name: (hook, head index or None)}: where each writer's output is on the model."""
    heads = {
        f"A{layer}.{h}": (f"blocks.{layer}.attn.hook_result", h)
        for layer in range(cfg.n_layers)
        for h in range(cfg.n_heads)
    }
    return {"Resid Start": ("blocks.0.hook_resid_pre", None), **heads}


def reader_hooks(cfg) -> dict[str, tuple[str, int | None, int]]:
    """Returns {reader name: (hook, head index or None, layer it reads at)}: where each reader's input is."""
    readers = {
        f"A{layer}.{h}.{x.upper()}": (f"blocks.{layer}.hook_{x}_input", h, layer)
        for layer in range(cfg.n_layers)
        for x in "qkv"
        for h in range(cfg.n_heads)
    }
    return {**readers, "Resid End": (f"blocks.{cfg.n_layers - 1}.hook_resid_post", None, cfg.n_layers)}


def all_edges(cfg) -> set[tuple[str, str]]:
    """Returns every (writer, reader) pair of an attention-only model: a writer feeds every reader of a later layer."""
    layer_of = {
        "Resid Start": -1,
        **{f"A{layer}.{h}": layer for layer in range(cfg.n_layers) for h in range(cfg.n_heads)},
    }
    return {(w, r) for w in layer_of for r, (_, _, layer) in reader_hooks(cfg).items() if layer_of[w] < layer}


@torch.no_grad()
def writer_outputs(model, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
    """Returns each writer's output [batch, pos, d_model] on `tokens`."""
    _, cache = model.run_with_cache(tokens)
    return {
        name: cache[hook] if head is None else cache[hook][:, :, head]
        for name, (hook, head) in writer_hooks(model.cfg).items()
    }


def ablated_outputs(task, kind: str) -> dict[str, torch.Tensor]:
    """Returns what a removed edge carries from each writer: its output on the paired corrupted sequence (resample),
    or its output averaged over the clean batch and positions (mean)."""
    if kind == "resample":
        return writer_outputs(task.model, task.corrupt)
    return {w: out.mean((0, 1), keepdim=True) for w, out in writer_outputs(task.model, task.clean).items()}


@torch.no_grad()
def path_patched_logits(model, tokens, ablated: dict[str, torch.Tensor], removed: set[tuple[str, str]]):
    """Returns logits with each removed edge's writer output, in each removed edge's reader input, replaced by the
    ablated one: a reader's input is the residual stream less (clean output - ablated output) of every writer whose
    edge into it is removed. Writer outputs are those of this forward (a head whose inputs are patched writes its
    patched output)."""
    cfg, outputs = model.cfg, {}
    writers, readers = writer_hooks(cfg), reader_hooks(cfg)

    def save(name, head):
        def hook(value, hook):
            outputs[name] = value if head is None else value[:, :, head]

        return hook

    def patch(name, head):
        def hook(value, hook):
            value = value.clone()
            for writer in (w for w, r in removed if r == name):
                change = outputs[writer] - ablated[writer]
                if head is None:
                    value -= change
                else:
                    value[:, :, head] -= change
            return value

        return hook

    hooks = [(hook, save(name, head)) for name, (hook, head) in writers.items()]
    hooks += [(hook, patch(name, head)) for name, (hook, head, _) in readers.items()]
    return model.run_with_hooks(tokens, fwd_hooks=hooks)


def copying(task, logits: torch.Tensor) -> tuple[float, float]:
    """Returns (accuracy on the copied token, KL(full || patched)) over the task's scored positions."""
    positions, answers = task.scored_positions, task.answers
    with torch.no_grad():
        full = task.model(task.clean).log_softmax(-1)
    kl = (full.exp() * (full - logits.log_softmax(-1))).sum(-1)[positions].mean().item()
    return (logits.argmax(-1) == answers)[positions].float().mean().item(), kl


def patched_copying(task, kind: str, removed: set[tuple[str, str]]) -> tuple[float, float]:
    return copying(task, path_patched_logits(task.model, task.clean, ablated_outputs(task, kind), removed))


# --- the task and the model -----------------------------------------------------------------------------------------


def test_induction_is_built_in_with_a_held_out_split(task, held_out):
    assert "induction" in task_names() and held_out_size("induction") == held_out.clean.shape[0] == 128
    assert not {tuple(r) for r in task.clean.tolist()} & {tuple(r) for r in held_out.clean.tolist()}
    assert task.graph().n_edges == len(all_edges(task.model.cfg)) == 29  # no MLP nodes in an attention-only graph
    assert {(e.writer, e.reader) for e in task.graph().edges} == all_edges(task.model.cfg)


def test_model_copies_repeated_segments_and_cannot_copy_unrepeated_ones(held_out):
    accuracy, _ = copying(held_out, held_out.model(held_out.clean))
    assert accuracy > 0.99 and held_out.family.accuracy == pytest.approx(accuracy)
    # At most chance on distinct tokens: the model copies a token it has seen, and there the next one never is
    assert held_out.family.corrupt_accuracy < CHANCE


@torch.no_grad()
def test_attention_identifies_the_previous_token_and_induction_heads(task):
    _, cache = task.model.run_with_cache(task.clean)
    starts, lengths = task.family.segment_starts, task.family.segment_lengths
    pos = torch.arange(task.clean.shape[1]).expand_as(task.clean)
    # The keys the induction head reads: every position of the first copy after its first token
    first_copy = (pos > starts[:, None]) & (pos < (starts + lengths)[:, None])
    layer, head = PREVIOUS_TOKEN_HEAD
    pattern = cache[f"blocks.{layer}.attn.hook_pattern"][:, head]  # [batch, query, key]
    previous = pattern.gather(-1, (pos - 1).clamp(min=0).unsqueeze(-1)).squeeze(-1)
    assert previous[first_copy].mean() > 0.8 and (pattern.argmax(-1) == pos - 1)[first_copy].float().mean() > 0.99
    layer, head = INDUCTION_HEAD
    pattern = cache[f"blocks.{layer}.attn.hook_pattern"][:, head]
    after_first_occurrence = (pos - lengths[:, None] + 1).clamp(min=0)
    induction = pattern.gather(-1, after_first_occurrence.unsqueeze(-1)).squeeze(-1)[task.scored_positions]
    assert induction.mean() > 0.9
    # The other two heads attend alike (trained before pruning) but write nothing: their OV circuits are ~0
    for layer, head in ((0, 0), (1, 1)):
        attn = task.model.blocks[layer].attn
        assert torch.linalg.matrix_norm(attn.W_V[head] @ attn.W_O[head]) < 1e-5


# --- the ground truth, verified by path patching --------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["resample", "mean"])
def test_removing_the_circuit_destroys_copying(task, kind):
    accuracy, kl = patched_copying(task, kind, set(INDUCTION_CIRCUIT))
    assert accuracy < 2 * CHANCE and kl > 2  # measured 0.042 and 5.8 (resample), 0.046 and 3.7 (mean)


@pytest.mark.parametrize("kind", ["resample", "mean"])
def test_the_circuit_alone_preserves_copying(task, kind):
    accuracy, kl = patched_copying(task, kind, all_edges(task.model.cfg) - set(INDUCTION_CIRCUIT))
    empty_accuracy, empty_kl = patched_copying(task, kind, all_edges(task.model.cfg))
    assert accuracy > 0.95 and kl < 0.2  # measured 0.987 and 0.058 (resample), 0.981 and 0.091 (mean)
    assert empty_accuracy < 2 * CHANCE and empty_kl > 2


@pytest.mark.parametrize("kind", ["resample", "mean"])
def test_each_circuit_edge_matters_alone_and_no_other_edge_does(task, kind):
    """Resample ablation keeps every position's embedding (the corrupted sequences share positions), so only mean
    ablation can see the previous-token head's position matching (Resid Start -> A0.1.Q/K)."""
    for edge in sorted(all_edges(task.model.cfg)):
        accuracy, kl = patched_copying(task, kind, {edge})
        if edge in INDUCTION_CIRCUIT and (kind == "mean" or edge not in POSITION_EDGES):
            assert accuracy < 0.5 and kl > 1, edge  # measured: accuracy <= 0.40, KL >= 2.6
        else:
            assert accuracy > 0.95 and kl < 0.2, edge  # measured: accuracy >= 0.98, KL <= 0.08


@pytest.mark.parametrize("kind", ["resample", "mean"])
def test_patched_forward_matches_the_hand_written_path_patching(task, kind):
    graph = task.graph()
    ablated = task_ablation(task, graph, kind)
    circuit = set(INDUCTION_CIRCUIT)
    removals = [circuit, all_edges(task.model.cfg) - circuit, {("A0.1", "A1.0.K")}, {("Resid Start", "A1.0.V")}]
    masks = torch.stack(
        [
            torch.tensor([(e.writer, e.reader) not in removed for e in graph.edges], dtype=torch.float)
            for removed in removals
        ]
    )
    with torch.no_grad():
        ours = patched_forward(task.adapter, graph, task.clean, ablated, masks)
    reference = ablated_outputs(task, kind)
    for row, removed in enumerate(removals):
        assert torch.allclose(ours[row], path_patched_logits(task.model, task.clean, reference, removed), atol=1e-4)


# --- discovery ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind, floor", [("resample", 0.9), ("mean", 0.99)])
def test_acdc_ranks_the_verified_circuit_first(task, kind, floor):
    """Measured AUROC: 0.955 under resample ablation, where the two position edges carry almost nothing and rank
    below noise, and 1.0 under mean ablation. (edge-sp, 200 steps, measured 0.922 and 1.0 but takes ~20 s.)"""
    scores = discover(task, "acdc", ablation=kind)
    auroc = roc_auc(scores, task.ground_truth_edges(scores.graph))
    print(f"\ninduction acdc, {kind} ablation: AUROC {auroc:.3f}")
    visible = set(INDUCTION_CIRCUIT) - (POSITION_EDGES if kind == "resample" else set())
    assert {(e.writer, e.reader) for e, _ in scores.ranked()[: len(visible)]} == visible and auroc >= floor
