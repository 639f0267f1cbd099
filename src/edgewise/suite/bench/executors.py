"""What runs a bench's runs: this machine (`LocalExecutor`: the bench's own process, or worker processes) or a Ray
cluster (`RayExecutor`, in ray_executor.py, which imports Ray only when entered, so that the one-machine bench needs
no Ray).

An executor is a context manager: entering it connects to whatever it runs on and raises, before any run starts,
where it cannot (a cluster that does not answer, Ray not installed, versions that differ). `run` then does the
pending runs of a sweep and leaves each one's files in the results folder (runs/, scores/, failed/), updating the
bench's progress bar; the bench that called it holds the folder's lock throughout and reads the records back.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from edgewise.errors import InvalidSweepError

if TYPE_CHECKING:
    from tqdm import tqdm

    from .sweep import RunSpec


class Executor:
    """The contract a bench's executor keeps (see the module): `name`, `describe`, entering and leaving it, `run`.

    Attributes:
        name: what records call it (`local`, `ray`).
    """

    name = "executor"

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc_info) -> None:
        return None

    def describe(self) -> str:
        """Returns the executor in a few words, for the progress bar: `1 process`, `2 jobs`, `ray, 4 CPUs`."""
        return self.name

    def run(self, pending: list[RunSpec], out: Path, bar: tqdm, device: str) -> None:
        """Does the pending runs, leaving each one's files in `out` (`write_outcome`) and updating `bar`.

        Args:
            pending: the runs not yet finished in `out`, in sweep order.
            out: the results folder, whose lock the caller holds.
            bar: the progress bar over the sweep.
            device: where the runs' models and inputs go.
        """
        raise NotImplementedError


class LocalExecutor(Executor):
    """Runs a bench on this machine: in the bench's own process (`jobs` 1), or in `jobs` worker processes, one
    (task, graph, ablation) group per job, which die with the bench (workers.py) and share its threads.

    Attributes:
        jobs: how many runs at once.

    Raises:
        InvalidSweepError: `jobs` is not a whole number >= 1.
    """

    name = "local"

    def __init__(self, jobs: int = 1):
        if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
            raise InvalidSweepError(f"jobs={jobs!r}: the number of runs at once must be a whole number >= 1")
        self.jobs = jobs

    def describe(self) -> str:
        """Returns `N jobs`, or `1 process`."""
        return "1 process" if self.jobs == 1 else f"{self.jobs} jobs"

    def run(self, pending: list[RunSpec], out: Path, bar: tqdm, device: str) -> None:
        """Does the pending runs on this machine (see `run_locally`).

        Args:
            pending: the runs not yet finished in `out`.
            out: the results folder.
            bar: the progress bar over the sweep.
            device: where the runs' models and inputs go.
        """
        from .runner import run_locally  # the runner imports this module for its default executor

        run_locally(pending, out, bar, self.jobs, device)
