"""Faults injected for real (closed ports, read-only mounts, full disks, locked stores, huge images).

Each ends an `errorset` command with exit status 2 and one stderr line naming the
setting or file, before work where it can be checked first, and keeps what was
written before. Read-only folders and full disks are tmpfs mounts: root (as here
and in CI) writes through file permissions, not through a read-only mount. Tests
that need `mount` skip where the container does not allow it.
"""

from __future__ import annotations

import re
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from errorset.cli import main

from .conftest import make_config
from .imagefolders import write_tree

ONE_LINE = r"errorset: error: {}[^\n]*\n"


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


def run_cli_against(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, uri: str, *argv: str
) -> tuple[int, str, float]:
    """Run ``errorset ARGV`` in this process with ``$MLFLOW_TRACKING_URI=uri``; exit status, stderr, seconds."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    start = time.monotonic()
    code, err = run_cli(capsys, *argv)
    return code, err, time.monotonic() - start


class Tmpfs:
    """A small tmpfs mounted at ``path``; ``remount("ro")`` makes it read-only for everyone, root included."""

    def __init__(self, path: Path, size: str) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip() or 'mount failed'})")

    def remount(self, mode: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{mode}", str(self.path)], check=True)

    def unmount(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], check=False)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Tmpfs]:
    fs = Tmpfs(tmp_path / "mnt", "4m")
    yield fs
    fs.unmount()


@pytest.fixture
def digits_args(data_root: Path) -> list[str]:
    return ["--no-progress", "--set", "data.name=digits", "--set", f"data.root={data_root}", "--set", "profile=smoke"]


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    """An (untrained) digits MLP model file: enough to start every measuring job."""
    from errorset.models import create_model, save_model

    return save_model(create_model("mlp", input_shape=(1, 8, 8), num_classes=10), tmp_path / "model.pt")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the tracking store ---------------------------------------------------------------


@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_an_unreachable_tracking_server_stops_the_command_at_once(
    capsys, monkeypatch, digits_args, model_file, workdir, command
):
    uri = f"http://127.0.0.1:{free_port()}"
    code, err, seconds = run_cli_against(
        capsys, monkeypatch, uri, command, *digits_args, "--set", f"eval.checkpoint={model_file}"
    )
    assert code == 2, err
    assert re.fullmatch(ONE_LINE.format(rf"tracking\.uri: no MLflow tracking server answers at {uri} "), err), err
    assert "MLFLOW_TRACKING_URI" in err and "Traceback" not in err
    assert seconds < 15
    assert not list((workdir / "models").rglob("*.pt"))  # nothing was trained


def _make_store(path: Path) -> str:
    """A fresh MLflow SQLite store at ``path`` (its tables made in another process); returns its URI."""
    uri = f"sqlite:///{path}"
    code = f"from mlflow.tracking import MlflowClient; MlflowClient({uri!r}).search_experiments(max_results=1)"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=120)
    return uri


def _store_is_sound(path: Path) -> int:
    """Check the store's integrity (read-only access works on a read-only mount); returns its number of runs."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        return int(con.execute("SELECT count(*) FROM runs").fetchone()[0])
    finally:
        con.close()


def test_a_read_only_sqlite_store_stops_the_command_before_work(
    capsys, monkeypatch, digits_args, model_file, workdir, tmpfs
):
    db = tmpfs.path / "mlflow.db"
    uri = _make_store(db)
    tmpfs.remount("ro")
    for store in (uri, f"sqlite:///{tmpfs.path / 'new' / 'mlflow.db'}"):  # an existing store, and a new one
        code, err, _ = run_cli_against(
            capsys, monkeypatch, store, "evaluate", *digits_args, "--set", f"eval.checkpoint={model_file}"
        )
        assert code == 2, err
        expected = (
            rf"tracking\.uri: the MLflow store {re.escape(store)} \(from \$MLFLOW_TRACKING_URI\) cannot be written"
        )
        assert re.fullmatch(ONE_LINE.format(expected), err), err
        assert "Traceback" not in err
    assert _store_is_sound(db) == 0
    assert not (workdir / "reports").exists()


def test_a_locked_sqlite_store_stops_the_command_and_is_left_sound(
    capsys, monkeypatch, digits_args, model_file, workdir, tmp_path
):
    from errorset import tracking

    monkeypatch.setattr(tracking, "SQLITE_BUSY_TIMEOUT_S", 1.0)  # the wait itself is SQLite's; one second shows it
    db = tmp_path / "store" / "mlflow.db"
    db.parent.mkdir()
    uri = _make_store(db)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys, time\n"
            f"con = sqlite3.connect({str(db)!r}, isolation_level=None)\n"
            "con.execute('BEGIN EXCLUSIVE')\n"
            "print('locked', flush=True)\n"
            "time.sleep(120)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        code, err, seconds = run_cli_against(
            capsys, monkeypatch, uri, "evaluate", *digits_args, "--set", f"eval.checkpoint={model_file}"
        )
    finally:
        holder.kill()
        holder.wait()
    assert code == 2, err
    locked = r"tracking\.uri: the MLflow store .* is locked by another process \(waited 1 s\)"
    assert re.fullmatch(ONE_LINE.format(locked), err), err
    assert 1.0 <= seconds < 15
    assert "Traceback" not in err
    assert _store_is_sound(db) == 0
    assert not (workdir / "reports").exists()


# --- output folders and full disks ------------------------------------------------------


def test_an_unwritable_train_output_dir_stops_training_and_keeps_the_checkpoint(capsys, digits_args, tmpfs):
    out = tmpfs.path / "run"
    code, _ = run_cli(capsys, "train", *digits_args, "--set", f"train.output_dir={out}", "--set", "model.name=linear")
    assert code == 0
    checkpoint = (out / "checkpoint.pt").read_bytes()
    tmpfs.remount("ro")
    for folder in (out, out / "deeper"):  # an earlier run's folder (resumed), and a new one
        code, err = run_cli(
            capsys,
            "train",
            "--resume",
            *digits_args,
            "--set",
            f"train.output_dir={folder}",
            "--set",
            "model.name=linear",
        )
        assert code == 2
        expected = rf"train\.output_dir: cannot write to {re.escape(str(folder))} \(Read-only file system\)"
        assert re.fullmatch(ONE_LINE.format(expected), err), err
    assert (out / "checkpoint.pt").read_bytes() == checkpoint


@pytest.mark.parametrize(
    ("command", "key"),
    [
        ("evaluate", "eval"),
        ("analyze", "analyze"),
        ("attack", "attack"),
        ("eval-corruptions", "corruptions"),
    ],
)
def test_an_unwritable_measuring_output_dir_stops_before_measuring(
    capsys, digits_args, model_file, tmpfs, command, key
):
    tmpfs.remount("ro")
    folder = tmpfs.path / "reports"
    code, err = run_cli(
        capsys,
        command,
        *digits_args,
        "--set",
        f"{key}.checkpoint={model_file}",
        "--set",
        f"{key}.output_dir={folder}",
    )
    assert code == 2
    expected = rf"{key}\.output_dir: cannot write to {re.escape(str(folder))} \(Read-only file system\)"
    assert re.fullmatch(ONE_LINE.format(expected), err), err


def _fill(folder: Path) -> None:
    """Fill the file system of ``folder`` to the last byte."""
    with open(folder / "filler", "wb", buffering=0) as f:  # unbuffered: nothing is left to fail at close
        for chunk in (65536, 512, 1):
            try:
                while f.write(b"\0" * chunk):
                    pass
            except OSError:
                pass


def test_a_full_disk_while_writing_a_checkpoint_keeps_the_previous_one(data_root, workdir, tmpfs):
    from errorset.errors import OutputError
    from errorset.jobs.train import train
    from errorset.train.checkpoint import TrainState

    out = tmpfs.path / "run"
    cfg = make_config(data_root, f"train.output_dir={out}", "model.name=linear", "tracking.log_model=false")
    with pytest.raises(OutputError) as caught:
        # the disk fills up after the first epoch's checkpoint, so the second one cannot be written
        train(cfg, progress=False, on_epoch_end=lambda epoch, model, run: _fill(tmpfs.path) if epoch == 0 else None)
    message = str(caught.value)
    assert re.fullmatch(
        rf"cannot write {re.escape(str(out / 'checkpoint.pt'))}: No space left on device \(ENOSPC\); "
        r"the previous checkpoint\.pt is kept; .*",
        message,
    ), message
    assert TrainState.load(out / "checkpoint.pt").epoch == 1
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt"]  # no temporary file left


def test_a_full_disk_while_writing_results_gets_one_line_naming_the_file(capsys, digits_args, model_file, tmpfs):
    folder = tmpfs.path / "reports"
    folder.mkdir()
    _fill(tmpfs.path)
    code, err = run_cli(
        capsys, "evaluate", *digits_args, "--set", f"eval.checkpoint={model_file}", "--set", f"eval.output_dir={folder}"
    )
    assert code == 2
    expected = rf"cannot write {re.escape(str(folder / 'metrics.json'))}: No space left on device \(ENOSPC\)"
    assert re.fullmatch(ONE_LINE.format(expected), err), err
    assert list(folder.iterdir()) == []


# --- images ----------------------------------------------------------------------------


def test_a_decompression_bomb_image_gets_one_line_naming_the_file_and_the_limit(capsys, workdir, tmp_path):
    from PIL import Image

    tree = tmp_path / "t"
    write_tree(tree, ["a", "b"], {"train": 2, "test": 1}, size=(8, 8))
    Image.new("1", (15000, 15000)).save(tree / "train" / "a" / "bomb.png")  # 225 M pixels in a few kB
    assert (tree / "train" / "a" / "bomb.png").stat().st_size < 100_000
    code, err = run_cli(
        capsys, "prepare", "--no-progress", "--set", "data.name=imagefolder", "--set", f"data.imagefolder.path={tree}"
    )
    assert code == 2
    expected = r"data\.imagefolder\.path: image train/a/bomb\.png is refused as a possible decompression bomb: .*"
    assert re.fullmatch(ONE_LINE.format(expected), err), err
    assert f"the limit is {2 * Image.MAX_IMAGE_PIXELS} pixels" in err
