"""What every measurement shares: the float32 eval-mode context, the model's device, batched noisy forward passes.

The precision rule
------------------
Measurements (accuracy in noise, error rates, the sigma search, nearest
errors, eps*_q, PGD accuracy, corruption accuracy) run in float32 with TF32
matrix products off and autocast disabled, whatever ``train.amp`` says: a
distance to a decision boundary or a 1% error rate is a small difference of
large logits, which reduced precision moves. :func:`eval_mode` enforces this
for the duration of a measurement and restores everything afterwards; a caller
that really wants reduced precision sets ``measure_precision: autocast`` in
the config (jobs enter :func:`measurement_precision`; the logged config
records it) or passes ``precision="autocast"``.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

import torch
from torch import nn

from errorset.attacks.nearest import logit_margin
from errorset.errors import ConfigError

#: the settings :func:`eval_mode` accepts: float32 (the rule) or autocast (reduced precision, asked for)
PRECISIONS = ("float32", "autocast")

# The precision a measurement runs in when its caller does not say: set for a whole job by
# :func:`measurement_precision` (from the config's ``measure_precision``), float32 otherwise.
_CURRENT_PRECISION: contextvars.ContextVar[str] = contextvars.ContextVar("measure_precision", default="float32")


def check_precision(precision: str, name: str = "measure_precision") -> str:
    """Return ``precision`` if it is one of :data:`PRECISIONS`, else raise one clear error naming ``name``."""
    if precision not in PRECISIONS:
        raise ConfigError(f"{name}: expected one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def current_precision() -> str:
    """The precision measurements run in here: ``"float32"`` unless :func:`measurement_precision` says otherwise."""
    return _CURRENT_PRECISION.get()


@contextlib.contextmanager
def measurement_precision(precision: str) -> Iterator[str]:
    """Run every measurement in the body at ``precision`` (``"float32"`` or ``"autocast"``); restores on exit.

    Jobs wrap their measurements in this with the config's ``measure_precision``,
    so that a user who asks for reduced precision gets it everywhere and the
    run's logged config says so. Measurement functions pick it up through
    :func:`eval_mode`; an explicit ``precision=`` argument there wins.
    """
    token = _CURRENT_PRECISION.set(check_precision(precision))
    try:
        yield precision
    finally:
        _CURRENT_PRECISION.reset(token)


def autocast_dtype(device: torch.device) -> torch.dtype:
    """The reduced-precision dtype autocast uses on ``device``: bf16 on CPUs and bf16-capable GPUs, else fp16."""
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for parameterless modules)."""
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


@contextlib.contextmanager
def eval_mode(model: nn.Module, *, precision: str | None = None) -> Iterator[torch.device]:
    """Evaluate ``model`` in eval mode and full float32 precision; yields its device.

    On entry: ``model.eval()``. With ``precision="float32"`` (the default
    everywhere unless a job set ``measure_precision``) TF32 is switched off
    for CUDA matrix products and convolutions and any enclosing autocast is
    disabled; with ``"autocast"`` the body runs under autocast at
    :func:`autocast_dtype`. On exit the model's train/eval mode and the TF32
    flags are restored, also when the body raises.

    Args:
        model: the classifier to measure.
        precision: ``"float32"`` or ``"autocast"``; None (the default) =
            :func:`current_precision`.
    """
    precision = check_precision(precision if precision is not None else current_precision(), "precision")
    device = model_device(model)
    was_training = model.training
    flags = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    model.eval()
    try:
        if precision == "float32":
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
            with torch.autocast(device_type=device.type, enabled=False):
                yield device
        else:
            with torch.autocast(device_type=device.type, dtype=autocast_dtype(device)):
                yield device
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags
        model.train(was_training)


@torch.no_grad()
def misclassified(
    model: nn.Module,
    x0: torch.Tensor,
    y: torch.Tensor,
    sigma: torch.Tensor,
    noise: torch.Tensor,
    *,
    images: torch.Tensor | None = None,
    batch_size: int = 1024,
    clip: bool = False,
) -> torch.Tensor:
    """Which noisy points ``x0[i] + sigma[i] * noise[i, j]`` the model gets wrong.

    Args:
        x0: (B, C, H, W) clean images in [0,1], on the model's device.
        y: (B,) labels.
        sigma: (B,) noise scale per image.
        noise: (B, S, C, H, W) standard normal directions (kept across calls
            for common random numbers).
        images: indices of the images to evaluate (default: all B).
        batch_size: noisy images per forward pass.
        clip: clip noisy images to [0,1].

    Returns:
        (len(images), S) boolean tensor, True where the prediction differs from ``y``.
    """
    return noisy_margins(model, x0, y, sigma, noise, images=images, batch_size=batch_size, clip=clip) > 0


@torch.no_grad()
def noisy_margins(
    model: nn.Module,
    x0: torch.Tensor,
    y: torch.Tensor,
    sigma: torch.Tensor,
    noise: torch.Tensor,
    *,
    images: torch.Tensor | None = None,
    samples: torch.Tensor | None = None,
    batch_size: int = 1024,
    clip: bool = False,
) -> torch.Tensor:
    """Logit margins ``max_{k != y} z_k - z_y`` of the noisy points ``x0[i] + sigma[i] * noise[i, j]``.

    A margin > 0 is a misclassified point (ties, margin 0, count as correct).

    Args:
        x0: (B, C, H, W) clean images in [0,1], on the model's device.
        y: (B,) labels.
        sigma: (B,) noise scale per image, or (len(images), len(samples)) one per noisy point.
        noise: (B, S, C, H, W) standard normal directions (kept across calls
            for common random numbers).
        images: indices of the images to evaluate (default: all B).
        samples: indices of the noise directions to evaluate (default: all S).
        batch_size: noisy images per forward pass.
        clip: clip noisy images to [0,1].

    Returns:
        (len(images), len(samples)) float32 margins.
    """
    b, s = noise.shape[:2]
    dev = x0.device
    idx = images if images is not None else torch.arange(b, device=dev)
    cols = samples if samples is not None else torch.arange(s, device=dev)
    k = len(cols)
    owner = idx.repeat_interleave(k)  # image of each (image, sample) row
    rows = owner * s + cols.repeat(len(idx))  # its row in the flattened noise
    scale = sigma.index_select(0, idx).repeat_interleave(k) if sigma.ndim == 1 else sigma.reshape(-1)
    flat_noise = noise.reshape(b * s, *noise.shape[2:])
    view = [-1] + [1] * (x0.ndim - 1)
    out = torch.empty(len(rows), dtype=torch.float32, device=dev)
    for start in range(0, len(rows), batch_size):
        img = owner[start : start + batch_size]
        z = flat_noise.index_select(0, rows[start : start + batch_size]).to(x0.dtype)
        noisy = x0.index_select(0, img) + scale[start : start + batch_size].view(view).to(x0.dtype) * z
        if clip:
            noisy = noisy.clamp(0.0, 1.0)
        out[start : start + len(img)] = logit_margin(model(noisy).float(), y.index_select(0, img))
    return out.view(len(idx), k)


def image_batches(n_images: int, per_image_elements: int, n_samples: int, budget: int) -> list[slice]:
    """Split ``range(n_images)`` so that a batch's noise (images x samples x elements) fits ``budget`` floats."""
    per_batch = max(1, budget // max(1, per_image_elements * n_samples))
    return [slice(i, min(i + per_batch, n_images)) for i in range(0, n_images, per_batch)]
