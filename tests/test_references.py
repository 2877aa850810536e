"""errorset's measurements against references nobody here wrote: foolbox 3.3.4 (a test-time oracle) and plain loops.

On two trained nonlinear models (tests/trained_models.py: a digits MLP and a CIFAR-shaped conv net with
BatchNorm):

* nearest errors: the median L2 distance of errorset's verified nearest errors is at most 1.05 times the
  median of foolbox's minimal-norm attacks FMN and DDN at their default budgets (failures count as inf),
  on the same correctly classified images, and every errorset point is misclassified when re-evaluated alone;
* accuracy under PGD: errorset's (any iterate scored) is no higher than foolbox's LinfPGD / L2PGD at the
  same eps, steps and step size, beyond 4 standard errors of a difference of two accuracies,
  4 sqrt(2 p (1 - p) / n);
* accuracy in noise: :func:`accuracy_in_noise` agrees with a hand-written loop within the same tolerance.
"""

from __future__ import annotations

import math

import pytest
import torch

from errorset.attacks import nearest_error
from errorset.attacks.nearest import margin_alone
from errorset.measure import accuracy_in_noise
from errorset.measure.robustness import robust_accuracy

from .trained_models import digits_convnet, digits_mlp

fb = pytest.importorskip("foolbox", minversion="3.3.4")

pytestmark = pytest.mark.slow

MODELS = {"digits_mlp": digits_mlp, "digits_convnet": digits_convnet}
#: nearest-error search radius: wide enough that no image of either model is capped
EPS_MAX = 4.0
IMAGES = 60


def tolerance(p: float, n: int) -> float:
    """Four standard errors of the difference of two independent accuracies p on n images."""
    return 4 * math.sqrt(2 * p * (1 - p) / n)


def correct_images(name: str, n: int | None = None):
    model, x, y = MODELS[name]()
    with torch.no_grad():
        keep = model(x).argmax(1) == y
    return model, x[keep][:n], y[keep][:n]


def foolbox_distances(model, x, y, attack) -> torch.Tensor:
    fmodel = fb.PyTorchModel(model, bounds=(0, 1))
    _, adv, success = attack(fmodel, x, y, epsilons=None)
    d = (adv - x).flatten(1).norm(dim=1)
    return torch.where(success, d, torch.full_like(d, math.inf))


@pytest.mark.parametrize("name", MODELS)
def test_nearest_errors_are_verified_and_no_farther_than_foolbox_fmn_and_ddn(name):
    model, x, y = correct_images(name, IMAGES)
    result = nearest_error(model, x, y, norm="l2", eps_max=EPS_MAX)
    assert result.found.all()
    assert (margin_alone(model, result.x, y) > 0).all()  # every point an error on its own
    assert (result.margin > 0).all()
    ours = float(result.distance.median())
    fmn = float(foolbox_distances(model, x, y, fb.attacks.L2FMNAttack()).median())
    ddn = float(foolbox_distances(model, x, y, fb.attacks.DDNAttack()).median())
    print(f"{name}: median L2 distance errorset {ours:.4f}, foolbox FMN {fmn:.4f}, DDN {ddn:.4f}")
    assert ours <= 1.05 * fmn
    assert ours <= 1.05 * ddn


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize(("norm", "eps"), [("linf", 0.04), ("l2", 0.5)])
def test_pgd_accuracy_is_no_higher_than_foolbox_pgd(name, norm, eps):
    model, x, y = MODELS[name]()
    attack = fb.attacks.LinfPGD() if norm == "linf" else fb.attacks.L2PGD()
    _, _, success = attack(fb.PyTorchModel(model, bounds=(0, 1)), x, y, epsilons=eps)
    theirs = 1 - float(success.float().mean())
    ours = robust_accuracy(
        model,
        x,
        y,
        norm=norm,
        eps=eps,
        steps=attack.steps,
        step_size=attack.rel_stepsize * eps,
        generator=torch.Generator().manual_seed(0),
    )
    print(f"{name} {norm} eps={eps}: accuracy errorset {ours:.4f}, foolbox {theirs:.4f} (n={len(x)})")
    assert 0.05 < theirs < 0.95  # a radius where the comparison says something
    assert ours <= theirs + tolerance(theirs, len(x))
    assert ours >= theirs - 2 * tolerance(theirs, len(x))  # stronger, but not a different attack


@pytest.mark.parametrize("name", MODELS)
def test_accuracy_in_noise_matches_a_plain_loop(name):
    model, x, y = MODELS[name]()
    sigma, trials = 0.3, 5
    ours = float(accuracy_in_noise(model, x, y, [sigma], trials, generator=torch.Generator().manual_seed(0)).mean[0])
    g = torch.Generator().manual_seed(123)
    correct = 0
    with torch.no_grad():
        for _ in range(trials):
            noisy = x + sigma * torch.randn(x.shape, generator=g)
            correct += int((model(noisy).argmax(1) == y).sum())
    plain = correct / (trials * len(x))
    print(f"{name} sigma={sigma}: accuracy in noise errorset {ours:.4f}, plain loop {plain:.4f}")
    assert 0.05 < plain < 0.95
    assert abs(ours - plain) <= tolerance(plain, trials * len(x))
