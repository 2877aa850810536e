"""``errorset evaluate``: clean accuracy and accuracy in Gaussian noise of a trained model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from errorset.config import Config
from errorset.files import check_writable
from errorset.jobs.common import load_trained, measuring_job, output_dir, write_csv, write_json
from errorset.measure import accuracy_in_noise
from errorset.runtime import make_generator
from errorset.train.loop import accuracy


@dataclass
class EvalResult:
    run_id: str
    output_dir: Path
    metrics: dict[str, Any]


def metric_key(prefix: str, sigma: float) -> str:
    return f"{prefix}/sigma_{sigma:g}"


@measuring_job
def evaluate(cfg: Config, *, progress: bool = True) -> EvalResult:
    """Evaluate the model at ``eval.checkpoint``; write ``metrics.json`` and ``noise_accuracy.csv``."""
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

    write_json(metrics, out / "metrics.json")
    write_csv(rows, ["sigma", "accuracy", "std"], out / "noise_accuracy.csv")

    from errorset import tracking
    from errorset.plots.noise import plot_accuracy_in_noise

    name = trained.name
    with tracking.start_run(trained.config, run_name=f"{name}/evaluate", tags=trained.tags("evaluate")) as run:
        run.log_config(trained.config)
        run.log_params({"eval.images": len(x)})
        flat = {"clean_accuracy": clean}
        for r in rows:
            flat[metric_key("noise_accuracy", r["sigma"])] = r["accuracy"]
            flat[metric_key("noise_accuracy_std", r["sigma"])] = r["std"]
        run.log_metrics(flat)
        run.log_table({k: [r[k] for r in rows] for k in ("sigma", "accuracy", "std")}, "noise_accuracy.json")
        fig = plot_accuracy_in_noise({name: rows}, title=f"{name}: accuracy in Gaussian noise")
        run.log_figure(fig, "noise_accuracy.png")
        run.log_artifact(out / "metrics.json")
        return EvalResult(run_id=run.run_id, output_dir=out, metrics=metrics)
