"""Peak memory of a block of work: CUDA's allocator statistics, or the process's sampled resident set on CPU."""

from __future__ import annotations

import threading

import psutil
import torch

from edgewise.patching import release_freed_memory


class PeakMemory:
    """A context manager that measures the peak memory in use while it is open, above the level at entry: `peak_mib`.

    On CUDA it reads torch.cuda.max_memory_allocated. On CPU it samples the process's resident set size every
    `interval` seconds in a background thread, which is approximate: a spike shorter than the interval goes unseen.
    Entry hands the memory malloc keeps free back to the system (the patching forward asks it to keep freed memory),
    so the run's own allocations raise the resident set; buffers the patching forward pools stay in use and are
    reused without raising it.

    Args:
        cuda: measure CUDA's allocator (else the process's resident set).
        interval: seconds between samples on CPU.

    Attributes:
        peak_mib: the peak above the level at entry, in MiB; 0 until the block exits.
    """

    def __init__(self, cuda: bool = False, interval: float = 0.005):
        self.cuda, self.interval = cuda, interval
        self.peak_mib = 0.0
        self._stop = threading.Event()
        self._process = psutil.Process()

    @property
    def measure(self) -> str:
        """Returns what `peak_mib` measures, for the record."""
        return "cuda max_memory_allocated" if self.cuda else "process RSS, sampled (approximate)"

    def __enter__(self) -> "PeakMemory":
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._start = torch.cuda.memory_allocated()
        else:
            release_freed_memory()
            self._start = self._peak = self._process.memory_info().rss
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._peak = max(self._peak, self._process.memory_info().rss)

    def __exit__(self, *exc_info) -> None:
        if self.cuda:
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated()
        else:
            self._stop.set()
            self._thread.join()
            peak = max(self._peak, self._process.memory_info().rss)
        self.peak_mib = (peak - self._start) / 2**20
