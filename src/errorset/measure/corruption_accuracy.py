"""Accuracy under the corruptions, per corruption x severity x storage format, and its summaries.

Plain functions on tensors (the ``errorset eval-corruptions`` job is a shell
around them):

* :func:`evaluate_corruptions` corrupts a test set batch by batch (seeded,
  so every model sees the same corrupted images) and measures a model's
  accuracy on each corruption and severity after each storage format
  (:mod:`~errorset.corruptions.formats`);
* :func:`summarize` averages over severities (per corruption), over the
  benchmark corruptions without ``gaussian_noise`` (the paper's "All": Ford
  et al. leave it out because their models are trained on Gaussian noise),
  and over every evaluated corruption (the plain mean);
* :func:`corruption_errors` gives Hendrycks & Dietterich's corruption error
  relative to a baseline model: ``CE_c = sum_s E_{c,s} / sum_s E^base_{c,s}``
  (E = 1 - accuracy) and mCE, the mean of ``CE_c`` over the benchmark
  corruptions evaluated for both, as a percentage (the baseline scores 100).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from errorset.corruptions.apply import corrupt
from errorset.corruptions.catalog import ALL_CORRUPTIONS, BENCHMARK_CORRUPTIONS, check_corruption
from errorset.corruptions.formats import FORMATS, store
from errorset.corruptions.tables import TABLES, check_severity
from errorset.errors import ConfigError, DataError
from errorset.measure.common import eval_mode
from errorset.progress import counter

#: left out of the paper's "All" (its models are trained on Gaussian noise)
ALL_EXCLUDES = ("gaussian_noise",)

#: accuracy table: corruption -> severity -> accuracy
AccuracyTable = dict[str, dict[int, float]]


@dataclass
class CorruptionResults:
    """One model's accuracy under the corruptions.

    Attributes:
        accuracy: format -> corruption -> severity -> accuracy (fraction correct).
        clean: format -> accuracy on the uncorrupted images after that storage.
        n_images: test images per corruption and severity.
        table: severity table used (``cifar10`` or ``imagenet``).
        seed: generator seed of the corruptions.
        images: :func:`images_digest` of the test images and labels measured
            ("" in files written before errorset recorded it).
    """

    accuracy: dict[str, AccuracyTable]
    clean: dict[str, float]
    n_images: int
    table: str
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    images: str = ""

    @property
    def formats(self) -> list[str]:
        return list(self.accuracy)

    def rows(self) -> list[dict[str, Any]]:
        """Long form: one ``{"format", "corruption", "severity", "accuracy"}`` per measurement."""
        return [
            {"format": fmt, "corruption": name, "severity": int(s), "accuracy": float(a)}
            for fmt, tab in self.accuracy.items()
            for name, sev in tab.items()
            for s, a in sorted(sev.items())
        ]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (severities become strings)."""
        return {
            "accuracy": {
                f: {c: {str(s): a for s, a in sev.items()} for c, sev in t.items()} for f, t in self.accuracy.items()
            },
            "clean": dict(self.clean),
            "n_images": self.n_images,
            "table": self.table,
            "seed": self.seed,
            "images": self.images,
            **({"extra": self.extra} if self.extra else {}),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CorruptionResults:
        """Inverse of :meth:`to_dict`."""
        try:
            acc = {
                str(f): {str(c): {int(s): float(a) for s, a in sev.items()} for c, sev in t.items()}
                for f, t in d["accuracy"].items()
            }
            return cls(
                accuracy=acc,
                clean={str(k): float(v) for k, v in d.get("clean", {}).items()},
                n_images=int(d["n_images"]),
                table=str(d["table"]),
                seed=int(d.get("seed", 0)),
                extra=dict(d.get("extra", {})),
                images=str(d.get("images", "")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ConfigError(f"not a corruption results record ({type(e).__name__}: {e})") from None


def images_digest(x: torch.Tensor, y: torch.Tensor) -> str:
    """A short SHA-256 digest of test images and their labels: two results measured on the same images share it."""
    h = hashlib.sha256()
    for t in (x, y):
        t = t.detach().cpu().contiguous()
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()[:16]


def check_comparable(
    results: CorruptionResults, baseline: CorruptionResults, what: str = "model", against: str = "corruptions.baseline"
) -> None:
    """Raise :class:`DataError` unless ``results`` and ``baseline`` were measured on the same images, seed and table.

    mCE divides one model's errors by another's corruption by corruption; with
    different test images, corruption seeds or severity tables the ratio
    compares different tasks. ``what`` and ``against`` name the two results
    in the message (e.g. a file or a variant, and the setting that chose the
    baseline).
    """
    if not results.images or not baseline.images:
        old = against if not baseline.images else what
        raise DataError(
            f"{against}: the results of {old} do not record which images they were measured on (written by an "
            "older errorset); re-run errorset eval-corruptions for it before computing mCE"
        )
    diffs = [
        f"{name} {a!r} vs {b!r}"
        for name, a, b in (
            ("images", results.images, baseline.images),
            ("n_images", results.n_images, baseline.n_images),
            ("seed", results.seed, baseline.seed),
            ("table", results.table, baseline.table),
        )
        if a != b
    ]
    if diffs:
        raise DataError(
            f"{against}: {what} and the baseline were measured differently ({'; '.join(diffs)}); mCE needs "
            "both on the same test images (corruptions.n_images, seed), corruption seed and severity table"
        )


@torch.no_grad()
def _correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    return int((model(x).argmax(dim=1) == y).sum())


@torch.no_grad()
def evaluate_corruptions(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    corruptions: Sequence[str] = ALL_CORRUPTIONS,
    severities: Sequence[int] = (1, 2, 3, 4, 5),
    formats: Sequence[str] = tuple(FORMATS),
    table: str = "cifar10",
    seed: int = 0,
    batch_size: int = 250,
    jpeg_quality: int = 85,
    progress: bool = False,
) -> CorruptionResults:
    """Accuracy of ``model`` on ``x`` under every corruption, severity and storage format.

    Each batch is corrupted once (on the model's device, generator seed
    ``seed``, image ``i`` keyed by its index, so the result does not depend
    on ``batch_size``) and then stored in every format.

    Args:
        model: maps float images in [0,1] to logits.
        x: test images, uint8 or float in [0,1], N x C x H x W.
        y: labels (N,).
        jpeg_quality: quality of the ``jpeg`` format (85: ImageNet-C's files).

    Returns:
        :class:`CorruptionResults` (accuracy as a fraction of ``N``).
    """

    names = [check_corruption(c, "corruptions") for c in corruptions]
    sevs = [check_severity(s, "severities") for s in severities]
    fmts = [FORMATS.check(f, "formats") for f in formats]
    TABLES.check(table)
    if x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise ConfigError(f"x, y: expected N > 0 images and N labels, got {x.shape[0]} and {y.shape[0]}")
    if batch_size < 1:
        raise ConfigError(f"batch_size: expected an integer >= 1, got {batch_size}")
    n = x.shape[0]
    clean = dict.fromkeys(fmts, 0)
    correct = {f: {c: dict.fromkeys(sevs, 0) for c in names} for f in fmts}
    steps = counter(total=(len(names) * len(sevs) + 1), desc="corruptions", enabled=progress)
    with eval_mode(model) as device:
        y = y.to(device)
        for i in range(0, n, batch_size):
            xb = x[i : i + batch_size].to(device)
            xb = xb.float() / 255 if xb.dtype == torch.uint8 else xb.float()
            yb = y[i : i + batch_size]
            for f in fmts:
                clean[f] += _correct(model, store(xb, f, jpeg_quality=jpeg_quality), yb)
        steps.update(1)
        for name in names:
            for s in sevs:
                for i in range(0, n, batch_size):
                    xb = x[i : i + batch_size].to(device)
                    xb = xb.float() / 255 if xb.dtype == torch.uint8 else xb.float()
                    yb = y[i : i + batch_size]
                    xc = corrupt(xb, name, s, table, torch.Generator().manual_seed(seed), start_index=i)
                    for f in fmts:
                        correct[f][name][s] += _correct(model, store(xc, f, jpeg_quality=jpeg_quality), yb)
                steps.update(1)
    steps.close()
    return CorruptionResults(
        accuracy={f: {c: {s: v / n for s, v in sev.items()} for c, sev in t.items()} for f, t in correct.items()},
        clean={f: v / n for f, v in clean.items()},
        n_images=n,
        table=table,
        seed=seed,
        images=images_digest(x, y),
    )


@torch.no_grad()
def released_accuracy(
    model: nn.Module,
    load: Callable[[str, int], tuple[torch.Tensor, torch.Tensor]],
    corruptions: Sequence[str],
    severities: Sequence[int] = (1, 2, 3, 4, 5),
    *,
    batch_size: int = 250,
    progress: bool = False,
) -> AccuracyTable:
    """Accuracy of ``model`` on released files: ``load(corruption, severity) -> (uint8 images, labels)``.

    ``load`` is e.g. ``functools.partial(load_cifar10c, root, limit=1000)``;
    corruptions whose files are missing raise the loader's error.
    """

    out: AccuracyTable = {}
    steps = counter(total=len(corruptions) * len(severities), desc="released", enabled=progress)
    with eval_mode(model) as device:
        for name in corruptions:
            out[name] = {}
            for s in severities:
                x, y = load(name, s)
                correct = 0
                for i in range(0, x.shape[0], batch_size):
                    xb = x[i : i + batch_size].to(device).float() / 255
                    correct += _correct(model, xb, y[i : i + batch_size].to(device))
                out[name][int(s)] = correct / max(x.shape[0], 1)
                steps.update(1)
    steps.close()
    return out


def _mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values)) if values else float("nan")


@dataclass
class Summary:
    """Averages of one accuracy table.

    Attributes:
        per_corruption: corruption -> accuracy averaged over its severities.
        all: the paper's "All": mean of ``per_corruption`` over the evaluated
            benchmark corruptions other than gaussian_noise (NaN if none).
        mean: plain mean of ``per_corruption`` over every evaluated corruption.
    """

    per_corruption: dict[str, float]
    all: float
    mean: float


def in_all(corruption: str) -> bool:
    """Whether ``corruption`` counts in the paper's "All": a benchmark corruption other than gaussian_noise."""
    return corruption in BENCHMARK_CORRUPTIONS and corruption not in ALL_EXCLUDES


def summarize(table: AccuracyTable) -> Summary:
    """Per-corruption means over severities, the paper's "All" (without gaussian_noise), and the plain mean."""
    per = {c: _mean(list(sev.values())) for c, sev in table.items() if sev}
    return Summary(
        per_corruption=per, all=_mean([v for c, v in per.items() if in_all(c)]), mean=_mean(list(per.values()))
    )


@dataclass
class CorruptionErrors:
    """Corruption errors relative to a baseline (percent; the baseline scores 100).

    Attributes:
        ce: corruption -> ``100 * sum_s (1 - a) / sum_s (1 - a_baseline)`` over shared severities.
        mce: mean of ``ce`` over the benchmark corruptions (NaN if none is shared).
    """

    ce: dict[str, float]
    mce: float


def corruption_errors(table: AccuracyTable, baseline: AccuracyTable) -> CorruptionErrors:
    """Hendrycks & Dietterich's CE per corruption and mCE of ``table`` relative to ``baseline``."""
    ce: dict[str, float] = {}
    for c, sev in table.items():
        base = baseline.get(c)
        if not base:
            continue
        shared = [s for s in sev if s in base]
        err = sum(1 - sev[s] for s in shared)
        base_err = sum(1 - base[s] for s in shared)
        if shared:
            ce[c] = 100 * err / base_err if base_err > 0 else (100.0 if err == 0 else math.inf)
    mce = _mean([v for c, v in ce.items() if c in BENCHMARK_CORRUPTIONS])
    return CorruptionErrors(ce=ce, mce=mce)
