"""The declared adapter: any HookedRootModule described by its writer and reader hook names, checked against
hand-written hook patches on the raw [batch, channels, height, width] values, and rejected when the declaration is
wrong."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from transformer_lens import HookedRootModule
from transformer_lens.hook_points import HookPoint

import edgewise
from edgewise import DeclarationError, DeclaredAdapter, Edge, Graph
from edgewise.methods import method_names
from edgewise.patching import patched_forward, task_ablation
from edgewise.patching.checks import run_checks
from edgewise.patching.reference import per_edge_forward
from edgewise.tasks import METRICS, Task

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
sys.path.insert(0, str(EXAMPLES))

import residual_cnn  # noqa: E402  (examples/ is not a package: scripts import their neighbours)
import residual_mlp  # noqa: E402


def _cnn(seed: int = 0) -> tuple[residual_cnn.ResidualCNN, torch.Tensor, torch.Tensor]:
    """Returns an untrained example CNN (random weights suffice for patching) and clean / corrupted images."""
    torch.manual_seed(seed)
    model = residual_cnn.ResidualCNN().eval()
    images = torch.rand(6, 1, 8, 8)
    return model, images, images.flip(0)


def _cnn_task(model, clean, corrupt) -> Task:
    adapter = DeclaredAdapter(model, residual_cnn.WRITERS, residual_cnn.READERS, clean, feeds=residual_cnn.FEEDS)
    return Task("cnn", adapter, clean, corrupt, METRICS["kl"], torch.ones(len(clean), 1, dtype=torch.bool))


@torch.no_grad()
def _hand_patch(model, clean, corrupt, writer_hook: str, reader_hook: str) -> torch.Tensor:
    """Returns the model's logits with one edge resample-ablated, on the raw hook values: the writer's output on the
    corrupted images minus its clean output is added to the reader's input, and nowhere else."""
    cache = {}
    with model.hooks(fwd_hooks=[(writer_hook, lambda v, hook: cache.__setitem__("corrupt", v.clone()))]):
        model(corrupt)

    def add(value, hook):
        return value + cache["corrupt"] - cache["clean"]

    hooks = [(writer_hook, lambda v, hook: cache.__setitem__("clean", v.clone())), (reader_hook, add)]
    with model.hooks(fwd_hooks=hooks):
        return model(clean)


def test_graph_follows_the_declared_feeds():
    model, clean, corrupt = _cnn()
    graph = _cnn_task(model, clean, corrupt).graph()
    assert {e.name for e in graph.edges} == {
        "stem->block 0",
        "stem->block 1",
        "block 0->block 1",
        "stem->down",
        "block 0->down",
        "block 1->down",
        "down->block 2",
        "down->head",
        "block 2->head",
    }
    assert graph.input_writers == ["stem"] and graph.output_readers == ["head"]
    assert Graph.from_dict(graph.to_dict()) == graph  # fed_by survives a file


@pytest.mark.parametrize("edge", ["stem->block 1", "block 1->down", "down->block 2", "block 2->head", "down->head"])
def test_single_edge_equals_hand_written_patch_on_raw_conv_values(edge):
    model, clean, corrupt = _cnn()
    task = _cnn_task(model, clean, corrupt)
    graph = task.graph()
    writer, reader = edge.split("->")
    mask = torch.ones(graph.n_edges)
    mask[graph.edge_index(Edge(writer, reader))] = 0
    patched = patched_forward(task.adapter, graph, clean, task_ablation(task, graph, "resample"), mask)
    reference = _hand_patch(model, clean, corrupt, residual_cnn.WRITERS[writer], residual_cnn.READERS[reader])
    assert (patched[:, 0] - reference).abs().max() < 1e-5
    assert (reference - model(clean)).abs().max() > 1e-3  # the edge matters, so the comparison can fail


def test_mask_gradient_across_streams_of_two_widths_matches_autograd_reference():
    model, clean, corrupt = _cnn()
    task = _cnn_task(model, clean, corrupt)
    graph = task.graph()
    ablated = task_ablation(task, graph, "resample")
    mask = torch.rand(graph.n_edges, generator=torch.Generator().manual_seed(1))
    grads = []
    for forward in (patched_forward, per_edge_forward):
        m = mask.clone().requires_grad_(True)
        (forward(task.adapter, graph, clean, ablated, m) ** 2).sum().backward()
        grads.append(m.grad)
    assert torch.allclose(grads[0], grads[1], rtol=1e-4, atol=1e-5)
    assert grads[1].abs().min() > 0


def test_checks_pass_on_both_example_models():
    model, clean, corrupt = _cnn()
    mlp = residual_mlp.SkipMLP().eval()
    for task in (
        _cnn_task(model, clean, corrupt),
        Task(
            "mlp",
            residual_mlp.declare(mlp, clean),
            clean,
            corrupt,
            METRICS["kl"],
            torch.ones(len(clean), 1, dtype=torch.bool),
        ),
    ):
        results = run_checks(task)
        assert all(r.passed for r in results), [r for r in results if not r.passed]


def _small_mlp_task(n_inputs: int) -> Task:
    """Returns a task on an untrained 2-block SkipMLP of width 8 (6 edges) and random images."""
    torch.manual_seed(0)
    mlp = residual_mlp.SkipMLP(width=8, n_blocks=2).eval()
    clean = torch.rand(n_inputs, 1, 8, 8)
    return Task(
        "mlp",
        residual_mlp.declare(mlp, clean),
        clean,
        clean.flip(0),
        METRICS["kl"],
        torch.ones(len(clean), 1, dtype=torch.bool),
    )


def test_every_method_runs_on_a_declared_model():
    task = _small_mlp_task(6)
    for method in method_names():
        scores = (
            edgewise.discover(task, method, steps=20) if method.endswith("-sp") else edgewise.discover(task, method)
        )
        assert scores.scores.shape == (task.graph().n_edges,) and torch.isfinite(scores.scores).all()


class _Sequence(HookedRootModule):
    """Token embedding, a block that mixes positions (a causal running mean) and one that does not; [batch, pos, d]."""

    def __init__(self, d: int = 6):
        super().__init__()
        self.embed = nn.Embedding(5, d)
        self.mix, self.mlp, self.unembed = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, 5)
        self.hook_embed, self.hook_unembed = HookPoint(), HookPoint()
        self.hook_mix_in, self.hook_mix_out, self.hook_mlp_in, self.hook_mlp_out = (HookPoint() for _ in range(4))
        self.setup()

    def forward(self, tokens):
        x = self.hook_embed(self.embed(tokens))
        h = self.mix(self.hook_mix_in(x))
        x = x + self.hook_mix_out(h.cumsum(1) / torch.arange(1, tokens.shape[1] + 1).unsqueeze(-1))
        x = x + self.hook_mlp_out(torch.tanh(self.mlp(self.hook_mlp_in(x))))
        return self.unembed(self.hook_unembed(x))


def test_sequence_model_per_position_graph_passes_checks():
    torch.manual_seed(0)
    model = _Sequence().eval()
    tokens = torch.randint(5, (4, 3))
    adapter = DeclaredAdapter(
        model,
        {"embed": "hook_embed", "mix": "hook_mix_out", "mlp": "hook_mlp_out"},
        {"mix": "hook_mix_in", "mlp": "hook_mlp_in", "out": "hook_unembed"},
        tokens,
        sequence=True,
    )
    task = Task("seq", adapter, tokens, tokens.flip(0), METRICS["kl"], torch.ones(4, 3, dtype=torch.bool))
    graph = task.graph(per_position=True)
    assert graph.n_edges == 6 * 3
    assert graph.reached_positions("mix", 0) == [0, 1, 2]  # a declared module may mix positions (this one does)
    assert all(r.passed for r in run_checks(task, per_position=True))


def _mlp_declaration(model, drop: str | None = None) -> tuple[dict, dict]:
    n = len(model.blocks)
    writers = {"embed": "hook_embed", **{f"block {i}": f"blocks.{i}.hook_out" for i in range(n)}}
    readers = {**{f"block {i}": f"blocks.{i}.hook_in" for i in range(n)}, "readout": "hook_readout"}
    writers.pop(drop, None)
    return writers, readers


def test_a_missing_writer_is_rejected_naming_the_reader_and_the_mismatch():
    torch.manual_seed(0)
    model, x = residual_mlp.SkipMLP(width=8, n_blocks=3).eval(), torch.rand(5, 1, 8, 8)
    writers, readers = _mlp_declaration(model, drop="block 1")
    with pytest.raises(DeclarationError, match=r"reader 'block 2'.*differ by up to [0-9.e-]+"):
        DeclaredAdapter(model, writers, readers, x)


class _NormAfterAdd(HookedRootModule):
    """A block whose output passes a LayerNorm after the addition: the next reader is not a sum of writers."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.norm = nn.Linear(4, 4), nn.Linear(4, 4), nn.LayerNorm(4)
        self.hook_a, self.hook_b_in, self.hook_b_out, self.hook_end = (HookPoint() for _ in range(4))
        self.setup()

    def forward(self, x):
        x = self.norm(self.hook_a(self.a(x)))
        x = x + self.hook_b_out(self.b(self.hook_b_in(x)))
        return self.hook_end(x)


def test_a_norm_between_writer_and_reader_is_rejected():
    with pytest.raises(DeclarationError, match="reader 'b'.*non-additive"):
        DeclaredAdapter(
            _NormAfterAdd(),
            {"a": "hook_a", "b": "hook_b_out"},
            {"b": "hook_b_in", "end": "hook_end"},
            torch.randn(5, 4),
        )


def test_bad_declarations_are_rejected_with_the_fix():
    model, clean, _ = _cnn()
    with pytest.raises(DeclarationError, match="not in ResidualCNN"):
        DeclaredAdapter(
            model, {**residual_cnn.WRITERS, "x": "hook_nowhere"}, residual_cnn.READERS, clean, feeds=residual_cnn.FEEDS
        )
    with pytest.raises(DeclarationError, match="has shape .*feeds"):  # readers after the strided conv, no feeds
        DeclaredAdapter(model, residual_cnn.WRITERS, residual_cnn.READERS, clean)
    with pytest.raises(DeclarationError, match="at least two different inputs"):
        DeclaredAdapter(
            model, residual_cnn.WRITERS, residual_cnn.READERS, clean[:1].repeat(3, 1, 1, 1), feeds=residual_cnn.FEEDS
        )
    with pytest.raises(DeclarationError, match="only after it"):
        DeclaredAdapter(
            model,
            residual_cnn.WRITERS,
            residual_cnn.READERS,
            clean,
            feeds={**residual_cnn.FEEDS, "block 0": ["block 1"]},
        )
    with pytest.raises(DeclarationError, match="HookedRootModule"):
        DeclaredAdapter(nn.Linear(2, 2), {"a": "x"}, {"b": "y"}, torch.randn(3, 2))


def test_example_scripts_run(tmp_path):
    cnn = residual_cnn.main(tmp_path)
    mlp = residual_mlp.main(tmp_path)
    assert cnn["checks_passed"] and mlp["checks_passed"]
    assert cnn["n_edges"] == 9 and mlp["n_edges"] == 15
    assert (tmp_path / "residual-cnn-circuit.png").exists() and (tmp_path / "skip-mlp-circuit.png").exists()


def test_edge_sp_minimises_a_user_objective_and_other_methods_refuse_one():
    from edgewise.errors import UnknownObjectiveError
    from edgewise.methods import method_circuit
    from edgewise.tasks import Metric

    task = _small_mlp_task(8)
    clean = task.clean
    # The probability of class 3, which the objective asks SP to drive down
    objective = Metric("class-3", lambda logits, reference, positions: logits.softmax(-1)[..., 3].mean((-1, -2)))
    graph = task.graph()
    ablated = task_ablation(task, graph, "zero")
    scores = edgewise.discover(task, "edge-sp", graph=graph, ablated=ablated, minimise=objective, lambda_=0.0)
    assert scores.hyperparameters["minimise"] == "class-3"
    found = method_circuit(scores, k=1).mask(graph)
    every = torch.tensor(list(itertools.product([0.0, 1.0], repeat=graph.n_edges)))  # all 2^6 circuits
    with torch.no_grad():
        values = objective(patched_forward(task.adapter, graph, clean, ablated, every), None, task.scored_positions)
        reached = objective(patched_forward(task.adapter, graph, clean, ablated, found), None, task.scored_positions)
    assert values.max() - values.min() > 0.01  # the circuits differ, so the search can fail
    assert reached <= values.min() + 0.1 * (values.max() - values.min())  # SP found (nearly) the best circuit
    with pytest.raises(UnknownObjectiveError, match="edge-sp, node-sp|node-sp, edge-sp|edge-sp"):
        edgewise.discover(task, "eap", minimise=objective)
    with pytest.raises(UnknownObjectiveError, match="has no objective 'worst-move'"):
        edgewise.discover(task, "edge-sp", minimise="worst-move")


def test_channel_split_writers_patch_one_channel_as_a_hand_written_patch_does():
    model, clean, corrupt = _cnn()
    adapter = DeclaredAdapter(
        model, residual_cnn.WRITERS, residual_cnn.READERS, clean, feeds=residual_cnn.FEEDS, split=["stem", "block 1"]
    )
    task = Task("cnn", adapter, clean, corrupt, METRICS["kl"], torch.ones(len(clean), 1, dtype=torch.bool))
    graph = task.graph()
    assert [n for n in graph.writers if n.startswith("stem")] == [f"stem.c{c}" for c in range(8)]
    assert graph.fed_writers("block 1") == [graph.writers.index(f"block 1.c{c}") for c in range(8)]
    mask = torch.ones(graph.n_edges)
    mask[graph.edge_index(Edge("stem.c5", "block 1"))] = 0
    patched = patched_forward(adapter, graph, clean, task_ablation(task, graph, "resample"), mask)
    cache = {}
    with torch.no_grad():
        with model.hooks(fwd_hooks=[("hook_stem", lambda v, hook: cache.__setitem__("corrupt", v.clone()))]):
            model(corrupt)

        def add_channel_5(value, hook):
            diff = torch.zeros_like(value)
            diff[:, 5] = cache["corrupt"][:, 5] - cache["clean"][:, 5]
            return value + diff

        hooks = [
            ("hook_stem", lambda v, hook: cache.__setitem__("clean", v.clone())),
            ("blocks.1.hook_in", add_channel_5),
        ]
        with model.hooks(fwd_hooks=hooks):
            reference = model(clean)
    assert (patched[:, 0] - reference).abs().max() < 1e-5 and (reference - model(clean)).abs().max() > 1e-4
    assert all(r.passed for r in run_checks(task))


def test_a_task_file_runs_on_the_command_line(tmp_path):
    from conftest import run_edgewise

    source = tmp_path / "my_task.py"
    source.write_text(
        "import torch\n"
        "import residual_mlp\n"
        "from edgewise.tasks import METRICS, Task\n\n"
        "def make():\n"
        "    torch.manual_seed(0)\n"
        "    model, x = residual_mlp.SkipMLP(width=8, n_blocks=2).eval(), torch.rand(6, 1, 8, 8)\n"
        "    return Task('mine', residual_mlp.declare(model, x), x, x.flip(0), METRICS['kl'],\n"
        "                torch.ones(6, 1, dtype=torch.bool))\n"
    )
    result = run_edgewise("check", f"{source}:make")
    assert result.returncode == 0 and "17/17 patching checks passed on mine" in result.stdout
    missing = run_edgewise("check", f"{source}:nothing")
    assert missing.returncode == 2 and "has no function 'nothing'" in missing.stderr
