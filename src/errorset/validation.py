"""Range and name checks of a resolved :class:`~errorset.config.Config`.

Each check raises one :class:`~errorset.errors.ConfigError` naming the key and
what was expected, before any work (or any MLflow run) starts.
"""

from __future__ import annotations

import math

from errorset.config import Config
from errorset.errors import ConfigError


def _require(ok: bool, key: str, expected: str, value: object) -> None:
    if not ok:
        raise ConfigError(f"{key}: expected {expected}, got {value!r}")


def validate(cfg: Config) -> None:
    """Raise :class:`ConfigError` for the first invalid value in ``cfg``."""
    from errorset.attacks import STEPS
    from errorset.data import DATASETS
    from errorset.measure.common import PRECISIONS
    from errorset.models import MODELS
    from errorset.train.fit import SCHEDULES
    from errorset.train.modes import ATTACK_MODES, MODES

    DATASETS.check(cfg.data.name)
    MODES.check(cfg.train.mode)
    if cfg.model.name is not None:
        MODELS.check(cfg.model.name)
    _require(cfg.device == "auto" or _is_device(cfg.device), "device", "auto, cpu, cuda, cuda:N or mps", cfg.device)
    precision = cfg.measure_precision
    _require(precision in PRECISIONS, "measure_precision", " or ".join(PRECISIONS), precision)
    _require(isinstance(cfg.deterministic, bool), "deterministic", "true or false", cfg.deterministic)

    t = cfg.train
    _require(t.sigma_max >= 0 and math.isfinite(t.sigma_max), "train.sigma_max", "a number >= 0", t.sigma_max)
    if t.epochs is not None:
        _require(t.epochs >= 1, "train.epochs", "an integer >= 1", t.epochs)
    if t.batch_size is not None:
        _require(t.batch_size >= 1, "train.batch_size", "an integer >= 1", t.batch_size)
    if t.lr is not None:
        _require(t.lr > 0 and math.isfinite(t.lr), "train.lr", "a number > 0", t.lr)
    if t.momentum is not None:
        _require(0 <= t.momentum < 1, "train.momentum", "a number in [0, 1)", t.momentum)
    if t.weight_decay is not None:
        _require(t.weight_decay >= 0, "train.weight_decay", "a number >= 0", t.weight_decay)
    if t.lr_gamma is not None:
        _require(t.lr_gamma > 0, "train.lr_gamma", "a number > 0", t.lr_gamma)
    if t.milestones is not None:
        _require(all(m >= 1 for m in t.milestones), "train.milestones", "epochs >= 1", t.milestones)
    if t.schedule is not None:
        _require(t.schedule in SCHEDULES, "train.schedule", f"one of {', '.join(SCHEDULES)}", t.schedule)
    if t.warmup_fraction is not None:
        _require(0 <= t.warmup_fraction < 1, "train.warmup_fraction", "a number in [0, 1)", t.warmup_fraction)
    if t.label_smoothing is not None:
        _require(0 <= t.label_smoothing < 1, "train.label_smoothing", "a number in [0, 1)", t.label_smoothing)
    _require(t.holdout >= 0, "train.holdout", "an integer >= 0", t.holdout)
    for key in ("subset", "test_images"):
        v = getattr(t, key)
        if v is not None:
            _require(v >= 0, f"train.{key}", "an integer >= 0 (0 = all)", v)

    a = t.adversarial
    STEPS.check(a.norm, "train.adversarial.norm")
    if a.eps is not None:
        _require(a.eps >= 0 and math.isfinite(a.eps), "train.adversarial.eps", "a number >= 0", a.eps)
    if a.step_size is not None:
        _require(a.step_size > 0, "train.adversarial.step_size", "a number > 0", a.step_size)
    if a.steps is not None:
        _require(a.steps >= 1, "train.adversarial.steps", "an integer >= 1", a.steps)
    if a.attack_mode not in ATTACK_MODES:
        raise ConfigError(
            f"train.adversarial.attack_mode: unknown mode {a.attack_mode!r}; valid modes: {', '.join(ATTACK_MODES)}"
        )

    e = cfg.eval
    _require(len(e.sigmas) > 0, "eval.sigmas", "a non-empty list of numbers >= 0", e.sigmas)
    _require(all(s >= 0 and math.isfinite(s) for s in e.sigmas), "eval.sigmas", "numbers >= 0", e.sigmas)
    _require(e.trials >= 1, "eval.trials", "an integer >= 1", e.trials)
    _require(e.batch_size >= 1, "eval.batch_size", "an integer >= 1", e.batch_size)
    if e.n_images is not None:
        _require(e.n_images >= 0, "eval.n_images", "an integer >= 0 (0 = all)", e.n_images)

    an = cfg.analyze
    _require(0 < an.mu < 0.5, "analyze.mu", "an error rate in (0, 0.5)", an.mu)
    _require(0 < an.max_rel_error < 1, "analyze.max_rel_error", "a number in (0, 1)", an.max_rel_error)
    _require(0 < an.level < 1, "analyze.level", "a confidence level in (0, 1)", an.level)
    if an.samples is not None:
        need = math.ceil(1 / an.mu)
        _require(an.samples >= need, "analyze.samples", f"an integer >= 1/analyze.mu = {need}", an.samples)
        _check_sigma_samples("analyze.samples", an.samples, "analyze.mu", an.mu, an.max_rel_error)
    for key, v in (("analyze.images", an.images), ("analyze.noisy.images", an.noisy.images)):
        if v is not None:
            _require(v >= 0, key, "an integer >= 0 (0 = all)", v)
    for key, v in (
        ("analyze.nearest.steps", an.nearest.steps),
        ("analyze.noisy.steps", an.noisy.steps),
        ("analyze.noisy.samples", an.noisy.samples),
    ):
        if v is not None:
            _require(v >= 1, key, "an integer >= 1", v)
    _require(0 < an.rtol < 1, "analyze.rtol", "a number in (0, 1)", an.rtol)
    _require(all(s > 0 for s in an.error_rate_sigmas), "analyze.error_rate_sigmas", "numbers > 0", an.error_rate_sigmas)
    _require(all(s > 0 for s in an.optimal_sigmas), "analyze.optimal_sigmas", "numbers > 0", an.optimal_sigmas)
    STEPS.check(an.nearest.norm, "analyze.nearest.norm")
    _require(an.nearest.eps_max > 0, "analyze.nearest.eps_max", "a number > 0", an.nearest.eps_max)
    _require(an.noisy.sigma > 0, "analyze.noisy.sigma", "a number > 0", an.noisy.sigma)
    _require(0 < an.noisy.q < 1, "analyze.noisy.q", "a quantile in (0, 1)", an.noisy.q)
    _require(an.noisy.eps_max > 0, "analyze.noisy.eps_max", "a number > 0", an.noisy.eps_max)
    _require(an.group_size >= 1, "analyze.group_size", "an integer >= 1", an.group_size)
    _require(an.batch_size >= 1, "analyze.batch_size", "an integer >= 1", an.batch_size)

    at = cfg.attack
    _require(all(e >= 0 for e in at.linf_eps), "attack.linf_eps", "numbers >= 0", at.linf_eps)
    _require(all(e >= 0 for e in at.l2_eps), "attack.l2_eps", "numbers >= 0", at.l2_eps)
    _require(bool(at.linf_eps or at.l2_eps), "attack.linf_eps, attack.l2_eps", "at least one radius", [])
    if at.steps is not None:
        _require(at.steps >= 1, "attack.steps", "an integer >= 1", at.steps)
    if at.images is not None:
        _require(at.images >= 0, "attack.images", "an integer >= 0 (0 = all)", at.images)
    if at.step_ratio is not None:
        _require(at.step_ratio > 0, "attack.step_ratio", "a number > 0", at.step_ratio)
    _require(at.batch_size >= 1, "attack.batch_size", "an integer >= 1", at.batch_size)
    _require(at.restarts >= 1, "attack.restarts", "an integer >= 1", at.restarts)
    if at.restarts > 1 and not at.random_start:
        raise ConfigError("attack.restarts: restarts > 1 need attack.random_start: true (else every run is the same)")

    sw = cfg.sweep
    if "median_sigma" in sw.objectives:
        _require(0 < sw.mu < 0.5, "sweep.mu", "an error rate in (0, 0.5)", sw.mu)
        _check_sigma_samples("sweep.sigma_samples", sw.sigma_samples, "sweep.mu", sw.mu, an.max_rel_error)

    img = cfg.data.imagefolder
    if img.image_size is not None:
        _require(img.image_size >= 1, "data.imagefolder.image_size", "an integer >= 1", img.image_size)

    _validate_corruptions(cfg)
    _validate_sweep(cfg)


def _validate_corruptions(cfg: Config) -> None:
    """The ``corruptions`` group (the corruption benchmark)."""
    from errorset.corruptions import check_table_setting, expand_corruptions
    from errorset.corruptions.formats import FORMATS

    c = cfg.corruptions
    if c.names is not None:
        _require(len(c.names) > 0, "corruptions.names", "a non-empty list of corruptions, or null for all 19", c.names)
        expand_corruptions(c.names, "corruptions.names")
    _check_severities(c.severities, "corruptions.severities")
    check_table_setting(c.table, "corruptions.table")
    _require(len(c.formats) > 0, "corruptions.formats", f"a non-empty list of {', '.join(FORMATS.names())}", c.formats)
    for i, f in enumerate(c.formats):
        FORMATS.check(f, f"corruptions.formats[{i}]")
    _require(1 <= c.jpeg_quality <= 100, "corruptions.jpeg_quality", "an integer from 1 to 100", c.jpeg_quality)
    if c.n_images is not None:
        _require(c.n_images >= 0, "corruptions.n_images", "an integer >= 0 (0 = all)", c.n_images)
    _require(c.batch_size >= 1, "corruptions.batch_size", "an integer >= 1", c.batch_size)
    _require(c.gallery_index >= 0, "corruptions.gallery_index", "an integer >= 0", c.gallery_index)


def _check_severities(severities: list[int], key: str) -> None:
    """A non-empty list of corruption severities, each an integer 1-5 (the one severity check)."""
    from errorset.corruptions import check_severity

    _require(len(severities) > 0, key, "a non-empty list of integers 1-5", severities)
    for i, severity in enumerate(severities):
        check_severity(severity, f"{key}[{i}]")


def _validate_sweep(cfg: Config) -> None:
    """The ``sweep`` group: counts, the objectives and their settings, sampler, pruner, space and fixed keys.

    The space's values themselves (does each bound give a valid config?) are checked when the
    study is prepared (:func:`errorset.jobs.sweep_study.check_space`), which resolves a config per bound.
    """
    from errorset.corruptions import check_table_setting
    from errorset.corruptions.formats import FORMATS
    from errorset.measure.corruption_accuracy import in_all
    from errorset.sweep.objectives import OBJECTIVES, corruption_names
    from errorset.sweep.space import parse_fixed, parse_space
    from errorset.sweep.strategies import PRUNERS, SAMPLERS

    s = cfg.sweep
    _require(s.n_trials >= 1, "sweep.n_trials", "an integer >= 1", s.n_trials)
    _require(len(s.objectives) > 0, "sweep.objectives", "at least one objective name", s.objectives)
    _require(len(set(s.objectives)) == len(s.objectives), "sweep.objectives", "each objective once", s.objectives)
    for name in s.objectives:
        OBJECTIVES.check(name)
    if "corruption_accuracy" in s.objectives:
        c = s.corruptions
        expected = (
            "at least one benchmark corruption other than gaussian_noise "
            '(the objective is the paper\'s "All", which leaves gaussian_noise out)'
        )
        _require(any(in_all(name) for name in corruption_names(cfg)), "sweep.corruptions.names", expected, c.names)
        _check_severities(c.severities, "sweep.corruptions.severities")
        check_table_setting(c.table, "sweep.corruptions.table")
        FORMATS.check(c.format, "sweep.corruptions.format")
    PRUNERS.check(s.pruner)
    SAMPLERS.check(s.sampler)
    for key, value in (
        ("workers", s.workers),
        ("heartbeat_interval", s.heartbeat_interval),
        ("validation_images", s.validation_images),
        ("sigma_samples", s.sigma_samples),
    ):
        _require(value >= 1, f"sweep.{key}", "an integer >= 1", value)
    _require(s.max_retry >= 0, "sweep.max_retry", "an integer >= 0", s.max_retry)
    _require(bool(s.study_name.strip()), "sweep.study_name", "a non-empty name", s.study_name)
    for where, keys in (("sweep.space", [p.key for p in parse_space(s.space)]), ("sweep.fixed", parse_fixed(s.fixed))):
        for key in keys:
            if key == "seed" or key.startswith(("data.", "device", "tracking.")):
                raise ConfigError(
                    f"{where}.{key}: every trial must share the data, seed and tracking settings "
                    "(the held-out validation images depend on them)"
                )


def _check_sigma_samples(key: str, samples: int, mu_key: str, mu: float, max_rel_error: float) -> None:
    """sigma(x0, mu) from ``samples`` noise draws must have a relative standard error <= analyze.max_rel_error."""
    from errorset.measure.sigma_search import relative_std_error

    err = relative_std_error(mu, samples)
    if err > max_rel_error:
        need = next(n for n in range(samples, 10**9, 10) if relative_std_error(mu, n) <= max_rel_error)
        raise ConfigError(
            f"{key}: {samples} noise samples estimate sigma(x0, {mu_key}={mu:g}) with a relative standard "
            f"error of {err:.3f}, more than analyze.max_rel_error = {max_rel_error:g}; use {key} >= {need} "
            f"(fewer images, not fewer samples, where time is short) or raise analyze.max_rel_error"
        )


def _is_device(text: str) -> bool:
    import torch

    try:
        torch.device(text)
    except RuntimeError:
        return False
    return True
