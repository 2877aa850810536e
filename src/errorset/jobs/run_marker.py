"""Who is writing a training folder: a marker that lets the next run close an abandoned MLflow run.

A run killed with SIGKILL (or by the out-of-memory killer, or a lost machine)
cannot end its MLflow run, which then stays RUNNING forever. When a training
run opens, it writes ``<output_dir>/.errorset-run.json`` with its MLflow run
id, process id, host and process start time, and removes it when it ends in
any way it can. A marker found at the start of the next run into the same
folder is therefore one of:

* a live process on this host still writing there: refused (two trainings
  into one folder would overwrite each other's checkpoints);
* an abandoned run: its MLflow run is closed as KILLED (unless it is the run
  being resumed, which ``--resume`` reopens), and the marker is replaced.

The same start also removes the temporary files a kill in the middle of an
atomic write leaves beside ``checkpoint.pt`` and ``model.pt``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from errorset.errors import CheckpointError
from errorset.files import atomic_write

log = logging.getLogger(__name__)

MARKER = ".errorset-run.json"


@dataclass(frozen=True)
class Marker:
    """The process and MLflow run writing a folder."""

    run_id: str
    pid: int
    host: str
    #: the process's start time in clock ticks since boot (Linux /proc), None where unknown
    process_start: int | None
    started: float

    def is_alive(self) -> bool:
        """True when the marking process still runs on this host (same pid and the same start time)."""
        if self.host != socket.gethostname() or self.pid == os.getpid():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # another user's process of that pid
            pass
        start = process_start(self.pid)
        # a pid is reused by later processes: only the same start time is the same process
        return self.process_start is None or start is None or start == self.process_start


def process_start(pid: int) -> int | None:
    """The start time of process ``pid`` in clock ticks since boot (field 22 of /proc/<pid>/stat), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may hold spaces: split after its closing one
    fields = stat.rsplit(")", 1)[-1].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def read_marker(out: Path) -> Marker | None:
    """The marker in ``out``, or None when there is none (or it is unreadable, e.g. cut short by a full disk)."""
    try:
        data = json.loads((out / MARKER).read_text())
        return Marker(**data)
    except (OSError, ValueError, TypeError):
        return None


def claim(out: Path, *, resuming: str | None, parameter: str = "train.output_dir") -> None:
    """Check that no live run writes to ``out``, and close the MLflow run a killed one left open.

    Args:
        resuming: the MLflow run id being resumed (left open: ``--resume`` reopens it).
        parameter: the setting named in the error.

    Raises:
        CheckpointError: another process on this host is training into ``out``.
    """
    marker = read_marker(out)
    if marker is None:
        return
    if marker.is_alive():
        raise CheckpointError(
            f"{parameter}: {out} is being written by another errorset run (pid {marker.pid}, MLflow run "
            f"{marker.run_id}); wait for it, stop it, or set {parameter}"
        )
    if marker.run_id and marker.run_id != resuming:
        from errorset import tracking

        if tracking.close_abandoned(marker.run_id):
            log.warning(
                "MLflow run %s (pid %d) ended without closing its run (killed with SIGKILL?); marked KILLED",
                marker.run_id,
                marker.pid,
            )
    (out / MARKER).unlink(missing_ok=True)


@contextlib.contextmanager
def marking(out: Path, run_id: str) -> Iterator[None]:
    """Mark ``out`` as written by this process and MLflow run ``run_id`` for the duration of the body."""
    marker = Marker(
        run_id=run_id,
        pid=os.getpid(),
        host=socket.gethostname(),
        process_start=process_start(os.getpid()),
        started=time.time(),
    )
    with atomic_write(out / MARKER) as f:
        f.write(json.dumps(asdict(marker)).encode())
    try:
        yield
    finally:
        (out / MARKER).unlink(missing_ok=True)


def remove_stale_temporaries(out: Path, names: Sequence[str]) -> list[Path]:
    """Remove the temporary files an interrupted atomic write of ``names`` left in ``out``; returns them.

    Call only when no live process writes to ``out`` (after :func:`claim`).
    """
    stale = [p for name in (*names, MARKER) for p in out.glob(f".{name}.*.tmp") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    if stale:
        log.info("removed %d temporary files of interrupted writes in %s", len(stale), out)
    return stale
