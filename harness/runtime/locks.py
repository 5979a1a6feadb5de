"""One writer per folder: the lock a run folder or a matrix's state takes (docs/reliability.md).

``with folder_lock(folder):`` holds an exclusive ``fcntl.flock`` on ``folder/.ctbench.lock``
(``.NAME.lock`` for a named lock, such as one matrix shard's state file), and writes into it who
holds it: pid, host, start time and command. A second writer is refused at once with a
:class:`FolderLockedError` that names the holder. The kernel drops the lock when its process
dies, even by SIGKILL, so a killed run never blocks the next one: the next holder finds the old
holder's record in the file, says it recovered a stale lock, and takes over. flock works on
local file systems and on NFSv4 (Linux maps it to a POSIX lock there). The file is removed when
the lock is released, so finished folders stay clean.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import stat
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_NAME = ".ctbench.lock"


class FolderLockedError(RuntimeError):
    """Another process holds the folder's lock."""


def lock_path(folder: Path, name: str | None = None) -> Path:
    """Where the lock of ``folder`` (or of its ``name``) lives."""
    return Path(folder) / (LOCK_NAME if name is None else f".{name}.lock")


def describe_holder(record: dict) -> str:
    """``pid 123 on host h since 2026-12-05 22:14:01 (ctbench run ...)``."""
    started = record.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)) if started else "?"
    command = record.get("command")
    return f"pid {record.get('pid', '?')} on host {record.get('host', '?')} since {when}" + (
        f" ({command})" if command else ""
    )


def _read_record(handle) -> dict:
    handle.seek(0)
    try:
        record = json.loads(handle.read(4096) or "{}")
    except (ValueError, UnicodeDecodeError):
        return {}
    return record if isinstance(record, dict) else {}


@contextmanager
def folder_lock(
    folder: Path | str,
    *,
    name: str | None = None,
    what: str = "folder",
    log: Callable[[str], None] | None = None,
) -> Iterator[Path]:
    """Hold the exclusive lock of ``folder`` (created if missing) for the ``with`` block.

    A held lock raises :class:`FolderLockedError` naming its holder; a lock left by a process
    that died is taken over, and ``log`` says so."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = lock_path(folder, name)
    handle = _acquire(path, what)
    try:
        stale = _read_record(handle)
        if stale and log is not None:
            log(f"{path}: recovered the stale lock of {describe_holder(stale)}, which died")
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.time(),
            "command": " ".join(["ctbench", *sys.argv[1:]])[:300],
        }
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(record))
        handle.flush()
        yield path
    finally:
        try:
            path.unlink(missing_ok=True)
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()


def _acquire(path: Path, what: str):
    """The open, locked lock file; retried when the file was replaced while we waited (its
    holder released and removed it between our open and our lock)."""
    for _ in range(100):
        handle = _open_lock_file(path)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_record(handle)
            handle.close()
            raise FolderLockedError(
                f"{path.parent}: this {what} is in use by "
                f"{describe_holder(holder) if holder else 'another process'}; wait for it to "
                f"finish or stop it (a killed process releases the lock by itself)"
            ) from None
        try:
            same = os.fstat(handle.fileno()).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return handle
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()
    raise FolderLockedError(f"{path}: could not take the lock (it keeps changing)")


def _open_lock_file(path: Path):
    """The lock file opened for reading and writing, created if missing; never through a
    symbolic link, and only a regular file (a link planted as the lock file would otherwise
    have ctbench overwrite whatever it points to)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise FolderLockedError(
                f"{path}: the lock file is a symbolic link; remove it"
            ) from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise FolderLockedError(f"{path}: the lock file is not a regular file; remove it")
    return os.fdopen(fd, "r+")


def is_lock_file(path: Path) -> bool:
    """Whether ``path`` is a lock file of this module (folders that hold only one are empty)."""
    return path.name == LOCK_NAME or (path.name.startswith(".") and path.name.endswith(".lock"))
