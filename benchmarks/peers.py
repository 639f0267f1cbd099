"""edgewise and auto-circuit 1.0.1 side by side on identical work: the same tracr models (reverse, xproportion), the
same 200 sampled sequences of length 5 with the same corrupted pairing, the same number of SP steps, one after the
other in one run on this machine, one thread each. Prints per method both times, their ratio and both AUROCs
(against auto-circuit's resample ground truths, which equal edgewise's effective truths), and the masked / plain
forward ratio of each tool; writes benchmarks/results/peers.json.

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

HARNESS = Path(__file__).resolve().parents[2] / "shared" / "peer" / "autocircuit_tracr.py"
OUT = Path(__file__).parent / "results" / "peers.json"
# (edgewise method, its preset, the harness's name for auto-circuit's): edge-sp runs at its tuned defaults (4 sampled
# masks a step for the first half) and at its published preset, auto-circuit's own SEP settings (lr 0.1, lambda 0.5,
# one sample a step), which is the same work step for step; ACDC's and EAP's published settings are the tuned ones
RUNS = (("acdc", "tuned", "acdc"), ("eap", "tuned", "eap"), ("edge-sp", "tuned", "sep"), ("edge-sp", "published", "sep"))


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


def run_auto_circuit(python: str, sp_steps: int) -> dict:
    """Returns the harness's JSON (auto-circuit's times, AUROCs, forward timings), with the training sequences it drew
    under ["data"]["train"] of each task."""
    with tempfile.TemporaryDirectory() as folder:
        splits = Path(folder) / "splits.json"
        methods = ",".join(dict.fromkeys(peer for _, _, peer in RUNS))
        command = [python, "-c", RECORDER, str(splits), str(HARNESS.parent), str(HARNESS), "--task", "all", "--seed",
                   "0", "--methods", methods, "--sep-epochs", str(sp_steps), "--threads", "1"]
        # The harness pins string hashing by re-executing itself unless PYTHONHASHSEED is set; set it here, so the
        # recorder stays in the process that runs the harness.
        done = subprocess.run(command, capture_output=True, text=True, check=True,
                              env={**os.environ, "PYTHONHASHSEED": "0"})
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
    compiled = task.extras["compiled"]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ac-python", required=True, help="python of the auto-circuit venv")
    parser.add_argument("--sp-steps", type=int, default=200, help="SP steps for both tools (auto-circuit: epochs)")
    parser.add_argument("--repeats", type=int, default=3, help="edgewise: median of this many runs after a warm-up")
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    peer = run_auto_circuit(args.ac_python, args.sp_steps)
    peer_seconds = time.perf_counter() - start
    rows, result = [], {"date": datetime.date.today().isoformat(), "machine": platform.platform(),
                        "python": platform.python_version(), "sp_steps": args.sp_steps, "repeats": args.repeats,
                        "auto_circuit_versions": peer.get("versions"), "auto_circuit_seconds": peer_seconds,
                        "tasks": {}}
    for name in ("reverse", "xproportion"):
        theirs = peer[name]
        task = edgewise_task(name, theirs["data"]["train"])
        graph = task.graph()
        truth = {Edge(*e.split("->")) for e in theirs["official_edges"]}
        ablated = task_ablation(task, graph, "resample")
        zeros = torch.zeros(graph.n_edges)
        with torch.no_grad():
            forward = median_seconds(lambda: task.model(task.clean), 20)[0]
            masked = median_seconds(lambda: patched_forward(task.model, graph, task.clean, ablated, zeros), 20)[0]
        record = {"n_edges": graph.n_edges, "batch": list(task.clean.shape), "truth": sorted(e.name for e in truth),
                  "forward": {"edgewise_ratio": masked / forward, "auto_circuit_ratio": theirs["patched_over_forward_ratio"],
                              "edgewise_forward_ms": forward * 1e3, "edgewise_masked_ms": masked * 1e3},
                  "methods": {}}
        for method, preset, peer_name in RUNS:
            settings = {"steps": args.sp_steps} if method == "edge-sp" else {}
            run = lambda: edgewise.discover(task, method, graph=graph, ablated=ablated, preset=preset,  # noqa: E731
                                            **settings)
            warm_up = lambda: edgewise.discover(task, method, graph=graph, ablated=ablated,  # noqa: E731
                                                **({"steps": 2} if method == "edge-sp" else {}))
            seconds, scores = median_seconds(run, args.repeats, warm_up)
            ours = {"seconds": seconds, "auroc": roc_auc(scores, truth), "preset": preset}
            label = method if preset == "tuned" else f"{method} ({preset})"
            record["methods"][label] = {"edgewise": ours, "auto_circuit": theirs[peer_name],
                                        "speed_up": theirs[peer_name]["seconds"] / seconds}
            rows.append((name, label, theirs[peer_name]["seconds"], seconds, theirs[peer_name]["auroc"], ours["auroc"]))
        result["tasks"][name] = record
    print(f"{'task':<12}{'method':<21}{'auto-circuit s':>15}{'edgewise s':>12}{'speed-up':>10}"
          f"{'AUROC ac':>10}{'AUROC ew':>10}")
    for name, method, peer_s, ours_s, peer_auc, ours_auc in rows:
        print(f"{name:<12}{method:<21}{peer_s:>15.3f}{ours_s:>12.3f}{peer_s / ours_s:>9.2f}x"
              f"{peer_auc:>10.3f}{ours_auc:>10.3f}")
    for name, record in result["tasks"].items():
        f = record["forward"]
        print(f"{name}: masked / plain forward, every edge resample-ablated, batch {record['batch']}: "
              f"edgewise {f['edgewise_ratio']:.2f}, auto-circuit {f['auto_circuit_ratio']:.2f}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1, default=float))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
