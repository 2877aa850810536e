"""``errorset compare-corruptions``: several models' corruption results side by side.

It reads what ``eval-corruptions`` wrote for several models (by default every
variant of ``params.yaml``) and draws them side by side (the paper's Tables 1-4
and Figure 6 top), with mCE relative to a baseline variant; nothing is measured.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from errorset.config import Config
from errorset.errors import ConfigError
from errorset.jobs.common import start_job_run
from errorset.jobs.eval_corruptions import headline_metrics, load_results, resolve_baseline, summary_metrics
from errorset.measure.corruption_accuracy import CorruptionResults, summarize
from errorset.results import COMPARISON, COMPARISON_METRICS, COMPARISON_TABLE, write_csv, write_json


@dataclass
class CompareResult:
    run_id: str
    output_dir: Path
    metrics: dict[str, float]


def compare_corruptions(cfg: Config, *, progress: bool = True) -> CompareResult:
    """Side-by-side results of several models (default: every variant), with mCE relative to the baseline."""
    from errorset.plots.corruptions import plot_corruption_bars
    from errorset.plots.style import save_figure

    c = cfg.corruptions
    sources = c.compare or [str(Path("reports", v, "corruptions")) for v in cfg.variants]
    if not sources:
        raise ConfigError("corruptions.compare: no results to compare (give folders, or define variants)")
    models: dict[str, CorruptionResults] = {}
    for i, src in enumerate(sources):
        p = Path(src)
        label = p.parent.name if p.name == "corruptions" else (p.parent.parent.name if p.suffix else p.name)
        models[label or f"model{i}"] = load_results(p, f"corruptions.compare[{i}]")
    baseline = resolve_baseline(cfg)
    formats = list(dict.fromkeys(f for r in models.values() for f in r.accuracy))
    summaries: dict[str, dict[str, dict[str, float]]] = {f: {} for f in formats}
    flat: dict[str, float] = {}
    headlines: dict[str, dict[str, float]] = {}
    rows: list[dict[str, Any]] = []
    for label, res in models.items():
        m, record = summary_metrics(res, baseline, label)
        headlines[label] = headline_metrics(m)
        flat.update({f"{label}/{k}": v for k, v in headlines[label].items()})
        flat.update({f"detail/{label}/{k}": v for k, v in m.items() if k.count("/") == 1})
        for fmt in res.accuracy:
            s = summarize(res.accuracy[fmt])
            summaries[fmt][label] = {**s.per_corruption, "All": s.all}
            rows.append(
                {
                    "model": label,
                    "format": fmt,
                    "clean": res.clean.get(fmt, float("nan")),
                    "all": s.all,
                    "mean": s.mean,
                    "mce": record[fmt].get("mce", float("nan")),
                }
            )
    out = Path(c.compare_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, ["model", "format", "clean", "all", "mean", "mce"], out / COMPARISON_TABLE)
    write_json(headlines, out / COMPARISON_METRICS)  # DVC metrics: a few numbers per model
    write_json(
        {f"{r['model']}/{r['format']}": {k: r[k] for k in ("clean", "all", "mean", "mce")} for r in rows},
        out / COMPARISON,
    )
    fig = plot_corruption_bars(summaries, title="Accuracy under corruptions: models side by side, by storage format")
    save_figure(fig, out / "bars.png")
    params = {"corruptions.compare": json.dumps(sources), "corruptions.baseline": c.baseline or ""}
    tags = {"baseline": c.baseline or ""}
    with start_job_run(cfg, "compare-corruptions", variant=None, params=params, tags=tags) as run:
        run.log_metrics(flat)
        run.log_table({k: [r[k] for r in rows] for k in rows[0]}, "corruption_comparison.json")
        run.log_figure(fig, "corruption_bars.png")
        return CompareResult(run_id=run.run_id, output_dir=out, metrics=flat)
