"""Accuracy under PGD over a grid of radii (Ford et al. 2019, Figure 6 bottom).

Scoring rule: an example counts as broken if *any iterate of any restart* was
misclassified (the random start, every step and the last iterate; each
restart a fresh random start from the seeded generator). Scoring only the
last iterate overstates robust accuracy where the loss ascent overshoots.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from errorset import interrupts
from errorset.attacks.pgd import pgd
from errorset.data.batches import check_unit_images, to_float
from errorset.errors import ConfigError
from errorset.measure.common import eval_mode
from errorset.progress import bar

#: how attack.json describes the scoring rule
SCORING = "broken if any iterate of any restart is misclassified"


def _check_restarts(restarts: int, random_start: bool) -> None:
    if isinstance(restarts, bool) or not isinstance(restarts, int) or restarts < 1:
        raise ConfigError(f"restarts: expected an integer >= 1, got {restarts!r}")
    if restarts > 1 and not random_start:
        raise ConfigError("restarts: restarts > 1 need random_start=True (without it every restart is the same)")


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
    restarts: int = 1,
    batch_size: int = 500,
    generator: torch.Generator | None = None,
) -> float:
    """Fraction of images that no iterate of any of ``restarts`` PGD runs within ``eps`` misclassifies.

    eps = 0: clean accuracy. Restarts after the first attack only the images
    not yet broken, each from a fresh random start drawn from ``generator``.
    """
    check_unit_images(x, "x")
    _check_restarts(restarts, random_start)
    correct = 0
    with eval_mode(model) as device:
        for i in range(0, x.shape[0], batch_size):
            interrupts.check()
            xb = to_float(x[i : i + batch_size].to(device))
            yb = y[i : i + batch_size].to(device)
            with torch.no_grad():
                broken = model(xb).argmax(1) != yb
            for _ in range(restarts if eps > 0 else 0):
                todo = (~broken).nonzero().squeeze(1)
                if len(todo) == 0:
                    break
                _, hit = pgd(
                    model,
                    xb[todo],
                    yb[todo],
                    norm=norm,
                    eps=eps,
                    steps=steps,
                    step_size=step_size,
                    random_start=random_start,
                    generator=generator,
                    return_broken=True,
                )
                broken[todo] = hit
            correct += int((~broken).sum())
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
    restarts: int = 1,
    batch_size: int = 500,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> dict[str, list[dict[str, float]]]:
    """Accuracy under PGD for each norm and radius: ``{"linf": [{"eps", "accuracy"}, ...], "l2": [...]}``.

    Each attack runs ``steps`` steps of ``step_ratio * eps`` from a random start
    (the paper: 100 steps of eps/25), ``restarts`` times; an image is broken
    if any iterate of any restart is misclassified.
    """
    check_unit_images(x, "x")
    _check_restarts(restarts, random_start)

    jobs = [(norm, float(eps)) for norm, grid in radii.items() for eps in grid]
    out: dict[str, list[dict[str, float]]] = {norm: [] for norm in radii}
    for norm, eps in bar(jobs, desc="PGD", enabled=progress):
        acc = robust_accuracy(
            model,
            x,
            y,
            norm=norm,
            eps=eps,
            steps=steps,
            step_size=step_ratio * eps,
            random_start=random_start,
            restarts=restarts,
            batch_size=batch_size,
            generator=generator,
        )
        out[norm].append({"eps": eps, "accuracy": acc})
    return out
