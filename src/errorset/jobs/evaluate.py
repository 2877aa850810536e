"""``errorset evaluate``: clean accuracy and accuracy in Gaussian noise of a trained model."""

from __future__ import annotations

import csv
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from errorset.config import Config, config_from_dict
from errorset.data import load_dataset, seeded_subset
from errorset.errors import ConfigError
from errorset.jobs.naming import eval_output_dir, run_name, train_output_dir
from errorset.models.build import load_model, read_model_file
from errorset.noise import accuracy_in_noise
from errorset.runtime import make_generator, pick_device
from errorset.train.loop import accuracy


@dataclass
class EvalResult:
    run_id: str
    output_dir: Path
    metrics: dict[str, Any]


def checkpoint_path(cfg: Config) -> Path:
    """``eval.checkpoint``, else ``<train output dir>/model.pt``."""
    if cfg.eval.checkpoint:
        return Path(cfg.eval.checkpoint)
    return train_output_dir(cfg) / "model.pt"


def model_config(cfg: Config, payload: dict[str, Any]) -> Config:
    """``cfg`` with the trained model's own profile, model and train settings (from its file).

    So the evaluation run's parameters describe the model evaluated, and runs of
    different variants compare side by side in the MLflow UI.
    """
    trained = config_from_dict(payload.get("config") or {})
    return dataclasses.replace(cfg, profile=trained.profile, model=trained.model, train=trained.train)


def metric_key(prefix: str, sigma: float) -> str:
    return f"{prefix}/sigma_{sigma:g}"


def evaluate(cfg: Config, *, progress: bool = True) -> EvalResult:
    """Evaluate the model at ``eval.checkpoint``; write ``metrics.json`` and ``noise_accuracy.csv``."""
    ckpt = checkpoint_path(cfg)
    payload = read_model_file(ckpt)
    ecfg = model_config(cfg, payload)
    device = pick_device(cfg.device)
    model = load_model(ckpt, map_location=device)
    data = load_dataset(cfg.data, progress=progress)
    if tuple(model.input_shape) != data.input_shape or model.num_classes != data.num_classes:
        raise ConfigError(
            f"eval.checkpoint: {ckpt} was trained on {model.input_shape} images with {model.num_classes} "
            f"classes, but data.name={cfg.data.name} has {data.input_shape} images and {data.num_classes}"
        )
    x, y = data.tensors("test")
    keep = seeded_subset(len(x), cfg.eval.n_images or 0, cfg.seed)
    x, y = x[keep], y[keep]

    e = cfg.eval
    clean = accuracy(model, x, y, e.batch_size)
    noise = accuracy_in_noise(
        model,
        x,
        y,
        e.sigmas,
        e.trials,
        batch_size=e.batch_size,
        clip=e.clip,
        generator=make_generator(cfg.seed, device),
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

    out = eval_output_dir(ecfg)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    with open(out / "noise_accuracy.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["sigma", "accuracy", "std"])
        w.writeheader()
        w.writerows(rows)

    from errorset import tracking
    from errorset.plots.noise import plot_accuracy_in_noise

    name = run_name(ecfg)
    tags = {
        "mode": ecfg.train.mode,
        "dataset": cfg.data.name,
        "model": ecfg.model.name,
        "profile": ecfg.profile,
        "errorset.job": "evaluate",
        "train_run_id": payload.get("run_id") or "",
    }
    with tracking.start_run(ecfg, run_name=f"{name}/evaluate", tags=tags) as run:
        run.log_config(ecfg)
        run.log_params({"eval.checkpoint": str(ckpt), "eval.images": len(x)})
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
