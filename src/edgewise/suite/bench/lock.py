"""The lock on a bench results folder: one bench at a time writes into a folder.

The lock is an exclusive `fcntl.flock` on DIR/.lock. The OS drops it when its holder exits or dies, so a killed
bench leaves no stale lock and nothing to clear by hand. While held, the file names the holder (process id, host,
start time) for the message a second bench gives; the holder empties it on release.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

from edgewise.errors import BenchFolderBusyError

LOCK_FILE = ".lock"


@contextlib.contextmanager
def folder_lock(folder: Path, wait: bool = False, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Yields while this process holds `folder`'s lock (creating the folder); raises BenchFolderBusyError when
    another process holds it, or with `wait` blocks until it is released, first passing `on_wait` a sentence that
    names the holder.

    Args:
        folder: the results folder; created if missing.
        wait: block until the lock is released instead of raising.
        on_wait: called once with a sentence naming the holder before a wait; None: wait silently.

    Yields:
        None, while the lock is held.

    Raises:
        BenchFolderBusyError: another process holds the lock and `wait` is False.
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    # Not truncated on open: a holder's line must survive for the message of whoever opens it next.
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(path)
            if not wait:
                raise BenchFolderBusyError(
                    f"results folder {folder} is in use by another bench: {holder}. Wait until it finishes and run "
                    "again (it resumes, skipping the runs it finished; `edgewise bench --wait` or "
                    "run_bench(..., wait=True) waits by itself), or write to another folder (--out)"
                ) from None
            if on_wait is not None:
                on_wait(f"waiting for results folder {folder}, in use by {holder}")
            fcntl.flock(fd, fcntl.LOCK_EX)
        started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": started}).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)  # while still held, so no reader sees a finished bench as the holder
    finally:
        os.close(fd)  # releases the lock


def _holder(path: Path) -> str:
    """Returns who holds the lock in words, from the lock file; the holder may not have written itself yet."""
    try:
        holder = json.loads(path.read_text())
        return f"process {holder['pid']} on host {holder['host']}, since {holder['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that has not yet written its id (a bench just starting, or another tool)"
