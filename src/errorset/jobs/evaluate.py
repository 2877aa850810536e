"""``errorset evaluate``: clean accuracy and accuracy in Gaussian noise of a trained model."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from errorset.config import Config
from errorset.files import check_writable
from errorset.jobs.common import load_trained, measuring_job, output_dir
from errorset.measure import accuracy_in_noise
from errorset.measure.clean_accuracy import accuracy
from errorset.results import EVALUATE_METRICS, EVALUATE_RESULTS, NOISE_ACCURACY, write_csv, write_json
from errorset.runtime import make_generator


@dataclass
class EvalResult:
    run_id: str
    output_dir: Path
    metrics: dict[str, Any]


#: the noise level of the headline metric ``accuracy_sigma_0.1`` (when eval.sigmas has it)
HEADLINE_SIGMA = 0.1
#: the DVC metrics file (headline numbers only) and the full results


def metric_key(prefix: str, sigma: float) -> str:
    """The MLflow key of the long tail: ``detail/noise_accuracy/sigma_0.5``."""
    return f"detail/{prefix}/sigma_{sigma:g}"


def headline_metrics(clean: float, rows: list[dict[str, float]]) -> dict[str, float]:
    """``clean_accuracy`` and ``accuracy_sigma_0.1`` (the accuracy in noise at :data:`HEADLINE_SIGMA`)."""
    out = {"clean_accuracy": clean}
    at = [r for r in rows if math.isclose(r["sigma"], HEADLINE_SIGMA)]
    if at:
        out[f"accuracy_sigma_{HEADLINE_SIGMA:g}"] = at[0]["accuracy"]
    return out


@measuring_job
def evaluate(cfg: Config, *, progress: bool = True) -> EvalResult:
    """Evaluate the model at ``eval.checkpoint``; write ``metrics.json`` (headline numbers, DVC metrics),
    ``evaluate.json`` (everything) and ``noise_accuracy.csv``."""
    e = cfg.eval
    trained = load_trained(cfg, e.checkpoint, e.n_images or 0, progress=progress, parameter="eval.checkpoint")
    model, x, y = trained.model, trained.x, trained.y
    out = check_writable(output_dir(e.output_dir, trained), "eval.output_dir")  # before measuring, not after
    clean = accuracy(model, x, y, e.batch_size)
    noise = accuracy_in_noise(
        model,
        x,
        y,
        e.sigmas,
        e.trials,
        batch_size=e.batch_size,
        clip=e.clip,
        generator=make_generator(cfg.seed, trained.device),
        progress=progress,
    )
    rows = noise.rows()
    metrics: dict[str, Any] = {
        "clean_accuracy": clean,
        "noise_accuracy": {f"{r['sigma']:g}": r["accuracy"] for r in rows},
        "noise_accuracy_std": {f"{r['sigma']:g}": r["std"] for r in rows},
        "n_images": len(x),
        "trials": e.trials,
    }

    headline = headline_metrics(clean, rows)
    write_json(headline, out / EVALUATE_METRICS)
    write_json(metrics, out / EVALUATE_RESULTS)
    write_csv(rows, ["sigma", "accuracy", "std"], out / NOISE_ACCURACY)

    from errorset.plots.noise import plot_accuracy_in_noise

    name = trained.name
    with trained.start_run("evaluate", params={"eval.images": len(x)}) as run:
        flat = dict(headline)
        for r in rows:
            flat[metric_key("noise_accuracy", r["sigma"])] = r["accuracy"]
            flat[metric_key("noise_accuracy_std", r["sigma"])] = r["std"]
        run.log_metrics(flat)
        run.log_table({k: [r[k] for r in rows] for k in ("sigma", "accuracy", "std")}, "noise_accuracy.json")
        fig = plot_accuracy_in_noise({name: rows}, title=f"{name}: accuracy in Gaussian noise")
        run.log_figure(fig, "noise_accuracy.png")
        run.log_artifact(out / EVALUATE_METRICS)
        run.log_artifact(out / EVALUATE_RESULTS)
        return EvalResult(run_id=run.run_id, output_dir=out, metrics=metrics)
