"""Trains the SIIT model of a tracr program and writes its committed weights and their record.

    OMP_NUM_THREADS=1 python scripts/train_siit.py tracr-hist [--steps N] [--strict-weight W] [--strict-through-sources]

Deterministic by seed on one CPU thread. The high-level model is the program's compiled tracr Transformer; the
low-level one has its layers with LowLevelShape's widths, LayerNorm and random weights, and learns by strict
interchange-intervention training (edgewise.suite.models.siit.training) on every input of the task's form but its
held-out ones. Writes src/edgewise/suite/models/weights/siit-<program>.pt and, beside it, siit-<program>.json: shapes,
alignment, training settings, training time, and accuracy, IIA and strict IIA on the held-out inputs and on the training
inputs (at most MEASURED_TRAIN of them, drawn by seed: the scores take every ordered pair).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import torch

from edgewise.models import Transformer
from edgewise.suite.models.siit.alignment import LowLevelShape, align, low_level_config
from edgewise.suite.models.siit.measures import measure_siit
from edgewise.suite.models.siit.training import SiitConfig, train_siit
from edgewise.suite.models.siit.weights import save_siit, weights_path
from edgewise.suite.tasks.registry import SIIT_TASKS
from edgewise.suite.tasks.tracr.suite import get_task
from edgewise.suite.tasks.trained.siit import high_level_nodes, training_inputs

MEASURED_TRAIN = 200  # training inputs the record's train scores are measured on (all pairs of them), at most


def scored_positions(tokens: torch.Tensor, bos_id: int, pad_id: int) -> torch.Tensor:
    """Returns [batch, pos] bool: the positions a tracr task scores (neither BOS nor padding)."""
    return (tokens != bos_id) & (tokens != pad_id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("program", choices=sorted(SIIT_TASKS.values()))
    parser.add_argument("--steps", type=int, default=SiitConfig.steps)
    parser.add_argument(
        "--strict-weight",
        type=float,
        default=SiitConfig.strict_weight,
        help="weight of the strict loss (the other two weigh 1)",
    )
    parser.add_argument(
        "--strict-through-sources",
        action="store_true",
        help="let the strict loss train the non-aligned nodes through their source outputs",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    cfg = SiitConfig(
        steps=args.steps, strict_weight=args.strict_weight, strict_through_sources=args.strict_through_sources
    )
    shape = LowLevelShape()

    discovery = get_task(args.program)
    compiled, high = discovery.family.compiled, discovery.model
    low = Transformer(low_level_config(high.cfg, shape))
    alignment = align(high_level_nodes(discovery.ground_truth, discovery.graph()), high.cfg, low.cfg)
    tokens = compiled.encode(training_inputs(args.program))
    scored = scored_positions(tokens, compiled.bos_id, compiled.pad_id)
    print(f"{args.program}: {len(tokens)} training inputs, alignment {alignment.to_dict()}", flush=True)

    start = time.perf_counter()
    train_siit(high, low, alignment, tokens, scored, compiled.categorical, cfg)
    seconds = time.perf_counter() - start

    held_out = get_task(args.program, held_out=True)
    measured_rows = torch.randperm(len(tokens), generator=torch.Generator().manual_seed(cfg.seed))[:MEASURED_TRAIN]
    measured = {
        "train": measure_siit(
            high, low, alignment, tokens[measured_rows], scored[measured_rows], compiled.categorical
        ).to_dict(),
        "held_out": measure_siit(
            high, low, alignment, held_out.clean, held_out.scored_positions, compiled.categorical
        ).to_dict(),
    }
    path = save_siit(low, alignment, weights_path(args.program))
    record = {
        "program": args.program,
        "high_level_config": high.cfg.to_dict(),
        "config": low.cfg.to_dict(),
        "shape": dataclasses.asdict(shape),
        "alignment": alignment.to_dict(),
        "training": dataclasses.asdict(cfg),
        "n_train": len(tokens),
        "n_train_measured": len(measured_rows),
        "n_held_out": len(held_out.clean),
        "train_seconds": round(seconds, 1),
        "measured": measured,
    }
    path.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({"train_seconds": record["train_seconds"], **measured}, indent=2))


if __name__ == "__main__":
    main()
