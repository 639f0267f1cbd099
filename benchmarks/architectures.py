"""Which Hugging Face architectures edgewise's bridge adapter takes, measured on the zoo of
tests/test_bridge_families.py: each family's tiny random model (2 layers, width 64, perturbed biases and norm
weights) built from its config with the test's own settings, booted through TransformerBridge, and either refused
(the error's class and message) or checked: `run_checks` on its graph, and where the test has a hand-written torch
hook patch of the plain Hugging Face model, its single edges against it. The block shape and the graph are read from
the booted bridge and the graph, not from the test's lists. Prints a table and writes
benchmarks/results/architectures.json, which benchmarks/render_tables.py renders into docs/results/architectures.md:

    .venv/bin/python benchmarks/architectures.py
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import platform
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(__file__).parent / "results" / "architectures.json"


def _zoo():
    """Imports tests/test_bridge_families.py, whose cases (configs, settings, hand patches) this script runs."""
    sys.path.insert(0, str(ROOT / "tests"))
    spec = importlib.util.spec_from_file_location("test_bridge_families", ROOT / "tests" / "test_bridge_families.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cases(zoo) -> list[tuple[str, str, dict]]:
    """Returns (label, architecture, config overrides) for every model of the zoo: the families the test checks, each
    with its settings, then those it expects refused."""
    checked = [(arch, arch, dict(initializer_range=0.2)) for arch in zoo.SEQUENTIAL]
    checked += [(arch, arch, dict(settings)) for arch, settings in zoo.EXACT.items()]
    refused = [("gpt_neo", "gpt_neo", {}), ("gptj", "gptj", {}), ("olmo2", "olmo2", {})]
    refused.append(("falcon (alibi=True)", "falcon", dict(alibi=True)))
    return [
        (label.replace("falcon", "falcon (alibi=False)") if label == "falcon" else label, arch, overrides)
        for label, arch, overrides in checked
    ] + refused


def block_shape(bridge) -> dict:
    """Returns the block shape the booted bridge shows: its block class, and whether each sublayer has a norm of its
    own after it (`ln1_post`)."""
    block = bridge.blocks[0]
    return {"block": type(block).__name__, "post_norms": "ln1_post" in (block.submodules or {})}


def graph_shape(graph) -> str:
    """Returns what the graph makes of a block: per-head writers or one attention writer, and what feeds the MLP."""
    from edgewise.graph import NodeKind

    heads = any(n.kind is NodeKind.HEAD for n in graph.writer_nodes)
    parallel = any(g.fed_by is not None for g in graph.groups)
    writers = "a writer per head" if heads else "one attention writer per layer (`Attn L`), heads as q/k/v readers"
    return writers + ("; the MLP reads only the writers before its block" if parallel else "")


def measure(zoo, label: str, arch: str, overrides: dict, folder: Path) -> dict:
    """Returns the zoo model's record: refused (the error) or its checks and hand-patch agreement."""
    from edgewise.adapters.bridge import BridgeAdapter
    from edgewise.errors import EdgewiseError
    from edgewise.graph import Edge
    from edgewise.patching import patched_forward, run_checks
    from edgewise.patching.ablation import resample_ablation

    record = {"label": label, "architecture": arch, "config": overrides}
    model = zoo._tiny_model(arch, folder, **overrides)
    bridge = zoo._boot(folder)
    record |= block_shape(bridge)
    try:
        adapter = BridgeAdapter(bridge)
    except EdgewiseError as error:
        message = str(error).replace(str(folder), "FOLDER")  # the temporary folder would change every run
        return record | {"status": "refused", "error": type(error).__name__, "message": message}
    task = zoo._task(adapter.model)
    graph = task.graph()
    with torch.no_grad():
        results = run_checks(task)
    record |= {
        "graph": graph_shape(graph),
        "n_edges": graph.n_edges,
        "checks_passed": sum(r.passed for r in results),
        "checks": len(results),
        "worst_check": max(r.max_abs_diff / r.tolerance for r in results),  # 1 is the tolerance
    }
    if arch in zoo.HF_LAYOUT:
        edges = zoo.POST_NORM_EDGES if arch in zoo.POST_NORM else zoo.EDGES
        ablated = resample_ablation(task.adapter, graph, task.corrupt)
        worst = 0.0
        with torch.no_grad():
            for (writer, reader), (hand_writer, hand_reader) in edges.items():
                mask = torch.ones(graph.n_edges)
                mask[graph.edge_index(Edge(writer, reader))] = 0
                ours = patched_forward(task.adapter, graph, task.clean, ablated, mask)
                theirs = zoo._hand_patch_on_plain_model(arch, model, task.clean, task.corrupt, hand_writer, hand_reader)
                worst = max(worst, (ours - theirs).abs().max().item())
        record |= {"hand_patched_edges": len(edges), "hand_patch_max_diff": worst}
    record["status"] = "exact" if record["checks_passed"] == record["checks"] else "checks fail"
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    zoo = _zoo()
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (label, arch, overrides) in enumerate(cases(zoo)):
            record = measure(zoo, label, arch, overrides, Path(tmp) / str(i))
            records.append(record)
            checks = f"{record['checks_passed']}/{record['checks']}" if "checks" in record else record.get("error")
            print(f"{label:<24}{record['status']:<12}{checks}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "date": datetime.date.today().isoformat(),
                "machine": platform.platform(),
                "versions": {name: version(name) for name in ("torch", "transformers", "transformer-lens")},
                "models": records,
            },
            indent=1,
        )
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
