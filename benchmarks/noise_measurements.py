"""Cost and error of the paper's per-image measurements: errorset's estimators against baselines, in one run.

sigma(x0, mu)
    ours: `search_sigma_at_error_rate` (pilot on a few directions, one pass of
    the whole bank, per-ray Illinois root finding on the logit margins; the
    Harrell-Davis mean of the ray crossings around rank k = ceil(mu n)).
    Baseline: `paper_sigma_search`, the
    paper's own search (doubling from 0.1, bisection inside [0, 1] to 0.001),
    on the SAME bank of n directions per image. Both are scored against a
    ground truth from an independent bank of 20,000 directions: our estimator
    at n = 20,000 with crossings pinned to rtol = 1e-4 (an L-estimate of the
    mu-quantile of the crossings, whose law is P[c <= sigma] = P[wrong at
    sigma]: consistent and, like the k-th crossing with F(c_(k)) ~
    Beta(k, n + 1 - k), unbiased to a fraction of a percent; its own relative
    error is 1.1%, the same for both searches scored against it); on digits
    also the paper's bisection at n = 20,000 and tol = 1e-5, and the two truths
    are compared. Optional (digits): a log-spaced grid with fresh noise,
    blind and stopping at the first crossing.
    Done on a digits MLP trained here in seconds and on a CIFAR-10 resnet8
    (trained here for a short schedule on the shared CIFAR copy, or
    `--cifar-checkpoint`), fewer images for CIFAR (`--cifar-images`).
eps*_q (median distance of noisy points to their nearest errors)
    ours: `median_noisy_distance` (DDN-style search, `steps` gradient steps per
    noisy point, then a forward-only line search). Naive: bisection on the
    radius with a full PGD run per bisection step.

Forward passes are counted per image by a wrapper around the model (a
gradient step counts as one forward and one backward pass). Forward passes
and errors are the result; wall times depend on the machine's load.
`--checkpoint` measures any errorset model.pt instead of the digits MLP.

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
from errorset.data import load_dataset, seeded_subset, to_float
from errorset.measure import median_noisy_distance, search_sigma_at_error_rate
from errorset.measure.common import misclassified
from errorset.measure.intervals import bootstrap_median
from errorset.measure.sigma_search import paper_sigma_search
from errorset.resolve import load_config
from errorset.runtime import make_generator, pick_device

SHARED_CIFAR = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "cifar10-jpeg.tar.gz"


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


def timed(counted: Counted, fn):
    """Run ``fn()``; return its result, the seconds it took and the images through ``counted`` per image."""
    counted.images = 0
    t0 = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - t0, counted.images


def error_row(sigma: torch.Tensor, truth: torch.Tensor, keep: torch.Tensor) -> dict:
    """Median |sigma / truth - 1| over the kept images, with its bootstrap interval."""
    rel = (sigma[keep].double() / truth[keep].double() - 1).abs().numpy()
    med, lo, hi = bootstrap_median(rel, seed=0)
    return {"median_relative_error": med, "median_relative_error_ci95": [lo, hi]}


def compare_sigma(model, x, y, args, *, paper_truth: bool, grid: bool) -> dict:
    """Ours and the paper's search on the same bank, both against a 20,000-sample truth."""
    device = next(model.parameters()).device
    counted = Counted(model).eval()
    n, mu, m = args.samples, args.mu, len(x)

    def ours_search(smooth: bool):
        return search_sigma_at_error_rate(
            counted,
            x,
            y,
            mu,
            n,
            rtol=args.rtol,
            smooth=smooth,
            pilot_samples=args.pilot_samples,
            generator=make_generator(0, device),
        )

    ours, t_ours, c_ours = timed(counted, lambda: ours_search(True))
    kth, t_kth, c_kth = timed(counted, lambda: ours_search(False))
    paper, t_paper, c_paper = timed(
        counted, lambda: paper_sigma_search(counted, x, y, mu, n, generator=make_generator(0, device))
    )
    truth, t_truth, c_truth = timed(
        counted,
        lambda: search_sigma_at_error_rate(
            counted, x, y, mu, args.truth_samples, rtol=1e-4, generator=make_generator(1000, device)
        ),
    )
    keep = ~truth.capped & truth.clean_correct & ~paper.capped
    covered = ((ours.sigma_lo <= truth.sigma) & (truth.sigma <= ours.sigma_hi))[keep].double().mean().item()
    report = {
        "images": m,
        "images_scored": int(keep.sum()),
        "truth": {
            "method": f"search_sigma_at_error_rate (Harrell-Davis), n = {args.truth_samples}, rtol = 1e-4, own bank",
            "forward_passes_per_image": c_truth / m,
            "seconds": t_truth,
            "median_sigma": float(truth.sigma[keep].median()),
        },
        "ours": {
            "forward_passes_per_image": c_ours / m,
            "forward_passes_reported": ours.forward_passes.double().mean().item(),
            "seconds": t_ours,
            **error_row(ours.sigma, truth.sigma, keep),
            "interval_coverage_of_truth": covered,
            "median_interval_relative_width": float(((ours.sigma_hi - ours.sigma_lo) / ours.sigma)[keep].median()),
        },
        "ours_kth_crossing": {
            "method": "search_sigma_at_error_rate(smooth=False): the k-th crossing, the paper's own estimator",
            "forward_passes_per_image": c_kth / m,
            "seconds": t_kth,
            **error_row(kth.sigma, truth.sigma, keep),
        },
        "paper_search": {
            "forward_passes_per_image": c_paper / m,
            "seconds": t_paper,
            **error_row(paper.sigma, truth.sigma, keep),
        },
        "pass_ratio_paper_over_ours": c_paper / c_ours,
        "pass_ratio_paper_over_ours_kth_crossing": c_paper / c_kth,
        "median_relative_difference_ours_vs_paper_same_bank": float(
            (ours.sigma / paper.sigma - 1)[keep].abs().median()
        ),
    }
    if paper_truth:
        ptruth, t_pt, c_pt = timed(
            counted,
            lambda: paper_sigma_search(
                counted, x, y, mu, args.truth_samples, tol=1e-5, generator=make_generator(1000, device)
            ),
        )
        report["truth_cross_check"] = {
            "method": f"paper_sigma_search, n = {args.truth_samples}, tol = 1e-5, the same independent bank",
            "forward_passes_per_image": c_pt / m,
            "seconds": t_pt,
            "median_relative_difference_to_truth": float((ptruth.sigma / truth.sigma - 1)[keep].abs().median()),
            "ours_vs_this_truth": error_row(ours.sigma, ptruth.sigma, keep),
            "paper_vs_this_truth": error_row(paper.sigma, ptruth.sigma, keep),
        }
    if grid:
        levels = np.exp(np.arange(math.log(1e-3), math.log(10.0), math.log1p(0.02)))
        report["grid_points"] = len(levels)
        for early in (False, True):
            naive, t_naive, c_naive = timed(
                counted, lambda early=early: naive_sigma(counted, x, y, mu, n, levels, make_generator(0, device), early)
            )
            report["grid_early_stop" if early else "grid_blind"] = {
                "forward_passes_per_image": c_naive / m,
                "seconds": t_naive,
                **error_row(naive, truth.sigma, keep),
            }
    for name in ("ours", "ours_kth_crossing", "paper_search", "grid_blind", "grid_early_stop"):
        if name in report:
            r = report[name]
            print(
                f"sigma(x0, mu) {name:16s} {r['forward_passes_per_image']:10.0f} passes/image "
                f"median rel. error {r['median_relative_error']:.4f} {r['seconds']:8.2f} s"
            )
    return report


def train_model(overrides: list[str], out_dir: str):
    from errorset.jobs.train import train
    from errorset.models import load_model

    cfg = load_config(
        None, [f"train.output_dir={out_dir}", "train.overwrite=true", "tracking.log_model=false", *overrides]
    )
    os.environ.setdefault("MLFLOW_TRACKING_URI", "sqlite:////tmp/errorset-bench-mlflow.db")
    result = train(cfg, progress=False)
    return cfg, load_model(result.model_path, pick_device(cfg.device)), result.test_accuracy


def test_images(model, cfg, count: int):
    """A seeded subset of correctly classified test images (misclassified ones cost one pass either way)."""
    device = next(model.parameters()).device
    x, y = load_dataset(cfg.data, progress=False).tensors("test")
    keep = seeded_subset(len(x), count, cfg.seed)
    x, y = x[keep].to(device), y[keep].to(device)
    with torch.no_grad():
        correct = model(to_float(x)).argmax(1) == y
    return x[correct], y[correct]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", help="an errorset model.pt (default: train a digits MLP here)")
    p.add_argument("--set", dest="overrides", action="append", default=[], help="config override KEY=VALUE")
    p.add_argument("--images", type=int, default=40, help="digits test images drawn (the correct ones are measured)")
    p.add_argument("--mu", type=float, default=0.01)
    p.add_argument("--samples", type=int, default=1000, help="noise samples per image for sigma(x0, mu)")
    p.add_argument("--truth-samples", type=int, default=20000, help="noise samples of the ground truth")
    p.add_argument("--rtol", type=float, default=0.002, help="rtol of our search")
    p.add_argument("--pilot-samples", type=int, default=128, help="pilot directions of our search")
    p.add_argument("--no-grid", action="store_true", help="skip the grid searches (digits)")
    p.add_argument(
        "--cifar",
        default=str(SHARED_CIFAR) if SHARED_CIFAR.exists() else "",
        help="CIFAR-10 archive for the resnet8 (default: the shared copy when present; '' to skip)",
    )
    p.add_argument("--cifar-checkpoint", help="a CIFAR-10 errorset model.pt (default: train a resnet8 here)")
    p.add_argument("--cifar-images", type=int, default=12)
    p.add_argument("--cifar-epochs", type=int, default=4)
    p.add_argument("--cifar-subset", type=int, default=10000, help="training images of the short resnet8 schedule")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--noisy-images", type=int, default=4)
    p.add_argument("--noisy-samples", type=int, default=100)
    p.add_argument("--noisy-sigma", type=float, default=0.1)
    p.add_argument("--steps", type=int, default=100, help="gradient steps per nearest-error search")
    p.add_argument("--search-steps", type=int, default=10, help="bisection steps of the naive eps*_q")
    p.add_argument("--out", default="benchmarks/results/noise_measurements.json")
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.checkpoint:
        from errorset.models import load_model

        cfg = load_config("params.yaml" if Path("params.yaml").exists() else None, args.overrides)
        model = load_model(args.checkpoint, pick_device(cfg.device))
        label, accuracy = args.checkpoint, None
    else:
        cfg, model, accuracy = train_model(["data.name=digits", *args.overrides], "/tmp/errorset-bench-digits")
        label = "digits mlp (trained here)"
    device = next(model.parameters()).device
    x, y = test_images(model, cfg, args.images)
    report: dict = {
        "benchmark": "noise_measurements",
        "model": label,
        "test_accuracy": accuracy,
        "device": str(device),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "note": "forward passes and errors are the result; wall times depend on the machine's load",
        "images": len(x),
        "mu": args.mu,
        "samples": args.samples,
        "truth_samples": args.truth_samples,
        "rtol": args.rtol,
        "pilot_samples": args.pilot_samples,
    }

    # --- sigma(x0, mu) --------------------------------------------------------------------
    print(f"sigma(x0, mu) on {label}, {len(x)} images")
    report["sigma_at_error_rate"] = compare_sigma(model, x, y, args, paper_truth=True, grid=not args.no_grid)
    if args.cifar or args.cifar_checkpoint:
        if args.cifar_checkpoint:
            from errorset.models import load_model

            ccfg = load_config(None, ["data.name=cifar10", f"data.cifar10.archive={args.cifar}"])
            cmodel, cacc = load_model(args.cifar_checkpoint, pick_device(ccfg.device)), None
            clabel = args.cifar_checkpoint
        else:
            ccfg, cmodel, cacc = train_model(
                [
                    "profile=cpu",
                    "data.name=cifar10",
                    f"data.cifar10.archive={args.cifar}",
                    "model.name=resnet8",
                    f"train.epochs={args.cifar_epochs}",
                    f"train.subset={args.cifar_subset}",
                    "train.milestones=[]",
                ],
                "/tmp/errorset-bench-cifar-resnet8",
            )
            clabel = f"cifar10 resnet8 ({args.cifar_epochs} epochs on {args.cifar_subset} images, trained here)"
        cx, cy = test_images(cmodel, ccfg, args.cifar_images)
        print(f"sigma(x0, mu) on {clabel}, {len(cx)} images")
        report["sigma_at_error_rate_cifar"] = {
            "model": clabel,
            "test_accuracy": cacc,
            "data": "shared CIFAR-10 copy (JPEG q75)",
            **compare_sigma(cmodel, cx, cy, args, paper_truth=False, grid=False),
        }

    # --- eps*_q --------------------------------------------------------------------------
    counted = Counted(model).eval()
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
