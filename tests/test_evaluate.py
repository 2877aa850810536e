from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from errorset.jobs.evaluate import evaluate
from errorset.jobs.train import train

from .conftest import make_config, mlflow_client


def test_evaluate_writes_dvc_files_and_an_mlflow_run(data_root, workdir):
    trained = train(make_config(data_root, "train.mode=gaussian", "train.sigma_max=0.4"), progress=False)
    cfg = make_config(
        data_root,
        f"eval.checkpoint={trained.model_path}",
        "eval.output_dir=reports/g",
        "eval.sigmas=[0.0,0.1,0.5]",
        "eval.trials=3",
        "eval.n_images=0",
    )
    result = evaluate(cfg, progress=False)
    metrics = json.loads((workdir / "reports/g/evaluate.json").read_text())
    assert metrics == result.metrics
    # the DVC metrics file holds the headline numbers only
    headline = json.loads((workdir / "reports/g/metrics.json").read_text())
    assert headline == {
        "clean_accuracy": metrics["clean_accuracy"],
        "accuracy_sigma_0.1": metrics["noise_accuracy"]["0.1"],
    }
    assert metrics["n_images"] == 360 and metrics["trials"] == 3
    assert set(metrics["noise_accuracy"]) == {"0", "0.1", "0.5"}
    # sigma 0 is the clean accuracy; heavy noise hurts
    assert metrics["noise_accuracy"]["0"] == pytest.approx(metrics["clean_accuracy"])
    assert metrics["noise_accuracy_std"]["0"] == 0
    assert metrics["noise_accuracy"]["0.5"] < metrics["clean_accuracy"]
    with open(workdir / "reports/g/noise_accuracy.csv") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["sigma"]) for r in rows] == [0.0, 0.1, 0.5]
    assert float(rows[2]["accuracy"]) == pytest.approx(metrics["noise_accuracy"]["0.5"])

    run = mlflow_client().get_run(result.run_id)
    assert run.info.run_name == "gaussian-0.4 · evaluate · digits/mlp"
    # parameters describe the evaluated model, not the evaluation command's defaults
    assert run.data.params["train.mode"] == "gaussian" and run.data.params["train.sigma_max"] == "0.4"
    assert run.data.tags["train_run_id"] == trained.run_id
    assert run.data.metrics["clean_accuracy"] == pytest.approx(metrics["clean_accuracy"])
    assert run.data.metrics["accuracy_sigma_0.1"] == pytest.approx(metrics["noise_accuracy"]["0.1"])
    assert run.data.metrics["detail/noise_accuracy/sigma_0.5"] == pytest.approx(metrics["noise_accuracy"]["0.5"])
    artifacts = {a.path for a in mlflow_client().list_artifacts(result.run_id)}
    assert {"noise_accuracy.png", "noise_accuracy.json", "metrics.json", "config.yaml"} <= artifacts


def test_evaluate_refuses_a_model_of_another_dataset(data_root, workdir, tmp_path):
    from errorset.errors import ConfigError
    from errorset.models import create_model, save_model

    path = save_model(create_model("mlp", input_shape=(3, 32, 32), num_classes=10), tmp_path / "m.pt")
    with pytest.raises(ConfigError, match=r"^eval\.checkpoint: .* was trained on \(3, 32, 32\) images"):
        evaluate(make_config(data_root, f"eval.checkpoint={path}"), progress=False)


def test_measuring_jobs_find_the_default_checkpoint_and_log_its_path(data_root, workdir):
    """After `errorset train`, `evaluate`, `analyze` and `attack` with no checkpoint set measure its model.pt.

    The path they resolve is logged as the config's checkpoint parameter (MLflow refuses a parameter
    logged twice with different values: null from the config, then the path).
    """
    from errorset.jobs.analyze import analyze
    from errorset.jobs.attack import attack

    trained = train(make_config(data_root, "tracking.log_model=false"), progress=False)
    assert Path(trained.model_path).resolve() == (workdir / "models/digits/mlp/clean/model.pt").resolve()
    for job, key, extra in (
        (evaluate, "eval.checkpoint", ["eval.trials=1", "eval.n_images=16"]),
        (analyze, "analyze.checkpoint", ["analyze.images=4", "analyze.noisy.images=1", "analyze.nearest.steps=4"]),
        (attack, "attack.checkpoint", ["attack.images=8", "attack.linf_eps=[0.1]", "attack.l2_eps=[]"]),
    ):
        result = job(make_config(data_root, *extra), progress=False)
        params = mlflow_client().get_run(result.run_id).data.params
        assert params[key] == "models/digits/mlp/clean/model.pt", key
