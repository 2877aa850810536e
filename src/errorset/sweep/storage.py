"""Where a study lives: a database (with heartbeats, so killed trials are retried) or a journal file."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from errorset.errors import ConfigError
from errorset.files import lock_beside, sqlite_path

DEFAULT_STORAGE = "sqlite:///sweeps/optuna.db"
JOURNAL_SUFFIXES = (".log", ".journal", ".jsonl")


def describe(storage: str) -> str:
    """The storage string with any password hidden (for logs and summaries)."""
    return re.sub(r"(://[^:/@]+:)[^@]+@", r"\1***@", storage)


def open_storage(spec: str | None, *, heartbeat_interval: int, max_retry: int) -> Any:
    """An Optuna storage for ``sweep.storage``.

    * a database URL (``sqlite:///path.db``, ``postgresql://...``, any SQLAlchemy URL):
      :class:`optuna.storages.RDBStorage` with heartbeats every ``heartbeat_interval``
      seconds; a trial silent for twice that is failed and re-queued with the same
      parameters (at most ``max_retry`` times) by the next worker that looks;
    * a path ending in .log, .journal or .jsonl: an Optuna journal file, safe for many
      processes on one machine or a shared file system, but without heartbeats, so a
      killed worker's trial stays RUNNING (and is not retried).
    """
    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    storage = spec or DEFAULT_STORAGE
    if "://" in storage:
        try:
            # Optuna creates its tables on first use; workers started together on a new database would
            # otherwise race (``UNIQUE constraint failed: alembic_version.version_num``)
            with lock_beside(sqlite_path(storage)):
                return RDBStorage(
                    storage,
                    heartbeat_interval=heartbeat_interval,
                    grace_period=2 * heartbeat_interval,
                    heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=max_retry),
                    engine_kwargs={"connect_args": {"timeout": 60}} if storage.startswith("sqlite") else None,
                )
        except Exception as e:  # SQLAlchemy raises many types for unreachable or malformed URLs
            raise ConfigError(f"sweep.storage: cannot open {describe(storage)} ({type(e).__name__}: {e})") from None
    if storage.endswith(JOURNAL_SUFFIXES):
        from optuna.storages.journal import JournalFileBackend

        Path(storage).parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(storage))
    raise ConfigError(
        f"sweep.storage: expected a database URL (sqlite:///sweeps/optuna.db, postgresql://...) or a journal "
        f"file ending in {', '.join(JOURNAL_SUFFIXES)}, got {storage!r}"
    )
