"""A small residual CNN on the 8x8 digits, from plain nn.Module to a circuit (docs/any-model.md, example b).

The stream is [batch, channels, height, width]; a strided convolution halves the board and doubles the channels, so
the readers after it see only the writers after it: the declaration says so with `feeds`.

    python examples/residual_cnn.py --out examples/out
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


class Block(nn.Module):
    """A pre-activation residual block: x + conv(relu(conv(relu(x)))), with nothing after the addition."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.hook_in = HookPoint()  # reader: the stream as the branch receives it
        self.hook_out = HookPoint()  # writer: what the branch adds to the stream

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_in = self.hook_in(x)
        return x + self.hook_out(self.conv2(torch.relu(self.conv1(torch.relu(x_in)))))


class ResidualCNN(HookedRootModule):
    """stem -> 2 blocks (8 channels, 8x8) -> strided conv (16 channels, 4x4) -> 1 block -> pooled linear head."""

    def __init__(self, channels: int = 8):
        super().__init__()
        self.stem = nn.Conv2d(1, channels, 3, padding=1)
        self.hook_stem = HookPoint()
        self.blocks = nn.ModuleList([Block(channels), Block(channels), Block(2 * channels)])
        self.down = nn.Conv2d(channels, 2 * channels, 3, stride=2, padding=1)
        self.hook_down_in, self.hook_down_out = HookPoint(), HookPoint()
        self.hook_head_in = HookPoint()
        self.head = nn.Linear(2 * channels, 10)
        self.setup()  # collects the HookPoints by name: blocks.0.hook_in, hook_stem, ...

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Returns digit logits [batch, 10] for images [batch, 1, 8, 8]."""
        x = self.hook_stem(self.stem(images))
        x = self.blocks[1](self.blocks[0](x))
        x = self.hook_down_out(self.down(torch.relu(self.hook_down_in(x))))  # a new stream starts here
        x = self.blocks[2](x)
        return self.head(torch.relu(self.hook_head_in(x)).mean((-1, -2)))


WRITERS = {
    "stem": "hook_stem",
    "block 0": "blocks.0.hook_out",
    "block 1": "blocks.1.hook_out",
    "down": "hook_down_out",
    "block 2": "blocks.2.hook_out",
}
READERS = {
    "block 0": "blocks.0.hook_in",
    "block 1": "blocks.1.hook_in",
    "down": "hook_down_in",
    "block 2": "blocks.2.hook_in",
    "head": "hook_head_in",
}
FEEDS = {"block 2": ["down"], "head": ["down", "block 2"]}  # after the strided conv, only the new stream's writers


def make_task(steps: int = 300, n_inputs: int = 200, seed: int = 0) -> Task:
    """Returns the digits task on a freshly trained ResidualCNN (a few seconds on one CPU thread)."""
    torch.manual_seed(seed)
    declare = lambda model, images: edgewise.DeclaredAdapter(  # noqa: E731
        model, WRITERS, READERS, example_inputs=images, feeds=FEEDS
    )
    return digits_task("digits-residual-cnn", ResidualCNN(), declare, "8x8 digits, residual CNN", steps, n_inputs, seed)


def main(out: Path) -> dict:
    """Trains, declares, checks, discovers and draws; returns the numbers it printed."""
    task = make_task()
    graph = task.graph()
    print(f"{task.description}\n{graph}: {', '.join(e.name for e in graph.edges)}")
    checks = run_checks(task)
    print(f"patching checks: {sum(c.passed for c in checks)}/{len(checks)} pass")
    ablated = task_ablation(task, graph, "resample")
    scores = edgewise.discover(task, "edge-sp", graph=graph, ablated=ablated, lambda_=1e-2)
    circuit = method_circuit(scores, k=4)
    kept = faithfulness(task, graph, ablated, set(circuit.edges))
    print(
        f"edge-sp circuit: {len(circuit)} of {graph.n_edges} edges, faithfulness {kept:.3f}: "
        f"{', '.join(e.name for e in sorted(circuit.edges, key=graph.edge_index))}"
    )
    files = plot_circuit(graph, set(circuit.edges), out / "residual-cnn-circuit", title="edge-sp circuit, digits CNN")
    print(f"wrote {files[0]}")
    return {
        "checks_passed": all(c.passed for c in checks),
        "n_edges": graph.n_edges,
        "circuit": len(circuit),
        "faithfulness": kept,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("examples/out"))
    main(parser.parse_args().out)
