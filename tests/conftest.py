"""Shared fixtures: a private MLflow store, a prepared digits dataset, small configs."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from errorset.config import Config
from errorset.resolve import load_config

REPO = Path(__file__).resolve().parents[1]
SHARED_CIFAR = REPO.parent / "shared" / "datasets" / "cifar10-jpeg.tar.gz"

# Two threads match the CI machine and keep results identical across machines.
torch.set_num_threads(2)


@pytest.fixture(scope="session", autouse=True)
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One SQLite MLflow store for the whole session (creating its tables takes seconds).

    Set for the session, before any fixture runs, so that no test or fixture writes to the
    developer's mlflow.db or sees an outer `mlflow run`.
    """
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        # MLflow puts artifacts under ./mlruns of the directory an experiment is created in
        mp.chdir(root)
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        for var in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "ERRORSET_CIFAR10_ARCHIVE"):
            mp.delenv(var, raising=False)
        yield uri


@pytest.fixture(scope="session")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data.root holding prepared digits (made once per session)."""
    from errorset.data import prepare_dataset

    root = tmp_path_factory.mktemp("data")
    prepare_dataset(load_config(None, ["data.name=digits", f"data.root={root}"]).data, progress=False)
    return root


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in a fresh folder: jobs write models/ and reports/ relative to it."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def make_config(data_root: Path, *overrides: str, profile: str = "smoke") -> Config:
    """A resolved digits config in its own MLflow experiment."""
    return load_config(
        None,
        [
            f"profile={profile}",
            "data.name=digits",
            f"data.root={data_root}",
            f"tracking.experiment=test-{uuid.uuid4().hex[:8]}",
            "device=cpu",
            *overrides,
        ],
    )


def mlflow_client():
    from mlflow.tracking import MlflowClient

    return MlflowClient(os.environ["MLFLOW_TRACKING_URI"])


def logged_config(run_id: str) -> dict:
    """The ``config.yaml`` artifact of an MLflow run, parsed (the whole config; params hold the defining few)."""
    import tempfile

    import yaml

    with tempfile.TemporaryDirectory() as tmp:
        return yaml.safe_load(Path(mlflow_client().download_artifacts(run_id, "config.yaml", tmp)).read_text())


def cli_sets(data_root: Path, experiment: str, *overrides: str) -> list[str]:
    """``--set`` arguments for a smoke-profile digits command in its own MLflow experiment."""
    sets = [
        "profile=smoke",
        "data.name=digits",
        f"data.root={data_root}",
        "device=cpu",
        f"tracking.experiment={experiment}",
        "tracking.log_model=false",
        *overrides,
    ]
    return [arg for s in sets for arg in ("--set", s)]


def subprocess_env(**extra: str) -> dict[str, str]:
    """This environment for an ``errorset`` child process, without a run or experiment handed down by MLflow."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **extra}
    for var in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID"):
        env.pop(var, None)
    return env
