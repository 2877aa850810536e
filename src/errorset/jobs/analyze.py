"""``errorset analyze``: the paper's per-image measurements of one trained model (Sections 4-5).

For each test image of a seeded subset: sigma(x0, mu), the error rate in noise
at each of ``analyze.error_rate_sigmas``, the distance to the nearest error
d(x0, E), and for the first ``analyze.noisy.images`` correctly classified images
epsilon*_q with the error rate at ``analyze.noisy.sigma`` and its isoperimetric
bound, each with its interval. The science is in :mod:`errorset.measure.analysis`;
this job loads the model, writes the per-image table ``analysis.csv`` and the
summary ``analysis.json`` (medians with bootstrap intervals) and logs both, with
Figures 2, 4, 10 and 20, to an MLflow run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from errorset.config import Config
from errorset.files import check_writable
from errorset.jobs.common import load_trained, measuring_job, output_dir
from errorset.measure.analysis import flat_metrics, measure, summarize
from errorset.results import ANALYSIS_METRICS, ANALYSIS_SUMMARY, ANALYSIS_TABLE, write_json, write_table

#: the DVC metrics file: the headline numbers only


def headline_metrics(summary: dict[str, Any], mu: float) -> dict[str, float | None]:
    """``median_sigma_<mu>`` (median sigma(x0, mu), e.g. ``median_sigma_0.01``) and ``median_distance``
    (median d(x0, E)): the paper's two headline medians (None where not measured)."""

    def median(key: str) -> float | None:
        record = summary.get(key)
        return record.get("median") if isinstance(record, dict) else None

    return {f"median_sigma_{mu:g}": median("sigma_at_mu"), "median_distance": median("nearest_distance")}


@dataclass
class AnalyzeResult:
    run_id: str
    output_dir: Path
    columns: dict[str, np.ndarray]
    summary: dict[str, Any]


@measuring_job
def analyze(cfg: Config, *, progress: bool = True) -> AnalyzeResult:
    """Measure the model at ``analyze.checkpoint``; write and log the table, summary and figures."""
    a = cfg.analyze
    trained = load_trained(cfg, a.checkpoint, a.images or 0, progress=progress, parameter="analyze.checkpoint")
    out = check_writable(output_dir(a.output_dir, trained), "analyze.output_dir")  # before measuring, not after
    columns = {
        "index": trained.indices.numpy(),
        **measure(cfg, trained.model, trained.x, trained.y, trained.device, progress=progress),
    }
    summary = {**summarize(columns, cfg), "dimension": int(trained.x[0].numel())}
    write_table(columns, out / ANALYSIS_TABLE)
    write_json(summary, out / ANALYSIS_SUMMARY)
    headline = headline_metrics(summary, a.mu)
    write_json(headline, out / ANALYSIS_METRICS)

    from errorset.plots import measurements as figs

    series, summaries = {trained.name: columns}, {trained.name: summary}
    with trained.start_run("analyze") as run:
        finite = {k: v for k, v in headline.items() if v is not None and np.isfinite(v)}
        run.log_metrics({**finite, **{f"detail/{k}": v for k, v in flat_metrics(summary).items()}})
        run.log_table({k: v.tolist() for k, v in columns.items()}, "analysis_table.json")
        run.log_artifact(out / ANALYSIS_TABLE)
        run.log_artifact(out / ANALYSIS_SUMMARY)
        run.log_artifact(out / ANALYSIS_METRICS)
        run.log_figure(
            figs.figure2(series, mu=a.mu, group_size=a.group_size, summaries=summaries), "figure2_sigma_vs_distance.png"
        )
        run.log_figure(
            figs.figure4(series, sigma=a.noisy.sigma, q=a.noisy.q, mu=a.mu, summaries=summaries), "figure4_eps_star.png"
        )
        run.log_figure(figs.figure20(series, a.error_rate_sigmas), "figure20_error_rate_cdf.png")
        run.log_figure(figs.figure10(a.optimal_sigmas, int(trained.x[0].numel())), "figure10_optimal_curves.png")
        return AnalyzeResult(run_id=run.run_id, output_dir=out, columns=columns, summary=summary)
