"""``errorset attack``: accuracy under PGD L-inf and L2 over a grid of radii (Figure 6, bottom)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from errorset.config import Config
from errorset.files import check_writable
from errorset.jobs.common import load_trained, measuring_job, output_dir, write_csv, write_json
from errorset.measure.robustness import SCORING, lp_robustness
from errorset.runtime import make_generator

SUMMARY = "attack.json"
TABLE = "attack.csv"


@dataclass
class AttackResult:
    run_id: str
    output_dir: Path
    results: dict[str, list[dict[str, float]]]


def metric_key(norm: str, eps: float) -> str:
    return f"pgd_accuracy/{norm}/eps_{eps:.4g}"


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
    write_json(summary, out / SUMMARY)
    table = [{"norm": norm, "eps": r["eps"], "accuracy": r["accuracy"]} for norm, rs in results.items() for r in rs]
    write_csv(table, ["norm", "eps", "accuracy"], out / TABLE)

    from errorset import tracking
    from errorset.plots.measurements import lp_robustness as plot

    with tracking.start_run(trained.config, run_name=f"{trained.name}/attack", tags=trained.tags("attack")) as run:
        run.log_config(trained.config)
        run.log_params({"attack.images_used": len(trained.x)})
        run.log_metrics({metric_key(norm, r["eps"]): r["accuracy"] for norm, rows in results.items() for r in rows})
        run.log_table(
            {
                "norm": [n for n, rows in results.items() for _ in rows],
                "eps": [r["eps"] for rows in results.values() for r in rows],
                "accuracy": [r["accuracy"] for rows in results.values() for r in rows],
            },
            "attack_table.json",
        )
        run.log_figure(plot({trained.name: results}), "lp_robustness.png")
        run.log_artifact(out / SUMMARY)
        return AttackResult(run_id=run.run_id, output_dir=out, results=results)
