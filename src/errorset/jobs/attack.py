"""``errorset attack``: accuracy under PGD L-inf and L2 over a grid of radii (Figure 6, bottom)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from errorset.config import Config
from errorset.files import check_writable
from errorset.jobs.common import load_trained, measuring_job, output_dir
from errorset.measure.robustness import SCORING, lp_robustness
from errorset.results import ATTACK_METRICS, ATTACK_SUMMARY, ATTACK_TABLE, write_csv, write_json
from errorset.runtime import make_generator

#: the DVC metrics file: the headline numbers only
#: the radii of the headline metrics (the paper's L-inf 8/255; L2 0.5), where the grids have them
HEADLINE_EPS = {"linf": 8 / 255, "l2": 0.5}


@dataclass
class AttackResult:
    run_id: str
    output_dir: Path
    results: dict[str, list[dict[str, float]]]


def metric_key(norm: str, eps: float) -> str:
    """The MLflow key of the long tail: ``detail/pgd_accuracy/linf/eps_0.01569``."""
    return f"detail/pgd_accuracy/{norm}/eps_{eps:.4g}"


def headline_key(norm: str, eps: float) -> str:
    """``pgd_linf_0.0314`` (the accuracy under PGD at L-inf radius 8/255), ``pgd_l2_0.5``."""
    return f"pgd_{norm}_{eps:.3g}"


def headline_metrics(results: dict[str, list[dict[str, float]]]) -> dict[str, float]:
    """The accuracy under PGD at each norm's :data:`HEADLINE_EPS`, where its grid has that radius."""
    out = {}
    for norm, rows in results.items():
        eps = HEADLINE_EPS.get(norm)
        for r in rows:
            if eps is not None and math.isclose(r["eps"], eps, rel_tol=1e-6):
                out[headline_key(norm, eps)] = r["accuracy"]
    return out


@measuring_job
def attack(cfg: Config, *, progress: bool = True) -> AttackResult:
    """Attack the model at ``attack.checkpoint``; write ``attack.json`` and ``attack.csv`` and log them."""
    a = cfg.attack
    assert a.steps is not None and a.step_ratio is not None, "resolve the config first"
    trained = load_trained(cfg, a.checkpoint, a.images or 0, progress=progress, parameter="attack.checkpoint")
    out = check_writable(output_dir(a.output_dir, trained), "attack.output_dir")  # before attacking, not after
    radii = {norm: grid for norm, grid in (("linf", a.linf_eps), ("l2", a.l2_eps)) if grid}
    results = lp_robustness(
        trained.model,
        trained.x,
        trained.y,
        radii,
        steps=a.steps,
        step_ratio=a.step_ratio,
        random_start=a.random_start,
        restarts=a.restarts,
        batch_size=a.batch_size,
        generator=make_generator(cfg.seed, trained.device),
        progress=progress,
    )
    summary = {
        **results,
        "images": len(trained.x),
        "steps": a.steps,
        "step_ratio": a.step_ratio,
        "restarts": a.restarts,
        "scoring": SCORING,
    }
    write_json(summary, out / ATTACK_SUMMARY)
    headline = headline_metrics(results)
    write_json(headline, out / ATTACK_METRICS)
    table = [{"norm": norm, "eps": r["eps"], "accuracy": r["accuracy"]} for norm, rs in results.items() for r in rs]
    write_csv(table, ["norm", "eps", "accuracy"], out / ATTACK_TABLE)

    from errorset.plots.measurements import lp_robustness as plot

    with trained.start_run("attack", params={"attack.images_used": len(trained.x)}) as run:
        detail = {metric_key(norm, r["eps"]): r["accuracy"] for norm, rows in results.items() for r in rows}
        run.log_metrics({**headline, **detail})
        run.log_table(
            {
                "norm": [n for n, rows in results.items() for _ in rows],
                "eps": [r["eps"] for rows in results.values() for r in rows],
                "accuracy": [r["accuracy"] for rows in results.values() for r in rows],
            },
            "attack_table.json",
        )
        run.log_figure(plot({trained.name: results}), "lp_robustness.png")
        run.log_artifact(out / ATTACK_SUMMARY)
        run.log_artifact(out / ATTACK_METRICS)
        return AttackResult(run_id=run.run_id, output_dir=out, results=results)
