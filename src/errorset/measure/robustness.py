"""Accuracy under PGD over a grid of radii (Ford et al. 2019, Figure 6 bottom)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from errorset.attacks.pgd import pgd
from errorset.data.batches import to_float
from errorset.measure.common import eval_mode


def robust_accuracy(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    norm: str,
    eps: float,
    steps: int,
    step_size: float,
    random_start: bool = True,
    batch_size: int = 500,
    generator: torch.Generator | None = None,
) -> float:
    """Fraction of images still classified correctly after PGD within ``eps`` (eps = 0: clean accuracy)."""
    correct = 0
    with eval_mode(model) as device:
        for i in range(0, x.shape[0], batch_size):
            xb = to_float(x[i : i + batch_size].to(device))
            yb = y[i : i + batch_size].to(device)
            if eps > 0:
                xb = pgd(
                    model,
                    xb,
                    yb,
                    norm=norm,
                    eps=eps,
                    steps=steps,
                    step_size=step_size,
                    random_start=random_start,
                    generator=generator,
                )
            with torch.no_grad():
                correct += int((model(xb).argmax(1) == yb).sum())
    return correct / max(x.shape[0], 1)


def lp_robustness(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    radii: Mapping[str, Sequence[float]],
    *,
    steps: int = 100,
    step_ratio: float = 0.04,
    random_start: bool = True,
    batch_size: int = 500,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> dict[str, list[dict[str, float]]]:
    """Accuracy under PGD for each norm and radius: ``{"linf": [{"eps", "accuracy"}, ...], "l2": [...]}``.

    Each attack runs ``steps`` steps of ``step_ratio * eps`` from a random start
    (the paper: 100 steps of eps/25).
    """
    from tqdm.auto import tqdm

    jobs = [(norm, float(eps)) for norm, grid in radii.items() for eps in grid]
    out: dict[str, list[dict[str, float]]] = {norm: [] for norm in radii}
    for norm, eps in tqdm(jobs, desc="PGD", leave=False, disable=not progress):
        acc = robust_accuracy(
            model,
            x,
            y,
            norm=norm,
            eps=eps,
            steps=steps,
            step_size=step_ratio * eps,
            random_start=random_start,
            batch_size=batch_size,
            generator=generator,
        )
        out[norm].append({"eps": eps, "accuracy": acc})
    return out
