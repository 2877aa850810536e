"""Bias, error and interval coverage of `errorset analyze`'s per-image estimates at a profile's settings.

On a binary linear model (logits [0, w.x + b], 64 dimensions), where every
quantity has a closed form (errorset.theory): the distance d to the boundary
gives sigma(x0, mu) = d / -Phi^-1(mu), the error rate at sigma Phi(-d / sigma)
and eps*_q = the isoperimetric bound at that rate (a half space meets it).
For each setting: the median and rms of estimate / truth and how often the
per-image 95% interval (the `_lo` / `_hi` columns) holds the truth.

    python benchmarks/analysis_settings.py --out benchmarks/results/analysis_settings.json
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
import torch

from errorset.measure.analysis import measure
from errorset.resolve import load_config
from errorset.theory import error_rate_at_distance, isoperimetric_bound, linear_distance


class BinaryLinear(torch.nn.Module):
    def __init__(self, w: torch.Tensor, b: float) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(w)
        self.b = torch.nn.Parameter(torch.tensor(b))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = x.flatten(1) @ self.w + self.b
        return torch.stack([torch.zeros_like(f), f], 1)


def stats(estimate: np.ndarray, truth: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> dict[str, float]:
    ratio = estimate / truth
    return {
        "median_ratio": float(np.median(ratio)),
        "rms_relative_error": float(np.sqrt(np.mean((ratio - 1) ** 2))),
        "coverage": float(np.mean((lo <= truth) & (truth <= hi))),
        "images": len(truth),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=300)
    p.add_argument("--noisy-images", type=int, default=40)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    g = torch.Generator().manual_seed(0)
    dim = 64
    w = torch.randn(dim, generator=g)
    model = BinaryLinear(w / w.norm(), 0.0)
    x = (0.5 + 0.3 * torch.randn(args.images, 1, 8, 8, generator=g)).clamp(0, 1)
    y = (model(x)[:, 1] > 0).long()
    d = (model(x)[:, 1].abs() / model.w.norm()).detach().double().numpy()
    results = {}
    for samples, noisy_samples, steps in ((100, 32, 50), (1000, 64, 100)):
        cfg = load_config(
            None,
            [
                "profile=cpu",
                "device=cpu",
                f"analyze.samples={samples}",
                "analyze.max_rel_error=0.5",  # measure the old setting too
                "analyze.error_rate_sigmas=[0.1]",
                f"analyze.noisy.images={args.noisy_images}",
                f"analyze.noisy.samples={noisy_samples}",
                f"analyze.noisy.steps={steps}",
            ],
        )
        cols = measure(cfg, model, x, y, torch.device("cpu"))
        sigma = d / linear_distance(1.0, 0.01)
        rate = error_rate_at_distance(d, 0.1)
        have = np.isfinite(cols["eps_star"])
        bound = isoperimetric_bound(0.1, rate[have])
        results[f"samples={samples}, noisy samples={noisy_samples}, steps={steps}"] = {
            "sigma_at_mu": stats(cols["sigma_at_mu"], sigma, cols["sigma_at_mu_lo"], cols["sigma_at_mu_hi"]),
            "error_rate_sigma_0.1": {
                "coverage": float(
                    np.mean((cols["error_rate_sigma_0.1_lo"] <= rate) & (rate <= cols["error_rate_sigma_0.1_hi"]))
                )
            },
            "eps_star": stats(cols["eps_star"][have], bound, cols["eps_star_lo"][have], cols["eps_star_hi"][have]),
            "eps_star_interval_above_bound_interval": int(
                (cols["eps_star_lo"][have] > cols["isoperimetric_bound_hi"][have]).sum()
            ),
        }
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
