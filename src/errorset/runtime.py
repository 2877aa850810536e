"""Devices, seeds and random generators."""

from __future__ import annotations

import hashlib
import os
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


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (AVX-512 BF16 or AMX tiles).

    Elsewhere oneDNN emulates bf16 in float32 and autocast only slows training down.
    """
    cpu = torch.backends.cpu
    if cpu.get_cpu_capability() not in ("AVX512", "AMX"):
        return False
    checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(check() for check in checks if check is not None)


def seed_everything(seed: int, *, deterministic: bool | None = None) -> None:
    """Seed Python, NumPy and torch (CPU and every GPU); with ``deterministic`` also set the kernel flags.

    ``deterministic=None`` leaves the kernel flags as they are.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic is not None:
        set_deterministic(deterministic)


def set_deterministic(enabled: bool) -> None:
    """Switch torch to deterministic kernels (``enabled``) or back to its fast defaults.

    Seeds alone make CPU runs repeatable; on GPUs cuDNN's autotuner and some
    atomics-based kernels still differ run to run. Enabled: cuDNN benchmark
    off and deterministic on, ``torch.use_deterministic_algorithms(True)``
    (an operation with no deterministic kernel raises, naming itself) and
    ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` for cuBLAS (set before the first
    CUDA matrix product of the process for it to take effect).
    """
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = enabled
    torch.use_deterministic_algorithms(enabled)


def derived_seed(seed: int, *parts: object) -> int:
    """A 63-bit seed derived from ``seed`` and ``parts`` (e.g. a stream name and an epoch), stable across runs."""
    text = "/".join(str(p) for p in (seed, *parts))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def make_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch.Generator on ``device`` seeded with ``seed``."""
    return torch.Generator(device=device).manual_seed(seed)
