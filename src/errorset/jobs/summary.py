"""``errorset summary``: one table of every variant's headline numbers, read from the result files.

Each result folder (``report.inputs``, default ``reports/<variant>`` for every
variant of ``params.yaml``) may hold the DVC metrics files of evaluate
(``metrics.json``), analyze (``analysis_metrics.json``), attack
(``attack_metrics.json``) and eval-corruptions (``corruptions/metrics.json``);
mCE comes from there or, where eval-corruptions had no baseline, from
compare-corruptions' ``<corruptions.compare_dir>/metrics.json``. A number whose
job has not run is shown as ``-``. Nothing is measured and no MLflow run is made.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from errorset.config import Config
from errorset.jobs.attack import HEADLINE_EPS, headline_key
from errorset.jobs.evaluate import HEADLINE_SIGMA
from errorset.jobs.report import input_folders
from errorset.results import (
    ANALYSIS_METRICS,
    ATTACK_METRICS,
    COMPARISON_METRICS,
    CORRUPTION_METRICS,
    EVALUATE_METRICS,
    read_json,
)


@dataclass(frozen=True)
class Column:
    """One column of the table: its heading, the file (relative to a result folder) and the key there."""

    heading: str
    file: str
    key: str


def columns(mu: float) -> tuple[Column, ...]:
    """The table's columns (``mu``: analyze.mu, which names the median sigma(x0, mu) key)."""
    linf = HEADLINE_EPS["linf"]
    return (
        Column("clean acc", EVALUATE_METRICS, "clean_accuracy"),
        Column(f"acc sigma={HEADLINE_SIGMA:g}", EVALUATE_METRICS, f"accuracy_sigma_{HEADLINE_SIGMA:g}"),
        Column(f"median sigma(x0,{mu:g})", ANALYSIS_METRICS, f"median_sigma_{mu:g}"),
        Column("median d(x0,E)", ANALYSIS_METRICS, "median_distance"),
        Column("PGD Linf 8/255", ATTACK_METRICS, headline_key("linf", linf)),
        Column("corruption All", f"corruptions/{CORRUPTION_METRICS}", "corruption_all"),
        Column("mCE", f"corruptions/{CORRUPTION_METRICS}", "mce"),
    )


def summary_rows(cfg: Config) -> list[dict[str, Any]]:
    """One row per result folder: ``variant`` (the folder's name) and each column's number (None: not run)."""
    compared = read_json(Path(cfg.corruptions.compare_dir) / COMPARISON_METRICS)
    rows = []
    for folder in input_folders(cfg):
        row: dict[str, Any] = {"variant": folder.name}
        for col in columns(cfg.analyze.mu):
            value = read_json(folder / col.file).get(col.key)
            if value is None and col.key == "mce":  # measured against the baseline by compare-corruptions
                value = (compared.get(folder.name) or {}).get("mce")
            row[col.heading] = value
        rows.append(row)
    return rows


def _cell(value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return f"{value:.4g}"
    return "-"


def format_table(rows: list[dict[str, Any]]) -> str:
    """The rows as an aligned text table, one line per variant, ``-`` where a number is missing."""
    if not rows:
        return ""
    headings = list(rows[0])
    cells = [headings] + [[str(r["variant"])] + [_cell(r[h]) for h in headings[1:]] for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(headings))]
    lines = [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths, strict=True)))
        for line in cells
    ]
    return "\n".join(line.rstrip() for line in lines)
