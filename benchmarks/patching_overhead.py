"""Patching overhead: time of the edge-masked forward over the plain forward, on tracr models, random LayerNorm
models and SmolLM2-135M (if installed), on the CPU or a GPU. Prints a table and writes
benchmarks/results/patching_overhead[-DEVICE].json.

Beside each ratio it prints a floor: the plain forward plus the stage products' arithmetic (each edge's coefficient
times its writer's delta: 2 x edges x batch x positions x d_model FLOPs on a plain graph) at this machine's peak rate
for a large matrix product, measured here. No exact edge-masked forward of this design can beat it; on small models
it is far below the measured ratio (per-op overhead dominates there), on SmolLM2 it bounds what any tuning can reach.

    .venv/bin/python benchmarks/patching_overhead.py [--repeats 20] [--skip-smollm2] [--device cuda]
                                                     [--cases tracr,random,random-large,smollm2]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from edgewise.adapters import adapter_for
from edgewise.errors import PretrainedModelMissingError
from edgewise.graph import Graph
from edgewise.models import Transformer, TransformerConfig
from edgewise.patching import patched_forward
from edgewise.patching.ablation import resample_ablation
from edgewise.patching.allocator import keep_freed_memory

OUT = Path(__file__).parent / "results" / "patching_overhead.json"


def _median_seconds(*fns, repeats: int) -> list[float]:
    """Returns each fn's median wall time after one warm-up, the fns taking turns (plain, masked, plain, ...) so the
    machine's drift between minutes (10-20% here) falls on all of them alike; on a GPU, each run waits for its
    kernels."""
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    times = [[] for _ in fns]
    for fn in fns:  # warm-up
        fn()
        sync()
    for _ in range(repeats):
        for fn, own in zip(fns, times):
            start = time.perf_counter()
            fn()
            sync()
            own.append(time.perf_counter() - start)
    return [statistics.median(own) for own in times]


def gemm_gflops(device: str, size: int = 1024, repeats: int = 10) -> float:
    """Returns this machine's rate for a large float32 matrix product (GFLOP/s): the arithmetic ceiling."""
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    return 2 * size**3 / _median_seconds(lambda: a @ b, repeats=repeats)[0] / 1e9


def products_gflop(graph: Graph, clean: torch.Tensor, width: int) -> float:
    """Returns the stage products' arithmetic in GFLOP: a multiply-add per edge and element of its writer's delta
    (of one position on a per-position graph)."""
    positions = 1 if graph.per_position else clean.shape[1]
    return 2 * graph.n_edges * clean.shape[0] * positions * width / 1e9


def measure(
    name: str,
    model,
    clean: torch.Tensor,
    corrupt: torch.Tensor,
    repeats: int,
    per_position: bool = False,
    peak_gflops: float | None = None,
):
    """Returns timings of plain and masked forwards (and forward+backward) on one model and batch, and the floor the
    stage products set at `peak_gflops`."""
    adapter = adapter_for(model)
    graph = Graph.from_model(adapter, per_position, clean.shape[1] if per_position else None)
    ablated = resample_ablation(adapter, graph, corrupt)
    device = clean.device
    ones = torch.ones(graph.n_edges, device=device)
    random_mask = torch.rand(graph.n_edges, generator=torch.Generator().manual_seed(0)).to(device)
    masks8 = torch.rand(8, graph.n_edges, generator=torch.Generator().manual_seed(1)).to(device)

    def no_grad(fn):
        def run():
            with torch.no_grad():
                fn()

        return run

    plain, masked, masked_ones = _median_seconds(
        no_grad(lambda: adapter.forward(clean)),
        no_grad(lambda: patched_forward(adapter, graph, clean, ablated, random_mask)),
        no_grad(lambda: patched_forward(adapter, graph, clean, ablated, ones)),
        repeats=repeats,
    )
    plain8, batched8 = _median_seconds(
        no_grad(lambda: adapter.forward(clean.repeat(8, 1))),
        no_grad(lambda: patched_forward(adapter, graph, clean, ablated, masks8)),
        repeats=max(3, repeats // 4),
    )

    def plain_backward():
        adapter.forward(clean).pow(2).mean().backward()

    def masked_backward():
        mask = random_mask.clone().requires_grad_(True)
        patched_forward(adapter, graph, clean, ablated, mask).pow(2).mean().backward()

    plain_bw, masked_bw = _median_seconds(plain_backward, masked_backward, repeats=max(3, repeats // 2))
    model.zero_grad(set_to_none=True)
    gflop = products_gflop(graph, clean, max(v.shape[-1] for v in ablated.values.values()))
    floor = {} if peak_gflops is None else {"ratio_floor_products_at_peak": 1 + gflop / peak_gflops / plain}
    return {
        "case": name,
        "graph": "per-position" if per_position else "plain",
        "n_edges": graph.n_edges,
        "batch": list(clean.shape),
        "plain_forward_s": plain,
        "masked_forward_s": masked,
        "masked_forward_ones_s": masked_ones,
        "ratio_masked_over_plain": masked / plain,
        "batched_8_masks_s": batched8,
        "plain_forward_8x_batch_s": plain8,
        "ratio_batched_8_over_plain_8x": batched8 / plain8,
        "plain_forward_backward_s": plain_bw,
        "masked_forward_backward_s": masked_bw,
        "ratio_backward": masked_bw / plain_bw,
        "products_gflop": gflop,
        **floor,
    }


def _tracr_case(name: str, rows: int):
    from edgewise.suite.tasks.tracr import get_task

    task = get_task(name)
    reps = -(-rows // task.clean.shape[0])
    return task.model, task.clean.repeat(reps, 1)[:rows], task.corrupt.repeat(reps, 1)[:rows]


def random_case(
    n_layers: int = 6, d_model: int = 256, n_heads: int = 8, kv_heads: int = 2, rows: int = 16, length: int = 32
):
    """Returns a random LayerNorm model (GQA when kv_heads < n_heads) and clean and corrupted random token batches."""
    cfg = TransformerConfig(
        n_layers=n_layers,
        d_model=d_model,
        n_heads=n_heads,
        d_head=d_model // n_heads,
        d_mlp=4 * d_model,
        d_vocab=1000,
        d_vocab_out=1000,
        n_ctx=64,
        n_key_value_heads=kv_heads,
        normalization=True,
        act_fn="gelu",
    )
    model = Transformer(cfg)
    model.init_weights(std=0.05)
    g = torch.Generator().manual_seed(0)
    return (
        model,
        torch.randint(0, 1000, (rows, length), generator=g),
        torch.randint(0, 1000, (rows, length), generator=g),
    )


def _smollm2_case():
    from edgewise.suite.models.pretrained import load_smollm2

    loaded = load_smollm2()
    names = [("Mary", "John"), ("Alice", "Bob"), ("Sarah", "Tom"), ("Emma", "James"), ("Anna", "Paul")] * 4
    prompts = [f"When {a} and {b} went to the store, {b} gave a drink to" for a, b in names]
    corrupt_prompts = [f"When {a} and {b} went to the park, {a} gave a ball to" for a, b in names]
    tok = loaded.tokenizer
    clean = tok(prompts, return_tensors="pt")["input_ids"]
    corrupt = tok(corrupt_prompts, return_tensors="pt")["input_ids"]
    return loaded.bridge, clean, corrupt


CASES = {
    "tracr": [
        ("tracr-reverse (100 rows)", lambda: _tracr_case("tracr-reverse", 100), False),
        ("tracr-reverse (100 rows)", lambda: _tracr_case("tracr-reverse", 100), True),
        ("tracr-dyck2 (100 rows)", lambda: _tracr_case("tracr-dyck2", 100), False),
    ],
    "random": [("random 6L d256 8 heads GQA+LN", random_case, False)],
    "random-large": [("random 12L d768 12 heads LN (64 rows)", lambda: random_case(12, 768, 12, 12, 64), False)],
    "smollm2": [("SmolLM2-135M (20 IOI prompts)", _smollm2_case, False)],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--skip-smollm2", action="store_true")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda to time on a GPU")
    parser.add_argument("--cases", default="tracr,random,smollm2", help=f"comma-separated, of {', '.join(CASES)}")
    args = parser.parse_args()
    chosen = [c for c in args.cases.split(",") if not (c == "smollm2" and args.skip_smollm2)]
    cases = [case for name in chosen for case in CASES[name]]
    results = []
    kept = keep_freed_memory()  # what the first patched forward would set: plain and masked forwards both time under it
    peak = gemm_gflops(args.device)
    print(
        f"peak: {peak:.1f} GFLOP/s on a 1024^3 float32 matrix product ({args.device}, "
        f"{torch.get_num_threads()} threads)"
    )
    header = (
        f"{'case':<38}{'graph':<13}{'edges':>7}{'plain ms':>10}{'masked ms':>11}{'ratio':>7}{'floor':>7}"
        f"{'8 masks/8x':>12}{'fwd+bwd':>9}"
    )
    print(header)
    for name, build, per_position in cases:
        try:
            model, clean, corrupt = build()
        except PretrainedModelMissingError as err:  # a missing optional model is reported, not fatal
            print(f"{name:<38}skipped: {err}")
            continue
        model, clean, corrupt = model.to(args.device), clean.to(args.device), corrupt.to(args.device)
        repeats = args.repeats if "SmolLM2" not in name else max(3, args.repeats // 5)
        r = measure(name, model, clean, corrupt, repeats, per_position, peak)
        results.append(r)
        print(
            f"{name:<38}{r['graph']:<13}{r['n_edges']:>7}{1e3 * r['plain_forward_s']:>10.2f}"
            f"{1e3 * r['masked_forward_s']:>11.2f}{r['ratio_masked_over_plain']:>7.2f}"
            f"{r['ratio_floor_products_at_peak']:>7.2f}"
            f"{r['ratio_batched_8_over_plain_8x']:>12.2f}{r['ratio_backward']:>9.2f}",
            flush=True,
        )
    out = OUT if args.device == "cpu" else OUT.with_name(f"patching_overhead-{args.device}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    gpu = torch.cuda.get_device_name() if args.device.startswith("cuda") else None
    record = {
        "machine": {
            "platform": platform.platform(),
            "torch": torch.__version__,
            "device": args.device,
            "gpu": gpu,
            "threads": torch.get_num_threads(),
            "gemm_gflops": peak,
            "malloc_keeps_freed_memory": kept,
        },
        "results": results,
    }
    out.write_text(json.dumps(record, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
