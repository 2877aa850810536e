"""``errorset sweep``: an Optuna study over training parameters, every trial a nested MLflow run.

Writes ``summary.json`` (best trial or Pareto front), ``trials.csv`` and
``figures/`` to ``sweep.output_dir`` and logs them to the sweep's parent run.

With ``sweep.workers > 1`` this process runs trials itself and starts the other
workers (``--spawned``: they run trials only, the launcher reports once after
all ended). A stop request (SIGTERM, Ctrl-C) is passed on to them; the parent
run ends KILLED when the sweep was interrupted and no other worker of the
study still runs a trial, FAILED when a worker died and left the study
incomplete, and FINISHED otherwise (a later worker's report reopens it).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from errorset import interrupts
from errorset.config import Config, to_yaml
from errorset.errors import ErrorsetError
from errorset.jobs import sweep_study as runner
from errorset.jobs import sweep_summary as summaries
from errorset.jobs.sweep_trials import run_worker
from errorset.plots.style import save_figure
from errorset.results import SWEEP_SUMMARY, SWEEP_TRIALS, write_csv, write_json

log = logging.getLogger(__name__)

#: seconds spawned workers get to stop at their next batch after a stop request, before SIGKILL
STOP_GRACE_S = 30.0
#: a terminal's Ctrl-C reaches the whole process group: give workers this long to stop on their own
#: before passing SIGINT on (a second signal would stop them at once, not at the next batch)
SIGINT_HEADSTART_S = 2.0


@dataclass
class SweepResult:
    parent_run_id: str
    output_dir: Path
    #: the study's summary; empty for a spawned worker, which does not report
    summary: dict[str, Any]


def threads_per_worker(workers: int) -> int:
    """CPU threads for each of ``workers`` processes sharing this machine.

    PyTorch processes that each use every core slow each other down by far more
    than their number (their thread pools spin against each other).
    """
    return max(1, (os.cpu_count() or 1) // workers)


def _spawn_workers(base: Config, count: int, workdir: Path, threads: int) -> list[subprocess.Popen]:
    """Start ``count`` more worker processes on the same study (each its own sampler seed).

    They run with ``--spawned``: trials only, no report (the launcher reports once).
    """
    params = workdir / "sweep-params.yaml"
    params.write_text(to_yaml(base))
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    procs = []
    for i in range(1, count + 1):
        cmd = [sys.executable, "-m", "errorset", "sweep", "--no-progress", "-q", "--params", str(params)]
        cmd += ["--worker", str(i), "--spawned", "--set", "sweep.workers=1"]
        procs.append(subprocess.Popen(cmd, env=env))
    return procs


def _stop_workers(procs: list[subprocess.Popen], signum: int, grace: float = STOP_GRACE_S) -> None:
    """Pass a stop request on to the live workers; SIGKILL those still running after ``grace`` seconds."""
    if signum == signal.SIGINT:
        _wait_all(procs, SIGINT_HEADSTART_S)
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM if signum != signal.SIGINT else signal.SIGINT)
    if not _wait_all(procs, grace):
        stragglers = [p.pid for p in procs if p.poll() is None]
        log.warning("sweep workers %s did not stop within %.0f s; killing them", stragglers, grace)
        for p in procs:
            if p.poll() is None:
                p.kill()
        _wait_all(procs, 10.0)


def _wait_all(procs: list[subprocess.Popen], timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for all of ``procs`` to end; True when they did."""
    deadline = time.monotonic() + timeout
    while any(p.poll() is None for p in procs):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def _wait_for_workers(procs: list[subprocess.Popen]) -> list[int]:
    """Wait for the spawned workers to end, passing on a stop request; their exit codes.

    Polls rather than blocking in ``wait()``, so that a SIGTERM to this process (whose handler only
    sets a flag) is seen and passed on instead of waiting for the workers to finish the whole study.
    """
    try:
        while any(p.poll() is None for p in procs):
            interrupts.check()
            time.sleep(0.1)
    except KeyboardInterrupt as e:  # interrupts.Interrupted, or a second signal raised in the sleep
        try:
            _stop_workers(procs, getattr(e, "signum", signal.SIGINT))
        except KeyboardInterrupt:  # asked again while they stop: stop them now
            for p in procs:
                if p.poll() is None:
                    p.kill()
            raise
    return [p.returncode for p in procs]


def sweep(base: Config, *, worker: int = 0, progress: bool = True, spawned: bool = False) -> SweepResult:
    """Run (or join, or resume) the study of ``base.sweep`` and report it.

    Args:
        base: the *unresolved* config (``errorset.config.read_config``),
            so that each trial resolves its profile after its own overrides.
        worker: this process's worker number (its sampler seed is seed + worker).
        spawned: started by another ``sweep`` (``sweep.workers``): run trials only, do not report
            nor end the parent run (the launcher does, once all its workers ended).
    """
    from errorset import tracking

    sw = runner.prepare(base, worker=worker)
    s = sw.cfg.sweep
    procs: list[subprocess.Popen] = []
    codes: list[int] = []
    try:
        with tempfile.TemporaryDirectory(prefix="errorset-sweep-") as tmp:
            if s.workers > 1:
                import torch

                threads = threads_per_worker(s.workers)
                torch.set_num_threads(threads)
                procs = _spawn_workers(base, s.workers - 1, Path(tmp), threads)
            try:
                run_worker(sw, progress=progress)
            finally:
                codes = _wait_for_workers(procs)
        interrupts.check()  # a stop request that came while waiting for the workers
    except KeyboardInterrupt:
        if not spawned and not runner.others_running(sw):
            signum = interrupts.stop_requested()
            by = signal.Signals(signum).name if signum else "KeyboardInterrupt"
            tracking.set_status(sw.parent_run_id, "KILLED", {"sweep.stopped_by": by})
        raise
    if any(codes):
        log.warning("sweep workers ended with exit codes %s", codes)
    if spawned:
        return SweepResult(parent_run_id=sw.parent_run_id, output_dir=Path(s.output_dir), summary={})
    incomplete = any(codes) and runner.finished_count(sw.study) < s.n_trials
    result = report(sw, status="FAILED" if incomplete else "FINISHED")
    if incomplete:
        raise ErrorsetError(f"sweep.workers: worker processes failed (exit codes {codes}); re-run to resume the study")
    return result


def report(sw: runner.Sweep, *, status: str = "FINISHED") -> SweepResult:
    """Write and log the study's summary, trial table and figures; end the parent run with ``status``."""
    from errorset import tracking
    from errorset.plots import sweep as figs

    s = sw.cfg.sweep
    out = Path(s.output_dir)
    summary = summaries.summarize(sw)
    rows = summaries.trial_rows(sw)
    write_json(summary, out / SWEEP_SUMMARY)
    keys = list(rows[0]) if rows else ["number", "state"]
    write_csv(rows, keys, out / SWEEP_TRIALS)
    figures = {}
    if any(r["state"] == "COMPLETE" for r in rows):
        if len(sw.names) > 1:
            front = [t["number"] for t in summary["pareto_front"]]
            figures["pareto_front.png"] = figs.pareto_front(rows, sw.names, front)
        figures["objectives_vs_params.png"] = figs.objectives_vs_params(rows, sw.names, [p.key for p in sw.params])
        figures["history.png"] = figs.history(rows, sw.names, summary["directions"])
        imp = summaries.importances(sw)
        if imp:
            figures["importances.png"] = figs.importances(imp)
    for name, fig in figures.items():
        save_figure(fig, out / "figures" / name)
    with tracking.reopen_run(sw.cfg, sw.parent_run_id, status=status) as run:
        metrics = {f"trials_{k}": v for k, v in summary["trials"].items()}
        best = summary.get("best") or []
        if best:
            metrics.update({f"best/{k}": v for k, v in best[0]["values"].items()})
        run.log_metrics(metrics)
        run.log_artifact(out / SWEEP_SUMMARY)
        run.log_artifact(out / SWEEP_TRIALS)
        for name, fig in figures.items():
            run.log_figure(fig, name)
    return SweepResult(parent_run_id=sw.parent_run_id, output_dir=out, summary=summary)
