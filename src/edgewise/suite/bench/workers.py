"""A bench's worker processes die with the bench: killed (SIGKILL gives it no chance to stop them) or ended by a
signal, it leaves no worker writing into its results folder without the lock, or waiting forever for work.

`die_with_parent` is each worker's initializer. This module imports nothing heavy, so that a spawned worker runs it
within a fraction of a second of starting, before it imports torch and the bench to take its first job.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1  # prctl(2): the signal the kernel sends this process when its parent dies
PARENT_POLL_SECONDS = 0.5  # how often a worker checks its parent, where the kernel cannot tell it (not Linux)


def die_with_parent(parent: int) -> None:
    """Makes this process end when process `parent` (the bench that started it) dies, however it dies. On Linux the
    kernel sends it SIGKILL at once (prctl PR_SET_PDEATHSIG); everywhere a thread checks every PARENT_POLL_SECONDS
    that its parent is still `parent`, since a dead process's children are handed to another.

    Args:
        parent: the bench's process id.
    """
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before the kernel was told to watch
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent,), name="edgewise-watch-parent", daemon=True).start()


def _watch_parent(parent: int) -> None:
    """Ends this process, without clean-up (its runs' files are written atomically), once its parent is not
    `parent`."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_SECONDS)
    os._exit(1)
