"""Every nearest error is verified misclassified on its own (a batch of one), with its margin."""

from __future__ import annotations

import torch
from torch import nn

from errorset.attacks import nearest_error
from errorset.attacks.nearest import margin_alone

from .linear_models import BinaryLinear


class BatchShifted(nn.Module):
    """A linear model whose class-1 logit is ``shift`` lower when it sees one image alone.

    Points the search leaves within a hair of the batch's boundary are then
    classified correctly on their own: the case a trained network's batch-size
    dependent kernels produce in the last bits of its logits.
    """

    def __init__(self, inner: nn.Module, shift: float) -> None:
        super().__init__()
        self.inner = inner
        self.shift = shift

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.inner(x)
        if x.shape[0] == 1:
            z = z - torch.tensor([0.0, self.shift], dtype=z.dtype, device=z.device)
        return z


def problem(dim: int = 32, n: int = 40, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(dim, generator=g)
    inner = BinaryLinear(w, float(-0.5 * w.sum()))  # the boundary passes through the middle of the images
    x = 0.25 + 0.5 * torch.rand(n, dim, generator=g)
    keep = inner.signed_margin(x) < 0  # class 0 images: their error set is where the class-1 logit is > 0
    assert keep.sum() >= 5
    return inner, x[keep], torch.zeros(int(keep.sum()), dtype=torch.long)


def test_found_points_are_misclassified_alone_with_their_margin():
    inner, x, y = problem()
    model = BatchShifted(inner, shift=1e-3)
    assert (model(x).argmax(1) == y).all()
    result = nearest_error(model, x, y, norm="l2", eps_max=3.0, steps=40, clip=False)
    assert result.found.all()
    alone = margin_alone(model, result.x, y)
    assert (alone > 0).all()  # every returned point is an error on its own
    torch.testing.assert_close(result.margin, alone)
    torch.testing.assert_close(result.distance, (result.x - x).norm(dim=1))
    # the verified points lie beyond the batch's boundary, pushed by at most 10% of the distance
    exact = inner.distance(x)
    assert (result.distance > exact * (1 + 1e-7)).all()
    assert (result.distance <= exact * 1.1 * (1 + 1e-4)).all()


def test_margin_is_best_other_minus_true_and_unverifiable_points_are_not_found():
    inner, x, y = problem(seed=1)
    model = BatchShifted(inner, shift=1e3)  # alone, no point within eps_max is ever wrong
    result = nearest_error(model, x, y, norm="l2", eps_max=3.0, steps=40, clip=False)
    assert not result.found.any()
    assert (result.distance == 3.0).all() and torch.equal(result.x, x)
    z = model(x[:1])
    torch.testing.assert_close(result.margin[:1], (z[:, 1] - z[:, 0]).float())
    assert (result.margin < 0).all()


def test_linf_bisection_points_are_verified_too():
    inner, x, y = problem(seed=2)
    model = BatchShifted(inner, shift=1e-3)
    result = nearest_error(model, x, y, norm="linf", eps_max=1.0, steps=20, search_steps=14, clip=False)
    found = result.found
    assert found.all()
    assert (margin_alone(model, result.x, y) > 0).all()
    torch.testing.assert_close(result.distance, (result.x - x).abs().amax(1))


def test_clean_errors_stay_at_distance_zero_with_a_positive_margin():
    inner, x, y = problem(seed=3)
    result = nearest_error(inner, x, 1 - y, norm="l2", eps_max=1.0, steps=10, clip=False)
    assert (result.distance == 0).all() and torch.equal(result.x, x)
    assert (result.margin > 0).all()
