"""How edgewise writes files: atomically, with the umask's mode, and with paths checked before any work.

Every file edgewise writes goes through `atomic_path`: the content is written to a temporary file in the target's
folder, flushed to disk, given the mode a plain `open` would give it (0666 less the umask), and renamed over the
target. A failed write (a full disk, a killed process) leaves the previous file as it was and no partial file behind.
`check_output_paths` runs before the work: it refuses two outputs with the same path, and proves each can be written
by creating and removing a temporary file where it will go (`os.access` says yes on /proc and to root).
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import OutputPathError


def _umask_mode() -> int:
    """Returns the mode a new file gets from `open`: 0o666 less the process's umask."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary path beside `path` to write; on a clean exit it is flushed, given the umask's mode and
    renamed over `path`; on an error it is removed and `path` is left as it was.

    Args:
        path: the file to write; its folder must exist.

    Yields:
        The temporary file's path (it exists, empty), for writers that take a path (savefig, torch.save).

    Raises:
        OutputPathError: the temporary file cannot be created or written, or the disk is full, naming the path and
            the system's reason.
    """
    target = Path(path)
    try:
        handle, name = tempfile.mkstemp(prefix=f".{target.name[:100]}.", suffix=".tmp", dir=target.parent)
    except OSError as error:
        raise OutputPathError(f"cannot write {target}: {error.strerror or error}") from None
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        with open(temporary, "rb+") as file:
            os.fsync(file.fileno())
        os.chmod(temporary, _umask_mode())
        os.replace(temporary, target)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        reason = "the disk is full" if error.errno == errno.ENOSPC else (error.strerror or str(error))
        raise OutputPathError(f"could not write {target} ({reason}); the previous file, if any, is unchanged") from None
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    """Writes `text` to `path` atomically (see `atomic_path`).

    Args:
        path: the file to write.
        text: its content, written as UTF-8.

    Raises:
        OutputPathError: the file cannot be written; the previous file is unchanged.
    """
    write_bytes(path, text.encode("utf-8"))


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Writes `data` to `path` atomically (see `atomic_path`).

    Args:
        path: the file to write.
        data: its content.

    Raises:
        OutputPathError: the file cannot be written; the previous file is unchanged.
    """
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as file:
            file.write(data)


def check_output_paths(
    files: dict[str, str | os.PathLike | None], folders: dict[str, str | os.PathLike | None] | None = None
) -> None:
    """Checks, before any work, that each given output can be written: no two share a path, a file's path is not a
    folder (nor a folder's a file), and a temporary file can be created and removed where each will go. Creates
    missing parent folders (and the output folders themselves).

    Args:
        files: the output files by the option that names them (`--json`), None where not given.
        folders: the output folders by option, None where not given.

    Raises:
        OutputPathError: naming the option and the path, and what to change.
    """
    folders = folders or {}
    given = {flag: Path(p) for flag, p in {**files, **folders}.items() if p is not None}
    seen: dict[Path, str] = {}
    for flag, path in given.items():
        key = path.resolve()
        if key in seen:
            raise OutputPathError(
                f"{seen[key]} and {flag} both name {path}: the second would overwrite the first; give each its own path"
            )
        seen[key] = flag
    for flag, path in given.items():
        folder = flag in folders
        if len(path.name.encode()) > _name_max(path.parent):
            raise OutputPathError(
                f"{flag} {path}: the name is {len(path.name.encode())} bytes, longer than this file system allows "
                f"({_name_max(path.parent)}); choose a shorter name"
            )
        if path.is_dir() and not folder:
            raise OutputPathError(f"{flag} {path} is a directory; give the path of a file to write")
        if path.exists() and folder and not path.is_dir():
            raise OutputPathError(f"{flag} {path} is a file; give a folder (new or existing) for the results")
        where = path if folder else path.parent
        existing = where
        while not existing.exists():
            existing = existing.parent
        if not existing.is_dir():
            raise OutputPathError(f"cannot write {flag} {path}: {existing} is a file, not a folder")
        try:
            where.mkdir(parents=True, exist_ok=True)
            handle, name = tempfile.mkstemp(prefix=".edgewise-check.", dir=where)
            os.close(handle)
            os.unlink(name)
        except OSError as error:
            raise OutputPathError(
                f"cannot write {flag} {path}: {error.strerror or error} ({where}); choose another location"
            ) from None


def _name_max(folder: Path) -> int:
    """Returns the longest file name the file system holding `folder` (or its nearest existing parent) allows."""
    while not folder.exists():
        folder = folder.parent
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255
