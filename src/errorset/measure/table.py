"""The per-image table ``analysis.csv``: columns of equal length, one row per image.

Booleans are written as 0/1, NaN (not measured) as an empty cell, infinities
as ``inf``; reading gives float arrays back.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from errorset.files import atomic_write


def write_table(columns: dict[str, np.ndarray], path: Path) -> None:
    """Write ``columns`` as a CSV table, atomically (a full disk leaves the previous file, named in the error)."""
    keys = list(columns)
    text = io.StringIO(newline="")
    w = csv.writer(text)
    w.writerow(keys)
    for row in zip(*(columns[k] for k in keys), strict=True):
        w.writerow([_cell(v) for v in row])
    with atomic_write(path) as f:
        f.write(text.getvalue().encode())


def _cell(v: Any) -> str:
    if isinstance(v, (bool, np.bool_)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return "" if math.isnan(v) else repr(float(v))  # NaN: not measured; inf stays inf
    return str(v)


def read_table(path: str | Path) -> dict[str, np.ndarray]:
    """Read an ``analysis.csv`` back as float arrays (empty cells are NaN)."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    keys, body = rows[0], rows[1:]
    return {k: np.array([float(r[i]) if r[i] != "" else math.nan for r in body]) for i, k in enumerate(keys)}
