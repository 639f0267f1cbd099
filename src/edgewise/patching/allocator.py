"""How the patching forward keeps the C allocator from handing freed memory back to the system on every forward.

torch's CPU tensors come from malloc. glibc serves large blocks by mmap and returns them when freed, and trims the free
top of its heap, so the next forward maps the same memory afresh and faults it in page by page: on a 6-layer d_model
256 model (16 x 32 tokens), 12,000-22,000 page faults per forward, plain or masked, and about a third of its time,
varying with what the process allocated before (`benchmarks/patching_overhead.py` read that model's masked / plain
ratio as 1.08 to 2.28 in four runs). Serving blocks up to 1 GiB from the heap and keeping up to 1 GiB of freed heap
removes those faults; the cost is that a process keeps its freed memory for reuse instead of returning it (its
resident size stays near its peak); `release_freed_memory` hands it back on request, as the bench's memory
measurement does before each run.
"""

from __future__ import annotations

import ctypes
import functools
import os

KEEP_BYTES = 1 << 30  # mmap threshold and trim threshold: blocks up to this size are served from, and kept in, the heap
OPT_OUT = "EDGEWISE_MALLOC"  # set to "system" to leave malloc's settings as they are
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)


@functools.cache
def keep_freed_memory() -> bool:
    """Returns whether glibc's malloc keeps freed memory in this process (setting it on the first call): False where
    the C library is not glibc, or where EDGEWISE_MALLOC=system asks to leave it alone.

    Returns:
        Whether both glibc thresholds were set; the first call's answer, cached for the process.
    """
    return os.environ.get(OPT_OUT) != "system" and _set_glibc_thresholds()


def release_freed_memory() -> None:
    """Hands the memory malloc keeps free back to the system (glibc's malloc_trim), so that what the process uses next
    shows in its resident set again; does nothing under other C libraries."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # glibc only: other C libraries' mallopt (if any) means something else
    except (OSError, AttributeError):
        return None
    return libc


def _set_glibc_thresholds() -> bool:
    libc = _glibc()
    if libc is None:
        return False
    # Both: setting either stops glibc adjusting the other; a trim threshold alone left every block above 128 KiB to
    # mmap (90,000 faults a forward on that model)
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, KEEP_BYTES)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, KEEP_BYTES))
