"""The lock on a bench results folder: one bench at a time writes into a folder.

The lock is an exclusive `fcntl.flock` on DIR/.lock. The OS drops it when every process that shares its open file
dies, so a killed bench leaves nothing to clear by hand. While held, the file names the holder (process id, host,
start time, and the process's own start time, which tells it apart from a later process given the same id) for the
message a second bench gives; the holder empties it on release.

A lock whose named holder is dead on this host, yet still held, is stale: some process that inherited the holder's
open file (a child it forked) outlived it. A bench that finds one warns, naming the dead holder, and reclaims the
folder: it removes the stale file and locks a new one, which the orphans do not hold. The bench's own workers are
started with a fresh interpreter, do not inherit the lock, and die with their bench (runner.py).
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import socket
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil

from edgewise.errors import BenchFolderBusyError, StaleBenchLockWarning

LOCK_FILE = ".lock"
RECLAIM_FILE = ".lock.reclaim"  # flock'd while a stale lock is removed, so two benches never both remove one
POLL_SECONDS = 0.2  # how often a waiting bench tries the lock again (and checks whether its holder died)


@contextlib.contextmanager
def folder_lock(folder: Path, wait: bool = False, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Yields while this process holds `folder`'s lock (creating the folder); raises BenchFolderBusyError when
    another process holds it, or with `wait` blocks until it is released, first passing `on_wait` a sentence that
    names the holder. A stale lock (its holder dead, the lock outliving it in an orphan) is reclaimed with a
    StaleBenchLockWarning.

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
    fd = _acquire(folder, wait, on_wait)
    try:
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "process_started": psutil.Process().create_time(),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)  # while still held, so no reader sees a finished bench as the holder
    finally:
        os.close(fd)  # releases the lock


def _acquire(folder: Path, wait: bool, on_wait: Callable[[str], None] | None) -> int:
    """Returns an open descriptor of `folder`'s lock file, flock'd by this process (see `folder_lock`)."""
    path = folder / LOCK_FILE
    told = False
    while True:
        # Not truncated on open: a holder's line must survive for the message of whoever opens it next.
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(path)
            if holder is not None and not _alive(holder):
                _reclaim(folder, fd, holder)
                os.close(fd)
                continue
            os.close(fd)
            if not wait:
                raise BenchFolderBusyError(
                    f"results folder {folder} is in use by another bench: {_in_words(holder)}. Wait until it "
                    "finishes and run again (it resumes, skipping the runs it finished; `edgewise bench --wait` or "
                    "run_bench(..., wait=True) waits by itself), or write to another folder (--out)"
                ) from None
            if on_wait is not None and not told:
                on_wait(f"waiting for results folder {folder}, in use by {_in_words(holder)}")
                told = True
            time.sleep(POLL_SECONDS)  # polled, not a blocking flock: a holder that dies meanwhile must be noticed
            continue
        if _same_file(fd, path):
            return fd
        os.close(fd)  # a reclaiming bench replaced the file after we opened it: lock the new one


def _reclaim(folder: Path, fd: int, holder: dict) -> None:
    """Removes the stale lock file that `fd` holds open, if it is still the folder's lock file and still names the
    dead `holder` a moment later (a bench that has just taken the lock writes its own line at once), warning."""
    reclaim = os.open(folder / RECLAIM_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(reclaim, fcntl.LOCK_EX)
        path = folder / LOCK_FILE
        time.sleep(POLL_SECONDS)
        if not _same_file(fd, path) or _holder(path) != holder:
            return
        warnings.warn(
            f"the lock of results folder {folder} is stale: it names {_in_words(holder)}, which is no longer "
            "running, but a process it started still holds it (and may still write into the folder); taking the "
            "folder over",
            StaleBenchLockWarning,
        )
        path.unlink()
    finally:
        os.close(reclaim)


def _same_file(fd: int, path: Path) -> bool:
    """Returns whether `path` is the file `fd` has open (not removed or replaced since)."""
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (found.st_dev, found.st_ino) == (opened.st_dev, opened.st_ino)


def _holder(path: Path) -> dict | None:
    """Returns the holder's line of the lock file, or None where there is none (a holder not yet written, or
    another tool)."""
    try:
        holder = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    fields = {"pid": int, "host": str, "started": str}
    if not isinstance(holder, dict) or not all(isinstance(holder.get(k), t) for k, t in fields.items()):
        return None
    return holder


def _alive(holder: dict) -> bool:
    """Returns whether the holder may be running: it is on another host (which this one cannot see), or its process
    id is in use, not by a zombie (dead, not yet reaped), and by the same process where the line records its start
    time."""
    if holder["host"] != socket.gethostname():
        return True
    try:
        process = psutil.Process(holder["pid"])
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        started = process.create_time()
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:  # a process this user may not inspect: it exists
        return True
    recorded = holder.get("process_started")
    return not isinstance(recorded, (int, float)) or abs(started - recorded) < 1.0


def _in_words(holder: dict | None) -> str:
    """Returns who holds the lock in words."""
    if holder is None:
        return "a process that has not yet written its id (a bench just starting, or another tool)"
    return f"process {holder['pid']} on host {holder['host']}, since {holder['started']}"
