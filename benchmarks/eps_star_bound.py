"""eps*_q against its isoperimetric bound on a CIFAR-10 resnet8 (gaussian-0.1, cpu recipe), two noisy settings.

Trains the model once (cpu profile, `train.mode=gaussian`, `train.sigma_max=0.1`) under
/tmp/eps_star_bound, then measures the first 20 test images of the seeded subset with the
cpu profile's eps*_q settings (8 correct images, 64 samples, 100 steps) and the old ones
(10, 32, 50), and prints per image the noisy error rate, eps*_q / bound and how many
eps*_q intervals lie entirely above their bound's interval.

    ERRORSET_CIFAR10_ARCHIVE=../shared/datasets/cifar10-jpeg.tar.gz python benchmarks/eps_star_bound.py
"""

from __future__ import annotations

import os
import time

import numpy as np
import torch

from errorset.data import prepare_dataset
from errorset.jobs.common import load_trained
from errorset.jobs.train import train
from errorset.measure.analysis import measure
from errorset.resolve import load_config


def main() -> None:
    torch.set_num_threads(2)
    root = "/tmp/eps_star_bound"
    os.makedirs(root, exist_ok=True)
    os.chdir(root)
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{root}/mlflow.db")
    base = ["profile=cpu", "data.name=cifar10", f"data.root={root}/data", "device=cpu", "tracking.experiment=bench"]
    t0 = time.time()
    prepare_dataset(load_config(None, base).data, progress=False)
    if not os.path.exists("m/model.pt"):
        overrides = ["train.mode=gaussian", "train.sigma_max=0.1", "train.output_dir=m", "tracking.log_model=false"]
        train(load_config(None, [*base, *overrides]), progress=False)
    for images, samples, steps in [(8, 64, 100), (10, 32, 50)]:
        noisy = [f"analyze.noisy.images={images}", f"analyze.noisy.samples={samples}", f"analyze.noisy.steps={steps}"]
        cfg = load_config(None, [*base, "analyze.images=20", "analyze.error_rate_sigmas=[0.1]", *noisy])
        t = load_trained(cfg, "m/model.pt", 20, progress=False)
        c = measure(cfg, t.model, t.x, t.y, t.device)
        h = np.isfinite(c["eps_star"])
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = c["eps_star"][h] / c["isoperimetric_bound"][h]
        above = c["eps_star_lo"][h] > c["isoperimetric_bound_hi"][h]
        print(
            f"noisy images {images}, samples {samples}, steps {steps}: rate {np.round(c['noisy_error_rate'][h], 3)}, "
            f"eps*/bound {np.round(ratio, 2)}, intervals entirely above the bound's: {int(above.sum())} "
            f"({time.time() - t0:.0f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
