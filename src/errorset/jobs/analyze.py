"""``errorset analyze``: the paper's per-image measurements of one trained model (Sections 4-5).

For each test image of a seeded subset: sigma(x0, mu), the error rate in noise
at each of ``analyze.error_rate_sigmas``, the distance to the nearest error
d(x0, E), and for the first ``analyze.noisy.images`` images epsilon*_q with the
error rate at ``analyze.noisy.sigma`` and its isoperimetric bound. Writes the
per-image table ``analysis.csv`` and the summary ``analysis.json`` and logs
both, with Figures 2, 4, 10 and 20, to an MLflow run.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from errorset.attacks import nearest_error
from errorset.config import Config
from errorset.data.batches import to_float
from errorset.jobs.common import load_trained, output_dir, write_json
from errorset.measure import error_rate_in_noise, median_noisy_distance, search_sigma_at_error_rate
from errorset.runtime import make_generator
from errorset.theory import isoperimetric_bound
from errorset.train.loop import predict

TABLE = "analysis.csv"
SUMMARY = "analysis.json"


@dataclass
class AnalyzeResult:
    run_id: str
    output_dir: Path
    columns: dict[str, np.ndarray]
    summary: dict[str, Any]


def error_rate_column(sigma: float) -> str:
    return f"error_rate_sigma_{sigma:g}"


def _median(values: np.ndarray) -> float:
    values = values[np.isfinite(values)]
    return float(np.median(values)) if len(values) else math.nan


def summarize(columns: dict[str, np.ndarray], cfg: Config) -> dict[str, Any]:
    """Summary statistics of a per-image analysis table (medians over correctly classified images)."""
    a = cfg.analyze
    ok = columns["clean_correct"].astype(bool)
    usable = ok & columns["nearest_found"].astype(bool) & ~columns["sigma_capped"].astype(bool)
    ratio = columns["nearest_distance"][usable] / columns["linear_distance"][usable]
    bound = columns["isoperimetric_bound"]
    # images with no noisy error seen have an infinite (uninformative) bound; those past mu = 1/2 have 0
    noisy = np.isfinite(columns["eps_star"]) & np.isfinite(bound) & (bound > 0)
    summary: dict[str, Any] = {
        "images": len(ok),
        "clean_accuracy": float(ok.mean()) if len(ok) else math.nan,
        "mu": a.mu,
        "median_sigma_at_mu": _median(columns["sigma_at_mu"][ok]),
        "median_nearest_distance": _median(columns["nearest_distance"][ok]),
        # 1 for a linear model; below 1: errors nearer than the error rate in noise implies for a linear model
        "median_distance_ratio": _median(ratio),
        "sigma_forward_passes_per_image": float(columns["sigma_forward_passes"].mean()) if len(ok) else math.nan,
        "mean_error_rate": {f"{s:g}": float(columns[error_rate_column(s)].mean()) for s in a.error_rate_sigmas},
        "noisy_sigma": a.noisy.sigma,
        "noisy_q": a.noisy.q,
        "median_eps_star": _median(columns["eps_star"]),
        # 1 where the error set near noisy points looks like a half space; below 1: closer than the bound
        "median_eps_star_over_bound": _median(columns["eps_star"][noisy] / bound[noisy]),
    }
    return summary


def flat_metrics(summary: dict[str, Any]) -> dict[str, float]:
    """The summary as MLflow metrics (nested dicts become ``key/sigma_<s>``; NaNs are left out)."""
    out: dict[str, float] = {}
    for key, value in summary.items():
        if isinstance(value, dict):
            out.update({f"{key}/sigma_{s}": float(v) for s, v in value.items()})
        elif isinstance(value, (int, float)):
            out[key] = float(value)
    return {k: v for k, v in out.items() if math.isfinite(v)}


def write_table(columns: dict[str, np.ndarray], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = list(columns)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(keys)
        for row in zip(*(columns[k] for k in keys), strict=True):
            w.writerow([_cell(v) for v in row])


def _cell(v: Any) -> str:
    if isinstance(v, (bool, np.bool_)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return "" if math.isnan(v) else repr(float(v))  # NaN: not measured; inf stays inf
    return str(v)


def read_table(path: str | Path) -> dict[str, np.ndarray]:
    """Read an ``analysis.csv`` back as float arrays (empty cells are NaN)."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    keys, body = rows[0], rows[1:]
    return {k: np.array([float(r[i]) if r[i] != "" else math.nan for r in body]) for i, k in enumerate(keys)}


def measure(
    cfg: Config,
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    device: torch.device,
    *,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """All per-image measurements of ``analyze`` for images ``x`` (uint8 or float), as table columns."""
    a = cfg.analyze
    assert a.samples and a.nearest.steps and a.noisy.samples and a.noisy.steps, "resolve the config first"
    gen = make_generator(cfg.seed, device)
    pred = predict(model, x).cpu()
    search = search_sigma_at_error_rate(
        model, x, y, a.mu, a.samples, rtol=a.rtol, batch_size=a.batch_size, generator=gen, progress=progress
    )
    columns: dict[str, np.ndarray] = {
        "label": y.numpy(),
        "prediction": pred.numpy(),
        "clean_correct": search.clean_correct.numpy(),
        "sigma_at_mu": search.sigma.numpy(),
        "sigma_capped": search.capped.numpy(),
        "sigma_forward_passes": search.forward_passes.numpy(),
        "linear_distance": (-float(torch.special.ndtri(torch.tensor(a.mu))) * search.sigma).numpy(),
    }
    for s in a.error_rate_sigmas:
        rates = error_rate_in_noise(
            model, x, y, s, a.samples, batch_size=a.batch_size, generator=gen, progress=progress
        )
        columns[error_rate_column(s)] = rates.numpy()
    xf = to_float(x).to(device)
    near = nearest_error(
        model,
        xf,
        y.to(device),
        norm=a.nearest.norm,
        eps_max=a.nearest.eps_max,
        steps=a.nearest.steps,
        batch_size=a.batch_size,
        generator=gen,
    )
    columns["nearest_distance"] = near.distance.cpu().numpy()
    columns["nearest_found"] = near.found.cpu().numpy()
    k = min(a.noisy.images or 0, len(x))
    eps_star, noisy_rate, bound = (np.full(len(x), math.nan) for _ in range(3))
    if k:
        noisy = median_noisy_distance(
            model,
            x[:k],
            y[:k],
            a.noisy.sigma,
            a.noisy.samples,
            a.noisy.steps,
            q=a.noisy.q,
            eps_max=a.noisy.eps_max,
            batch_size=a.batch_size,
            generator=gen,
            progress=progress,
        )
        eps_star[:k] = noisy.quantile.numpy()
        noisy_rate[:k] = noisy.error_rate.numpy()
        bound[:k] = isoperimetric_bound(a.noisy.sigma, noisy_rate[:k], q=a.noisy.q)
    columns["eps_star"] = eps_star
    columns["noisy_error_rate"] = noisy_rate
    columns["isoperimetric_bound"] = bound
    return columns


def analyze(cfg: Config, *, progress: bool = True) -> AnalyzeResult:
    """Measure the model at ``analyze.checkpoint``; write and log the table, summary and figures."""
    a = cfg.analyze
    trained = load_trained(cfg, a.checkpoint, a.images or 0, progress=progress)
    columns = {
        "index": trained.indices.numpy(),
        **measure(cfg, trained.model, trained.x, trained.y, trained.device, progress=progress),
    }
    summary = {**summarize(columns, cfg), "dimension": int(trained.x[0].numel())}
    out = output_dir(a.output_dir, trained)
    write_table(columns, out / TABLE)
    write_json(summary, out / SUMMARY)

    from errorset import tracking
    from errorset.plots import measurements as figs

    series = {trained.name: columns}
    with tracking.start_run(trained.config, run_name=f"{trained.name}/analyze", tags=trained.tags("analyze")) as run:
        run.log_config(trained.config)
        run.log_params({"analyze.checkpoint": str(trained.checkpoint)})
        run.log_metrics(flat_metrics(summary))
        run.log_table({k: v.tolist() for k, v in columns.items()}, "analysis_table.json")
        run.log_artifact(out / TABLE)
        run.log_artifact(out / SUMMARY)
        run.log_figure(figs.figure2(series, mu=a.mu, group_size=a.group_size), "figure2_sigma_vs_distance.png")
        run.log_figure(figs.figure4(series, sigma=a.noisy.sigma, q=a.noisy.q, mu=a.mu), "figure4_eps_star.png")
        run.log_figure(figs.figure20(series, a.error_rate_sigmas), "figure20_error_rate_cdf.png")
        run.log_figure(figs.figure10(a.optimal_sigmas, int(trained.x[0].numel())), "figure10_optimal_curves.png")
        return AnalyzeResult(run_id=run.run_id, output_dir=out, columns=columns, summary=summary)
