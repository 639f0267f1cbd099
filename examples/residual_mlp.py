"""An MLP with skip connections on the 8x8 digits, from plain nn.Module to a circuit (docs/any-model.md, example a).

Every block adds its output to one stream of width 32, so the declaration needs hook names only: edgewise learns
the order from the forward and checks that each reader's input is the sum of the writers before it.

    python examples/residual_mlp.py --out examples/out
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from digits import digits_task
from torch import nn
from transformer_lens import HookedRootModule
from transformer_lens.hook_points import HookPoint

import edgewise
from edgewise.evaluate import faithfulness
from edgewise.methods import method_circuit
from edgewise.patching import task_ablation
from edgewise.patching.checks import run_checks
from edgewise.report import plot_circuit
from edgewise.tasks import Task


class SkipBlock(nn.Module):
    """x + W2 relu(W1 x): the block reads the stream at `hook_in` and writes its output at `hook_out`."""

    def __init__(self, width: int):
        super().__init__()
        self.up, self.down = nn.Linear(width, 2 * width), nn.Linear(2 * width, width)
        self.hook_in, self.hook_out = HookPoint(), HookPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.hook_out(self.down(torch.relu(self.up(self.hook_in(x)))))


class SkipMLP(HookedRootModule):
    """Flattened pixels -> linear embedding -> `n_blocks` skip blocks -> linear readout (10 logits)."""

    def __init__(self, width: int = 32, n_blocks: int = 4):
        super().__init__()
        self.embed = nn.Linear(64, width)
        self.hook_embed = HookPoint()
        self.blocks = nn.ModuleList([SkipBlock(width) for _ in range(n_blocks)])
        self.hook_readout = HookPoint()
        self.readout = nn.Linear(width, 10)
        self.setup()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Returns digit logits [batch, 10] for images [batch, 1, 8, 8]."""
        x = self.hook_embed(self.embed(images.flatten(1)))
        for block in self.blocks:
            x = block(x)
        return self.readout(self.hook_readout(x))


def declare(model: SkipMLP, example_inputs: torch.Tensor) -> edgewise.DeclaredAdapter:
    """Returns the adapter: the embedding and each block's output write; each block's input and the readout read."""
    n = len(model.blocks)
    writers = {"embed": "hook_embed", **{f"block {i}": f"blocks.{i}.hook_out" for i in range(n)}}
    readers = {**{f"block {i}": f"blocks.{i}.hook_in" for i in range(n)}, "readout": "hook_readout"}
    return edgewise.DeclaredAdapter(model, writers, readers, example_inputs=example_inputs)


def make_task(steps: int = 300, n_inputs: int = 200, seed: int = 0) -> Task:
    """Returns the digits task on a freshly trained SkipMLP (a few seconds on one CPU thread)."""
    torch.manual_seed(seed)
    return digits_task(
        "digits-skip-mlp", SkipMLP(), declare, "8x8 digits, MLP with skip connections", steps, n_inputs, seed
    )


def main(out: Path) -> dict:
    """Trains, declares, checks, discovers with three methods and draws; returns the numbers it printed."""
    task = make_task()
    graph = task.graph()
    print(f"{task.description}\n{graph}")
    checks = run_checks(task)
    print(f"patching checks: {sum(c.passed for c in checks)}/{len(checks)} pass")
    ablated = task_ablation(task, graph, "resample")
    result = {"checks_passed": all(c.passed for c in checks), "n_edges": graph.n_edges}
    for method in ("edge-sp", "eap", "exact"):
        scores = edgewise.discover(task, method, graph=graph, ablated=ablated)
        circuit = method_circuit(scores, k=6)
        kept = faithfulness(task, graph, ablated, set(circuit.edges))
        print(
            f"{method}: {len(circuit)} of {graph.n_edges} edges, faithfulness {kept:.3f}: "
            f"{', '.join(e.name for e in sorted(circuit.edges, key=graph.edge_index))}"
        )
        result[method] = {"circuit": len(circuit), "faithfulness": kept}
        if method == "edge-sp":
            files = plot_circuit(graph, set(circuit.edges), out / "skip-mlp-circuit", title="edge-sp circuit, skip MLP")
            print(f"wrote {files[0]}")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("examples/out"))
    main(parser.parse_args().out)
