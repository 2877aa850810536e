"""analyze, attack and report: files, MLflow runs and figures on small digits models."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats

from errorset.data import load_dataset
from errorset.errors import ConfigError
from errorset.jobs.analyze import analyze
from errorset.jobs.attack import attack, metric_key
from errorset.jobs.evaluate import evaluate
from errorset.jobs.report import report
from errorset.jobs.train import train
from errorset.models import create_model, load_model, save_model
from errorset.results import read_rows, read_table

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
    assert len(table["index"]) == 12 and len(set(table["index"])) == 12
    # the values, against the model and the images the table names, measured here independently
    model = load_model(m.model_path).eval()
    x_all, y_all = load_dataset(cfg.data, progress=False).tensors("test")
    index = torch.from_numpy(table["index"].astype(np.int64))
    x0, y = x_all[index].float() / 255, y_all[index]
    np.testing.assert_array_equal(table["label"], y.numpy())
    with torch.no_grad():
        np.testing.assert_array_equal(table["clean_correct"], (model(x0).argmax(1) == y).numpy())
    ok_images = np.flatnonzero(table["clean_correct"] == 1)
    assert len(ok_images) >= 8
    # a fresh bank of 10,000 noise draws per image (its own seed): the error rate at sigma(x0, mu) is mu,
    # at sigma_lo at most mu and at sigma_hi at least mu (within the fresh bank's own binomial error)
    n, mu = 10_000, 0.01
    bank = torch.Generator().manual_seed(2024)
    fresh = {"sigma_at_mu": [], "sigma_at_mu_lo": [], "sigma_at_mu_hi": []}
    nearest_noise_error = []
    with torch.no_grad():
        for i in ok_images:
            z = torch.randn(n, *x0.shape[1:], generator=bank)
            for key in fresh:
                fresh[key].append(float((model(x0[i] + table[key][i] * z).argmax(1) != y[i]).float().mean()))
            # every error found by noise, moved into the image box, that is still an error bounds d(x0, E) above
            noisy = (x0[i] + 2 * table["sigma_at_mu"][i] * z).clamp(0, 1)
            err = noisy[model(noisy).argmax(1) != y[i]]
            assert len(err) > 0
            nearest_noise_error.append(float((err - x0[i]).flatten(1).norm(dim=1).min()))
    rate = {k: np.array(v) for k, v in fresh.items()}
    slack = 3 * math.sqrt(mu * (1 - mu) / n)  # 3 standard errors of a fresh rate near mu
    assert (rate["sigma_at_mu_lo"] <= mu + slack).sum() >= len(ok_images) - 1
    assert (rate["sigma_at_mu_hi"] >= mu - slack).sum() >= len(ok_images) - 1
    # per image, the search's own 1,000-draw estimate errs by sqrt(mu (1 - mu) / 1000) = 31% of mu at one
    # standard error and the fresh bank's by sqrt(mu (1 - mu) / n); their mean over the images by those over
    # sqrt(images); plus the search's rtol (2% of sigma, about 12% of the rate near mu = 0.01)
    tolerance = 3 * math.sqrt(mu * (1 - mu) * (1 / 1000 + 1 / n) / len(ok_images)) + 0.12 * mu
    assert abs(rate["sigma_at_mu"].mean() - mu) <= tolerance, rate["sigma_at_mu"]
    # d(x0, E) is no farther than any error the noise found; not found: eps_max (the paper's convention)
    found = table["nearest_found"][ok_images] == 1
    assert found.sum() >= len(ok_images) - 1
    assert (table["nearest_distance"][ok_images] <= np.array(nearest_noise_error) * (1 + 1e-5)).all()
    assert (table["nearest_distance"][ok_images][~found] == cfg.analyze.nearest.eps_max).all()
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


def box_distance(x0: torch.Tensor, a: torch.Tensor, c: float) -> float:
    """Exact L2 distance from x0 in [0,1]^d to {x in [0,1]^d : a.x + c >= 0} (a.x0 + c < 0).

    The projection onto a box cut by a half space is clip(x0 + lam a) for the smallest lam >= 0 that
    reaches the half space (KKT); a.clip(x0 + lam a) rises with lam, so lam is found by bisection.
    """
    x0, a = x0.double().flatten(), a.double().flatten()

    def reached(lam: float) -> bool:
        return float(a @ (x0 + lam * a).clamp(0, 1)) + c >= 0

    lo, hi = 0.0, 1.0
    while not reached(hi):
        lo, hi = hi, 2 * hi
        assert hi < 1e6, "the half space misses the box"
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if reached(mid) else (mid, hi)
    return float(((x0 + hi * a).clamp(0, 1) - x0).norm())


def test_analyze_on_a_linear_model_matches_its_closed_forms(data_root, workdir):
    """A two-class linear model saved as a checkpoint: sigma(x0, mu) and d(x0, E) have closed forms.

    Logits ``[u.x + c, -(u.x + c), -1, ..., -1]`` on digits (u: the difference of the training means of
    0s and 1s): 0s and 1s are separated by the hyperplane u.x + c = 0 and every other digit is wrong. In
    unclipped noise a 0 or 1 is wrong with probability Phi(-d / sigma), d = |u.x0 + c| / ||u||, so
    sigma(x0, mu) = d / -Phi^-1(mu); the nearest error in the image box is the projection of x0 onto
    the box cut by the other side's half space (:func:`box_distance`).
    """
    cfg = make_config(data_root, "analyze.output_dir=lin")
    x_train, y_train = load_dataset(cfg.data, progress=False).tensors("train")
    xf = x_train.float().flatten(1) / 255
    m0, m1 = xf[y_train == 0].mean(0), xf[y_train == 1].mean(0)
    u, c = m0 - m1, -float((m0 - m1) @ (m0 + m1)) / 2
    model = create_model("linear", input_shape=(1, 8, 8), num_classes=10)
    with torch.no_grad():
        layer = model.net[1]
        layer.weight.zero_()
        layer.weight[0], layer.weight[1] = u, -u
        layer.bias.fill_(-1.0)
        layer.bias[0], layer.bias[1] = c, -c
    save_model(model, workdir / "linear.pt")
    cfg = make_config(
        data_root,
        f"analyze.checkpoint={workdir / 'linear.pt'}",
        "analyze.output_dir=lin",
        "analyze.images=160",
        "analyze.noisy.images=1",
        "analyze.nearest.steps=100",
        "analyze.nearest.eps_max=10",
    )
    analyze(cfg, progress=False)
    table = read_table(workdir / "lin/analysis.csv")
    x_all, y_all = load_dataset(cfg.data, progress=False).tensors("test")
    index = torch.from_numpy(table["index"].astype(np.int64))
    x0, y = x_all[index].float().flatten(1) / 255, y_all[index]
    np.testing.assert_array_equal(table["label"], y.numpy())
    f = (x0.double() @ u.double() + c).numpy()  # > 0: class 0
    correct = ((y.numpy() == 0) & (f > 0)) | ((y.numpy() == 1) & (f < 0))
    assert 8 <= correct.sum() < len(y)
    np.testing.assert_array_equal(table["clean_correct"], correct)
    # misclassified images, every digit but 0 and 1 among them, are at sigma = 0 and distance 0
    assert (table["sigma_at_mu"][~correct] == 0).all() and (table["nearest_distance"][~correct] == 0).all()

    ok = np.flatnonzero(correct)
    d = np.abs(f[ok]) / float(u.double().norm())
    sigma_true = d / -stats.norm.ppf(cfg.analyze.mu)
    lo, est, hi = (table[k][ok] for k in ("sigma_at_mu_lo", "sigma_at_mu", "sigma_at_mu_hi"))
    # the 95% intervals hold the true sigma (allowing the misses a 95% level gives: P[more] < 1%)
    misses = int(((sigma_true < lo) | (sigma_true > hi)).sum())
    assert misses <= stats.binom.ppf(0.99, len(ok), 0.05), (misses, len(ok))
    # the estimate's relative standard error at mu = 0.01 and 1,000 draws is 5%; its mean ratio to the truth
    # is within 3 standard errors of the mean, plus the search's rtol
    ratio = est / sigma_true
    assert abs(ratio.mean() - 1) <= 3 * 0.05 / math.sqrt(len(ok)) + cfg.analyze.rtol, ratio
    # the linear-model distance column is then d itself, to the same precision
    np.testing.assert_allclose(table["linear_distance"][ok], d * ratio, rtol=1e-6)

    # d(x0, E): the exact distance inside the image box; the search's point is an error, so never nearer
    exact = np.array([box_distance(x0[i], -u if f[i] > 0 else u, -c if f[i] > 0 else c) for i in ok])
    assert (exact >= d * (1 - 1e-9)).all()  # the box only adds distance
    found = table["nearest_distance"][ok]
    assert (table["nearest_found"][ok] == 1).all()
    assert (found >= exact * (1 - 1e-5)).all(), found / exact
    # and near it: to 0.1% on most images; where the box cuts the straight path short (the search walks
    # along it), a few percent beyond (7% at most on these images, 100 steps)
    assert np.median(found / exact) <= 1.001, found / exact
    assert (found <= exact * 1.10).all(), found / exact


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
    variants = ["variants.clean.mode=clean", "variants.gauss.mode=gaussian", "variants.gauss.sigma_max=0.5"]
    cfg = make_config(data_root, f"report.inputs=[{','.join(folders)}]", "report.output_dir=summary", *variants)
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
    assert names <= artifacts and {"summary.json", "reproduction.md"} <= artifacts
    # the reproduction report's Figure 7 row, by hand from the two noise tables at sigma 0.2
    at = {
        name: {r["sigma"]: r["accuracy"] for r in read_rows(workdir / "reports" / name / "noise_accuracy.csv")}
        for name in ("clean", "gauss")
    }
    expected = "holds" if at["gauss"][0.2] >= at["clean"][0.2] else "does not hold"
    rows = [line for line in (workdir / "summary/reproduction.md").read_text().splitlines() if line.startswith("| 7 |")]
    assert len(rows) == 1 and f"**{expected}**" in rows[0] and f"gauss {at['gauss'][0.2]:.3f}" in rows[0]
    # no adversarial model: the findings that need one are not measured
    assert "| 3 | Section 5" in (workdir / "summary/reproduction.md").read_text()
    assert "needs a clean, a Gaussian and an adversarial model" in (workdir / "summary/reproduction.md").read_text()


def test_report_bad_inputs(data_root, workdir):
    with pytest.raises(ConfigError, match=r"report\.inputs: no such result folder\(s\): nowhere"):
        report(make_config(data_root, "report.inputs=[nowhere]"), progress=False)
    (workdir / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"report\.inputs: no results in empty"):
        report(make_config(data_root, "report.inputs=[empty]"), progress=False)
