"""End to end: `dvc repro` of the smoke profile in a copy of the project, and `mlflow run` entry points."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from errorset.data import file_md5

from .conftest import REPO, mlflow_client

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
ALL_VARIANTS = ["clean", "gaussian-0.1", "gaussian-0.4", "adversarial"]
VARIANTS = ["clean", "gaussian-0.4"]


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "PYTHONUNBUFFERED": "1", **extra}
    for var in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        env.pop(var, None)  # MLflow sets MLFLOW_EXPERIMENT_ID in-process; children choose their own
    return env


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A git + DVC copy of the project whose params.yaml uses digits, the smoke profile and two of the variants.

    Every variant runs the same stage templates, so two (clean, the mCE baseline, and one Gaussian)
    show the pipeline whole at half the time of four; the dependencies on the others are dropped.
    """
    proj = tmp_path / "proj"
    proj.mkdir()
    for name in (".gitignore", ".dvcignore", "MLproject", "python_env.yaml"):
        shutil.copy(REPO / name, proj / name)
    pipeline = yaml.safe_load((REPO / "dvc.yaml").read_text())
    dropped = [f"reports/{v}/" for v in ALL_VARIANTS if v not in VARIANTS]
    for stage in pipeline["stages"].values():
        stage = stage.get("do", stage)
        stage["deps"] = [d for d in stage.get("deps", []) if not str(d).startswith(tuple(dropped))]
    (proj / "dvc.yaml").write_text(yaml.safe_dump(pipeline, sort_keys=False))
    shutil.copytree(REPO / "src", proj / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    assert list(params["variants"]) == ALL_VARIANTS
    params["variants"] = {v: params["variants"][v] for v in VARIANTS}
    params["profile"] = "smoke"
    params["data"]["name"] = "digits"
    params["device"] = "cpu"
    params["tracking"]["experiment"] = f"dvc-{uuid.uuid4().hex[:8]}"
    params["sweep"]["n_trials"] = 2
    params["sweep"]["validation_images"] = 200
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    _run(["git", "init", "-q"], proj, _env())
    _run([str(BIN / "dvc"), "init", "-q"], proj, _env())
    _run([*git, "add", "-A"], proj, _env())
    _run([*git, "commit", "-qm", "init"], proj, _env())
    return proj


def test_dvc_repro_runs_the_pipeline_and_records_everything(project: Path):
    env = _env()
    out = _run([str(BIN / "dvc"), "repro"], project, env).stdout
    variants = VARIANTS
    for v in variants:
        for stage in ("train", "evaluate", "analyze", "attack", "eval_corruptions"):
            assert f"Running stage '{stage}@{v}'" in out
        assert (project / "models" / v / "model.pt").is_file()
    for stage in ("report", "sweep", "make_corruptions", "compare_corruptions"):
        assert f"Running stage '{stage}'" in out
    sweep_summary = json.loads((project / "reports/sweep/summary.json").read_text())
    assert sweep_summary["trials"]["complete"] == 2 and len(sweep_summary["pareto_front"]) >= 1

    lock = yaml.safe_load((project / "dvc.lock").read_text())
    (data_out,) = lock["stages"]["prepare"]["outs"]
    assert data_out["path"] == "data/digits.npz"
    assert data_out["md5"] == file_md5(project / "data/digits.npz")

    experiment = yaml.safe_load((project / "params.yaml").read_text())["tracking"]["experiment"]
    client = mlflow_client()
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    by_job: dict[str, list] = {}
    for r in runs:
        by_job.setdefault(r.data.tags.get("errorset.job"), []).append(r)
    assert {job: len(rs) for job, rs in by_job.items()} == {
        "train": 2,
        "evaluate": 2,
        "analyze": 2,
        "attack": 2,
        "report": 1,
        "eval-corruptions": 2,
        "compare-corruptions": 1,
        "sweep": 1,
        "sweep-trial": 2,
    }
    assert {r.data.tags["mlflow.runName"] for r in by_job["train"]} == {f"{v} · train · digits/mlp" for v in variants}
    for r in by_job["train"]:
        assert r.info.status == "FINISHED"
        assert r.data.params["data.md5"] == data_out["md5"]  # the dataset's DVC hash is in every run
        assert r.data.tags["git_commit"]  # the copy is a git repository
    evals = {r.data.tags["train_run_id"]: r for r in by_job["evaluate"]}
    for v in variants:
        metrics = json.loads((project / "reports" / v / "metrics.json").read_text())
        assert evals[_model_run_id(project / "models" / v / "model.pt")].data.metrics["clean_accuracy"] == (
            pytest.approx(metrics["clean_accuracy"])
        )
        assert (project / "reports" / v / "analysis.csv").is_file()
        assert json.loads((project / "reports" / v / "attack.json").read_text())["steps"] == 5
    summary = json.loads((project / "reports/summary/summary.json").read_text())
    assert set(summary) == set(variants)
    # every variant under the corruptions, in memory, stored, and from the CIFAR-10-C-format files; mCE vs clean
    compared = json.loads((project / "reports/corruptions/comparison.json").read_text())
    formats = ("memory", "png", "jpeg", "released")
    assert set(compared) == {f"{v}/{f}" for v in variants for f in formats}
    assert all(compared[f"clean/{f}"]["mce"] == pytest.approx(100.0) for f in formats)
    for v in variants:
        assert 0.0 < compared[f"{v}/memory"]["all"] < compared[f"{v}/memory"]["clean"]
    assert (project / "reports/summary/figure2_sigma_vs_distance.png").stat().st_size > 10_000

    # `dvc metrics show` holds the headline numbers only. DVC prints one table whose columns are the union
    # of every stage's keys (25 here): 557 characters measured, against 9,311 when every number was a metric.
    shown = _run([str(BIN / "dvc"), "metrics", "show"], project, env).stdout
    assert max(len(line) for line in shown.splitlines()) < 600, shown
    assert "Data and pipelines are up to date" in _run([str(BIN / "dvc"), "status"], project, env).stdout
    # A parameter change invalidates exactly the stages that depend on it.
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["attack"]["steps"] = 2
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    changed = json.loads(_run([str(BIN / "dvc"), "status", "--json"], project, env).stdout)
    assert set(changed) == {f"attack@{v}" for v in variants}


def _model_run_id(path: Path) -> str:
    from errorset.models.build import read_model_file

    return read_model_file(path)["run_id"]


def _entry_points() -> list[str]:
    return list(yaml.safe_load((REPO / "MLproject").read_text())["entry_points"])


def test_every_mlflow_run_entry_point_runs_as_documented(tmp_path: Path):
    """Each MLproject entry point, with the default paths the README and MLproject comments use.

    A copy of the project (MLproject, params.yaml) is the working directory, so models/ and reports/
    land where `dvc repro` and a user's own runs put them; two independent chains run side by side.
    """
    import concurrent.futures

    proj = tmp_path / "proj"
    proj.mkdir()
    for name in ("MLproject", "python_env.yaml", "params.yaml"):
        shutil.copy(REPO / name, proj / name)
    experiment = f"mlproject-{uuid.uuid4().hex[:8]}"
    common = "data.name=digits profile=smoke device=cpu tracking.log_model=false"
    few = "corruptions.names=[gaussian_noise,fog] corruptions.severities=[1,3] corruptions.n_images=32"
    sets = {
        "prepare": "",
        "train": "",
        "main": "train.mode=gaussian train.sigma_max=0.1",
        "evaluate": "",
        "analyze": "",
        "attack": "",
        "report": "report.inputs=[reports/digits/mlp/clean]",
        "eval-corruptions": few,
        "make-corruptions": few,
        "compare-corruptions": f"{few} corruptions.compare=[reports/digits/mlp/clean/corruptions]",
        "summary": "report.inputs=[reports/digits/mlp/clean]",
        "sweep": "sweep.n_trials=2 sweep.validation_images=200 sweep.objectives=[clean_accuracy]",
    }
    assert set(sets) == set(_entry_points()), "a new MLproject entry point needs a line here"
    mlflow = [str(BIN / "mlflow"), "run", str(proj), "--env-manager", "local", "--experiment-name", experiment]

    def run(entry: str) -> None:
        _run([*mlflow, "-e", entry, "-P", f"set={common} {sets[entry]}".strip()], proj, _env())

    run("prepare")
    run("train")  # -> models/digits/mlp/clean/model.pt, which the measuring entries find by default
    chains = [
        ["evaluate", "analyze", "attack", "report", "summary"],
        ["main", "eval-corruptions", "compare-corruptions", "make-corruptions", "sweep"],
    ]
    with concurrent.futures.ThreadPoolExecutor(len(chains)) as pool:
        for done in [pool.submit(lambda c=c: [run(e) for e in c]) for c in chains]:
            done.result()

    client = mlflow_client()
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id])
    opened = {r.data.tags["mlflow.project.entryPoint"]: r for r in runs if "mlflow.project.entryPoint" in r.data.tags}
    assert set(opened) == set(sets)
    assert all(r.info.status == "FINISHED" for r in runs), [(r.info.run_name, r.info.status) for r in runs]
    # errorset logged into the run each `mlflow run` opened: no stray runs besides the sweep's trials
    extra = [r for r in runs if "mlflow.project.entryPoint" not in r.data.tags]
    assert {r.data.tags.get("errorset.job") for r in extra} <= {"sweep-trial"} and len(extra) == 2
    assert all(r.data.tags["mlflow.parentRunId"] == opened["sweep"].info.run_id for r in extra)

    train, main = opened["train"], opened["main"]
    model = proj / "models/digits/mlp/clean/model.pt"
    assert (
        train.data.tags["mlflow.runName"] == "clean · train · digits/mlp" and _model_run_id(model) == train.info.run_id
    )
    assert main.data.tags["mlflow.runName"] == "gaussian-0.1 · train · digits/mlp"
    assert {m.step for m in client.get_metric_history(train.info.run_id, "test_accuracy")} == {0, 1}
    for entry in ("evaluate", "analyze", "attack", "eval-corruptions"):
        r = opened[entry]
        assert r.data.tags["train_run_id"] == train.info.run_id, entry
        key = {"evaluate": "eval", "eval-corruptions": "corruptions"}.get(entry, entry) + ".checkpoint"
        assert r.data.params[key] == "models/digits/mlp/clean/model.pt", entry  # the default path, resolved
    metrics = json.loads((proj / "reports/digits/mlp/clean/metrics.json").read_text())
    assert opened["evaluate"].data.metrics["clean_accuracy"] == pytest.approx(metrics["clean_accuracy"])
    summary = json.loads((proj / "reports/summary/summary.json").read_text())
    assert summary["clean"]["clean_accuracy"] == pytest.approx(metrics["clean_accuracy"])
    sweep = json.loads((proj / "reports/sweep/summary.json").read_text())
    assert sweep["trials"]["complete"] == 2
