"""Start-up time of the command line: `edgewise --help`, `edgewise --version` and `edgewise tasks --json` with a
warm cache (the task cards exist; the first listing builds every task once). Each command runs in a fresh
interpreter, as a user runs it. Prints a table and writes benchmarks/results/startup.json:

    .venv/bin/python benchmarks/startup.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

OUT = Path(__file__).parent / "results" / "startup.json"
COMMANDS = (["--help"], ["--version"], ["tasks", "--json"], ["tasks"])


def wall_seconds(args: list[str]) -> float:
    """Returns the wall time of one `edgewise ARGS` in a fresh interpreter; raises if it fails."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "edgewise.cli", *args], check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    wall_seconds(["tasks", "--json"])  # builds any missing task card, so the timings below are warm
    rows = []
    for command in COMMANDS:
        times = [wall_seconds(command) for _ in range(args.repeats)]
        rows.append(
            {
                "command": "edgewise " + " ".join(command),
                "median_seconds": statistics.median(times),
                "min_seconds": min(times),
                "max_seconds": max(times),
            }
        )
    print(f"{'command':<26}{'median s':>10}{'min s':>8}{'max s':>8}")
    for r in rows:
        print(f"{r['command']:<26}{r['median_seconds']:>10.2f}{r['min_seconds']:>8.2f}{r['max_seconds']:>8.2f}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(
        json.dumps(
            {
                "machine": platform.platform(),
                "python": platform.python_version(),
                "repeats": args.repeats,
                "rows": rows,
            },
            indent=1,
        )
    )
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
