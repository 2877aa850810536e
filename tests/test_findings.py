"""The reproduction report's verdict rules on constructed measurements: a case that holds, one that does not."""

from __future__ import annotations

import dataclasses

import pytest

from errorset.findings import (
    FAILS,
    HOLDS,
    NOT_MEASURED,
    RULES,
    ModelEvidence,
    check_findings,
    distance_ratio,
    isoperimetric,
    noise_order,
    pgd,
    render_markdown,
    sigma_and_distance,
)


def rec(median: float, lo: float | None = None, hi: float | None = None, n: int = 30) -> dict:
    return {
        "median": median,
        "lo": median * 0.9 if lo is None else lo,
        "hi": median * 1.1 if hi is None else hi,
        "n": n,
    }


def model(label, mode, sigma_max=0.0, *, sigma, d, ratio, eps_ratio, noise, linf, l2):
    return ModelEvidence(
        label=label,
        mode=mode,
        sigma_max=sigma_max,
        analysis={
            "sigma_at_mu_correct": rec(sigma),
            "nearest_distance_correct": rec(d),
            "distance_ratio": rec(ratio),
            "eps_star_over_bound": rec(eps_ratio, n=5),
        },
        noise=[{"sigma": s, "accuracy": a} for s, a in noise.items()],
        noise_images=1000,
        attack={
            "linf": [{"eps": 2 / 255, "accuracy": 0.9}, {"eps": 8 / 255, "accuracy": linf}],
            "l2": [{"eps": 0.5, "accuracy": l2}],
        },
        attack_images=200,
    )


def paper_like() -> list[ModelEvidence]:
    """Four models ordered as the paper finds them."""
    return [
        model(
            "clean",
            "clean",
            sigma=0.05,
            d=0.20,
            ratio=1.0,
            eps_ratio=0.95,
            noise={0: 0.9, 0.1: 0.5, 0.2: 0.3},
            linf=0.0,
            l2=0.05,
        ),
        model(
            "g01",
            "gaussian",
            0.1,
            sigma=0.12,
            d=0.40,
            ratio=1.05,
            eps_ratio=0.9,
            noise={0: 0.88, 0.1: 0.8, 0.2: 0.6},
            linf=0.05,
            l2=0.2,
        ),
        model(
            "g04",
            "gaussian",
            0.4,
            sigma=0.25,
            d=0.60,
            ratio=0.9,
            eps_ratio=0.97,
            noise={0: 0.8, 0.1: 0.78, 0.2: 0.75},
            linf=0.1,
            l2=0.3,
        ),
        model(
            "adv",
            "adversarial",
            sigma=0.15,
            d=0.90,
            ratio=1.3,
            eps_ratio=0.85,
            noise={0: 0.7, 0.1: 0.6, 0.2: 0.5},
            linf=0.4,
            l2=0.5,
        ),
    ]


def replace(models, label, **changes):
    return [dataclasses.replace(m, **changes) if m.label == label else m for m in models]


def with_analysis(models, label, key, record):
    return [dataclasses.replace(m, analysis={**m.analysis, key: record}) if m.label == label else m for m in models]


def test_every_finding_holds_on_models_ordered_as_in_the_paper():
    findings = check_findings(paper_like())
    assert len(findings) == len(RULES) == 8
    verdicts = {f.key: f.verdict for f in findings}
    assert verdicts == {
        "distance_ratio": HOLDS,
        "isoperimetric": HOLDS,
        "sigma_and_distance": HOLDS,
        "corruptions": NOT_MEASURED,
        "train_test_noise": NOT_MEASURED,
        "pgd": HOLDS,
        "noise_order": HOLDS,
        "compression": NOT_MEASURED,
    }


def test_a_clean_model_far_from_its_linear_prediction_breaks_figure_2():
    models = with_analysis(paper_like(), "clean", "distance_ratio", rec(2.0, 1.6, 2.4))
    assert distance_ratio(models).verdict == FAILS
    # an adversarial model may lie beyond the prediction, not significantly short of it
    assert distance_ratio(with_analysis(paper_like(), "adv", "distance_ratio", rec(3.0, 2.0, 4.0))).verdict == HOLDS
    assert distance_ratio(with_analysis(paper_like(), "adv", "distance_ratio", rec(0.6, 0.5, 0.8))).verdict == FAILS


def test_eps_star_significantly_above_its_bound_or_far_below_breaks_figure_4():
    assert isoperimetric(with_analysis(paper_like(), "g01", "eps_star_over_bound", rec(1.3, 1.1, 1.5))).verdict == FAILS
    assert isoperimetric(with_analysis(paper_like(), "g01", "eps_star_over_bound", rec(0.5, 0.4, 0.6))).verdict == FAILS
    # n = 0: nothing measured on any model
    empty = [with_analysis([m], m.label, "eps_star_over_bound", rec(1.0, n=0))[0] for m in paper_like()]
    assert isoperimetric(empty).verdict == NOT_MEASURED


def test_sigma_and_distance_needs_both_moved_out_and_the_right_one_more():
    assert sigma_and_distance(with_analysis(paper_like(), "g04", "sigma_at_mu_correct", rec(0.1))).verdict == FAILS
    # adversarial training raising sigma above the strongest noise model's contradicts the paper
    assert sigma_and_distance(with_analysis(paper_like(), "adv", "sigma_at_mu_correct", rec(0.3))).verdict == FAILS
    finding = sigma_and_distance(paper_like())
    total, disjoint = finding.significant
    assert total == 8 and 0 < disjoint <= total
    assert sigma_and_distance([m for m in paper_like() if m.mode != "adversarial"]).verdict == NOT_MEASURED


def test_pgd_order_and_matching_of_the_radius():
    assert pgd(replace(paper_like(), "adv", attack={"linf": [{"eps": 8 / 255, "accuracy": 0.05}]})).verdict == FAILS
    # no attack at 8/255 or 0.5: not measured rather than guessed
    far = {"linf": [{"eps": 2 / 255, "accuracy": 0.5}]}
    assert pgd([dataclasses.replace(m, attack=far) for m in paper_like()]).verdict == NOT_MEASURED


def test_noise_order_compares_from_sigma_0_1_and_the_noise_models_among_themselves_from_0_2():
    # the clean model may be the most accurate without noise
    assert noise_order(paper_like()).verdict == HOLDS
    worse = replace(
        paper_like(),
        "g04",
        noise=[{"sigma": 0, "accuracy": 0.8}, {"sigma": 0.1, "accuracy": 0.78}, {"sigma": 0.2, "accuracy": 0.55}],
    )
    assert noise_order(worse).verdict == FAILS  # below gaussian-0.1 at sigma 0.2
    below_clean = replace(paper_like(), "adv", noise=[{"sigma": 0.1, "accuracy": 0.4}, {"sigma": 0.2, "accuracy": 0.5}])
    assert noise_order(below_clean).verdict == FAILS


def test_missing_measurements_are_not_measured_and_the_markdown_shows_every_rule():
    bare = [ModelEvidence(m.label, m.mode, m.sigma_max) for m in paper_like()]
    assert {f.verdict for f in check_findings(bare)} == {NOT_MEASURED}
    text = render_markdown(check_findings(paper_like()), settings=["profile cpu"])
    assert text.count("**holds**") == 5 and text.count("**not measured**") == 3
    for rule in RULES.values():
        assert rule in text
    assert "- profile cpu" in text


@pytest.mark.parametrize("n", [200, 1000])
def test_accuracy_intervals_in_the_evidence_are_clopper_pearson(n):
    from scipy.stats import beta

    models = [dataclasses.replace(m, attack_images=n) for m in paper_like()]
    evidence = pgd(models).evidence[0]
    lo = beta.ppf(0.025, 0.4 * n, n - 0.4 * n + 1)
    assert f"adv 0.4 [{lo:.3g}," in evidence


def test_an_interval_without_an_end_is_open_on_that_side():
    open_above = {"median": 1.1, "lo": 0.9, "hi": None, "n": 3}
    finding = distance_ratio(with_analysis(paper_like(), "clean", "distance_ratio", open_above))
    assert finding.verdict == HOLDS and "inf" in finding.evidence[0]
    open_below = {"median": 0.5, "lo": None, "hi": 0.7, "n": 3}  # wholly below [0.8, 1.25] all the same
    assert distance_ratio(with_analysis(paper_like(), "clean", "distance_ratio", open_below)).verdict == FAILS
