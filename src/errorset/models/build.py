"""Create models from names, and save and load them with everything needed to rebuild them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from errorset.errors import CheckpointError
from errorset.files import atomic_write
from errorset.models.registry import MODELS
from errorset.models.wrapper import Classifier

MODEL_FORMAT = "errorset.model/1"


def create_model(
    name: str,
    *,
    input_shape: Sequence[int],
    num_classes: int,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    pretrained: bool = False,
) -> Classifier:
    """Build the registered model ``name`` for images of ``input_shape`` (C, H, W) in [0,1].

    Args:
        mean, std: per-channel normalisation applied inside the wrapper
            (default 0 and 1; pretrained timm models use their own).
        pretrained: timm models only; loads pretrained weights.
    """
    meta = MODELS.metadata(name)
    c = int(input_shape[0])
    shape = tuple(int(s) for s in input_shape)
    kwargs: dict[str, Any] = {}
    if meta.get("pretrained", False):
        kwargs["pretrained"] = pretrained
        if pretrained:
            from errorset.models.timm_models import timm_normalization

            norm = timm_normalization(name.removeprefix("timm:"))
            if norm is not None and len(norm[0]) == c:
                mean, std = norm
    spec = {
        "name": name,
        "input_shape": list(shape),
        "num_classes": int(num_classes),
        "mean": [float(m) for m in (mean if mean is not None else [0.0] * c)],
        "std": [float(s) for s in (std if std is not None else [1.0] * c)],
    }
    net = MODELS.create(name, shape, int(num_classes), **kwargs)
    return Classifier(net, spec, channels_last=bool(meta.get("channels_last", False)))


def save_model(model: Classifier, path: str | Path, **extra: Any) -> Path:
    """Write ``model`` (spec + weights + ``extra`` metadata) to ``path`` atomically."""
    path = Path(path)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {"format": MODEL_FORMAT, "spec": model.spec, "state_dict": state, **extra}
    atomic_torch_save(payload, path)
    return path


def atomic_torch_save(obj: Any, path: Path) -> None:
    """torch.save to a temporary file, then rename: a crash never leaves a half-written file."""
    with atomic_write(path) as f:
        torch.save(obj, f)


def read_model_file(path: str | Path, parameter: str = "checkpoint") -> dict[str, Any]:
    """The raw payload of a model.pt written by :func:`save_model`; ``parameter`` names the setting in errors.

    Read with ``weights_only=True``: a model file is data, and a file that
    needs more than tensors and plain containers is refused, never unpickled.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{parameter}: no model file at {path}")
    payload = load_weights_only(path, parameter, "an errorset model file")
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
        raise CheckpointError(f"{parameter}: {path} is not an errorset model file (expected format {MODEL_FORMAT})")
    return payload


def load_weights_only(path: Path, parameter: str, what: str) -> Any:
    """``torch.load(path, weights_only=True)``, with one clear line naming ``parameter`` when it fails.

    torch's own message for a refused file suggests ``weights_only=False``,
    which for a file of unknown origin means running its code: that advice is
    not passed on.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for corrupt or foreign files
        raise CheckpointError(
            f"{parameter}: {path} is not {what} (torch could not read it as tensors and plain data: "
            f"{type(e).__name__}); it was not loaded"
        ) from None


def load_model(
    path: str | Path, map_location: str | torch.device = "cpu", *, parameter: str = "checkpoint"
) -> Classifier:
    """Rebuild a :class:`Classifier` from a model.pt, in eval mode, on ``map_location``."""
    payload = read_model_file(path, parameter)
    spec = payload["spec"]
    model = create_model(
        spec["name"],
        input_shape=spec["input_shape"],
        num_classes=spec["num_classes"],
        mean=spec["mean"],
        std=spec["std"],
    )
    model.load_state_dict(payload["state_dict"])
    return model.to(map_location).eval()
