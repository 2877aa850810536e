"""The result files of the jobs: their names, how they are written, how they are read back.

Every job writes its results here (atomically: a full disk leaves the previous file and
names it), and ``report``, ``summary`` and ``compare-corruptions`` read them through
:func:`read_json`, :func:`read_rows` and :func:`read_table`, so a file's name and format
live in one place. Names are relative to a job's output folder (``eval.output_dir``, ...).

JSON is strict (NaN and infinities become null, as DVC metrics need); CSV tables are
one header row, then one row per record.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from errorset.files import atomic_write

# --- file names, per job ----------------------------------------------------------------
#: evaluate: the headline numbers (DVC metrics), everything, accuracy in noise per sigma
EVALUATE_METRICS = "metrics.json"
EVALUATE_RESULTS = "evaluate.json"
NOISE_ACCURACY = "noise_accuracy.csv"
#: analyze: the per-image table, its summary, the headline numbers (DVC metrics)
ANALYSIS_TABLE = "analysis.csv"
ANALYSIS_SUMMARY = "analysis.json"
ANALYSIS_METRICS = "analysis_metrics.json"
#: attack: accuracy under PGD per norm and radius (JSON and CSV), the headline numbers (DVC metrics)
ATTACK_SUMMARY = "attack.json"
ATTACK_TABLE = "attack.csv"
ATTACK_METRICS = "attack_metrics.json"
#: eval-corruptions (in ``corruptions.output_dir``): every accuracy, the headline numbers, summaries
CORRUPTION_RESULTS = "accuracy.json"
CORRUPTION_METRICS = "metrics.json"
CORRUPTION_SUMMARY = "summary.json"
CORRUPTION_ACCURACY_TABLE = "accuracy.csv"
CORRUPTION_SUMMARY_TABLE = "summary.csv"
#: compare-corruptions (in ``corruptions.compare_dir``): the headline numbers per model, and everything
COMPARISON_METRICS = "metrics.json"
COMPARISON = "comparison.json"
COMPARISON_TABLE = "comparison.csv"
#: report and sweep (in their output folders): what they found
REPORT_SUMMARY = "summary.json"
REPORT_LP_TABLE = "lp_robustness.csv"
REPORT_REPRODUCTION = "reproduction.md"
SWEEP_SUMMARY = "summary.json"
SWEEP_TRIALS = "trials.csv"


# --- writing -----------------------------------------------------------------------------
def write_text(text: str, path: Path) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically: a full disk leaves the previous file, named in the error."""
    with atomic_write(path) as f:
        f.write(text.encode())


def _finite_or_none(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_or_none(v) for v in obj]
    return obj


def write_json(obj: Any, path: Path) -> None:
    """Write ``obj`` as indented JSON with NaN and infinities as null (strict JSON, as DVC metrics need)."""
    write_text(json.dumps(_finite_or_none(obj), indent=2, allow_nan=False) + "\n", path)


def write_csv(rows: list[dict[str, Any]], fields: list[str], path: Path) -> None:
    """Write ``rows`` (dicts) as a CSV file with the columns ``fields``, header first (atomically)."""
    text = io.StringIO(newline="")
    w = csv.DictWriter(text, fieldnames=fields)
    w.writeheader()
    w.writerows(rows)
    write_text(text.getvalue(), path)


def write_table(columns: dict[str, np.ndarray], path: Path) -> None:
    """Write equal-length ``columns`` (one row per image, e.g. ``analysis.csv``) as a CSV table, atomically.

    Booleans are written as 0/1, NaN (not measured) as an empty cell, infinities as ``inf``;
    :func:`read_table` gives float arrays back.
    """
    keys = list(columns)
    text = io.StringIO(newline="")
    w = csv.writer(text)
    w.writerow(keys)
    for row in zip(*(columns[k] for k in keys), strict=True):
        w.writerow([_cell(v) for v in row])
    write_text(text.getvalue(), path)


def _cell(v: Any) -> str:
    if isinstance(v, (bool, np.bool_)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return "" if math.isnan(v) else repr(float(v))  # NaN: not measured; inf stays inf
    return str(v)


# --- reading -----------------------------------------------------------------------------
def read_json(path: Path) -> dict[str, Any]:
    """A JSON object file, or ``{}`` when its job has not run (no file, or not a JSON object)."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def read_rows(path: Path) -> list[dict[str, float]] | None:
    """A numeric CSV file written by :func:`write_csv` as rows of floats, or None when it does not exist."""
    if not path.is_file():
        return None
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def read_table(path: str | Path) -> dict[str, np.ndarray]:
    """Read a table written by :func:`write_table` back as float arrays (empty cells are NaN)."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    keys, body = rows[0], rows[1:]
    return {k: np.array([float(r[i]) if r[i] != "" else math.nan for r in body]) for i, k in enumerate(keys)}
