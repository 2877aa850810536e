"""errorset sweep: Optuna studies on digits, nested MLflow runs, several workers, killed workers, bad input."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest

from errorset.config import read_config
from errorset.errors import ConfigError, UnknownNameError
from errorset.jobs.sweep import sweep
from errorset.jobs.sweep_study import held_out
from errorset.jobs.sweep_summary import dominates
from errorset.measure.corruption_accuracy import evaluate_corruptions, summarize
from errorset.models import load_model
from errorset.resolve import load_config, resolve

from .conftest import REPO, cli_sets, mlflow_client, subprocess_env

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")

NOISE = ["gaussian_noise", "shot_noise", "impulse_noise"]
BLUR = ["defocus_blur", "glass_blur", "motion_blur", "zoom_blur"]


def base_config(data_root: Path, workdir: Path, *overrides: str):
    """An unresolved digits config for a quick study in its own storage and experiment."""
    return read_config(
        None,
        [
            "profile=smoke",
            "data.name=digits",
            f"data.root={data_root}",
            "device=cpu",
            f"tracking.experiment=sweep-{uuid.uuid4().hex[:8]}",
            "tracking.log_model=false",
            f"sweep.storage=sqlite:///{workdir / 'study.db'}",
            "sweep.validation_images=200",
            "sweep.trial_subset=0",
            *overrides,
        ],
    )


def child_runs(parent_id: str):
    client = mlflow_client()
    exp = client.get_run(parent_id).info.experiment_id
    return client.search_runs([exp], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'")


def test_four_trial_study_logs_nested_runs_equal_to_the_study(data_root, workdir):
    base = base_config(data_root, workdir, "sweep.n_trials=4")
    result = sweep(base, progress=False)
    study = optuna.load_study(study_name="errorset-sweep", storage=f"sqlite:///{workdir / 'study.db'}")
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 4 and len({t.params["train.sigma_max"] for t in complete}) == 4

    parent = mlflow_client().get_run(result.parent_run_id)
    assert parent.data.tags["errorset.job"] == "sweep" and parent.info.status == "FINISHED"
    assert parent.data.params["sweep.n_trials"] == "4"
    runs = {r.info.run_id: r for r in child_runs(result.parent_run_id)}
    assert len(runs) == 4
    for t in complete:
        run = runs[t.user_attrs["mlflow_run_id"]]
        assert run.info.status == "FINISHED"
        assert float(run.data.params["train.sigma_max"]) == pytest.approx(t.params["train.sigma_max"])
        assert run.data.params["train.mode"] == "gaussian" and run.data.params["train.holdout"] == "200"
        assert run.data.metrics["objective/clean_accuracy"] == pytest.approx(t.values[0])
        assert run.data.metrics["objective/corruption_accuracy"] == pytest.approx(t.values[1])
        assert run.data.tags["optuna.trial"] == str(t.number)

    # the default corruption objective is the paper's "All" under noise, blur, fog and contrast at severities
    # 1-5 on the held-out images (gaussian_noise left out), the same corrupted images for every trial:
    # recompute it for one trial by hand
    cfg = resolve(base)
    x_val, y_val = held_out(cfg)
    trial = complete[0]
    model = load_model(trial.user_attrs["model_path"])
    expected = evaluate_corruptions(
        model, x_val, y_val, corruptions=[*NOISE, *BLUR, "fog", "contrast"], formats=["memory"], seed=cfg.seed
    )
    assert len(expected.accuracy["memory"]) == 9
    per = summarize(expected.accuracy["memory"]).per_corruption
    in_all = [v for c, v in per.items() if c != "gaussian_noise"]
    assert sum(in_all) / 8 == pytest.approx(trial.values[1])
    assert sum(per.values()) / 9 != pytest.approx(trial.values[1])  # not the plain mean with gaussian_noise
    assert trial.values[1] < trial.values[0]  # corruptions cost accuracy

    summary = json.loads((workdir / "reports/sweep/summary.json").read_text())
    assert summary == json.loads(json.dumps(result.summary))
    assert summary["trials"]["complete"] == 4
    front = summary["pareto_front"]
    values = {t.number: list(t.values) for t in complete}
    # the reported Pareto set is non-dominated, and every other trial is dominated by one of it
    for p in front:
        assert not any(dominates(v, list(p["values"].values()), ["maximize"] * 2) for v in values.values())
    others = set(values) - {p["number"] for p in front}
    for n in others:
        assert any(dominates(list(p["values"].values()), values[n], ["maximize"] * 2) for p in front)
    with open(workdir / "reports/sweep/trials.csv") as f:
        assert len(list(csv.DictReader(f))) == 4
    artifacts = {a.path for a in mlflow_client().list_artifacts(result.parent_run_id)}
    assert {"summary.json", "trials.csv", "pareto_front.png", "history.png", "objectives_vs_params.png"} <= artifacts

    # re-running the finished study runs nothing and reports the same
    again = sweep(base, progress=False)
    assert again.parent_run_id == result.parent_run_id
    assert len(optuna.load_study(study_name="errorset-sweep", storage=f"sqlite:///{workdir / 'study.db'}").trials) == 4


def test_single_objective_reports_per_epoch_values_for_pruning(data_root, workdir):
    base = base_config(
        data_root, workdir, "sweep.n_trials=3", "sweep.objectives=[clean_accuracy]", "sweep.trial_epochs=3"
    )
    result = sweep(base, progress=False)
    study = optuna.load_study(study_name="errorset-sweep", storage=f"sqlite:///{workdir / 'study.db'}")
    finished = [t for t in study.trials if t.state.is_finished()]
    assert len(finished) == 3
    assert all(sorted(t.intermediate_values) == [0, 1, 2] for t in finished if t.state.name == "COMPLETE")
    best = result.summary["best"][0]
    assert best["values"]["clean_accuracy"] == pytest.approx(study.best_value)


def _env() -> dict[str, str]:
    return subprocess_env()


def _cli(base_args: list[str]) -> list[str]:
    return [sys.executable, "-m", "errorset", "sweep", "--no-progress", "-q", *base_args]


def _start_sweep(args: list[str], workdir: Path) -> subprocess.Popen:
    """``errorset sweep`` as a child process, its output captured as text."""
    return subprocess.Popen(
        _cli(args), cwd=workdir, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _args(data_root: Path, workdir: Path, experiment: str, *overrides: str) -> list[str]:
    study = [f"sweep.storage=sqlite:///{workdir / 'study.db'}", "sweep.validation_images=200"]
    return cli_sets(data_root, experiment, *study, *overrides)


def test_two_workers_share_one_study(data_root, workdir):
    experiment = f"sweep-{uuid.uuid4().hex[:8]}"
    # trials of a few seconds, and enough of them that the second process (seconds of imports on a
    # busy machine) joins before the first has run them all
    args = _args(
        data_root,
        workdir,
        experiment,
        "sweep.n_trials=6",
        "sweep.workers=2",
        "sweep.trial_epochs=15",
        "sweep.trial_subset=0",
    )
    done = subprocess.run(_cli(args), cwd=workdir, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    # Optuna's surplus-trial warnings on one line each; the summary once, by the launcher
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stdout.count("study errorset-sweep:") == 1, done.stdout
    study = optuna.load_study(study_name="errorset-sweep", storage=f"sqlite:///{workdir / 'study.db'}")
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 6
    assert len({t.number for t in complete}) == 6
    assert len({round(t.params["train.sigma_max"], 12) for t in complete}) == 6  # distinct samplers
    # both processes ran trials, all nested under one parent
    parent = study.user_attrs["mlflow_parent_run_id"]
    runs = child_runs(parent)
    assert {r.info.run_id for r in runs} >= {t.user_attrs["mlflow_run_id"] for t in complete}
    assert {t.user_attrs["worker"] for t in complete} == {0, 1}


def test_a_killed_worker_trial_is_failed_and_retried_by_the_rerun(data_root, workdir):
    experiment = f"sweep-{uuid.uuid4().hex[:8]}"
    storage = f"sqlite:///{workdir / 'study.db'}"
    slow = _args(
        data_root,
        workdir,
        experiment,
        "sweep.n_trials=2",
        "sweep.heartbeat_interval=1",
        "sweep.trial_epochs=400",
        "sweep.trial_subset=0",
    )
    proc = subprocess.Popen(_cli(slow), cwd=workdir, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    killed = None
    deadline = time.time() + 120
    while time.time() < deadline and killed is None:
        time.sleep(0.5)
        try:
            study = optuna.load_study(study_name="errorset-sweep", storage=storage)
        except KeyError:
            continue
        running = [t for t in study.trials if t.state.name == "RUNNING" and "mlflow_run_id" in t.user_attrs]
        if running:
            killed = running[0]
            proc.send_signal(signal.SIGKILL)  # no chance to clean up: only the heartbeat tells
    proc.wait(timeout=30)
    assert killed is not None, "the worker never started a trial"
    time.sleep(2.5)  # past the grace period of 2 heartbeats
    # the same command, with short trials so that the test stays quick
    fast = _args(
        data_root, workdir, experiment, "sweep.n_trials=2", "sweep.heartbeat_interval=1", "sweep.trial_epochs=1"
    )
    rerun = subprocess.run(_cli(fast), cwd=workdir, env=_env(), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    study = optuna.load_study(study_name="errorset-sweep", storage=storage)
    by_number = {t.number: t for t in study.trials}
    assert by_number[killed.number].state.name == "FAIL"
    retries = [t for t in study.trials if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retries) == 1 and retries[0].state.name == "COMPLETE"
    assert retries[0].params == killed.params
    assert sum(t.state.name == "COMPLETE" for t in study.trials) == 2
    assert mlflow_client().get_run(killed.user_attrs["mlflow_run_id"]).info.status == "FAILED"


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        (
            ["sweep.objectives=[accuracy_in_fog]"],
            UnknownNameError,
            r"sweep\.objectives: unknown objective 'accuracy_in_fog'; valid objectives: clean_accuracy",
        ),
        (["sweep.objectives=[]"], ConfigError, r"sweep\.objectives: expected at least one objective"),
        (
            ["sweep.corruptions.names=[noise, fgo]"],
            UnknownNameError,
            r"sweep\.corruptions\.names\[1\]: unknown corruption or family 'fgo'; valid families: noise, blur",
        ),
        (
            ["sweep.corruptions.severities=[0, 3]"],
            ConfigError,
            r"sweep\.corruptions\.severities\[0\]: expected an integer from 1 to 5, got 0",
        ),
        (["sweep.corruptions.format=webp"], ConfigError, r"sweep\.corruptions\.format: unknown format 'webp'"),
        (
            ["sweep.space={train.sigma_max: {low: 1.0, high: 0.5}}"],
            ConfigError,
            r"sweep\.space\.train\.sigma_max: expected low < high, got low=1\.0, high=0\.5",
        ),
        (
            ["sweep.space={train.sigma_max: {type: gaussian, low: 0, high: 1}}"],
            ConfigError,
            r"sweep\.space\.train\.sigma_max\.type: unknown type 'gaussian'; valid types: float, int, categorical",
        ),
        (
            ["sweep.space={train.sigmamax: {low: 0, high: 1}}"],
            ConfigError,
            r"sweep\.space\.train\.sigmamax: not a config key",
        ),
        (
            ["sweep.space={train.mode: {type: categorical}}"],
            ConfigError,
            r"sweep\.space\.train\.mode\.choices: expected a non-empty list",
        ),
        (
            ["sweep.space={train.sigma_max: {low: -1, high: 1}}"],
            ConfigError,
            r"sweep\.space\.train\.sigma_max: the value -1\.0 gives an invalid config \(train\.sigma_max: expected",
        ),
        (["sweep.space={}"], ConfigError, r"sweep\.space: expected at least one parameter"),
        (["sweep.space={seed: {low: 0, high: 9, type: int}}"], ConfigError, r"sweep\.space\.seed: every trial"),
        (
            ["sweep.corruptions.names=[gaussian_noise, speckle_noise]"],
            ConfigError,
            r"sweep\.corruptions\.names: expected at least one benchmark corruption other than gaussian_noise",
        ),
        (["sweep.pruner=hyperband"], ConfigError, r"sweep\.pruner: unknown pruner 'hyperband'; valid pruners"),
        (["sweep.storage=/tmp/study.txt"], ConfigError, r"sweep\.storage: expected a database URL"),
    ],
)
def test_bad_sweep_settings_fail_before_any_trial(data_root, workdir, overrides, error, message):
    with pytest.raises(error, match=message):
        sweep(base_config(data_root, workdir, *overrides), progress=False)
    assert not (workdir / "reports").exists()


def test_nested_overrides_of_the_space_work(data_root, workdir):
    """`--set sweep.space.train.sigma_max.high=0.2` edits one field of a flat entry (DVC's -S cannot: below)."""
    from errorset.sweep import parse_space

    cfg = load_config(REPO / "params.yaml", ["sweep.space.train.sigma_max.high=0.2"])
    (param,) = parse_space(cfg.sweep.space)
    assert (param.key, param.low, param.high) == ("train.sigma_max", 0.0, 0.2)


def test_dvc_exp_run_set_of_the_whole_space_entry_works(tmp_path):
    """The README's `dvc exp run -S 'sweep.space={train.sigma_max: {...}}'`, through DVC's own params rewrite."""
    pytest.importorskip("hydra")
    from dvc.utils.hydra import apply_overrides as dvc_apply_overrides

    from errorset.sweep import parse_space

    path = tmp_path / "params.yaml"
    path.write_text((REPO / "params.yaml").read_text())
    dvc_apply_overrides(str(path), ["sweep.space={train.sigma_max: {type: float, low: 0.0, high: 0.5}}"])
    (param,) = parse_space(load_config(path).sweep.space)
    assert (param.key, param.low, param.high) == ("train.sigma_max", 0.0, 0.5)


def test_a_study_remembers_its_objectives(data_root, workdir):
    sweep(base_config(data_root, workdir, "sweep.n_trials=1", "sweep.objectives=[clean_accuracy]"), progress=False)
    with pytest.raises(ConfigError, match=r"sweep\.objectives: study 'errorset-sweep' .* was made for objectives"):
        sweep(base_config(data_root, workdir, "sweep.n_trials=1"), progress=False)


def test_the_study_names_its_objectives_for_the_dashboard(data_root, workdir):
    """optuna-dashboard labels the objectives by name (set_metric_names), not "0" and "1"."""
    from errorset.jobs.sweep_study import prepare

    prepare(base_config(data_root, workdir, "sweep.objectives=[clean_accuracy,noise_accuracy]"))
    assert _study(workdir).metric_names == ["clean_accuracy", "noise_accuracy"]
    # a study made without names (by an older errorset, which stored only its objectives) gets them when joined
    storage = f"sqlite:///{workdir / 'study.db'}"
    optuna.create_study(study_name="unnamed", storage=storage, directions=["maximize"]).set_user_attr(
        "objectives", ["clean_accuracy"]
    )
    prepare(base_config(data_root, workdir, "sweep.study_name=unnamed", "sweep.objectives=[clean_accuracy]"))
    assert optuna.load_study(study_name="unnamed", storage=storage).metric_names == ["clean_accuracy"]


# --- workers started together, killed, interrupted (issue 11) ----------------------------------------------


def _study(workdir: Path):
    """The study as stored now, or None before any worker created it."""
    try:
        return optuna.load_study(study_name="errorset-sweep", storage=f"sqlite:///{workdir / 'study.db'}")
    except KeyError:
        return None


def _running_trials(workdir: Path) -> list:
    """The RUNNING trials that already opened their MLflow run."""
    study = _study(workdir)
    return [t for t in (study.trials if study else []) if t.state.name == "RUNNING" and "mlflow_run_id" in t.user_attrs]


def _wait_until(condition, timeout: float, what: str, procs=()) -> None:
    """Poll ``condition`` every 0.3 s; fail naming ``what`` after ``timeout`` s or when a process of ``procs`` ended."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        ended = [p.returncode for p in procs if p.poll() is not None]
        assert not ended, f"a process ended (exit codes {ended}) before {what}"
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout} s waiting until {what}")


def _children(pid: int) -> list[int]:
    """The child processes of ``pid`` (Linux /proc)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in path.read_text().split()] if path.exists() else []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie has ended, only its exit status waits to be read
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")


def _kill_all(pids) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _experiment_runs(experiment: str):
    client = mlflow_client()
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id]) if exp else []


def test_workers_started_together_share_one_parent_run(data_root, workdir):
    experiment = f"sweep-{uuid.uuid4().hex[:8]}"
    args = _args(
        data_root,
        workdir,
        experiment,
        "sweep.n_trials=3",
        "sweep.objectives=[clean_accuracy]",
        "sweep.trial_epochs=1",
        "sweep.trial_subset=0",
    )
    procs = [
        subprocess.Popen(
            [*_cli(args), "--worker", str(i)],
            cwd=workdir,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(3)
    ]
    outputs = [p.communicate(timeout=240) for p in procs]
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
    runs = _experiment_runs(experiment)
    parents = [r for r in runs if r.data.tags.get("errorset.job") == "sweep"]
    assert len(parents) == 1, [r.info.run_id for r in parents]
    # surplus trials (likely with three workers on three trials) are one line each
    assert not [err for _, err in outputs if "Traceback" in err], outputs
    parent = parents[0].info.run_id
    study = _study(workdir)
    assert study.user_attrs["mlflow_parent_run_id"] == parent
    trials = [r for r in runs if r.data.tags.get("errorset.job") == "sweep-trial"]
    assert len(trials) >= 3 and {r.data.tags["mlflow.parentRunId"] for r in trials} == {parent}
    assert sum(t.state.name == "COMPLETE" for t in study.trials) == 3
    # workers started by hand each report, as before
    assert all("study errorset-sweep:" in out for out, _ in outputs)


def test_a_run_failed_in_optuna_by_another_worker_is_failed_in_mlflow(data_root, workdir):
    """Optuna fails a dead worker's stale trial inside another worker's optimize loop; MLflow must follow."""
    experiment = f"sweep-{uuid.uuid4().hex[:8]}"
    common = ["sweep.n_trials=5", "sweep.heartbeat_interval=1", "sweep.objectives=[clean_accuracy]"]
    slow = _args(data_root, workdir, experiment, *common, "sweep.trial_epochs=400", "sweep.trial_subset=0")
    # worker 1's trials (a few seconds each) must outlast the 2 s grace period after the kill
    fast = _args(data_root, workdir, experiment, *common, "sweep.trial_epochs=10", "sweep.trial_subset=0")
    doomed = subprocess.Popen(_cli(slow), cwd=workdir, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    other = None
    try:
        _wait_until(lambda: _running_trials(workdir), 120, "the first worker ran a trial", [doomed])
        (killed,) = _running_trials(workdir)
        other = subprocess.Popen(
            [*_cli(fast), "--worker", "1"],
            cwd=workdir,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        # kill the first worker once the second is inside its optimize loop (past its own stale-trial check)
        _wait_until(
            lambda: any(t.user_attrs.get("worker") == 1 for t in _study(workdir).trials), 120, "worker 1 ran a trial"
        )
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=30)
        _, err = other.communicate(timeout=240)
        assert other.returncode == 0, err
    finally:
        _kill_all(p.pid for p in (doomed, other) if p is not None and p.poll() is None)
    study = _study(workdir)
    assert {t.number: t for t in study.trials}[killed.number].state.name == "FAIL"
    assert mlflow_client().get_run(killed.user_attrs["mlflow_run_id"]).info.status == "FAILED"
    assert [r.info.run_id for r in _experiment_runs(experiment) if r.info.status == "RUNNING"] == []


def test_sigterm_reaches_the_spawned_workers(data_root, workdir):
    experiment = f"sweep-{uuid.uuid4().hex[:8]}"
    args = _args(
        data_root,
        workdir,
        experiment,
        "sweep.n_trials=4",
        "sweep.workers=2",
        "sweep.objectives=[clean_accuracy]",
        "sweep.trial_epochs=400",
        "sweep.trial_subset=0",
    )
    proc = _start_sweep(args, workdir)
    workers: list[int] = []
    try:
        _wait_until(
            lambda: {t.user_attrs.get("worker") for t in _running_trials(workdir)} == {0, 1},
            120,
            "both workers ran trials",
            [proc],
        )
        workers = _children(proc.pid)
        assert workers, "no worker process found"
        proc.send_signal(signal.SIGTERM)  # the launcher only
        _, err = proc.communicate(timeout=30)
        deadline = time.time() + 5
        while time.time() < deadline and any(_alive(pid) for pid in workers):
            time.sleep(0.2)
        assert not [pid for pid in workers if _alive(pid)], "a worker outlived the launcher"
    finally:
        _kill_all([*workers, proc.pid])
    assert proc.returncode == 130, err
    study = _study(workdir)
    assert {t.state.name for t in study.trials} == {"FAIL"}
    parent = mlflow_client().get_run(study.user_attrs["mlflow_parent_run_id"])
    assert parent.info.status == "KILLED"
    assert [r.info.run_id for r in _experiment_runs(experiment) if r.info.status == "RUNNING"] == []


def test_an_interrupted_sweep_ends_its_parent_run_killed(data_root, workdir):
    experiment = f"sweep-{uuid.uuid4().hex[:8]}"
    args = _args(
        data_root,
        workdir,
        experiment,
        "sweep.n_trials=2",
        "sweep.objectives=[clean_accuracy]",
        "sweep.trial_epochs=400",
        "sweep.trial_subset=0",
    )
    proc = _start_sweep(args, workdir)
    try:
        _wait_until(lambda: _running_trials(workdir), 120, "the worker ran a trial", [proc])
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        _kill_all([proc.pid] if proc.poll() is None else [])
    assert proc.returncode == 130, err
    assert "Traceback" not in err, err
    study = _study(workdir)
    assert mlflow_client().get_run(study.user_attrs["mlflow_parent_run_id"]).info.status == "KILLED"
    (trial,) = study.trials
    assert trial.state.name == "FAIL"
    assert mlflow_client().get_run(trial.user_attrs["mlflow_run_id"]).info.status == "KILLED"


def test_a_dead_spawned_worker_fails_the_parent_run(data_root, workdir):
    """SIGKILL of a spawned worker mid-trial: its trial holds a place, the study ends incomplete, exit 2."""
    experiment = f"sweep-{uuid.uuid4().hex[:8]}"
    args = _args(
        data_root,
        workdir,
        experiment,
        "sweep.n_trials=2",
        "sweep.workers=2",
        "sweep.objectives=[clean_accuracy]",
        "sweep.pruner=none",
        "sweep.trial_epochs=150",
        "sweep.trial_subset=0",
    )
    proc = _start_sweep(args, workdir)
    workers: list[int] = []
    try:
        _wait_until(
            lambda: 1 in {t.user_attrs.get("worker") for t in _running_trials(workdir)},
            120,
            "the spawned worker ran a trial",
            [proc],
        )
        workers = _children(proc.pid)
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        _, err = proc.communicate(timeout=120)
    finally:
        _kill_all([*workers, proc.pid])
    assert proc.returncode == 2, err
    assert "sweep.workers: worker processes failed (exit codes [-9])" in err
    study = _study(workdir)
    assert mlflow_client().get_run(study.user_attrs["mlflow_parent_run_id"]).info.status == "FAILED"
