"""Devices, seeds and random generators."""

from __future__ import annotations

import random

import numpy as np
import torch

from errorset.errors import ConfigError


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` -> cuda when available, else cpu; otherwise the named device, checked."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device: {name!r} requested but CUDA is not available; use device=auto or cpu")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device: {name!r} requested but MPS is not available; use device=auto or cpu")
    return dev


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and every GPU)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch.Generator on ``device`` seeded with ``seed``."""
    return torch.Generator(device=device).manual_seed(seed)
