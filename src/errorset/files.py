"""Atomic file writes: a crash or a kill never leaves a half-written output behind."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from errorset.errors import OutputError

#: errno values that mean "the disk (or the user's quota) is full"
DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


@contextlib.contextmanager
def atomic_write(path: str | Path) -> Iterator[IO[bytes]]:
    """Open a temporary file beside ``path`` for binary writing; rename it onto ``path`` on success.

    On any exception the temporary file is removed and ``path`` is left as it was.
    The file gets the usual permissions (0666 less the umask), not mkstemp's 0600.
    A full disk (ENOSPC, EDQUOT) becomes an :class:`OutputError` naming ``path``.
    """
    path = Path(path)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            yield f
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        full = disk_full_error(e)
        if full is None:
            raise
        kept = f"the previous {path.name} is kept" if path.exists() else "no partial file was left"
        raise OutputError(
            f"cannot write {path}: {full.strerror} ({errno.errorcode.get(full.errno or 0, full.errno)}); "
            f"{kept}; free some space and run again"
        ) from None


def disk_full_error(exc: BaseException) -> OSError | None:
    """The ENOSPC / EDQUOT :class:`OSError` that caused ``exc``, or None.

    Searched along the exception's chain because writers wrap it: ``torch.save``
    into a file object raises a RuntimeError whose context is the OSError.
    """
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in DISK_FULL:
            return e
        e = e.__cause__ or e.__context__
    return None


def check_writable(folder: str | Path, parameter: str) -> Path:
    """Create ``folder`` if needed and prove it writable by creating and removing a probe file.

    Run before any work, so that an unwritable output folder stops a job at
    once instead of after it has trained or measured. Permissions are not read
    (root ignores them, and a read-only mount is not a permission): the probe
    is what fails where writing would. ``parameter`` names the setting.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".errorset-probe.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise OutputError(
            f"{parameter}: cannot write to {folder} ({e.strerror or e}); choose a writable folder"
        ) from None
    return folder


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (relative or absolute), else None (servers, ``:memory:``)."""
    if not uri.startswith("sqlite:///"):
        return None
    rest = uri.removeprefix("sqlite:///").split("?", 1)[0]
    return Path(rest) if rest and rest != ":memory:" else None


@contextlib.contextmanager
def lock_beside(path: Path | None) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``<path>.lock`` for the body (a no-op for None, and on Windows).

    Processes started together that create the same database (MLflow's or Optuna's tables) take
    turns through it instead of racing.
    """
    try:
        import fcntl
    except ImportError:  # Windows: no flock
        fcntl = None  # type: ignore[assignment]
    if path is None or fcntl is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
