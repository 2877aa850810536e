"""Every nearest error is verified misclassified on its own (a batch of one), with its margin."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from errorset.attacks import nearest_error
from errorset.attacks.nearest import METHODS, margin_alone
from errorset.errors import ConfigError, UnknownNameError

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


@pytest.mark.parametrize("method", METHODS.names())
@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_every_method_finds_the_exact_nearest_error_of_a_linear_model(method, norm):
    """On w.x + b in R^d the nearest error is at |w.x + b| / ||w||_dual (L2: ||w||_2, L-inf: ||w||_1)."""
    if norm not in METHODS.metadata(method)["norms"]:
        pytest.skip(f"{method} does not search {norm}")
    g = torch.Generator().manual_seed(3)
    dim = 20
    w = torch.randn(dim, generator=g)
    model = BinaryLinear(w, 0.7)
    x = 2 * torch.randn(16, dim, generator=g)
    y = (model.signed_margin(x) > 0).long()  # every point correctly classified
    exact = model.distance(x, norm)
    assert (exact > 0.01).all()
    result = nearest_error(
        model,
        x,
        y,
        norm=norm,
        method=method,
        eps_max=float(exact.max()) * 2,
        steps=60,
        search_steps=16,  # bisection's resolution eps_max / 2^16: far below the 2% asked
        clip=False,
        generator=torch.Generator().manual_seed(0),
    )
    assert result.found.all()
    assert (model(result.x).argmax(1) != y).all()  # the found points are errors
    size = (result.x - x).norm(dim=1) if norm == "l2" else (result.x - x).abs().amax(1)
    torch.testing.assert_close(result.distance, size, rtol=1e-5, atol=1e-6)
    # never nearer than the exact distance (the points are errors), and within 2% of it
    assert (result.distance >= exact * (1 - 1e-5)).all()
    assert (result.distance <= exact * 1.02).all()


@pytest.mark.parametrize("method", ["ddn", "newton", "", None, 3])
def test_unknown_methods_name_the_parameter_and_list_the_valid_ones(method):
    x, y = torch.rand(2, 4), torch.zeros(2, dtype=torch.long)
    model = BinaryLinear(torch.ones(4), -10.0)
    if method == "ddn":  # known, but not for linf: says which method to use instead
        with pytest.raises(
            ConfigError, match=r"^method: ddn searches l2 distances only; use method=bisection for linf"
        ):
            nearest_error(model, x, y, norm="linf", method=method)
        return
    with pytest.raises(
        UnknownNameError, match=rf"^method: unknown method {method!r}; valid methods: auto, bisection, ddn$"
    ):
        nearest_error(model, x, y, method=method)
