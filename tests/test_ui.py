"""What a user sees first (issue 12): the MLflow experiment's kind, run names, tags, params and headline
metrics; `dvc metrics show`'s files; `errorset summary`. One digits model, measured by every job on a few images."""

from __future__ import annotations

import json

import pytest
import yaml

from errorset import tracking
from errorset.jobs.common import RUN_PARAMS, defining_params, start_job_run

from .conftest import REPO, make_config, mlflow_client

VARIANTS = {"clean": {"mode": "clean", "sigma_max": 0.0}, "gaussian-0.4": {"mode": "gaussian", "sigma_max": 0.4}}
FEW = [
    "eval.sigmas=[0.0,0.1,0.3]",
    "eval.trials=1",
    "eval.n_images=32",
    "analyze.images=4",
    "analyze.noisy.images=1",
    "analyze.nearest.steps=4",
    "attack.images=16",
    "attack.linf_eps=[2/255,8/255]",
    "attack.l2_eps=[0.5]",
    "attack.steps=3",
    "corruptions.names=[fog,contrast]",
    "corruptions.severities=[1]",
    "corruptions.n_images=16",
    "corruptions.formats=[memory]",
]


@pytest.fixture(scope="module")
def measured(data_root, tmp_path_factory) -> dict:
    """The clean variant trained into models/clean and measured by every job into reports/clean (DVC's layout)."""
    from errorset.jobs.analyze import analyze
    from errorset.jobs.attack import attack
    from errorset.jobs.compare_corruptions import compare_corruptions
    from errorset.jobs.eval_corruptions import eval_corruptions
    from errorset.jobs.evaluate import evaluate
    from errorset.jobs.train import train

    root = tmp_path_factory.mktemp("ui")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        checkpoint = "models/clean/model.pt"
        cfg = make_config(
            data_root,
            "train.output_dir=models/clean",
            "tracking.log_model=false",
            f"eval.checkpoint={checkpoint}",
            "eval.output_dir=reports/clean",
            f"analyze.checkpoint={checkpoint}",
            "analyze.output_dir=reports/clean",
            f"attack.checkpoint={checkpoint}",
            "attack.output_dir=reports/clean",
            f"corruptions.checkpoint={checkpoint}",
            "corruptions.output_dir=reports/clean/corruptions",
            *FEW,
        )
        cfg.variants = VARIANTS
        runs = {"train": train(cfg, progress=False).run_id}
        for name, job in (("evaluate", evaluate), ("analyze", analyze), ("attack", attack)):
            runs[name] = job(cfg, progress=False).run_id
        eval_corruptions(cfg, progress=False)
        # again against itself as the baseline (a variant name): mCE 100
        cfg.corruptions.baseline = "clean"
        runs["eval-corruptions"] = eval_corruptions(cfg, progress=False).run_id
        cfg.corruptions.compare = ["reports/clean/corruptions"]
        runs["compare-corruptions"] = compare_corruptions(cfg, progress=False).run_id
    return {"root": root, "cfg": cfg, "runs": runs}


def _read(measured: dict, path: str) -> dict:
    return json.loads((measured["root"] / path).read_text())


def test_the_experiment_is_a_machine_learning_one(measured, data_root):
    client = mlflow_client()
    exp = client.get_experiment_by_name(measured["cfg"].tracking.experiment)
    assert exp.tags[tracking.EXPERIMENT_KIND_TAG] == "custom_model_development"
    # an existing experiment without the tag gets it; one with another kind keeps it
    plain, genai = (make_config(data_root) for _ in range(2))
    client.create_experiment(plain.tracking.experiment)
    client.create_experiment(genai.tracking.experiment, tags={tracking.EXPERIMENT_KIND_TAG: "genai_development"})
    for cfg, kind in ((plain, "custom_model_development"), (genai, "genai_development")):
        with start_job_run(cfg, "report", variant=None):
            pass
        assert client.get_experiment_by_name(cfg.tracking.experiment).tags[tracking.EXPERIMENT_KIND_TAG] == kind
    # as is the one a sweep's parent run is created in
    sweep = make_config(data_root)
    tracking.create_run(sweep, run_name="parent")
    tags = client.get_experiment_by_name(sweep.tracking.experiment).tags
    assert tags[tracking.EXPERIMENT_KIND_TAG] == "custom_model_development"


def test_runs_are_named_and_tagged_with_what_differs_first(measured):
    client = mlflow_client()
    for job, run_id in measured["runs"].items():
        run = client.get_run(run_id)
        tags = run.data.tags
        assert tags["errorset.job"] == job and tags["dataset"] == "digits" and tags["model"] == "mlp", job
        if job == "compare-corruptions":
            assert run.info.run_name == "compare-corruptions · digits" and tags["variant"] == "all"
        else:
            # the DVC variant key of models/clean
            assert run.info.run_name == f"clean · {job} · digits/mlp" and tags["variant"] == "clean", job
    # outside DVC's models/<variant> folders the variant is the mode; tracking.run_name still overrides
    cfg = make_config(measured["cfg"].data.root, "train.mode=gaussian", "train.sigma_max=0.4")
    with start_job_run(cfg, "train", variant="gaussian-0.4") as run:
        pass
    assert client.get_run(run.run_id).info.run_name == "gaussian-0.4 · train · digits/mlp"
    cfg.tracking.run_name = "mine"
    with start_job_run(cfg, "train", variant="gaussian-0.4") as run:
        pass
    assert client.get_run(run.run_id).info.run_name == "mine"


def test_params_are_exactly_the_defining_ones(measured):
    client = mlflow_client()
    runs, cfg = measured["runs"], measured["cfg"]
    own = {
        "train": {"data.md5", "data.train_images", "data.test_images", "train.autocast_dtype"},
        "evaluate": {"eval.images"},
        "analyze": set(),
        "attack": {"attack.images_used"},
        "eval-corruptions": {"corruptions.images", "corruptions.table_used"},
        "compare-corruptions": {"corruptions.compare", "corruptions.baseline"},
    }
    for job, run_id in runs.items():
        params = client.get_run(run_id).data.params
        defining = defining_params(cfg, job, per_model=job != "compare-corruptions")
        assert set(params) == set(defining) | own[job], job
        assert params["data.name"] == "digits" and params["seed"] == str(cfg.seed), job
    assert set(defining_params(cfg, "evaluate")) == {*RUN_PARAMS, "train.mode", "train.sigma_max", "eval.checkpoint"}
    assert client.get_run(runs["evaluate"]).data.params["eval.checkpoint"] == "models/clean/model.pt"
    cfg_adv = make_config(cfg.data.root, "train.mode=adversarial")
    assert {"train.adversarial.eps", "train.adversarial.norm"} <= set(defining_params(cfg_adv, "train"))


def test_headline_metrics_are_logged_under_short_names_with_the_files_values(measured):
    client = mlflow_client()
    runs = measured["runs"]

    def metrics(job: str) -> dict[str, float]:
        return client.get_run(runs[job]).data.metrics

    full = _read(measured, "reports/clean/evaluate.json")
    assert metrics("evaluate")["clean_accuracy"] == pytest.approx(full["clean_accuracy"])
    assert metrics("evaluate")["accuracy_sigma_0.1"] == pytest.approx(full["noise_accuracy"]["0.1"])
    analysis = _read(measured, "reports/clean/analysis.json")
    assert metrics("analyze")["median_sigma_0.01"] == pytest.approx(analysis["sigma_at_mu"]["median"])
    assert metrics("analyze")["median_distance"] == pytest.approx(analysis["nearest_distance"]["median"])
    attack = _read(measured, "reports/clean/attack.json")
    assert metrics("attack")["pgd_linf_0.0314"] == pytest.approx(attack["linf"][1]["accuracy"])
    assert metrics("attack")["pgd_l2_0.5"] == pytest.approx(attack["l2"][0]["accuracy"])
    corr = _read(measured, "reports/clean/corruptions/summary.json")
    assert metrics("eval-corruptions")["corruption_all"] == pytest.approx(corr["memory"]["all"])
    assert metrics("eval-corruptions")["mce"] == pytest.approx(100.0)
    # the long tail is there, nested, so that the headline ones stand out
    for job in ("evaluate", "analyze", "attack", "eval-corruptions"):
        headline = {k for k in metrics(job) if not k.startswith("detail/")}
        assert len(headline) <= 4 and len(metrics(job)) > len(headline), job


def _declared_metrics(key: str) -> list[str]:
    """Every metrics file dvc.yaml declares, with ``${key}`` = ``key``."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    paths = []
    for stage in stages.values():
        body = stage.get("do", stage)
        for entry in body.get("metrics", []):
            paths.append(next(iter(entry)).replace("${key}", key) if isinstance(entry, dict) else entry)
    return paths


def _numbers(obj) -> int:
    if isinstance(obj, dict):
        return sum(_numbers(v) for v in obj.values())
    if isinstance(obj, list):
        return sum(_numbers(v) for v in obj)
    return 1


def test_dvc_metrics_files_hold_a_few_headline_numbers(measured):
    root = measured["root"]
    declared = [p for p in _declared_metrics("clean") if not p.startswith("reports/sweep/")]  # the sweep's own
    written = [p for p in declared if (root / p).is_file()]
    assert set(written) == set(declared), "every job but the report ran"
    for path in written:
        data = json.loads((root / path).read_text())
        # `dvc metrics show` prints a column per number: a few, so that its lines fit a terminal
        assert _numbers(data) <= 10, path
    assert _read(measured, "reports/clean/metrics.json") == {
        "clean_accuracy": pytest.approx(_read(measured, "reports/clean/evaluate.json")["clean_accuracy"]),
        "accuracy_sigma_0.1": pytest.approx(_read(measured, "reports/clean/evaluate.json")["noise_accuracy"]["0.1"]),
    }
    assert set(_read(measured, "reports/clean/corruptions/metrics.json")) == {"corruption_all", "mce"}
    assert set(_read(measured, "reports/corruptions/metrics.json")["clean"]) == {"corruption_all", "mce"}


def test_summary_prints_every_variants_headline_numbers(measured, capsys, monkeypatch):
    from errorset.cli import main
    from errorset.jobs.summary import format_table, summary_rows

    monkeypatch.chdir(measured["root"])
    cfg = measured["cfg"]
    rows = summary_rows(cfg)
    assert [r["variant"] for r in rows] == ["clean", "gaussian-0.4"]
    clean, missing = rows
    full = _read(measured, "reports/clean/evaluate.json")
    analysis = _read(measured, "reports/clean/analysis.json")
    attack = _read(measured, "reports/clean/attack.json")
    corr = _read(measured, "reports/clean/corruptions/summary.json")
    assert list(clean.values())[1:] == pytest.approx(
        [
            full["clean_accuracy"],
            full["noise_accuracy"]["0.1"],
            analysis["sigma_at_mu"]["median"],
            analysis["nearest_distance"]["median"],
            attack["linf"][1]["accuracy"],
            corr["memory"]["all"],
            100.0,
        ]
    )
    assert all(v is None for k, v in missing.items() if k != "variant")  # gaussian-0.4 has not run
    table = format_table(rows).splitlines()
    assert table[0].split()[:3] == ["variant", "clean", "acc"] and len(table) == 3
    assert table[1].split()[1] == f"{full['clean_accuracy']:.4g}"
    assert table[2].split()[1:] == ["-"] * 7
    params = measured["root"] / "params.yaml"
    params.write_text(yaml.safe_dump({"variants": VARIANTS}))
    assert main(["summary", "--params", str(params), "--set", "data.name=digits"]) == 0
    assert capsys.readouterr().out.strip().splitlines() == table
