"""The paper's findings as verdict rules on what errorset measured: holds, does not hold, or not measured.

Each rule is written out in :data:`RULES` (the reproduction report prints them) and
applied to the measurements of a set of models of known training mode
(:class:`ModelEvidence`: the medians of ``analysis.json`` with their bootstrap
intervals, accuracy in noise, accuracy under PGD). A comparison is made on
the point estimates (medians, accuracies); the evidence shows every interval,
and the report says how many comparisons are also significant (disjoint 95%
intervals). A finding whose measurements are missing is "not measured", never
guessed. The paper's statements are paraphrased with the figure or table they
come from (Ford, Gilmer, Carlini and Cubuk, ICML 2019).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from errorset.measure.intervals import clopper_pearson

HOLDS, FAILS, NOT_MEASURED = "holds", "does not hold", "not measured"

#: Figure 2: a median ratio counts as "near 1" when its interval meets [1 / NEAR, NEAR]
NEAR = 1.25
#: Figure 4: eps*_q is "close to" the bound when the median ratio is at least this
CLOSE = 0.75
#: Figure 6: the PGD radii compared (L-inf 8/255, L2 0.5), matched within 10%
PGD_RADII = {"linf": 8 / 255, "l2": 0.5}
#: Figure 7: accuracies in noise compared from this sigma on
NOISE_FROM = 0.1


@dataclass(frozen=True)
class ModelEvidence:
    """What was measured on one model.

    Args:
        label: its name in the report (the variant).
        mode: how it was trained: ``clean``, ``gaussian`` or ``adversarial``.
        sigma_max: Gaussian augmentation's largest sigma (gaussian mode).
        analysis: ``analysis.json``: median records ``{"median", "lo", "hi", "n", ...}`` by name.
        noise: rows ``{"sigma", "accuracy"}`` of accuracy in Gaussian noise.
        noise_images: images each noise accuracy was measured on (for its Clopper-Pearson interval).
        attack: ``{norm: [{"eps", "accuracy"}, ...]}``: accuracy under PGD.
        attack_images: images attacked.
    """

    label: str
    mode: str
    sigma_max: float = 0.0
    analysis: Mapping[str, Any] | None = None
    noise: Sequence[Mapping[str, float]] = ()
    noise_images: int | None = None
    attack: Mapping[str, Sequence[Mapping[str, float]]] | None = None
    attack_images: int | None = None


@dataclass(frozen=True)
class Finding:
    """One finding of the paper and its verdict here."""

    key: str
    source: str
    claim: str
    verdict: str
    evidence: list[str] = field(default_factory=list)
    #: comparisons made and how many of them have disjoint intervals
    significant: tuple[int, int] | None = None


#: finding key -> the rule, as the report prints it
RULES: dict[str, str] = {
    "distance_ratio": (
        "For every clean or Gaussian-augmented model, the 95% interval of the median of d(x0, E) / "
        f"(-sigma(x0, 0.01) Phi^-1(0.01)) over correctly classified images meets [{1 / NEAR:.2f}, {NEAR:.2f}]; "
        "for every adversarially trained model its upper end is at least 1."
    ),
    "isoperimetric": (
        "For every model with eps*_q measured, the lower end of the interval of the median eps*_q / bound "
        f"is at most 1 (not significantly above the bound) and the median is at least {CLOSE} (close to it)."
    ),
    "sigma_and_distance": (
        "Each augmented or adversarially trained model has a larger median sigma(x0, 0.01) and a larger "
        "median d(x0, E) than the clean model (correctly classified images); the Gaussian model with the "
        "largest sigma_max has a larger median sigma than the adversarial model, which has the larger median d."
    ),
    "corruptions": "Not yet evaluated by the report: the corruption results are not read by this rule set.",
    "train_test_noise": "Not yet evaluated: needs the training accuracy in noise of a model trained at sigma 0.15.",
    "pgd": (
        "Accuracy under PGD at L-inf 8/255 (and L2 0.5 where measured): the Gaussian model with the largest "
        "sigma_max is above the clean model, and the adversarial model above it."
    ),
    "noise_order": (
        f"At every sigma >= {NOISE_FROM} measured on all models, every augmented or adversarially trained "
        "model is at least as accurate in noise as the clean one, and of two Gaussian models the one trained "
        "with the larger sigma_max is at least as accurate from sigma 0.2 on."
    ),
    "compression": "Not yet evaluated: the comparison of in-memory and compressed corruptions is not read here.",
}

_CLAIMS = {
    "distance_ratio": (
        "Figure 2",
        "the nearest error lies where a linear model with the same error rate in noise "
        "puts it: the ratio is near 1 for clean and noise-trained models, at least 1 for adversarial training",
    ),
    "isoperimetric": ("Figure 4", "eps*_q lies close to, and never significantly above, the isoperimetric bound"),
    "sigma_and_distance": (
        "Section 5, Figure 2",
        "Gaussian augmentation and adversarial training both move "
        "sigma(x0, 0.01) and d(x0, E) outward; noise moves sigma more, adversarial training d",
    ),
    "corruptions": (
        "Tables 2 and 4",
        'both improve the corruption benchmark\'s "All" over the clean model; noise '
        "helps the noise corruptions most, adversarial training the blurs; both lose on fog and contrast",
    ),
    "train_test_noise": (
        "Appendix C, Table 5",
        "a model trained in noise at sigma 0.15 is far more accurate in that "
        "noise on its training images than on test images",
    ),
    "pgd": (
        "Figure 6",
        "Gaussian augmentation improves L-inf and L2 PGD accuracy moderately, adversarial training more",
    ),
    "noise_order": (
        "Figure 7 (left)",
        "in Gaussian noise, models trained with noise (more noise: more so at large "
        "sigma) and adversarially trained models beat the clean model",
    ),
    "compression": (
        "Tables 1 and 3, Figure 5",
        "stored losslessly (CIFAR-10-C) the corruptions measure as in "
        "memory; stored as JPEG (ImageNet-C) the noise corruptions measure easier",
    ),
}


def _record(ev: ModelEvidence, *names: str) -> dict[str, Any] | None:
    """The first median record of ``names`` that was measured (n >= 1 and a finite median)."""
    for name in names:
        r = (ev.analysis or {}).get(name)
        if isinstance(r, Mapping) and r.get("n") and r.get("median") is not None and math.isfinite(r["median"]):
            # an interval without an end (too few images, or censored ones) is open on that side
            lo, hi = r.get("lo"), r.get("hi")
            return {**r, "lo": -math.inf if lo is None else lo, "hi": math.inf if hi is None else hi}
    return None


def _shown(r: Mapping[str, Any]) -> str:
    return f"{r['median']:.3g} [{r['lo']:.3g}, {r['hi']:.3g}] (n={r['n']})"


def _accuracy(acc: float, n: int | None) -> dict[str, Any]:
    """An accuracy as a record with its Clopper-Pearson interval (none without a count)."""
    if not n:
        return {"median": acc, "lo": acc, "hi": acc, "n": 0}
    lo, hi = clopper_pearson(round(acc * n), n)
    return {"median": acc, "lo": float(lo), "hi": float(hi), "n": n}


def _above(a: Mapping[str, Any], b: Mapping[str, Any], tally: list[int], *, ties: bool = False) -> bool:
    """``a`` above ``b`` on the point estimates; counts the comparison and whether the intervals are disjoint."""
    tally[0] += 1
    tally[1] += a["lo"] > b["hi"]
    return a["median"] >= b["median"] if ties else a["median"] > b["median"]


def _finding(key: str, verdict: str, evidence: list[str], tally: list[int] | None = None) -> Finding:
    source, claim = _CLAIMS[key]
    significant = (tally[0], tally[1]) if tally and tally[0] else None
    return Finding(key, source, claim, verdict, evidence, significant)


def _by_mode(models: Sequence[ModelEvidence]) -> tuple[ModelEvidence | None, list[ModelEvidence], ModelEvidence | None]:
    clean = next((m for m in models if m.mode == "clean"), None)
    gaussian = sorted((m for m in models if m.mode == "gaussian"), key=lambda m: m.sigma_max)
    adversarial = next((m for m in models if m.mode == "adversarial"), None)
    return clean, gaussian, adversarial


def _per_model(
    key: str,
    models: Sequence[ModelEvidence],
    record: str,
    ok: Callable[[ModelEvidence, dict[str, Any]], bool],
    missing: str,
) -> Finding:
    """A finding that each model's median ``record`` must pass on its own; ``missing`` when no model has it."""
    evidence, passed = [], []
    for m in models:
        r = _record(m, record)
        if r is not None:
            passed.append(ok(m, r))
            evidence.append(f"{m.label}: {_shown(r)}")
    if not passed:
        return _finding(key, NOT_MEASURED, [missing])
    return _finding(key, HOLDS if all(passed) else FAILS, evidence)


def distance_ratio(models: Sequence[ModelEvidence]) -> Finding:
    """Figure 2: the median nearest-error distance over its linear prediction."""

    def near(m: ModelEvidence, r: dict[str, Any]) -> bool:
        return r["hi"] >= 1 if m.mode == "adversarial" else r["lo"] <= NEAR and r["hi"] >= 1 / NEAR

    return _per_model("distance_ratio", models, "distance_ratio", near, "no model has a distance ratio (run analyze)")


def isoperimetric(models: Sequence[ModelEvidence]) -> Finding:
    """Figure 4: eps*_q over the isoperimetric bound."""
    return _per_model(
        "isoperimetric",
        models,
        "eps_star_over_bound",
        lambda m, r: r["lo"] <= 1 and r["median"] >= CLOSE,
        "no model has eps*_q with an error rate in (0, 1/2)",
    )


def sigma_and_distance(models: Sequence[ModelEvidence]) -> Finding:
    """Section 5: augmentation and adversarial training move sigma(x0, 0.01) and d(x0, E) outward."""
    clean, gaussian, adversarial = _by_mode(models)
    if clean is None or not gaussian or adversarial is None:
        return _finding("sigma_and_distance", NOT_MEASURED, ["needs a clean, a Gaussian and an adversarial model"])

    def medians(m: ModelEvidence) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        return _record(m, "sigma_at_mu_correct", "sigma_at_mu"), _record(
            m, "nearest_distance_correct", "nearest_distance"
        )

    got = {m.label: medians(m) for m in (clean, *gaussian, adversarial)}
    if any(s is None or d is None for s, d in got.values()):
        return _finding("sigma_and_distance", NOT_MEASURED, ["a model lacks sigma(x0, 0.01) or d(x0, E) (run analyze)"])
    tally = [0, 0]
    (s0, d0), strongest = got[clean.label], gaussian[-1]
    checks = []
    for m in (*gaussian, adversarial):
        s, d = got[m.label]
        checks += [_above(s, s0, tally), _above(d, d0, tally)]
    (sg, dg), (sa, da) = got[strongest.label], got[adversarial.label]
    checks += [_above(sg, sa, tally), _above(da, dg, tally)]
    evidence = [f"{label}: sigma {_shown(s)}, d {_shown(d)}" for label, (s, d) in got.items()]
    return _finding("sigma_and_distance", HOLDS if all(checks) else FAILS, evidence, tally)


def pgd(models: Sequence[ModelEvidence]) -> Finding:
    """Figure 6: accuracy under PGD of the augmented and adversarially trained models."""
    clean, gaussian, adversarial = _by_mode(models)
    if clean is None or not gaussian or adversarial is None:
        return _finding("pgd", NOT_MEASURED, ["needs a clean, a Gaussian and an adversarial model"])
    trio = (clean, gaussian[-1], adversarial)
    tally, checks, evidence = [0, 0], [], []
    for norm, radius in PGD_RADII.items():
        at = []
        for m in trio:
            rows = (m.attack or {}).get(norm) or []
            row = next((r for r in rows if math.isclose(r["eps"], radius, rel_tol=0.1)), None)
            at.append(None if row is None else _accuracy(row["accuracy"], m.attack_images))
        if any(a is None for a in at):
            continue
        c, g, a = at
        checks += [_above(g, c, tally), _above(a, g, tally)]
        evidence.append(
            f"{norm} {radius:.4g}: " + ", ".join(f"{m.label} {_shown(r)}" for m, r in zip(trio, at, strict=True))
        )
    if not checks:
        return _finding("pgd", NOT_MEASURED, ["no PGD accuracy at L-inf 8/255 or L2 0.5 on all three (run attack)"])
    return _finding("pgd", HOLDS if all(checks) else FAILS, evidence, tally)


def noise_order(models: Sequence[ModelEvidence]) -> Finding:
    """Figure 7 (left): accuracy in Gaussian noise, ordered by training."""
    clean, gaussian, adversarial = _by_mode(models)
    others = [*gaussian, *([adversarial] if adversarial else [])]
    if clean is None or not others or not all(m.noise for m in (clean, *others)):
        return _finding("noise_order", NOT_MEASURED, ["needs a clean and another model evaluated in noise"])
    table = {
        m.label: {round(r["sigma"], 6): _accuracy(r["accuracy"], m.noise_images) for r in m.noise}
        for m in (clean, *others)
    }
    sigmas = sorted(set.intersection(*(set(t) for t in table.values())))
    sigmas = [s for s in sigmas if s >= NOISE_FROM]
    if not sigmas:
        return _finding("noise_order", NOT_MEASURED, [f"no sigma >= {NOISE_FROM} measured on every model"])
    tally, checks = [0, 0], []
    for s in sigmas:
        base = table[clean.label][s]
        checks += [_above(table[m.label][s], base, tally, ties=True) for m in others]
        if s >= 0.2:
            checks += [
                _above(table[hi.label][s], table[lo.label][s], tally, ties=True)
                for lo, hi in itertools.pairwise(gaussian)
                if hi.sigma_max > lo.sigma_max
            ]
    evidence = [
        f"sigma {s:g}: "
        + ", ".join(f"{label} {t[s]['median']:.3f} [{t[s]['lo']:.3f}, {t[s]['hi']:.3f}]" for label, t in table.items())
        for s in sigmas
    ]
    return _finding("noise_order", HOLDS if all(checks) else FAILS, evidence, tally)


def check_findings(models: Sequence[ModelEvidence]) -> list[Finding]:
    """Every finding of :data:`RULES`, in the paper's order of the reproduction report."""
    pending = {
        key: _finding(key, NOT_MEASURED, [RULES[key]]) for key in ("corruptions", "train_test_noise", "compression")
    }
    return [
        distance_ratio(models),
        isoperimetric(models),
        sigma_and_distance(models),
        pending["corruptions"],
        pending["train_test_noise"],
        pgd(models),
        noise_order(models),
        pending["compression"],
    ]


def render_markdown(findings: Sequence[Finding], *, settings: Sequence[str] = ()) -> str:
    """The reproduction report: one row per finding (paper, ours, verdict), then the rules and settings."""
    lines = [
        "# Reproduction of Ford et al. (2019): the paper's findings, one by one",
        "",
        "| # | finding (paper) | verdict | ours (medians or accuracies, 95% intervals) | significant |",
        "| --- | --- | --- | --- | --- |",
    ]
    for i, f in enumerate(findings, 1):
        sig = f"{f.significant[1]} of {f.significant[0]}" if f.significant else ""
        ours = "<br>".join(f.evidence)
        lines.append(f"| {i} | {f.source}: {f.claim} | **{f.verdict}** | {ours} | {sig} |")
    lines += ["", "## Rules", ""]
    lines += [f"{i}. {RULES[f.key]}" for i, f in enumerate(findings, 1)]
    lines += [
        "",
        "Comparisons are made on the point estimates; *significant* counts those whose 95% intervals are disjoint.",
        "Accuracy intervals are Clopper-Pearson over the images measured (conservative for averages over noise draws).",
    ]
    if settings:
        lines += ["", "## Settings", "", *[f"- {s}" for s in settings]]
    return "\n".join(lines) + "\n"
