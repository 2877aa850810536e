"""The nearest error PGD can find: d(x0, E), the distance to the error set (Ford et al. 2019, Figure 2).

Two searches, both built on gradient steps like PGD:

``ddn`` (L2, the default)
    Decoupled direction and norm (Rony et al. 2019): gradient-ascent steps on
    a loss (cosine-annealed step size) followed by projection onto
    an L2 sphere whose radius shrinks by ``gamma`` while the iterate is
    misclassified and grows by ``gamma`` while it is not. The smallest
    misclassified iterate is then refined by bisection along its direction
    (forward passes only). Two searches, their ``steps`` gradient steps per
    image split evenly, each image keeping the nearer verified error: one on
    the logit margin ``max_{j != y} z_j - z_y`` (a stationary point is the
    nearest point of the nearest pairwise decision boundary, which makes the
    search exact for linear models) and one on the cross-entropy (Rony et
    al.'s loss, nearer on some trained networks: 0.454 against the margin's
    0.479 median on tests/trained_models.py's digits MLP).
``bisection`` (L-inf or L2)
    Bisection on the radius eps: PGD with ``steps`` steps at each radius; a
    success lowers the upper bound to the norm actually used. ``search_steps``
    PGD runs per image.

Distances are in [0,1] pixel units. A clean image that is already
misclassified has distance 0. When no error is found within ``eps_max`` the
distance is ``eps_max`` (the paper's convention) and ``found`` is False.

Verified errors
---------------
A search ends within a hair of the decision boundary, and a model's logits
for one image can differ in the last bits with the batch it is evaluated in;
a point found misclassified in the search's batch can then be classified
correctly on its own. Every returned point is therefore re-evaluated alone
(a forward pass of a batch of one) and its logit ``margin`` (the best other
logit minus the true-class logit, as :func:`logit_margin`; positive =
misclassified) recorded. A point the
re-check calls correct is pushed outward along its direction from ``x0`` by
1e-6, 1e-5, ..., 1e-1 of its distance until the re-check calls it
misclassified; one that never is (or ends beyond ``eps_max``) is reported as
not found (``found`` False, distance ``eps_max``). The reported distance is
that of the verified point.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from errorset import interrupts
from errorset.attacks.pgd import pgd
from errorset.attacks.steps import STEPS, default_step_size, per_image_view
from errorset.data.batches import check_unit_images
from errorset.errors import ConfigError
from errorset.registry import Registry

Model = Callable[[torch.Tensor], torch.Tensor]
#: one search per batch: factory(model, x, y, **settings) -> [(result, fallback), ...] (one per run);
#: metadata ``norms``: the norms it searches
METHODS: Registry[list[tuple[NearestError, torch.Tensor]]] = Registry("method", "method")


@dataclass
class NearestError:
    """Per image: the closest misclassified point found and its distance."""

    x: torch.Tensor
    distance: torch.Tensor
    #: an error was found within eps_max (else distance = eps_max and x = the clean image)
    found: torch.Tensor
    #: best other logit minus the true-class logit of ``x``, evaluated alone (batch of one): > 0 = misclassified
    margin: torch.Tensor | None = None

    def __iter__(self):  # so that `x_err, distance = nearest_error(...)` works
        yield self.x
        yield self.distance


def _norm(t: torch.Tensor, norm: str) -> torch.Tensor:
    return STEPS.create(norm).size(t)


def logit_margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per row, ``max_{k != y} z_k - z_y``: positive exactly where the prediction is wrong."""
    true = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.masked_fill(F.one_hot(y, logits.shape[1]).bool(), -math.inf)
    return others.amax(1) - true


def margin_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Sum over the batch of ``max_{j != y} z_j - z_y``: positive exactly where the prediction is wrong."""
    return logit_margin(logits, y).sum()


#: how far a point the alone re-check calls correct is pushed outward, as fractions of its distance
PUSH_FRACTIONS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)


@torch.no_grad()
def margin_alone(model: Model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per image, ``max_{k != y} z_k - z_y`` from a forward pass of that image alone (> 0: misclassified)."""
    out = [logit_margin(model(x[i : i + 1]).float(), y[i : i + 1]) for i in range(x.shape[0])]
    return torch.cat(out) if out else torch.empty(0, device=x.device)


@torch.no_grad()
def verify(
    model: Model,
    x0: torch.Tensor,
    y: torch.Tensor,
    result: NearestError,
    *,
    norm: str,
    eps_max: float,
    clip: bool,
    fallback: torch.Tensor | None = None,
) -> NearestError:
    """Re-check every found point alone; push the ones called correct outward until they are misclassified.

    Args:
        result: the search's points (``found`` ones are candidates).
        fallback: per image, a second candidate point tried (and pushed) when
            the first has no direction (a clean image the search's batch
            called misclassified but the re-check calls correct).

    Returns:
        The verified result with ``margin`` (of the returned point, alone);
        points never verified within ``eps_max`` become not found.
    """
    x_out = result.x.clone()
    distance = result.distance.clone()
    found = result.found.clone()
    margin = torch.empty(x0.shape[0], dtype=torch.float32, device=x0.device)
    low, high = (0.0, 1.0) if clip else (-math.inf, math.inf)
    for i in range(x0.shape[0]):
        xi, yi = x0[i : i + 1], y[i : i + 1]
        ok = False
        if found[i]:
            candidates = [result.x[i : i + 1]]
            if fallback is not None:
                candidates.append(fallback[i : i + 1])
            for point in candidates:
                delta = point - xi
                for f in (0.0, *PUSH_FRACTIONS) if bool(delta.any()) else (0.0,):
                    p = (xi + (1 + f) * delta).clamp(low, high)
                    m = margin_alone(model, p, yi)
                    if m[0] > 0:
                        ok = True
                        break
                if ok:
                    break
            if ok:
                d = float(_norm(p - xi, norm)[0])
                if d > eps_max * (1 + 1e-6):
                    ok = False
                else:
                    x_out[i : i + 1], distance[i], margin[i] = p, d, m[0]
        if not ok:
            x_out[i : i + 1] = xi
            found[i] = False
            distance[i] = eps_max
            margin[i] = margin_alone(model, xi, yi)[0]
    return NearestError(x=x_out.detach(), distance=distance, found=found, margin=margin)


@torch.no_grad()
def _wrong(model: Model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return model(x).argmax(1) != y


def nearest_error(
    model: Model,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    norm: str = "l2",
    eps_max: float = 1.0,
    steps: int = 100,
    method: str = "auto",
    gamma: float = 0.05,
    losses: tuple[str, ...] = ("margin", "cross_entropy"),
    search_steps: int = 10,
    refine_steps: int = 20,
    clip: bool = True,
    batch_size: int | None = None,
    generator: torch.Generator | None = None,
) -> NearestError:
    """The closest misclassified point to each image that gradient search finds, and its distance.

    Args:
        model: maps images to logits (keep it in eval mode).
        x: (N, ...) float images (in [0,1] when ``clip``).
        y: (N,) labels.
        norm: ``"l2"`` or ``"linf"``.
        eps_max: search radius; the distance reported when nothing is found.
        steps: gradient steps (``ddn``: in total; ``bisection``: per PGD run).
        method: ``"ddn"`` (L2 only), ``"bisection"``, or ``"auto"`` (ddn for
            L2, bisection for L-inf).
        gamma: ddn's radius change per step.
        losses: ddn's ascent losses, one search each (``steps`` split evenly
            between them); each image keeps the nearest verified error of any.
            ``"margin"`` is exact on linear models; ``"cross_entropy"`` (as in
            Rony et al. and foolbox) finds nearer errors on some trained
            networks, where the margin of one class pair misleads.
        search_steps: bisection rounds on eps (``bisection``).
        refine_steps: bisection rounds along the found direction (``ddn``).
        clip: keep points in the image domain [0,1]; turn off for points that
            are not images (e.g. Gaussian-noised inputs, whose nearest error is
            measured in all of R^n).
        batch_size: images per batch (default: all at once).
        generator: for PGD's random starts (``bisection``).

    Returns:
        :class:`NearestError` (unpacks as ``x_err, distance``), every found
        point verified misclassified alone, with its ``margin``.
    """
    if clip:
        check_unit_images(x, "x", allow_uint8=False)
    STEPS.check(norm)
    METHODS.check(method)
    if method == "auto":
        method = "ddn" if norm == "l2" else "bisection"
    if method == "ddn" and (not losses or any(loss not in LOSSES for loss in losses)):
        raise ConfigError(f"losses: expected one or more of {', '.join(LOSSES)}, got {losses!r}")
    norms = METHODS.metadata(method)["norms"]
    if norm not in norms:
        others = [m for m in METHODS.names() if m != "auto" and norm in METHODS.metadata(m)["norms"]]
        raise ConfigError(
            f"method: {method} searches {', '.join(norms)} distances only; use method={' or '.join(others)} for {norm}"
        )
    if not eps_max > 0:
        raise ConfigError(f"eps_max: expected a number > 0, got {eps_max!r}")
    if not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"steps: expected an integer >= 1, got {steps!r}")
    if not x.is_floating_point():
        raise ConfigError(f"x: expected float images, got dtype {x.dtype}")
    size = batch_size or max(x.shape[0], 1)
    parts = []
    for i in range(0, x.shape[0], size):
        interrupts.check()  # a stop request (SIGTERM, Ctrl-C) takes effect between batches
        xb, yb = x[i : i + size].detach(), y[i : i + size]
        runs = METHODS.create(
            method,
            model,
            xb,
            yb,
            norm=norm,
            eps_max=eps_max,
            steps=steps,
            gamma=gamma,
            losses=losses,
            search_steps=search_steps,
            refine_steps=refine_steps,
            clip=clip,
            generator=generator,
        )
        verified = [verify(model, xb, yb, r, norm=norm, eps_max=eps_max, clip=clip, fallback=f) for r, f in runs]
        parts.append(_nearest_of(verified))
    return NearestError(
        x=torch.cat([p.x for p in parts]),
        distance=torch.cat([p.distance for p in parts]),
        found=torch.cat([p.found for p in parts]),
        margin=torch.cat([p.margin for p in parts]),
    )


def _nearest_of(results: list[NearestError]) -> NearestError:
    """Per image, the result with the smallest distance (found ones first)."""
    best = results[0]
    for r in results[1:]:
        take = r.found & (~best.found | (r.distance < best.distance))
        best = NearestError(
            x=torch.where(per_image_view(take, best.x), r.x, best.x),
            distance=torch.where(take, r.distance, best.distance),
            found=best.found | r.found,
            margin=torch.where(take, r.margin, best.margin),
        )
    return best


LOSSES = {
    "margin": margin_loss,
    "cross_entropy": lambda logits, y: F.cross_entropy(logits, y, reduction="sum"),
}


def _ddn(
    model: Model,
    x: torch.Tensor,
    y: torch.Tensor,
    eps_max: float,
    steps: int,
    gamma: float,
    refine: int,
    clip: bool,
    loss: str = "margin",
) -> tuple[NearestError, torch.Tensor]:
    loss_fn = LOSSES[loss]
    n = x.shape[0]
    already = _wrong(model, x, y)
    # searched for every image, the already misclassified ones too: their search is the fallback when the
    # re-check of the clean image alone calls it correct
    best_norm = torch.full((n,), math.inf, dtype=x.dtype, device=x.device)
    best_delta = torch.zeros_like(x)
    delta = torch.zeros_like(x)
    eps = torch.full((n,), eps_max, dtype=x.dtype, device=x.device)
    alpha_max, alpha_min = eps_max, eps_max / 100
    for k in range(steps):
        alpha = alpha_min + 0.5 * (alpha_max - alpha_min) * (1 + math.cos(math.pi * k / steps))
        delta.requires_grad_(True)
        with torch.enable_grad():
            logits = model(x + delta)
            (grad,) = torch.autograd.grad(loss_fn(logits, y), delta)
        with torch.no_grad():
            delta = delta.detach()
            wrong = logits.argmax(1) != y
            size = _norm(delta, "l2")
            better = wrong & (size < best_norm) & (size > 0)
            best_norm = torch.where(better, size, best_norm)
            best_delta = torch.where(per_image_view(better, x), delta, best_delta)
            eps = torch.where(wrong, eps * (1 - gamma), (eps * (1 + gamma)).clamp(max=eps_max))
            g = grad / per_image_view(_norm(grad, "l2").clamp_min(1e-12), x)
            delta = delta + alpha * g
            delta = delta * per_image_view(eps / _norm(delta, "l2").clamp_min(1e-12), x)
            if clip:
                delta = (x + delta).clamp(0, 1) - x
    with torch.no_grad():
        last_wrong = _wrong(model, x + delta, y)  # the final iterate was not checked inside the loop
        size = _norm(delta, "l2")
        better = last_wrong & (size < best_norm) & (size > 0)
        best_norm = torch.where(better, size, best_norm)
        best_delta = torch.where(per_image_view(better, x), delta, best_delta)
        search = torch.isfinite(best_norm) & (best_norm <= eps_max * (1 + 1e-6))
        found = search | already
        # bisection along each found direction: the boundary is between t = lo and t = 1
        lo = torch.zeros(n, dtype=x.dtype, device=x.device)
        hi = torch.ones(n, dtype=x.dtype, device=x.device)
        for _ in range(refine if search.any() else 0):
            mid = (lo + hi) / 2
            point = x + per_image_view(mid, x) * best_delta
            if clip:
                point = point.clamp(0, 1)
            wrong = _wrong(model, point, y)
            hi = torch.where(search & wrong, mid, hi)
            lo = torch.where(search & ~wrong, mid, lo)
        x_err = x + per_image_view(hi, x) * best_delta
        if clip:
            x_err = x_err.clamp(0, 1)
        searched = torch.where(per_image_view(search, x), x_err, x)
        distance = torch.where(search, _norm(x_err - x, "l2"), torch.full_like(best_norm, eps_max))
        distance = torch.where(already, torch.zeros_like(distance), distance)
        x_err = torch.where(per_image_view(already, x), x, searched)
    return NearestError(x=x_err.detach(), distance=distance, found=found), searched.detach()


def _bisection(
    model: Model,
    x: torch.Tensor,
    y: torch.Tensor,
    norm: str,
    eps_max: float,
    steps: int,
    rounds: int,
    clip: bool,
    generator: torch.Generator | None,
) -> tuple[NearestError, torch.Tensor]:
    n = x.shape[0]
    already = _wrong(model, x, y)
    # A uniform start in a high-dimensional L2 ball lies near its surface, in a random direction that PGD's
    # projection never fully removes: it would bias L2 distances up by a few percent. L-inf starts randomly.
    random_start = norm == "linf"

    def attack(eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        adv = pgd(
            model,
            x,
            y,
            norm=norm,
            eps=eps,
            steps=steps,
            step_size=default_step_size(norm, eps, steps),
            random_start=random_start,
            generator=generator,
            clip=clip,
        )
        wrong = _wrong(model, adv, y)
        return adv, wrong, _norm(adv - x, norm)

    lo = torch.zeros(n, dtype=x.dtype, device=x.device)
    hi = torch.full((n,), eps_max, dtype=x.dtype, device=x.device)
    adv, wrong, size = attack(hi)
    found = wrong | already
    best = torch.where(per_image_view(wrong, x), adv, x)
    hi = torch.where(wrong, size, hi)
    for _ in range(rounds):
        mid = (lo + hi) / 2
        adv, wrong, size = attack(mid)
        better = found & wrong & (size < hi)
        best = torch.where(per_image_view(better, x), adv, best)
        hi = torch.where(better, size, hi)
        lo = torch.where(found & ~wrong, mid, lo)
    distance = torch.where(already, 0.0, torch.where(found, hi, eps_max)).to(x.dtype)
    searched = best
    best = torch.where(per_image_view(already, x), x, best)
    return NearestError(x=best.detach(), distance=distance, found=found), searched.detach()


@METHODS.register("ddn", norms=("l2",))
def _ddn_runs(model, x, y, *, eps_max, steps, gamma, losses, refine_steps, clip, **_):
    """Decoupled direction and norm, one search per loss (``steps`` split evenly)."""
    each = max(1, steps // len(losses))
    return [_ddn(model, x, y, eps_max, each, gamma, refine_steps, clip, loss) for loss in losses]


@METHODS.register("bisection", norms=("l2", "linf"))
def _bisection_runs(model, x, y, *, norm, eps_max, steps, search_steps, clip, generator, **_):
    """Bisection on the radius of PGD."""
    return [_bisection(model, x, y, norm, eps_max, steps, search_steps, clip, generator)]


@METHODS.register("auto", norms=("l2", "linf"))
def _auto_runs(model, x, y, *, norm, **settings):
    """ddn for L2, bisection for L-inf."""
    return METHODS.create("ddn" if norm == "l2" else "bisection", model, x, y, norm=norm, **settings)
