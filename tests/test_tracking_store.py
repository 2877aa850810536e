"""Processes started together on a store that does not exist yet all get their runs (no table-creation race)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import REPO

CHILD = """
import os, sys, time
import mlflow  # imported before the barrier: the race is in creating the store, not in importing
from errorset.resolve import load_config
from errorset import tracking

uri, name, ready, go = sys.argv[1:5]
cfg = load_config(None, [f"tracking.uri={uri}", "tracking.experiment=race"])
open(ready, "w").close()
while not os.path.exists(go):
    time.sleep(0.001)
with tracking.start_run(cfg, run_name=name) as run:
    run.log_metrics({"x": 1.0})
print(run.run_id)
"""


@pytest.mark.slow
def test_processes_started_together_on_a_new_store_all_log_their_runs(tmp_path: Path):
    from mlflow.tracking import MlflowClient

    n = 3
    for attempt in range(2):  # two fresh stores: a race that is lost only sometimes still shows
        root = tmp_path / f"try{attempt}"
        root.mkdir()
        uri = f"sqlite:///{root / 'mlflow.db'}"
        go = root / "go"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        env.update(PYTHONPATH=str(REPO / "src"), OMP_NUM_THREADS="1")
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", CHILD, uri, f"run{i}", str(root / f"ready{i}"), str(go)],
                cwd=root,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(n)
        ]
        deadline = time.time() + 120
        while not all((root / f"ready{i}").exists() for i in range(n)):
            assert time.time() < deadline, "children did not start"
            time.sleep(0.01)
        go.touch()
        outs = [p.communicate(timeout=120) for p in procs]
        for p, (_out, err) in zip(procs, outs, strict=True):
            assert p.returncode == 0, err[-3000:]
        client = MlflowClient(uri)
        exp = client.get_experiment_by_name("race")
        runs = client.search_runs([exp.experiment_id])
        assert sorted(r.info.run_name for r in runs) == [f"run{i}" for i in range(n)]
        assert {r.info.status for r in runs} == {"FINISHED"}
