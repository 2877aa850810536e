"""errorset train under faults, with real processes and real signals: SIGTERM, SIGKILL, a NaN loss, a finished run.

Each test starts ``python -m errorset train`` as a user would and kills it as
a batch system, the out-of-memory killer or an impatient user would.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import torch

from errorset.cli import main
from errorset.jobs import train as train_job
from errorset.jobs.run_marker import MARKER
from errorset.train import fit as fit_loop
from errorset.train.checkpoint import TrainState

from .conftest import cli_sets, make_config, mlflow_client, subprocess_env


def _sets(data_root: Path, experiment: str, *overrides: str) -> list[str]:
    return cli_sets(data_root, experiment, "train.output_dir=out", *overrides)


def _train_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "errorset", "train", "--no-progress", *args]


def _env() -> dict[str, str]:
    return subprocess_env(OMP_NUM_THREADS="1")


def _wait_for(predicate, what: str, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _long_training(data_root: Path, workdir: Path, experiment: str) -> subprocess.Popen:
    """A digits training of many epochs, started in ``workdir``."""
    args = _sets(data_root, experiment, "train.epochs=500", "train.subset=0")
    return subprocess.Popen(
        _train_cmd(*args), cwd=workdir, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_sigterm_stops_training_at_the_next_batch_marks_the_run_killed_and_resume_finishes_it(data_root, workdir):
    experiment = f"faults-{uuid.uuid4().hex[:8]}"
    proc = _long_training(data_root, workdir, experiment)
    checkpoint = workdir / "out" / "checkpoint.pt"
    _wait_for(checkpoint.exists, "the first checkpoint")
    sent = time.time()
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert time.time() - sent < 15, "the stop request waited for more than a batch"
    assert "Traceback" not in stderr and "Exception ignored" not in stderr
    state = TrainState.load(checkpoint)
    assert 1 <= state.epoch < 500
    assert mlflow_client().get_run(state.run_id).info.status == "KILLED"
    assert not (workdir / "out" / MARKER).exists()  # closed cleanly: no abandoned-run marker left


def test_sigkill_leaves_a_running_run_that_the_next_training_closes_as_killed(data_root, workdir):
    experiment = f"faults-{uuid.uuid4().hex[:8]}"
    proc = _long_training(data_root, workdir, experiment)
    marker = workdir / "out" / MARKER
    _wait_for(marker.exists, "the run marker")  # the run is open; the first checkpoint may not exist yet
    abandoned = json.loads(marker.read_text())["run_id"]

    # while it runs, a second training into the same folder is refused and changes nothing
    cfg = make_config(data_root, "train.output_dir=out", "train.overwrite=true", "tracking.log_model=false")
    with pytest.raises(Exception, match=r"train\.output_dir: out is being written by another errorset run"):
        train_job.train(cfg, progress=False)
    assert proc.poll() is None

    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert mlflow_client().get_run(abandoned).info.status == "RUNNING"  # nobody could close it
    again = train_job.train(cfg, progress=False)  # --overwrite, as a user would after a crash
    old = mlflow_client().get_run(abandoned)
    assert old.info.status == "KILLED"
    assert "abandoned" in old.data.tags["errorset.closed"]
    assert mlflow_client().get_run(again.run_id).info.status == "FINISHED"
    assert not marker.exists()


def test_temporary_files_of_a_write_killed_midway_are_removed_when_training_starts(data_root, workdir):
    out = workdir / "out"
    out.mkdir()
    # a real process killed with SIGKILL in the middle of an atomic checkpoint write
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from errorset.files import atomic_write\n"
            "with atomic_write('out/checkpoint.pt') as f:\n"
            "    f.write(b'x' * 100_000); f.flush(); print('writing', flush=True); time.sleep(60)\n",
        ],
        cwd=workdir,
        env=_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None and writer.stdout.readline().strip() == "writing"
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=30)
    stale = list(out.glob(".checkpoint.pt.*.tmp"))
    assert len(stale) == 1 and stale[0].stat().st_size == 100_000
    assert not (out / "checkpoint.pt").exists()

    cfg = make_config(data_root, "train.output_dir=out", "train.epochs=1", "tracking.log_model=false")
    train_job.train(cfg, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "model.pt"]


def test_resume_of_a_finished_run_says_so_and_writes_nothing(data_root, workdir, capsys):
    experiment = f"faults-{uuid.uuid4().hex[:8]}"
    args = _sets(data_root, experiment, "train.epochs=2")
    assert main(["train", "--no-progress", *args]) == 0
    model, checkpoint = workdir / "out" / "model.pt", workdir / "out" / "checkpoint.pt"
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (model, checkpoint)}
    run_id = TrainState.load(checkpoint).run_id
    client = mlflow_client()
    artifacts = sorted(a.path for a in client.list_artifacts(run_id, "checkpoints"))
    capsys.readouterr()

    assert main(["train", "--no-progress", "--resume", *args]) == 0
    printed = capsys.readouterr().out
    assert "already complete (2 epochs); nothing was written" in printed
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (model, checkpoint)} == before
    assert sorted(a.path for a in client.list_artifacts(run_id, "checkpoints")) == artifacts
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert "resumed_from_epoch" not in run.data.tags


def test_after_a_nan_loss_resume_continues_with_a_lower_rate_exactly_as_that_schedule(data_root, workdir, monkeypatch):
    base = ["train.epochs=3", "train.milestones=[2]", "train.lr_gamma=0.1", "tracking.log_model=false"]
    cfg = make_config(data_root, *base, "train.output_dir=out", "train.lr=0.5")
    real = fit_loop.train_epoch

    def poisoned(*args, **kwargs):
        if kwargs["epoch"] == 1:  # the second epoch diverges
            kwargs["transform"] = lambda model, x, y, g: x * float("nan")
        return real(*args, **kwargs)

    monkeypatch.setattr(fit_loop, "train_epoch", poisoned)
    with pytest.raises(Exception, match=r"kept at out/checkpoint\.pt; continue from it with --resume --set train\.lr="):
        train_job.train(cfg, progress=False)
    monkeypatch.setattr(fit_loop, "train_epoch", real)
    failed = TrainState.load(workdir / "out" / "checkpoint.pt")
    assert failed.epoch == 1

    lower = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, lr=0.02, resume=True))
    resumed = train_job.train(lower, progress=False)
    assert resumed.run_id == failed.run_id
    run = mlflow_client().get_run(resumed.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["resumed_changes/epoch_1"] == "train.lr: 0.5 -> 0.02"
    lrs = [m.value for m in sorted(mlflow_client().get_metric_history(resumed.run_id, "lr"), key=lambda m: m.step)]
    # epoch 0 at the old rate; then the new schedule as if it had been used from the start: 0.02, then 0.002
    assert lrs == pytest.approx([0.5, 0.02, 0.002])
    assert all(torch.isfinite(torch.tensor(v)) for v in resumed.history[-1].values())
    # other keys still refuse to change
    momentum = dataclasses.replace(lower, train=dataclasses.replace(lower.train, momentum=0.5))
    with pytest.raises(Exception, match=r"train\.momentum: 0\.9 -> 0\.5.*only train\.lr, train\.lr_gamma"):
        train_job.train(momentum, progress=False)
