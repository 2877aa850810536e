"""``errorset sweep``: an Optuna study over training parameters, every trial a nested MLflow run.

Writes ``summary.json`` (best trial or Pareto front), ``trials.csv`` and
``figures/`` to ``sweep.output_dir`` and logs them to the sweep's parent run.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from errorset.config import Config, to_yaml
from errorset.errors import ErrorsetError
from errorset.jobs.common import write_csv, write_json
from errorset.plots.style import save_figure
from errorset.sweep import run as runner
from errorset.sweep import summary as summaries

log = logging.getLogger(__name__)


@dataclass
class SweepResult:
    parent_run_id: str
    output_dir: Path
    summary: dict[str, Any]


def threads_per_worker(workers: int) -> int:
    """CPU threads for each of ``workers`` processes sharing this machine.

    PyTorch processes that each use every core slow each other down by far more
    than their number (their thread pools spin against each other).
    """
    return max(1, (os.cpu_count() or 1) // workers)


def _spawn_workers(base: Config, count: int, workdir: Path, threads: int) -> list[subprocess.Popen]:
    """Start ``count`` more worker processes on the same study (each its own sampler seed)."""
    params = workdir / "sweep-params.yaml"
    params.write_text(to_yaml(base))
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    procs = []
    for i in range(1, count + 1):
        cmd = [sys.executable, "-m", "errorset", "sweep", "--no-progress", "-q", "--params", str(params)]
        cmd += ["--worker", str(i), "--set", "sweep.workers=1"]
        procs.append(subprocess.Popen(cmd, env=env))
    return procs


def sweep(base: Config, *, worker: int = 0, progress: bool = True) -> SweepResult:
    """Run (or join, or resume) the study of ``base.sweep`` and report it.

    Args:
        base: the *unresolved* config (``load_config(..., resolve_profile=False)``),
            so that each trial resolves its profile after its own overrides.
        worker: this process's worker number (its sampler seed is seed + worker).
    """
    sw = runner.prepare(base, worker=worker)
    s = sw.cfg.sweep
    procs: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory(prefix="errorset-sweep-") as tmp:
        if s.workers > 1:
            import torch

            threads = threads_per_worker(s.workers)
            torch.set_num_threads(threads)
            procs = _spawn_workers(base, s.workers - 1, Path(tmp), threads)
        try:
            runner.run_worker(sw, progress=progress)
        finally:
            codes = [p.wait() for p in procs]
    if any(codes):
        log.warning("sweep workers ended with exit codes %s", codes)
    result = report(sw)
    if codes and any(codes) and runner.finished_count(sw.study) < s.n_trials:
        raise ErrorsetError(f"sweep.workers: worker processes failed (exit codes {codes}); re-run to resume the study")
    return result


def report(sw: runner.Sweep) -> SweepResult:
    """Write and log the study's summary, trial table and figures."""
    from errorset import tracking
    from errorset.plots import sweep as figs

    s = sw.cfg.sweep
    out = Path(s.output_dir)
    summary = summaries.summarize(sw)
    rows = summaries.trial_rows(sw)
    write_json(summary, out / "summary.json")
    keys = list(rows[0]) if rows else ["number", "state"]
    write_csv(rows, keys, out / "trials.csv")
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
    with tracking.reopen_run(sw.cfg, sw.parent_run_id) as run:
        metrics = {f"trials_{k}": v for k, v in summary["trials"].items()}
        best = summary.get("best") or []
        if best:
            metrics.update({f"best/{k}": v for k, v in best[0]["values"].items()})
        run.log_metrics(metrics)
        run.log_artifact(out / "summary.json")
        run.log_artifact(out / "trials.csv")
        for name, fig in figures.items():
            run.log_figure(fig, name)
    return SweepResult(parent_run_id=sw.parent_run_id, output_dir=out, summary=summary)
