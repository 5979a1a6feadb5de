"""Atomic file writes, bounded reads and safe array loading, shared by caches and run folders.

A file is written to a temporary name in the same folder and renamed into place, so a reader
(another DataLoader worker, a resumed run) sees either nothing or the whole file. The temporary
name carries the writer's pid and host (``.NAME.PID@HOST.XXXXXXXX.tmp``), so a temporary left
by a writer killed with SIGKILL is recognised as an orphan and removed the next time ctbench
writes into that folder (:func:`remove_orphans`). A write that fails because the disk is full
is one :class:`DiskFullError` naming the file and the free space, never a partial file.

Every reader of user text goes through :func:`read_bytes` / :func:`read_text`, which stop at a
limit (``READ_LIMITS``): a stream without end (``/dev/zero``) or a huge file is one error, not
memory exhaustion. Arrays are read with ``allow_pickle=False``: ctbench never unpickles data.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

MIB = 1 << 20

READ_LIMITS: dict[str, int] = {
    "report": 1 * MIB,  # one radiology report: a few kB
    "spec": 1 * MIB,  # a matrix spec (TOML)
    "table": 1024 * MIB,  # a CSV (labels, reports, metadata of 50,000 volumes)
    "json": 256 * MIB,  # ctbench's own JSON records (config, metrics, matrix state)
}
"""The most bytes ctbench reads from one user file of each kind (docs/reliability.md)."""


class FileTooLargeError(ValueError):
    """A file (or stream) holds more than ctbench reads of its kind."""


class NotARegularFileError(ValueError):
    """A result was to be written over something that is not a regular file."""


class DiskFullError(OSError):
    """A write failed because the file system is full (or the user's quota is spent)."""

    def __str__(self) -> str:
        return str(self.strerror)


FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def read_bytes(path: Path | str, kind: str) -> bytes:
    """At most ``READ_LIMITS[kind]`` bytes of ``path``: more is a :class:`FileTooLargeError`
    naming the file, found after reading one byte past the limit (never the whole stream)."""
    limit = READ_LIMITS[kind]
    with open(path, "rb") as handle:
        return read_stream(handle, limit, f"{path}", kind)


def read_stream(handle, limit: int, name: str, kind: str = "file") -> bytes:
    """Read a binary stream up to ``limit`` bytes; a longer one is a FileTooLargeError."""
    chunks, total = [], 0
    while total <= limit:
        chunk = handle.read(min(MIB, limit + 1 - total))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
    raise FileTooLargeError(
        f"{name}: larger than {_size(limit)}, the most ctbench reads of a {kind} "
        "(is it the right file?)"
    )


def read_text(path: Path | str, kind: str) -> str:
    """:func:`read_bytes` decoded as UTF-8 (a BOM is fine); other bytes are one ValueError
    naming the file, the byte, its position and its line."""
    return decode_utf8(read_bytes(path, kind), path)


def decode_utf8(data: bytes, path) -> str:
    """``data`` as UTF-8 text, or one ValueError with the offending byte's exact place."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise ValueError(
            f"{path}: not UTF-8 text (byte 0x{data[error.start]:02x} at position {error.start}, "
            f"line {line}); save it as UTF-8"
        ) from error


def read_json(path: Path | str):
    """A JSON file ctbench wrote (bounded like every read); a broken one names the file."""
    try:
        return json.loads(read_text(path, "json"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from error
    except RecursionError as error:  # arrays nested thousands deep: not ctbench's
        raise ValueError(f"{path}: nested too deeply to be ctbench's JSON") from error


def read_table(path: Path | str, *, dtype=None, rows: int | None = None, **options):
    """A CSV file as a pandas DataFrame, read bounded (``READ_LIMITS["table"]``) and checked
    as UTF-8 first; ``rows=0`` reads only its header line. Any failure is one ValueError
    naming the file."""
    import io

    import pandas as pd

    try:
        if rows == 0:
            text = decode_utf8(_first_line(path), path)
        else:
            text = decode_utf8(read_bytes(path, "table"), path)
    except OSError as error:
        raise ValueError(f"{path}: unreadable ({error.strerror or error})") from error
    try:
        return pd.read_csv(io.StringIO(text), dtype=dtype, nrows=rows, **options)
    except Exception as error:
        raise ValueError(f"{path}: unreadable CSV ({type(error).__name__}: {error})") from error


def _first_line(path: Path | str) -> bytes:
    limit = READ_LIMITS["table"]
    with open(path, "rb") as handle:
        line = handle.readline(limit + 1)
    if len(line) > limit:
        raise FileTooLargeError(f"{path}: its first line is longer than {_size(limit)}")
    return line


def _size(n: int) -> str:
    return f"{n / MIB:g} MiB" if n >= MIB else f"{n} bytes"


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"


TEMPORARY = re.compile(r"^\.(?P<name>.+?)\.(?P<pid>\d+)@(?P<host>[A-Za-z0-9-]+)\.[^.]+\.tmp$")
"""Temporary names of :func:`atomic_open`: ``.NAME.PID@HOST.RANDOM.tmp``."""

_swept: set[str] = set()


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (one we may not signal counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_orphans(folder: Path, *, every: bool = False, recursive: bool = False) -> list[Path]:
    """Remove temporaries that a killed writer left in ``folder``: those whose writer (pid on
    this host) is gone; with ``every`` (a folder whose lock this process holds) also those of
    other hosts and of older ctbench versions, whose writer cannot be asked. A live writer's
    temporary is never touched. Returns what was removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for path in folder.rglob(".*.tmp") if recursive else folder.glob(".*.tmp"):
        match = TEMPORARY.match(path.name)
        if match is None or match["host"] != _host():
            orphan = every
        else:
            pid = int(match["pid"])
            orphan = pid != os.getpid() and not pid_alive(pid)
        if orphan and path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def full_disk_cause(error: BaseException) -> OSError | None:
    """The OSError "no space left" (or "quota exceeded") in ``error``'s chain, if any:
    torch.save wraps it in a RuntimeError ("unexpected pos")."""
    seen: BaseException | None = error
    for _ in range(20):  # chains are short; a cycle must not hang
        if seen is None:
            return None
        if isinstance(seen, OSError) and seen.errno in FULL_ERRNOS:
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def disk_full_error(error: BaseException, path: Path | None) -> DiskFullError | None:
    """A :class:`DiskFullError` naming ``path`` (the file being written, when known) and its
    folder's free space when ``error`` (or what caused it) says the disk is full; None
    otherwise."""
    if isinstance(error, DiskFullError):
        return error
    if full_disk_cause(error) is None:
        return None
    where = "the disk is full"
    if path is not None:
        free = _free_bytes(path.parent)
        space = f"{free / MIB:.1f} MiB free" if free is not None else "free space unknown"
        where = f"{path}: {where} ({space} in {path.parent})"
    return DiskFullError(
        errno.ENOSPC,
        f"{where}; free some space and run again (finished results are kept; --resume "
        "continues a run)",
    )


def _free_bytes(folder: Path) -> int | None:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


@contextmanager
def _full_disk_named(path: Path):
    """Turn an OSError "no space left" into a DiskFullError that names ``path``."""
    try:
        yield
    except OSError as error:
        full = disk_full_error(error, path)
        if full is None:
            raise
        raise full from error


@contextmanager
def atomic_open(path: Path, mode: str = "wb"):
    """Open a temporary sibling of ``path`` for writing; rename it onto ``path`` on success.

    On any failure the temporary is removed; a full disk is a :class:`DiskFullError`. A target
    that exists and is not a regular file (``--out /dev/null``, a folder, a pipe) is refused:
    renaming onto it would replace a device node or a folder's entry, not write into it."""
    path = Path(path)
    if path.exists() and not path.is_file():
        kind = "a folder" if path.is_dir() else "not a regular file (a device or a pipe)"
        raise NotARegularFileError(f"{path}: {kind}; ctbench writes results to regular files")
    with _full_disk_named(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        if str(path.parent) not in _swept:  # once per folder and process: killed writers' files
            _swept.add(str(path.parent))
            remove_orphans(path.parent)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{path.name}.{os.getpid()}@{_host()}.", suffix=".tmp", dir=path.parent
        )
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp's 0600 would hide results from other users
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
        os.replace(tmp, path)
    except BaseException as error:
        Path(tmp).unlink(missing_ok=True)
        full = disk_full_error(error, path) if isinstance(error, Exception) else None
        if full is not None:
            raise full from error
        raise


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once at import: os.umask can only be read by setting it


def default_cache_dir() -> Path:
    """``$CTBENCH_CACHE_DIR``, else ``$XDG_CACHE_HOME/ctbench``, else ``~/.cache/ctbench``."""
    if os.environ.get("CTBENCH_CACHE_DIR"):
        return Path(os.environ["CTBENCH_CACHE_DIR"])
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "ctbench"


def config_key(config: dict) -> str:
    """A short, stable hash of a JSON-able configuration: the name of its cache folder."""
    text = json.dumps(config, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def write_json(path: Path, data) -> None:
    with atomic_open(path, "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)


def write_text(path: Path, text: str) -> None:
    with atomic_open(path, "w") as handle:
        handle.write(text)


def write_npz(path: Path, **arrays: np.ndarray) -> None:
    with atomic_open(path, "wb") as handle:
        np.savez_compressed(handle, **arrays)


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """All arrays of an ``.npz`` file; a corrupt file is a ValueError naming it."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except FileNotFoundError:
        raise
    except Exception as error:
        raise ValueError(
            f"{path}: unreadable array file ({type(error).__name__}: {error})"
        ) from error


class UnsafeNameError(ValueError):
    """A name that would be used as a file or folder name cannot safely be one."""


MAX_NAME_BYTES = 200


def safe_name(name: object, what: str) -> str:
    """``name`` itself when it can be one file or folder name inside ctbench's folders: a
    non-empty string of at most 200 bytes with no path separator, no control character (NUL,
    newline) and no leading dot (``.`` and ``..`` included); otherwise one
    :class:`UnsafeNameError` naming ``what`` and the name (escaped)."""
    problem = ""
    if not isinstance(name, str) or not name:
        problem = "it is empty"
    elif "/" in name or "\\" in name:
        problem = "it holds a path separator"
    elif any(ord(c) < 32 or ord(c) == 127 for c in name):
        problem = "it holds a control character"
    elif name.startswith("."):
        problem = "it starts with a dot"
    elif len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        problem = f"it is longer than {MAX_NAME_BYTES} bytes"
    if problem:
        raise UnsafeNameError(f"{what} {printable(name)} cannot be a file name: {problem}")
    return name


def printable(value: object) -> str:
    """``repr`` of ``value`` cut to 120 characters: control characters and NUL bytes escaped,
    so an error message never prints them raw."""
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."
