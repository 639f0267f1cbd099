"""edgewise and auto-circuit 1.0.1 side by side on identical work: the same tracr models (reverse, xproportion), the
same 200 sampled sequences of length 5 with the same corrupted pairing, the same number of SP steps, one after the
other in one run on this machine, one thread each, alternately for a few rounds (the machine's speed drifts by 10-20%
between minutes: medians over alternating rounds cancel most of it). Prints per method both times, their ratio (and
each round's) and both AUROCs (against auto-circuit's resample ground truths, which equal edgewise's effective
truths), and each tool's masked / plain forward ratio and both forwards' times (each tool times its forwards under
inference mode, on a batch of the same shape); writes benchmarks/results/peers.json.

auto-circuit needs TransformerLens 2.x, which cannot live beside edgewise's 4.3, so it runs in its own virtual
environment through the shared harness `../shared/peer/autocircuit_tracr.py` (run, not copied):

    bash ../shared/peer/setup_autocircuit_venv.sh "$TMPDIR/ac-venv"           # once, about 3 minutes
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/peers.py --ac-python "$TMPDIR/ac-venv/bin/python"

Run it alone on a quiet machine. auto-circuit's methods score with its own objectives (logit difference for
reverse, MSE for xproportion); edgewise's with its defaults (KL for reverse, MSE for proportion): same data and
steps, each tool as its users run it.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import torch

import edgewise
from edgewise.evaluate import roc_auc
from edgewise.graph import Edge
from edgewise.patching import patched_forward, task_ablation
from edgewise.patching.allocator import KEEP_BYTES, keep_freed_memory

HARNESS = Path(__file__).resolve().parents[2] / "shared" / "peer" / "autocircuit_tracr.py"
OUT = Path(__file__).parent / "results" / "peers.json"
# (edgewise method, its preset, the harness's name for auto-circuit's): edge-sp runs at its tuned defaults (4 sampled
# masks a step for the first half) and at its published preset, auto-circuit's own SEP settings (lr 0.1, lambda 0.5,
# one sample a step), which is the same work step for step; ACDC's and EAP's published settings are the tuned ones
RUNS = (
    ("acdc", "tuned", "acdc"),
    ("eap", "tuned", "eap"),
    ("edge-sp", "tuned", "sep"),
    ("edge-sp", "published", "sep"),
)


# Runs the harness unchanged, recording the training split it draws: its build_split is wrapped to note each split's
# sequences (token ids decoded back to values), written to the file named by argv[1] once the harness finishes.
RECORDER = """
import json, sys
sys.path.insert(0, sys.argv[2])
import autocircuit_tracr as harness
splits, original = {}, harness.build_split

def recording(task, tracr_model, n, rng, torch):
    split = original(task, tracr_model, n, rng, torch)
    decode = {i: value for value, i in tracr_model.input_encoder.encoding_map.items()}
    values = lambda batch: [[decode[i] for i in row.tolist()[1:]] for row in batch]  # drop BOS
    splits.setdefault(task, {"clean": values(split[0]), "corrupt": values(split[1])})  # the first: training
    return split

harness.build_split = recording
out = sys.argv[1]
sys.argv = [sys.argv[3], *sys.argv[4:]]
try:
    harness.main()
finally:
    with open(out, "w") as file:
        json.dump(splits, file)
"""


def run_auto_circuit(python: str, sp_steps: int, forward_reps: int) -> dict:
    """Returns the harness's JSON (auto-circuit's times, AUROCs, forward timings), with the training sequences it drew
    under ["data"]["train"] of each task."""
    with tempfile.TemporaryDirectory() as folder:
        splits = Path(folder) / "splits.json"
        methods = ",".join(dict.fromkeys(peer for _, _, peer in RUNS))
        command = [
            python,
            "-c",
            RECORDER,
            str(splits),
            str(HARNESS.parent),
            str(HARNESS),
            "--task",
            "all",
            "--seed",
            "0",
            "--methods",
            methods,
            "--sep-epochs",
            str(sp_steps),
            "--threads",
            "1",
            "--timing-reps",
            str(forward_reps),
        ]
        # The harness pins string hashing by re-executing itself unless PYTHONHASHSEED is set; set it here, so the
        # recorder stays in the process that runs the harness. edgewise's patching forward sets glibc's malloc to keep
        # freed memory (edgewise/patching/allocator.py); auto-circuit gets the same setting through glibc's
        # environment variables, so neither tool gains from it alone.
        same_malloc = {"MALLOC_MMAP_THRESHOLD_": str(KEEP_BYTES), "MALLOC_TRIM_THRESHOLD_": str(KEEP_BYTES)}
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": "0", **same_malloc},
        )
        result = json.loads(done.stdout)
        for task, split in json.loads(splits.read_text()).items():
            result[task]["data"]["train"] = split
    return result


def edgewise_task(name: str, data: dict):
    """Returns edgewise's task on exactly the harness's training split: its clean sequences and their pairing."""
    from tracr.compiler import lib
    from tracr.rasp import rasp

    program, vocab = {
        "reverse": (lib.make_reverse(rasp.tokens).named("reverse"), {1, 2, 3}),
        "xproportion": (lib.make_frac_prevs(rasp.tokens == "x").named("frac_prevs"), {"w", "x", "y", "z"}),
    }[name]
    task = edgewise.tracr_task(program, vocab, 5, f"peer-{name}", sequences=data["clean"])
    compiled = task.family.compiled
    return dataclasses.replace(task, corrupt=compiled.encode(data["corrupt"]))


def median_seconds(fn, repeats: int, warm_up=None):
    """Returns (median wall time of `repeats` calls of fn, the last call's result), after one call of `warm_up` (or
    fn): the first call of a process pays one-time costs."""
    (warm_up or fn)()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def measure_edgewise(name: str, theirs: dict, sp_steps: int, repeats: int, forward_reps: int) -> dict:
    """Returns edgewise's record on one task of the harness's output: its forward timings and, per method, its time
    and AUROC on exactly the harness's training split."""
    task = edgewise_task(name, theirs["data"]["train"])
    graph = task.graph()
    truth = {Edge(*e.split("->")) for e in theirs["official_edges"]}
    ablated = task_ablation(task, graph, "resample")
    zeros = torch.zeros(graph.n_edges)
    with torch.inference_mode():  # as the harness times auto-circuit's forwards
        forward = median_seconds(lambda: task.model(task.clean), forward_reps)[0]
        masked = median_seconds(lambda: patched_forward(task.model, graph, task.clean, ablated, zeros), forward_reps)[0]
    record = {
        "n_edges": graph.n_edges,
        "batch": list(task.clean.shape),
        "truth": sorted(e.name for e in truth),
        "forward": {"edgewise_ms": forward * 1e3, "edgewise_masked_ms": masked * 1e3},
        "methods": {},
    }
    for method, preset, _ in RUNS:
        settings = {"steps": sp_steps} if method == "edge-sp" else {}
        run = lambda: edgewise.discover(
            task,
            method,
            graph=graph,
            ablated=ablated,
            preset=preset,  # noqa: E731
            **settings,
        )
        warm_up = lambda: edgewise.discover(
            task,
            method,
            graph=graph,
            ablated=ablated,  # noqa: E731
            **({"steps": 2} if method == "edge-sp" else {}),
        )
        seconds, scores = median_seconds(run, repeats, warm_up)
        label = method if preset == "tuned" else f"{method} ({preset})"  # as RunRecord.label
        record["methods"][label] = {"seconds": seconds, "auroc": roc_auc(scores, truth), "preset": preset}
    return record


def combine(rounds: list[tuple[dict, dict]]) -> dict:
    """Returns per task the rounds' medians: both tools' masked / plain ratios and per method both times, their
    ratio, every round's own ratio, and both AUROCs (the same in every round: same data, same seeds)."""
    median = statistics.median
    tasks = {}
    for name in ("reverse", "xproportion"):
        theirs = [peer[name] for peer, _ in rounds]
        ours = [mine[name] for _, mine in rounds]
        ratios = [o["forward"]["edgewise_masked_ms"] / o["forward"]["edgewise_ms"] for o in ours]
        record = {key: ours[0][key] for key in ("n_edges", "batch", "truth")}
        record["forward"] = {
            "edgewise_ratio": median(ratios),
            "edgewise_ratios": ratios,
            "auto_circuit_ratio": median(t["patched_over_forward_ratio"] for t in theirs),
            "auto_circuit_ratios": [t["patched_over_forward_ratio"] for t in theirs],
            "edgewise_forward_ms": median(o["forward"]["edgewise_ms"] for o in ours),
            "edgewise_masked_ms": median(o["forward"]["edgewise_masked_ms"] for o in ours),
            "auto_circuit_forward_ms": median(t["forward_ms"] for t in theirs),
            "auto_circuit_masked_ms": median(t["patched_forward_ms"] for t in theirs),
        }
        record["methods"] = {}
        for method, preset, peer_name in RUNS:
            label = method if preset == "tuned" else f"{method} ({preset})"  # as RunRecord.label
            peer_s = [t[peer_name]["seconds"] for t in theirs]
            ours_s = [o["methods"][label]["seconds"] for o in ours]
            record["methods"][label] = {
                "edgewise": {**ours[0]["methods"][label], "seconds": median(ours_s), "seconds_per_round": ours_s},
                "auto_circuit": {**theirs[0][peer_name], "seconds": median(peer_s), "seconds_per_round": peer_s},
                "speed_up": median(peer_s) / median(ours_s),
                "speed_up_per_round": [a / b for a, b in zip(peer_s, ours_s)],
            }
        tasks[name] = record
    return tasks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ac-python", required=True, help="python of the auto-circuit venv")
    parser.add_argument("--sp-steps", type=int, default=200, help="SP steps for both tools (auto-circuit: epochs)")
    parser.add_argument("--repeats", type=int, default=3, help="edgewise: median of this many runs after a warm-up")
    parser.add_argument(
        "--forward-reps",
        type=int,
        default=100,
        help="both tools: the masked / plain forward times are medians of this many forwards",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="run the two tools alternately this many times; report the medians over rounds "
        "(per-round ratios spread by 20-40%% on this machine: five rounds steady the medians)",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    keep_freed_memory()  # from the start: edgewise's plain forwards then time under it too
    start = time.perf_counter()
    rounds = []
    for _ in range(args.rounds):
        peer = run_auto_circuit(args.ac_python, args.sp_steps, args.forward_reps)
        rounds.append(
            (
                peer,
                {
                    name: measure_edgewise(name, peer[name], args.sp_steps, args.repeats, args.forward_reps)
                    for name in ("reverse", "xproportion")
                },
            )
        )
    result = {
        "date": datetime.date.today().isoformat(),
        "machine": platform.platform(),
        "python": platform.python_version(),
        "sp_steps": args.sp_steps,
        "repeats": args.repeats,
        "forward_reps": args.forward_reps,
        "rounds": args.rounds,
        "auto_circuit_versions": rounds[0][0].get("versions"),
        "seconds": time.perf_counter() - start,
        "tasks": combine(rounds),
    }
    print(f"medians over {args.rounds} alternating rounds")
    width = 6 * args.rounds + 2  # the per-round ratios, up to "12.34" each, a space before each
    print(
        f"{'task':<12}{'method':<21}{'auto-circuit s':>15}{'edgewise s':>12}{'speed-up':>10}{'per round':>{width}}"
        f"{'AUROC ac':>10}{'AUROC ew':>10}"
    )
    for name, record in result["tasks"].items():
        for label, m in record["methods"].items():
            rounds_text = " ".join(f"{r:.2f}" for r in m["speed_up_per_round"])
            print(
                f"{name:<12}{label:<21}{m['auto_circuit']['seconds']:>15.3f}{m['edgewise']['seconds']:>12.3f}"
                f"{m['speed_up']:>9.2f}x{rounds_text:>{width}}{m['auto_circuit']['auroc']:>10.3f}"
                f"{m['edgewise']['auroc']:>10.3f}"
            )
    for name, record in result["tasks"].items():
        f = record["forward"]
        print(
            f"{name}: masked / plain forward, every edge resample-ablated, batch {record['batch']}: "
            f"edgewise {f['edgewise_ratio']:.2f} ({' '.join(f'{r:.2f}' for r in f['edgewise_ratios'])}), "
            f"auto-circuit {f['auto_circuit_ratio']:.2f} "
            f"({' '.join(f'{r:.2f}' for r in f['auto_circuit_ratios'])}); "
            f"median ms plain / masked (+ patching): edgewise {f['edgewise_forward_ms']:.2f} / "
            f"{f['edgewise_masked_ms']:.2f} (+{f['edgewise_masked_ms'] - f['edgewise_forward_ms']:.2f}), auto-circuit "
            f"{f['auto_circuit_forward_ms']:.2f} / {f['auto_circuit_masked_ms']:.2f} "
            f"(+{f['auto_circuit_masked_ms'] - f['auto_circuit_forward_ms']:.2f})"
        )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1, default=float))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
