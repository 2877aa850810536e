"""``errorset report``: figures and tables comparing models, from what evaluate, analyze and attack wrote.

Each input folder (by default ``reports/<variant>`` for every variant in
``params.yaml``) may hold ``noise_accuracy.csv`` (evaluate), ``analysis.csv`` and
``analysis.json`` (analyze) and ``attack.json`` (attack); whatever is there is
drawn, one series per folder:

* ``figure7_accuracy_in_noise.png``: accuracy in Gaussian noise against sigma (Figure 7, left)
* ``figure2_sigma_vs_distance.png``: sigma(x0, mu) against d(x0, E) (Figure 2)
* ``figure4_eps_star.png``: epsilon*_q against the error rate and sigma(x0, mu) (Figure 4)
* ``figure20_error_rate_cdf.png``: CDFs of per-image error rates in noise (Figure 20)
* ``figure10_optimal_curves.png``: the optimal curves for the data's dimension (Figure 10, top)
* ``lp_robustness.png`` / ``lp_robustness.csv``: accuracy under PGD L-inf and L2 (Figure 6, bottom)
* ``summary.json``: one row of headline numbers per model (DVC metrics)
* ``reproduction.md``: the paper's findings one by one, each with ours and a verdict
  (:mod:`errorset.findings`), for folders named after the variants of ``params.yaml``
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from errorset import results
from errorset.config import Config
from errorset.errors import ConfigError
from errorset.findings import ModelEvidence, check_findings, render_markdown
from errorset.jobs.common import start_job_run
from errorset.plots.style import save_figure


@dataclass
class ModelResults:
    """What one result folder holds (None where a command has not been run)."""

    label: str
    folder: Path
    noise: list[dict[str, float]] | None = None
    noise_images: int | None = None
    clean_accuracy: float | None = None
    analysis: dict[str, np.ndarray] | None = None
    analysis_summary: dict[str, Any] | None = None
    attack: dict[str, list[dict[str, float]]] | None = None
    attack_images: int | None = None


def load_results(folder: Path, label: str) -> ModelResults:
    """What the measuring jobs wrote to ``folder`` (:mod:`errorset.results`); None for a job not run."""
    r = ModelResults(label=label, folder=folder)
    r.noise = results.read_rows(folder / results.NOISE_ACCURACY)
    r.clean_accuracy = results.read_json(folder / results.EVALUATE_METRICS).get("clean_accuracy")
    r.noise_images = results.read_json(folder / results.EVALUATE_RESULTS).get("n_images")
    if (folder / results.ANALYSIS_TABLE).is_file():
        r.analysis = results.read_table(folder / results.ANALYSIS_TABLE)
    r.analysis_summary = results.read_json(folder / results.ANALYSIS_SUMMARY) or None
    attack = results.read_json(folder / results.ATTACK_SUMMARY)
    r.attack = {k: v for k, v in attack.items() if isinstance(v, list)} or None
    r.attack_images = attack.get("images")
    return r


def evidence(models: list[ModelResults], variants: dict[str, dict[str, Any]]) -> list[ModelEvidence]:
    """The models whose folder is named after a variant, with that variant's training mode."""
    return [
        ModelEvidence(
            label=r.label,
            mode=str(variants[r.label].get("mode", "clean")),
            sigma_max=float(variants[r.label].get("sigma_max") or 0.0),
            analysis=r.analysis_summary,
            noise=r.noise or (),
            noise_images=r.noise_images,
            attack=r.attack,
            attack_images=r.attack_images,
        )
        for r in models
        if r.label in variants
    ]


def input_folders(cfg: Config) -> list[Path]:
    """``report.inputs``, else ``reports/<variant>`` for each variant (what report and summary read)."""
    if cfg.report.inputs:
        return [Path(p) for p in cfg.report.inputs]
    if not cfg.variants:
        raise ConfigError("report.inputs: give the result folders to read (params.yaml has no variants)")
    return [Path("reports", name) for name in cfg.variants]


#: the per-model medians of analysis.json that summary.json carries, each with its interval
HEADLINE_MEDIANS = ("sigma_at_mu", "nearest_distance", "distance_ratio", "eps_star", "eps_star_over_bound")


def headline(r: ModelResults) -> dict[str, Any]:
    """The numbers of one model that summary.json compares."""
    row: dict[str, Any] = {"clean_accuracy": r.clean_accuracy}
    if r.noise:
        row["noise_accuracy"] = {f"{n['sigma']:g}": n["accuracy"] for n in r.noise}
    if r.analysis_summary:
        # median records {"median", "lo", "hi", "n", "censored_fraction", "bound", ...} (errorset.measure.analysis)
        row.update({k: r.analysis_summary.get(k) for k in HEADLINE_MEDIANS})
    if r.attack:
        row["pgd_accuracy"] = {
            norm: {f"{x['eps']:.4g}": x["accuracy"] for x in rows} for norm, rows in r.attack.items()
        }
    return row


@dataclass
class ReportResult:
    run_id: str
    output_dir: Path
    figures: list[Path]
    summary: dict[str, Any]


def report(cfg: Config, *, progress: bool = True) -> ReportResult:
    """Draw every comparison figure the input folders allow; write them and summary.json; log an MLflow run."""
    from errorset.plots import measurements as figs
    from errorset.plots.noise import plot_accuracy_in_noise

    folders = input_folders(cfg)
    missing = [str(f) for f in folders if not f.is_dir()]
    if missing:
        raise ConfigError(f"report.inputs: no such result folder(s): {', '.join(missing)}")
    models = [load_results(f, f.name) for f in folders]
    if not any(r.noise or r.analysis or r.attack for r in models):
        raise ConfigError(
            f"report.inputs: no results in {', '.join(map(str, folders))}; run evaluate, analyze or attack first"
        )
    out = Path(cfg.report.output_dir)
    a = cfg.analyze
    figures: dict[str, Any] = {}
    noise = {r.label: r.noise for r in models if r.noise}
    if noise:
        figures["figure7_accuracy_in_noise.png"] = plot_accuracy_in_noise(
            noise, title="Accuracy in Gaussian noise (Figure 7)"
        )
    analysed = [r for r in models if r.analysis is not None and r.analysis_summary]
    if analysed:
        series = {r.label: r.analysis for r in analysed}
        summaries = {r.label: r.analysis_summary or {} for r in analysed}
        s0 = analysed[0].analysis_summary or {}
        mu, sigma, q = s0.get("mu", a.mu), s0.get("noisy_sigma", a.noisy.sigma), s0.get("noisy_q", a.noisy.q)
        figures["figure2_sigma_vs_distance.png"] = figs.figure2(
            series, mu=mu, group_size=a.group_size, summaries=summaries
        )
        figures["figure4_eps_star.png"] = figs.figure4(series, sigma=sigma, q=q, mu=mu, summaries=summaries)
        rate_sigmas = sorted(
            {
                float(k.removeprefix("error_rate_sigma_"))
                for r in analysed
                for k in (r.analysis or {})
                if k.startswith("error_rate_sigma_") and not k.endswith(("_lo", "_hi"))
            }
        )
        figures["figure20_error_rate_cdf.png"] = figs.figure20(series, rate_sigmas)
        figures["figure10_optimal_curves.png"] = figs.figure10(a.optimal_sigmas, int(s0.get("dimension", 3072)))
    attacked = {r.label: r.attack for r in models if r.attack}
    if attacked:
        figures["lp_robustness.png"] = figs.lp_robustness(attacked)
        results.write_csv(
            [
                {"model": label, "norm": norm, "eps": x["eps"], "accuracy": x["accuracy"]}
                for label, res in attacked.items()
                for norm, rows in res.items()
                for x in rows
            ],
            ["model", "norm", "eps", "accuracy"],
            out / results.REPORT_LP_TABLE,
        )
    summary = {r.label: headline(r) for r in models}
    results.write_json(summary, out / results.REPORT_SUMMARY)
    findings = check_findings(evidence(models, cfg.variants))
    settings = [f"profile {cfg.profile}, data {cfg.data.name}, seed {cfg.seed}"]
    settings += [f"{r.label}: {r.folder}" for r in models]
    results.write_text(render_markdown(findings, settings=settings), out / results.REPORT_REPRODUCTION)
    paths = [save_figure(fig, out / name) for name, fig in figures.items()]

    params = {"report.inputs": json.dumps([str(f) for f in folders])}
    with start_job_run(cfg, "report", variant=None, params=params) as run:
        for name, fig in figures.items():
            run.log_figure(fig, name)
        run.log_artifact(out / results.REPORT_SUMMARY)
        run.log_artifact(out / results.REPORT_REPRODUCTION)
        if attacked:
            run.log_artifact(out / results.REPORT_LP_TABLE)
        return ReportResult(run_id=run.run_id, output_dir=out, figures=paths, summary=summary)
