"""analyze, attack and report: files, MLflow runs and figures on small digits models."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from errorset.errors import ConfigError
from errorset.jobs.analyze import analyze
from errorset.jobs.attack import attack, metric_key
from errorset.jobs.evaluate import evaluate
from errorset.jobs.report import report
from errorset.jobs.train import train
from errorset.results import read_table

from .conftest import logged_config, make_config, mlflow_client


@pytest.fixture(scope="module")
def trained_models(data_root, tmp_path_factory):
    """A clean and a Gaussian-augmented digits MLP (smoke profile, a few epochs)."""
    root = tmp_path_factory.mktemp("models")
    out = {}
    for name, mode in (("clean", ["train.mode=clean"]), ("gauss", ["train.mode=gaussian", "train.sigma_max=0.5"])):
        cfg = make_config(
            data_root, *mode, "train.epochs=4", f"train.output_dir={root / name}", "tracking.log_model=false"
        )
        out[name] = train(cfg, progress=False)
    return out


def test_analyze_writes_the_per_image_table_and_logs_it(data_root, workdir, trained_models):
    m = trained_models["gauss"]
    cfg = make_config(
        data_root,
        f"analyze.checkpoint={m.model_path}",
        "analyze.output_dir=rep",
        "analyze.images=12",
        "analyze.noisy.images=3",
    )
    result = analyze(cfg, progress=False)
    table = read_table(workdir / "rep/analysis.csv")
    assert len(table["index"]) == 12
    for key in ("sigma_at_mu", "nearest_distance", "error_rate_sigma_0.1", "eps_star", "isoperimetric_bound"):
        np.testing.assert_allclose(table[key], result.columns[key].astype(float), rtol=1e-6, equal_nan=True)
    wrong = table["clean_correct"] == 0
    assert (table["sigma_at_mu"][wrong] == 0).all() and (table["nearest_distance"][wrong] == 0).all()
    ok = ~wrong
    assert (table["sigma_at_mu"][ok] > 0).all() and (table["nearest_distance"][ok] > 0).all()
    # eps*_q on the first 3 correctly classified images only
    first = np.flatnonzero(ok)[:3]
    assert np.isfinite(table["eps_star"][first]).all()
    assert np.isnan(np.delete(table["eps_star"], first)).all()
    # the linear-model distance column is -Phi^-1(mu) * sigma(x0, mu)
    np.testing.assert_allclose(table["linear_distance"], 2.3263479 * table["sigma_at_mu"], rtol=1e-5)
    # every per-image number has its interval
    for key in ("sigma_at_mu", "error_rate_sigma_0.1", "eps_star", "noisy_error_rate", "isoperimetric_bound"):
        have = np.isfinite(table[key])
        assert (table[f"{key}_lo"][have] <= table[key][have]).all()
        assert (table[key][have] <= table[f"{key}_hi"][have]).all()

    summary = json.loads((workdir / "rep/analysis.json").read_text())
    assert summary["images"] == 12 and summary["dimension"] == 64
    rec = summary["sigma_at_mu"]
    # over all images, misclassified ones at sigma = 0 (the paper's convention)
    assert rec["median"] == pytest.approx(float(np.median(table["sigma_at_mu"])))
    assert rec["n"] == 12 and rec["lo"] <= rec["median"] <= rec["hi"] and rec["level"] == 0.95
    assert summary["distance_ratio"]["n"] == int(ok.sum())
    run = mlflow_client().get_run(result.run_id)
    assert run.info.run_name == "gaussian-0.5 · analyze · digits/mlp"
    assert run.data.tags["train_run_id"] == m.run_id
    assert run.data.params["profile"] == "smoke"  # the rest of the config is config.yaml
    logged = logged_config(result.run_id)
    assert logged["analyze"]["samples"] == 1000
    assert run.data.metrics["median_sigma_0.01"] == pytest.approx(rec["median"])
    assert run.data.metrics["detail/sigma_at_mu/median"] == pytest.approx(rec["median"])
    assert run.data.metrics["detail/sigma_at_mu/hi"] == pytest.approx(rec["hi"])
    assert run.data.metrics["detail/mean_error_rate/sigma_0.1"] == pytest.approx(summary["mean_error_rate"]["0.1"])
    artifacts = {a.path for a in mlflow_client().list_artifacts(result.run_id)}
    assert {
        "figure2_sigma_vs_distance.png",
        "figure4_eps_star.png",
        "figure20_error_rate_cdf.png",
        "figure10_optimal_curves.png",
        "analysis.csv",
        "analysis_table.json",
    } <= artifacts


def test_attack_accuracy_falls_with_eps_and_is_logged(data_root, workdir, trained_models):
    m = trained_models["clean"]
    cfg = make_config(
        data_root,
        f"attack.checkpoint={m.model_path}",
        "attack.output_dir=rep",
        "attack.linf_eps=[0.0,2/255,8/255,32/255]",
        "attack.l2_eps=[0.5,2.0]",
        "attack.steps=10",
        "attack.restarts=2",
    )
    result = attack(cfg, progress=False)
    linf = [r["accuracy"] for r in result.results["linf"]]
    assert linf == sorted(linf, reverse=True) and linf[-1] < linf[0]
    assert result.results["l2"][1]["accuracy"] <= result.results["l2"][0]["accuracy"]
    saved = json.loads((workdir / "rep/attack.json").read_text())
    assert saved["linf"] == result.results["linf"] and saved["steps"] == 10
    assert saved["step_ratio"] == pytest.approx(0.4)  # 4 / steps
    assert saved["restarts"] == 2 and saved["scoring"] == "broken if any iterate of any restart is misclassified"
    metrics = mlflow_client().get_run(result.run_id).data.metrics
    assert metrics[metric_key("linf", 8 / 255)] == pytest.approx(linf[2])
    assert metrics["pgd_linf_0.0314"] == pytest.approx(linf[2]) and metrics["pgd_l2_0.5"] == pytest.approx(
        result.results["l2"][0]["accuracy"]
    )
    assert json.loads((workdir / "rep/attack_metrics.json").read_text()) == {
        "pgd_linf_0.0314": linf[2],
        "pgd_l2_0.5": result.results["l2"][0]["accuracy"],
    }


def test_report_combines_models_into_the_papers_figures(data_root, workdir, trained_models):
    folders = []
    for name, m in trained_models.items():
        folder = workdir / "reports" / name
        common = [
            f"eval.checkpoint={m.model_path}",
            f"eval.output_dir={folder}",
            "eval.sigmas=[0.0,0.2]",
            f"analyze.checkpoint={m.model_path}",
            f"analyze.output_dir={folder}",
            "analyze.images=8",
            f"attack.checkpoint={m.model_path}",
            f"attack.output_dir={folder}",
            "attack.steps=3",
        ]
        cfg = make_config(data_root, *common)
        evaluate(cfg, progress=False)
        analyze(cfg, progress=False)
        attack(cfg, progress=False)
        folders.append(str(folder))
    cfg = make_config(data_root, f"report.inputs=[{','.join(folders)}]", "report.output_dir=summary")
    result = report(cfg, progress=False)
    names = {p.name for p in result.figures}
    assert names == {
        "figure7_accuracy_in_noise.png",
        "figure2_sigma_vs_distance.png",
        "figure4_eps_star.png",
        "figure20_error_rate_cdf.png",
        "figure10_optimal_curves.png",
        "lp_robustness.png",
    }
    for path in result.figures:
        with Image.open(path) as img:
            assert img.size[0] > 300 and img.size[1] > 200
    summary = json.loads((workdir / "summary/summary.json").read_text())
    assert set(summary) == {"clean", "gauss"}
    clean_eval = json.loads((workdir / "reports/clean/metrics.json").read_text())
    assert summary["clean"]["clean_accuracy"] == clean_eval["clean_accuracy"]
    assert {"median", "lo", "hi", "n", "censored_fraction", "bound"} <= set(summary["clean"]["distance_ratio"])
    artifacts = {a.path for a in mlflow_client().list_artifacts(result.run_id)}
    assert names <= artifacts and "summary.json" in artifacts


def test_report_bad_inputs(data_root, workdir):
    with pytest.raises(ConfigError, match=r"report\.inputs: no such result folder\(s\): nowhere"):
        report(make_config(data_root, "report.inputs=[nowhere]"), progress=False)
    (workdir / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"report\.inputs: no results in empty"):
        report(make_config(data_root, "report.inputs=[empty]"), progress=False)
