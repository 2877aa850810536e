"""Evaluation under corruptions: summaries, mCE, the eval-corruptions / make-corruptions / compare-corruptions jobs."""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import pytest
import torch

from errorset.errors import ConfigError, UnknownNameError
from errorset.measure.corruption_accuracy import (
    CorruptionResults,
    corruption_errors,
    evaluate_corruptions,
    summarize,
)

from .conftest import make_config, mlflow_client


def test_summaries_against_hand_computed_values():
    table = {
        "gaussian_noise": {1: 0.5, 2: 0.3},  # mean 0.4, left out of "All"
        "fog": {1: 0.9, 2: 0.7},  # 0.8
        "contrast": {1: 0.6, 2: 0.6},  # 0.6
        "saturate": {1: 1.0, 2: 0.8},  # 0.9, an extra corruption: not in "All"
    }
    s = summarize(table)
    assert s.per_corruption == pytest.approx({"gaussian_noise": 0.4, "fog": 0.8, "contrast": 0.6, "saturate": 0.9})
    assert s.all == pytest.approx((0.8 + 0.6) / 2)
    assert s.mean == pytest.approx((0.4 + 0.8 + 0.6 + 0.9) / 4)
    assert math.isnan(summarize({"gaussian_noise": {1: 0.5}}).all)


def test_mce_arithmetic_against_hand_computed_values():
    model = {"fog": {1: 0.9, 2: 0.7}, "contrast": {1: 0.6, 2: 0.5}, "speckle_noise": {1: 0.5}}
    base = {"fog": {1: 0.8, 2: 0.4}, "contrast": {1: 0.6, 2: 0.5}, "speckle_noise": {1: 0.75}}
    e = corruption_errors(model, base)
    # CE = 100 * sum of errors / sum of the baseline's errors
    assert e.ce["fog"] == pytest.approx(100 * (0.1 + 0.3) / (0.2 + 0.6))  # 50
    assert e.ce["contrast"] == pytest.approx(100.0)
    assert e.ce["speckle_noise"] == pytest.approx(200.0)
    assert e.mce == pytest.approx((50 + 100) / 2)  # benchmark corruptions only
    assert corruption_errors(base, base).mce == pytest.approx(100.0)


class Threshold(torch.nn.Module):
    """A fixed classifier: class 1 when the image's mean is above 0.5."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(20.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.mean(dim=(1, 2, 3))
        return torch.stack([-(m - 0.5) * self.w, (m - 0.5) * self.w], dim=1)


def test_evaluate_corruptions_counts_correct_predictions_per_format():
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(40, 3, 16, 16, generator=g) * 0.4 + torch.linspace(0.1, 0.5, 40).view(-1, 1, 1, 1) * 1.0).clamp(
        0, 1
    )
    y = (x.mean(dim=(1, 2, 3)) > 0.5).long()
    model = Threshold()
    r = evaluate_corruptions(model, x, y, corruptions=["brightness", "contrast"], severities=[1, 5], batch_size=7)
    assert r.clean["memory"] == 1.0 and r.n_images == 40
    # brightness pushes means above 0.5: accuracy is the share of class-1 images
    assert r.accuracy["memory"]["brightness"][5] == pytest.approx(float((y == 1).float().mean()))
    assert set(r.accuracy) == {"memory", "png", "jpeg"}
    # batch size does not matter, and the record survives JSON
    r2 = evaluate_corruptions(model, x, y, corruptions=["brightness", "contrast"], severities=[1, 5], batch_size=40)
    assert r2.accuracy == r.accuracy
    assert CorruptionResults.from_dict(json.loads(json.dumps(r.to_dict()))).accuracy == r.accuracy
    with pytest.raises(UnknownNameError, match=r"corruptions: unknown corruption 'haze'"):
        evaluate_corruptions(model, x, y, corruptions=["haze"])
    with pytest.raises(UnknownNameError, match=r"formats: unknown format 'gif'"):
        evaluate_corruptions(model, x, y, corruptions=["fog"], formats=["gif"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "corruptions.names=[fog,rain]",
            r"corruptions\.names\[1\]: unknown corruption or family 'rain'; valid families: noise, blur, weather, "
            r"digital; valid corruptions: gaussian_noise",
        ),
        ("corruptions.severities=[0,3]", r"corruptions\.severities\[0\]: expected an integer from 1 to 5, got 0"),
        (
            "sweep.corruptions.severities=[3,6]",
            r"sweep\.corruptions\.severities\[1\]: expected an integer from 1 to 5, got 6",
        ),
        (
            "corruptions.table=tiny",
            r"corruptions\.table: unknown severity table 'tiny'; valid tables: auto, cifar10, imagenet",
        ),
        (
            "corruptions.formats=[memory,gif]",
            r"corruptions\.formats\[1\]: unknown format 'gif'; valid formats: memory, png, jpeg",
        ),
        ("corruptions.jpeg_quality=0", r"corruptions\.jpeg_quality: expected an integer from 1 to 100, got 0"),
        ("corruptions.n_images=-1", r"corruptions\.n_images: expected an integer >= 0"),
    ],
)
def test_config_validation_names_the_key(data_root, override, message):
    with pytest.raises(ConfigError, match=message):
        make_config(data_root, override)


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory: pytest.TempPathFactory, data_root: Path, tracking_uri: str) -> Path:
    """A digits MLP trained for 2 epochs (smoke profile), shared by this module's job tests."""
    from errorset.jobs.train import train

    out = tmp_path_factory.mktemp("model")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", tracking_uri)
        mp.delenv("MLFLOW_RUN_ID", raising=False)
        cfg = make_config(data_root, f"train.output_dir={out}", "tracking.log_model=false")
        return train(cfg, progress=False).model_path


def test_eval_corruptions_job_writes_files_equal_to_its_mlflow_run(data_root, workdir, digits_model):
    from errorset.jobs.eval_corruptions import eval_corruptions

    cfg = make_config(
        data_root,
        f"corruptions.checkpoint={digits_model}",
        "corruptions.names=[gaussian_noise,fog,contrast,saturate]",
        "corruptions.severities=[1,3,5]",
        "corruptions.n_images=48",
        "corruptions.output_dir=reports/c",
    )
    result = eval_corruptions(cfg, progress=False)
    out = workdir / "reports/c"
    files = {
        "metrics.json",
        "summary.json",
        "accuracy.json",
        "accuracy.csv",
        "summary.csv",
        "heatmap.png",
        "gallery.png",
    }
    assert {p.name for p in out.iterdir()} == files
    metrics = json.loads((out / "summary.json").read_text())
    # the DVC metrics file: the headline number only (no baseline, so no mCE)
    assert json.loads((out / "metrics.json").read_text()) == {"corruption_all": metrics["memory"]["all"]}
    assert metrics["n_images"] == 48 and metrics["table"] == "cifar10"
    run = mlflow_client().get_run(result.run_id)
    logged = run.data.metrics
    assert run.info.run_name == "clean · eval-corruptions · digits/mlp" and run.info.status == "FINISHED"
    assert run.data.tags["errorset.job"] == "eval-corruptions"
    # every number in the files is the logged metric of the same name
    rows = list(csv.DictReader((out / "accuracy.csv").read_text().splitlines()))
    assert len(rows) == 3 * 4 * 3
    assert logged["corruption_all"] == pytest.approx(metrics["memory"]["all"])
    prefix = {"memory": "detail/corruption", "png": "detail/corruption_png", "jpeg": "detail/corruption_jpeg"}
    for r in rows:
        assert logged[f"{prefix[r['format']]}/{r['corruption']}/{r['severity']}"] == pytest.approx(float(r["accuracy"]))
    for fmt, p in prefix.items():
        assert logged[f"{p}/all"] == pytest.approx(metrics[fmt]["all"])
        assert logged[f"{p}/mean"] == pytest.approx(metrics[fmt]["mean"])
        assert logged[f"{p}/clean"] == pytest.approx(metrics[fmt]["clean"])
        for name, v in metrics[fmt]["per_corruption"].items():
            assert logged[f"{p}/{name}"] == pytest.approx(v)
        # "All" leaves out gaussian_noise and the extra saturate
        per = metrics[fmt]["per_corruption"]
        assert metrics[fmt]["all"] == pytest.approx((per["fog"] + per["contrast"]) / 2)
    summary = {r["corruption"]: r for r in csv.DictReader((out / "summary.csv").read_text().splitlines())}
    assert float(summary["All"]["memory"]) == pytest.approx(metrics["memory"]["all"])
    artifacts = {a.path for a in mlflow_client().list_artifacts(result.run_id)}
    assert {
        "corruption_accuracy.json",
        "corruption_heatmap.png",
        "corruption_formats.png",
        "corruption_gallery.png",
    } <= artifacts
    table = json.loads(Path(mlflow_client().download_artifacts(result.run_id, "corruption_accuracy.json")).read_text())
    assert len(table["data"]) == len(rows)

    # mCE of a second, different model against this one as the baseline (Hendrycks & Dietterich 2019):
    # CE_c = 100 sum_s E_{c,s} / sum_s E^base_{c,s} (E = 1 - accuracy), mCE = the mean of CE_c over the
    # benchmark corruptions (saturate is one of the 4 extras), computed here by hand from the two accuracy.csv
    payload = torch.load(digits_model, weights_only=True)
    g = torch.Generator().manual_seed(11)
    for key, w in payload["state_dict"].items():
        if key.endswith("weight"):  # a degraded copy: every weight matrix perturbed by half its own scale
            w.add_(0.5 * w.std() * torch.randn(w.shape, generator=g))
    other = workdir / "other.pt"
    torch.save(payload, other)
    cfg2 = make_config(
        data_root,
        f"corruptions.checkpoint={other}",
        "corruptions.names=[gaussian_noise,fog,contrast,saturate]",
        "corruptions.severities=[1,3,5]",
        "corruptions.n_images=48",
        "corruptions.output_dir=reports/c2",
        "corruptions.baseline=reports/c",
        "corruptions.formats=[memory]",
    )
    second = eval_corruptions(cfg2, progress=False)

    def errors(path: Path) -> dict[str, dict[int, float]]:
        out: dict[str, dict[int, float]] = {}
        for r in csv.DictReader(path.read_text().splitlines()):
            if r["format"] == "memory":
                out.setdefault(r["corruption"], {})[int(r["severity"])] = 1 - float(r["accuracy"])
        return out

    model_err, base_err = errors(workdir / "reports/c2/accuracy.csv"), errors(out / "accuracy.csv")
    assert set(model_err) == set(base_err) == {"gaussian_noise", "fog", "contrast", "saturate"}
    ce = {c: 100 * sum(model_err[c].values()) / sum(base_err[c].values()) for c in model_err}
    mce = (ce["gaussian_noise"] + ce["fog"] + ce["contrast"]) / 3
    assert abs(mce - 100) > 5  # the models differ: a baseline-independent 100 would fail here
    assert second.metrics["corruption/mce"] == pytest.approx(mce, rel=1e-9)
    logged = mlflow_client().get_run(second.run_id).data.metrics
    assert logged["mce"] == pytest.approx(mce, rel=1e-6)
    for c in ("gaussian_noise", "fog", "contrast", "saturate"):
        assert logged[f"detail/corruption_ce/{c}"] == pytest.approx(ce[c], rel=1e-6)
    assert json.loads((workdir / "reports/c2/metrics.json").read_text())["mce"] == pytest.approx(mce, rel=1e-9)


def test_make_corruptions_then_evaluate_the_released_files(data_root, workdir, digits_model, capsys):
    """The CIFAR-10-C-format folder evaluated as released files gives the png (8-bit) accuracy exactly."""
    from errorset.cli import main

    common = ["--no-progress", "-q", "--set", f"data.root={data_root}", "--set", "data.name=digits"]
    common += ["--set", "profile=smoke", "--set", "corruptions.names=[shot_noise,pixelate]"]
    common += ["--set", "corruptions.n_images=40"]
    assert main(["make-corruptions", *common, "--set", "corruptions.make_dir=made"]) == 0
    assert "wrote a CIFAR-10-C-format set: made" in capsys.readouterr().out
    made = sorted(p.name for p in (workdir / "made").iterdir())
    assert made == ["errorset.json", "labels.npy", "pixelate.npy", "shot_noise.npy"]
    extra = ["--set", f"corruptions.checkpoint={digits_model}", "--set", "corruptions.released=made"]
    extra += ["--set", "corruptions.formats=[png]", "--set", "corruptions.output_dir=rep"]
    code = main(["eval-corruptions", *common, *extra])
    out = capsys.readouterr().out
    assert code == 0 and re.search(r"png: 0\.\d{4}; released: 0\.\d{4}", out), out
    metrics = json.loads((workdir / "rep/summary.json").read_text())
    assert metrics["released"]["per_corruption"] == pytest.approx(metrics["png"]["per_corruption"])


def test_compare_corruptions_reads_variants_and_logs_the_bar_chart(data_root, workdir, capsys):
    from errorset.jobs.compare_corruptions import compare_corruptions

    for variant, acc in (("clean", 0.5), ("gaussian-0.4", 0.75)):
        res = CorruptionResults(
            {"memory": {"fog": {1: acc, 2: acc}, "contrast": {1: acc, 2: acc}}},
            {"memory": 0.9},
            10,
            "cifar10",
            images="0123456789abcdef",
        )
        d = workdir / "reports" / variant / "corruptions"
        d.mkdir(parents=True)
        (d / "accuracy.json").write_text(json.dumps(res.to_dict()))
    cfg = make_config(data_root, "corruptions.baseline=clean")
    cfg.variants = {"clean": {}, "gaussian-0.4": {}}
    result = compare_corruptions(cfg, progress=False)
    rows = {
        r["model"]: r for r in csv.DictReader((workdir / "reports/corruptions/comparison.csv").read_text().splitlines())
    }
    assert float(rows["gaussian-0.4"]["mce"]) == pytest.approx(50.0) and float(rows["clean"]["mce"]) == pytest.approx(
        100.0
    )
    assert (workdir / "reports/corruptions/bars.png").is_file()
    logged = mlflow_client().get_run(result.run_id).data.metrics
    assert logged["gaussian-0.4/corruption_all"] == pytest.approx(0.75)
    assert logged["gaussian-0.4/mce"] == pytest.approx(50.0)
    assert logged["detail/gaussian-0.4/corruption/mce"] == pytest.approx(50.0)
    compared = json.loads((workdir / "reports/corruptions/metrics.json").read_text())
    assert compared == {
        "clean": {"corruption_all": pytest.approx(0.5), "mce": pytest.approx(100.0)},
        "gaussian-0.4": {"corruption_all": pytest.approx(0.75), "mce": pytest.approx(50.0)},
    }
    assert "corruption_bars.png" in {a.path for a in mlflow_client().list_artifacts(result.run_id)}


def test_mce_refuses_a_baseline_measured_on_other_images_seed_or_table(data_root, workdir):
    from errorset.errors import DataError
    from errorset.jobs.compare_corruptions import compare_corruptions
    from errorset.measure.corruption_accuracy import check_comparable, images_digest

    x = torch.randint(0, 256, (6, 3, 8, 8), dtype=torch.uint8)
    y = torch.arange(6)
    digest = images_digest(x, y)
    assert digest == images_digest(x.clone(), y.clone())
    assert digest != images_digest(x.flip(0), y) and digest != images_digest(x, y.flip(0))

    def results(images=digest, seed=0, table="cifar10", n=6):
        return CorruptionResults({"memory": {"fog": {1: 0.5}}}, {"memory": 0.9}, n, table, seed=seed, images=images)

    check_comparable(results(), results())
    for other, message in [
        (results(images=images_digest(x[:5], y[:5]), n=5), r"images '[0-9a-f]{16}' vs '[0-9a-f]{16}'; n_images 6 vs 5"),
        (results(seed=1), r"seed 0 vs 1"),
        (results(table="imagenet"), r"table 'cifar10' vs 'imagenet'"),
        (results(images=""), r"do not record which images"),
    ]:
        with pytest.raises(DataError, match=r"corruptions\.baseline: .*" + message):
            check_comparable(results(), other)

    # through the job: a baseline file written on other images is refused, naming the model
    for variant, seed in (("clean", 0), ("gaussian-0.4", 1)):
        d = workdir / "reports" / variant / "corruptions"
        d.mkdir(parents=True)
        (d / "accuracy.json").write_text(json.dumps(results(seed=seed).to_dict()))
    cfg = make_config(data_root, "corruptions.baseline=clean")
    cfg.variants = {"clean": {}, "gaussian-0.4": {}}
    with pytest.raises(DataError, match=r"corruptions\.baseline: gaussian-0\.4 and the baseline .*seed 1 vs 0"):
        compare_corruptions(cfg, progress=False)
