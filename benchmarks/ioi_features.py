"""A feature circuit on a real model: SmolLM2-135M IOI with sparse autoencoders trained here, against the head/MLP
circuit of the same task.

Nothing can be downloaded here, so the SAEs' data is what the model itself writes: it continues a few neutral
prompts by sampling (seeded), and the SAEs train on the chosen MLPs' outputs over that text plus the IOI prompts
(clean and corrupted). One TopK SAE per MLP (2 x 576 features, k = 16), features kept where active on the IOI
inputs; the rest of each MLP's output goes to its error node, so the feature graph stays exact. EAP scores both
graphs (one backward each); MIB's faithfulness curve is measured by patching on the held-out IOI prompts, at 21
circuit sizes per graph. Prints a table, writes benchmarks/results/ioi_features.json and a plot of both curves
(benchmarks/results/ioi_features.png).

These SAEs are fitted to about two thousand activations each: enough to test that edgewise builds, scores and
patches a 200,000-edge feature graph of a 30-layer model, not dictionaries of the model's features in the sense of
SAEs trained on hundreds of millions of tokens.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/ioi_features.py [--mlps 6 8 10] [--new-tokens 40]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from edgewise.evaluate.faithfulness import edges_to_reach, faithfulness_curve  # noqa: E402
from edgewise.features.sae import SAETrainingConfig, sae_statistics, train_with_config  # noqa: E402
from edgewise.graph.dictionary import Dictionary  # noqa: E402
from edgewise.methods import discover  # noqa: E402
from edgewise.patching import task_ablation  # noqa: E402
from edgewise.suite.bench.memory import PeakMemory  # noqa: E402
from edgewise.suite.tasks import get_task  # noqa: E402
from edgewise.tasks import Task  # noqa: E402

OUT = Path(__file__).parent / "results"
PROMPTS = [
    "Once upon a time",
    "The city council met on",
    "In the morning, the children",
    "My favourite recipe is",
    "The history of the river",
    "She opened the letter and",
    "Scientists have found that",
    "After dinner we",
    "The old man walked",
    "Here is a short story about",
    "The weather today",
    "When the train arrived",
    "The best way to learn",
    "At the market, people",
    "The teacher asked the class",
    "Yesterday I saw",
]


@torch.no_grad()
def generated_tokens(task: Task, n_new: int, seed: int = 0) -> torch.Tensor:
    """Returns the model's own continuations of PROMPTS: [n_prompts, n_new] sampled token ids (temperature 1), each
    prompt cut to its first 4 tokens so the batch needs no padding."""
    tokenizer = task.family.tokenizer
    tokens = torch.tensor([tokenizer(p).input_ids[:4] for p in PROMPTS])
    generator = torch.Generator().manual_seed(seed)
    for _ in range(n_new):
        logits = task.adapter.forward(tokens)[:, -1]
        tokens = torch.cat([tokens, torch.multinomial(logits.softmax(-1), 1, generator=generator)], dim=1)
    return tokens


@torch.no_grad()
def mlp_outputs(task: Task, batches: list[torch.Tensor], mlps: list[str]) -> dict[str, torch.Tensor]:
    """Returns each named MLP's output over every position of `batches`: [rows, d_model]."""
    groups = {n.name: g for g in task.adapter.hook_groups() if g.kind == "writer" for n in g.nodes if n.name in mlps}
    rows: dict[str, list[torch.Tensor]] = {m: [] for m in mlps}
    hooks = [(groups[m].hook, lambda value, hook, m=m: rows[m].append(value.flatten(0, -2))) for m in mlps]
    with task.adapter.hooks(hooks):
        for tokens in batches:
            task.adapter.forward(tokens)
    return {m: torch.cat(r) for m, r in rows.items()}


def measure(task: Task, evaluation: Task, graph_features: str | None) -> dict:
    """Returns EAP's run on one graph of the task: size, seconds, peak memory and the held-out faithfulness curve."""
    graph = task.graph(features=graph_features)
    with PeakMemory() as memory:
        start = time.perf_counter()
        scores = discover(task, "eap", graph=graph, ablated=task_ablation(task, graph, "resample"))
        seconds = time.perf_counter() - start
    curve = faithfulness_curve(
        evaluation,
        scores,
        task_ablation(evaluation, graph, "resample"),
        every_k_up_to=0,
        n_sampled=21,
        rows_per_forward=2 * evaluation.clean.shape[0],
    )
    return {
        "graph": graph_features or "heads/MLPs",
        "n_edges": graph.n_edges,
        "n_writers": len(graph.writers),
        "eap_seconds": seconds,
        "eap_peak_mib": memory.peak_mib,
        "curve": curve.to_dict(),
        "edges_to_80": edges_to_reach(curve, 0.8),
        "edges_to_95": edges_to_reach(curve, 0.95),
    }


def ioi_dictionaries(task: Task, mlps: list[str], new_tokens: int) -> tuple[dict[str, Dictionary], dict, list[int]]:
    """Trains one TopK SAE per MLP on the model's own text and the IOI prompts, and returns (each MLP's dictionary of
    the features active on IOI, each SAE's statistics, the generated text's shape)."""
    text = generated_tokens(task, new_tokens)
    outputs = mlp_outputs(task, [text, task.clean, task.corrupt], mlps)
    on_task = {m: rows[text.numel() :] for m, rows in outputs.items()}  # the IOI rows follow the generated text's
    dictionaries, saes = {}, {}
    for mlp in mlps:
        sae = train_with_config(outputs[mlp], SAETrainingConfig(2 * outputs[mlp].shape[1], "topk", 16, seed=0))
        dictionary = Dictionary.from_sae(sae)
        dictionaries[mlp] = dictionary.restricted(dictionary.active(on_task[mlp]))
        stats = sae_statistics(sae, outputs[mlp])
        saes[mlp] = {
            "rows": outputs[mlp].shape[0],
            "fvu": stats.fvu,
            "l0": stats.l0,
            "dead_fraction": stats.dead_fraction,
            "active_on_ioi": dictionaries[mlp].n_features,
        }
    return dictionaries, saes, list(text.shape)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mlps", nargs="*", type=int, default=[6, 8, 10])
    parser.add_argument("--new-tokens", type=int, default=40)
    args = parser.parse_args()
    task, evaluation = get_task("smollm2-ioi"), get_task("smollm2-ioi", held_out=True)
    mlps = [f"MLP {layer}" for layer in args.mlps]
    dictionaries, saes, text_shape = ioi_dictionaries(task, mlps, args.new_tokens)
    for t in (task, evaluation):
        t.dictionaries["sae-here"] = dictionaries
    runs = [measure(task, evaluation, None), measure(task, evaluation, "sae-here")]
    record = {
        "mlps": mlps,
        "generated_tokens": text_shape,
        "saes": saes,
        "runs": runs,
        "threads": torch.get_num_threads(),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "ioi_features.json").write_text(json.dumps(record, indent=2, allow_nan=False))
    print("| MLP | SAE rows | FVU | L0 | dead | features active on IOI |\n|---|---|---|---|---|---|")
    for mlp, s in saes.items():
        print(
            f"| {mlp} | {s['rows']} | {s['fvu']:.3f} | {s['l0']:.1f} | {s['dead_fraction']:.0%} | "
            f"{s['active_on_ioi']} |"
        )
    print("\n| graph | edges | writers | EAP s | EAP peak MiB | edges to 80% | edges to 95% |")
    print("|---|---|---|---|---|---|---|")
    for r in runs:
        print(
            f"| {r['graph']} | {r['n_edges']} | {r['n_writers']} | {r['eap_seconds']:.1f} | {r['eap_peak_mib']:.0f} |"
            f" {r['edges_to_80']} | {r['edges_to_95']} |"
        )
    figure, axis = plt.subplots(figsize=(6, 4))
    for r, style in zip(runs, ("-", "--")):
        axis.plot(
            r["curve"]["sizes"],
            r["curve"]["faithfulness"],
            style,
            marker="o",
            markersize=3,
            label=f"{r['graph']} ({r['n_edges']} edges)",
        )
    axis.set_xscale("symlog", linthresh=10)
    axis.set(
        xlabel="edges kept (EAP's top k)",
        ylabel="faithfulness (held-out prompts)",
        title="SmolLM2-135M IOI: EAP circuits, resample ablation",
    )
    axis.axhline(1, color="grey", lw=0.5)
    axis.legend()
    figure.tight_layout()
    figure.savefig(OUT / "ioi_features.png", dpi=120)
    print(f"wrote {OUT / 'ioi_features.json'} and {OUT / 'ioi_features.png'}")


if __name__ == "__main__":
    main()
