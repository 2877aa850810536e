"""Cost of the paper's per-image measurements: errorset's estimators against naive baselines, in one run.

sigma(x0, mu)
    ours: `search_sigma_at_error_rate` (common random numbers, linear-model
    bracketing, regula falsi). Naive: evaluate the error rate with fresh noise
    on a log-spaced grid of sigmas at the same relative resolution and take the
    first grid point that reaches mu -- over the whole grid ("blind"), and
    stopping at the first crossing ("early stop").
eps*_q (median distance of noisy points to their nearest errors)
    ours: `median_noisy_distance` (DDN-style search, `steps` gradient steps per
    noisy point, then a forward-only line search). Naive: bisection on the
    radius with a full PGD run per bisection step.

Forward passes are counted per image (a gradient step counts as one forward
and one backward pass, reported separately). By default the model is a digits
MLP trained here in seconds; `--checkpoint` measures any errorset model.pt on
its dataset (`--set` overrides the config as on the command line).

    python benchmarks/noise_measurements.py --out benchmarks/results/noise_measurements.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from errorset.attacks import nearest_error
from errorset.config import load_config
from errorset.data import load_dataset, seeded_subset, to_float
from errorset.measure import median_noisy_distance, search_sigma_at_error_rate
from errorset.measure.common import misclassified
from errorset.runtime import make_generator, pick_device


class Counted(torch.nn.Module):
    """Counts the images that pass through the wrapped model."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        self.images = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.images += x.shape[0]
        return self.model(x)


@torch.no_grad()
def naive_sigma(model, x, y, mu, n, grid, generator, early_stop):
    """First grid sigma whose error rate (fresh noise, n samples) reaches mu; per image."""
    xf = to_float(x)
    out = torch.full((len(x),), float(grid[-1]))
    active = torch.ones(len(x), dtype=torch.bool)
    for s in grid:
        idx = active.nonzero().squeeze(1) if early_stop else torch.arange(len(x))
        if len(idx) == 0:
            break
        noise = torch.randn((len(idx), n, *xf.shape[1:]), generator=generator)
        wrong = misclassified(model, xf[idx], y[idx], torch.full((len(idx),), float(s)), noise, batch_size=4096)
        hit = wrong.float().mean(1) >= mu
        newly = idx[hit & active[idx]]
        out[newly] = float(s)
        active[newly] = False
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", help="an errorset model.pt (default: train a digits MLP here)")
    p.add_argument("--set", dest="overrides", action="append", default=[], help="config override KEY=VALUE")
    p.add_argument("--images", type=int, default=20)
    p.add_argument("--mu", type=float, default=0.01)
    p.add_argument("--samples", type=int, default=1000, help="noise samples per image for sigma(x0, mu)")
    p.add_argument("--rtol", type=float, default=0.02)
    p.add_argument("--noisy-images", type=int, default=4)
    p.add_argument("--noisy-samples", type=int, default=100)
    p.add_argument("--noisy-sigma", type=float, default=0.1)
    p.add_argument("--steps", type=int, default=100, help="gradient steps per nearest-error search")
    p.add_argument("--search-steps", type=int, default=10, help="bisection steps of the naive eps*_q")
    p.add_argument("--out", default="benchmarks/results/noise_measurements.json")
    args = p.parse_args()

    torch.manual_seed(0)
    if args.checkpoint:
        from errorset.models import load_model

        cfg = load_config("params.yaml" if Path("params.yaml").exists() else None, args.overrides)
        model = load_model(args.checkpoint, pick_device(cfg.device))
        label = args.checkpoint
    else:
        from errorset.jobs.train import train

        cfg = load_config(
            None,
            [
                "data.name=digits",
                "train.output_dir=/tmp/errorset-bench-digits",
                "train.overwrite=true",
                "tracking.log_model=false",
                *args.overrides,
            ],
        )
        os.environ.setdefault("MLFLOW_TRACKING_URI", "sqlite:////tmp/errorset-bench-mlflow.db")
        model_path = train(cfg, progress=False).model_path
        from errorset.models import load_model

        model = load_model(model_path)
        label = "digits mlp (trained here)"
    device = next(model.parameters()).device
    data = load_dataset(cfg.data, progress=False)
    x, y = data.tensors("test")
    keep = seeded_subset(len(x), args.images, cfg.seed)
    x, y = x[keep].to(device), y[keep].to(device)
    with torch.no_grad():
        correct = model(to_float(x)).argmax(1) == y
    x, y = x[correct], y[correct]  # misclassified images cost one pass either way
    counted = Counted(model).eval()
    report: dict = {
        "benchmark": "noise_measurements",
        "model": label,
        "device": str(device),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "images": len(x),
        "mu": args.mu,
        "samples": args.samples,
    }

    # --- sigma(x0, mu) --------------------------------------------------------------------
    t0 = time.perf_counter()
    ours = search_sigma_at_error_rate(
        counted, x, y, args.mu, args.samples, rtol=args.rtol, generator=make_generator(0, device)
    )
    ours_time = time.perf_counter() - t0
    grid = np.exp(np.arange(math.log(1e-3), math.log(10.0), math.log1p(args.rtol)))
    rows = {"ours": {"seconds": ours_time, "forward_passes_per_image": ours.forward_passes.float().mean().item()}}
    for early in (False, True):
        counted.images = 0
        t0 = time.perf_counter()
        naive = naive_sigma(counted, x, y, args.mu, args.samples, grid, make_generator(0, device), early)
        rows["grid_early_stop" if early else "grid_blind"] = {
            "seconds": time.perf_counter() - t0,
            "forward_passes_per_image": counted.images / len(x),
            "median_relative_difference_to_ours": float((naive / ours.sigma - 1).abs().median()),
        }
    report["sigma_at_error_rate"] = {"grid_points": len(grid), "rtol": args.rtol, **rows}
    for name, r in rows.items():
        print(f"sigma(x0, mu) {name:16s} {r['forward_passes_per_image']:10.0f} passes/image {r['seconds']:8.2f} s")

    # --- eps*_q --------------------------------------------------------------------------
    k = min(args.noisy_images, len(x))
    counted.images = 0
    t0 = time.perf_counter()
    res = median_noisy_distance(
        counted, x[:k], y[:k], args.noisy_sigma, args.noisy_samples, args.steps, generator=make_generator(1, device)
    )
    ours_row = {"seconds": time.perf_counter() - t0, "model_calls_per_image": counted.images / k}
    counted.images = 0
    t0 = time.perf_counter()
    gen = make_generator(1, device)
    xs = to_float(x[:k]).repeat_interleave(args.noisy_samples, 0)
    noisy = xs + args.noisy_sigma * torch.randn(xs.shape, generator=gen, device=device)
    naive = nearest_error(
        counted,
        noisy,
        y[:k].repeat_interleave(args.noisy_samples),
        norm="l2",
        eps_max=4.0,
        steps=args.steps,
        method="bisection",
        search_steps=args.search_steps,
        clip=False,
    )
    naive_median = naive.distance.view(k, -1).median(1).values.cpu()
    naive_row = {
        "seconds": time.perf_counter() - t0,
        "model_calls_per_image": counted.images / k,
        "median_relative_difference_to_ours": float((naive_median / res.median.clamp_min(1e-12) - 1).abs().median()),
    }
    report["median_noisy_distance"] = {
        "sigma": args.noisy_sigma,
        "samples": args.noisy_samples,
        "steps": args.steps,
        "ours": ours_row,
        "bisection_pgd": naive_row,
    }
    for name, r in (("ours", ours_row), ("bisection_pgd", naive_row)):
        print(f"eps*_q        {name:16s} {r['model_calls_per_image']:10.0f} calls/image  {r['seconds']:8.2f} s")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
