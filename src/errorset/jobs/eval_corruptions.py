"""``errorset eval-corruptions``: the corruption benchmark of one trained model.

It measures the model's accuracy under every corruption x severity x storage
format (and on released files when given), writes DVC metrics and plots files,
and logs one MLflow run with every number, the full table, a heatmap, a bar
chart of the formats and a gallery of the corruptions. Several models' results
side by side are :mod:`errorset.jobs.compare_corruptions`'.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from errorset.config import Config
from errorset.corruptions import ALL_CORRUPTIONS, corrupt, expand_corruptions, resolve_table
from errorset.corruptions.released import cifar10c_corruptions, load_cifar10c, load_imagenet_c
from errorset.errors import ConfigError, DataError
from errorset.files import check_writable
from errorset.jobs.common import (
    load_trained,
    measuring_job,
    output_dir,
)
from errorset.jobs.naming import run_name, train_output_dir
from errorset.measure.corruption_accuracy import (
    CorruptionResults,
    check_comparable,
    corruption_errors,
    evaluate_corruptions,
    released_accuracy,
    summarize,
)
from errorset.results import (
    CORRUPTION_ACCURACY_TABLE,
    CORRUPTION_METRICS,
    CORRUPTION_RESULTS,
    CORRUPTION_SUMMARY,
    CORRUPTION_SUMMARY_TABLE,
    write_csv,
    write_json,
    write_text,
)

#: MLflow metric prefix of each storage format
METRIC_PREFIX = {
    "memory": "corruption",
    "png": "corruption_png",
    "jpeg": "corruption_jpeg",
    "released": "corruption_released",
}


@dataclass
class CorruptionsEvalResult:
    run_id: str
    output_dir: Path
    results: CorruptionResults
    metrics: dict[str, Any]


def checkpoint_path(cfg: Config) -> Path:
    """``corruptions.checkpoint``, else ``eval.checkpoint``, else ``<train output dir>/model.pt``."""
    if cfg.corruptions.checkpoint:
        return Path(cfg.corruptions.checkpoint)
    if cfg.eval.checkpoint:
        return Path(cfg.eval.checkpoint)
    return train_output_dir(cfg) / "model.pt"


def metric_prefix(fmt: str) -> str:
    return METRIC_PREFIX.get(fmt, f"corruption_{fmt}")


def load_results(path: str | Path, parameter: str) -> CorruptionResults:
    """Results of an earlier eval-corruptions: its ``accuracy.json`` or the folder holding it."""
    p = Path(path)
    if p.is_dir():
        p = p / CORRUPTION_RESULTS
    if not p.is_file():
        raise DataError(f"{parameter}: no corruption results at {p} (run errorset eval-corruptions first)")
    try:
        return CorruptionResults.from_dict(json.loads(p.read_text()))
    except (json.JSONDecodeError, ConfigError) as e:
        raise DataError(f"{parameter}: {p} is not an eval-corruptions {CORRUPTION_RESULTS} ({e})") from None


def resolve_baseline(cfg: Config, reports: Path = Path("reports")) -> CorruptionResults | None:
    """``corruptions.baseline``: a results file or folder, a variant name, or an MLflow run id."""
    ref = cfg.corruptions.baseline
    if not ref:
        return None
    if Path(ref).exists():
        return load_results(ref, "corruptions.baseline")
    if ref in cfg.variants:
        return load_results(reports / ref / "corruptions", "corruptions.baseline")
    if re.fullmatch(r"[0-9a-f]{32}", ref):
        from errorset import tracking

        try:
            path = tracking.download_artifact(ref, f"corruptions/{CORRUPTION_RESULTS}")
        except Exception as e:  # MLflow raises several types for unknown runs and artifacts
            missing = f"corruptions/{CORRUPTION_RESULTS}"
            raise DataError(f"corruptions.baseline: MLflow run {ref} has no {missing} ({e})") from None
        return load_results(path, "corruptions.baseline")
    raise DataError(
        f"corruptions.baseline: {ref!r} is neither a results file or folder, a variant ({', '.join(cfg.variants)}), "
        "nor an MLflow run id"
    )


def _released_table(
    cfg: Config, model: torch.nn.Module, names: list[str], classes: list[str], progress: bool
) -> dict[str, dict[int, float]]:
    """Accuracy on the released files at ``corruptions.released`` (CIFAR-10-C folder or ImageNet-C tree)."""
    root = Path(cfg.corruptions.released or "")
    c = cfg.corruptions
    limit = c.n_images or None
    if not root.is_dir():
        raise DataError(f"corruptions.released: no such folder {root}")
    if (root / "labels.npy").is_file():
        present = [n for n in names if n in cifar10c_corruptions(root)]
        if not present:
            raise DataError(f"corruptions.released: {root} has none of the corruptions {', '.join(names)}")
        load = functools.partial(load_cifar10c, root, limit=limit)
    else:
        present = [n for n in names if (root / n).is_dir()]
        if not present:
            raise DataError(
                f"corruptions.released: {root} has neither labels.npy (CIFAR-10-C) nor <corruption>/ folders"
            )

        def load(name: str, severity: int) -> tuple[torch.Tensor, torch.Tensor]:
            x, y, _ = load_imagenet_c(root, name, severity, classes=classes, limit=limit)
            return x, y

    return released_accuracy(model, load, present, c.severities, batch_size=c.batch_size, progress=progress)


def summary_metrics(
    results: CorruptionResults, baseline: CorruptionResults | None, what: str = "the model"
) -> tuple[dict[str, float], dict[str, Any]]:
    """Flat MLflow metrics and the nested metrics.json record of one model's results.

    With a ``baseline``, both must have been measured on the same images,
    seed and table (:func:`check_comparable`; ``what`` names the model).
    """
    if baseline is not None:
        check_comparable(results, baseline, what)
    flat: dict[str, float] = {}
    record: dict[str, Any] = {"n_images": results.n_images, "table": results.table, "seed": results.seed}
    for fmt, table in results.accuracy.items():
        prefix = metric_prefix(fmt)
        s = summarize(table)
        entry: dict[str, Any] = {"all": s.all, "mean": s.mean}
        if fmt in results.clean:
            entry["clean"] = results.clean[fmt]
            flat[f"{prefix}/clean"] = results.clean[fmt]
        flat[f"{prefix}/all"] = s.all
        flat[f"{prefix}/mean"] = s.mean
        for name, sev in table.items():
            flat[f"{prefix}/{name}"] = s.per_corruption[name]
            for sv, a in sev.items():
                flat[f"{prefix}/{name}/{sv}"] = a
        entry["per_corruption"] = s.per_corruption
        if baseline is not None and fmt in baseline.accuracy:
            errors = corruption_errors(table, baseline.accuracy[fmt])
            entry["mce"] = errors.mce
            entry["ce"] = errors.ce
            flat[f"{prefix}/mce"] = errors.mce
            for name, v in errors.ce.items():
                flat[f"{prefix}_ce/{name}"] = v
        record[fmt] = entry
    return flat, record


def headline_metrics(flat: dict[str, float]) -> dict[str, float]:
    """``corruption_all`` (the "All" accuracy in memory) and ``mce`` (its mCE, where a baseline exists),
    from :func:`summary_metrics`' flat metrics."""
    prefix = metric_prefix("memory")
    names = {"corruption_all": f"{prefix}/all", "mce": f"{prefix}/mce"}
    return {short: flat[key] for short, key in names.items() if key in flat}


def summary_rows(results: CorruptionResults) -> list[dict[str, Any]]:
    """One row per corruption (and ``All``, ``mean``, ``clean``): its mean accuracy in each format."""
    sums = {fmt: summarize(t) for fmt, t in results.accuracy.items()}
    names = list(dict.fromkeys(c for t in results.accuracy.values() for c in t))
    rows = [{"corruption": c, **{f: s.per_corruption.get(c, float("nan")) for f, s in sums.items()}} for c in names]
    rows.append({"corruption": "All", **{f: s.all for f, s in sums.items()}})
    rows.append({"corruption": "mean", **{f: s.mean for f, s in sums.items()}})
    rows.append({"corruption": "clean", **{f: results.clean.get(f, float("nan")) for f in sums}})
    return rows


def gallery_images(
    x: torch.Tensor, names: list[str], severities: list[int], table: str, seed: int
) -> tuple[torch.Tensor, dict[str, list[torch.Tensor]]]:
    """One image (float (C, H, W)) and its corrupted versions per corruption and severity."""
    image = x.float() / 255 if x.dtype == torch.uint8 else x.float()
    batch = image[None]
    out = {n: [corrupt(batch, n, s, table, torch.Generator().manual_seed(seed))[0] for s in severities] for n in names}
    return image, out


@measuring_job
def eval_corruptions(cfg: Config, *, progress: bool = True) -> CorruptionsEvalResult:
    """Evaluate the configured model under the corruptions; write DVC files and log one MLflow run."""
    from errorset.plots.corruptions import plot_corruption_bars, plot_corruption_gallery, plot_corruption_heatmap
    from errorset.plots.style import save_figure

    c = cfg.corruptions
    trained = load_trained(
        cfg, str(checkpoint_path(cfg)), c.n_images or 0, progress=progress, parameter="corruptions.checkpoint"
    )
    ecfg, model, data = trained.config, trained.model, trained.data
    baseline = resolve_baseline(cfg)
    x, y, keep = trained.x, trained.y, trained.indices
    out = Path(c.output_dir) if c.output_dir else output_dir(None, trained) / "corruptions"
    check_writable(out, "corruptions.output_dir")  # before measuring, not after
    table = resolve_table(c.table, max(data.input_shape[1:]))
    names = expand_corruptions(c.names, "corruptions.names", default=ALL_CORRUPTIONS)
    results = evaluate_corruptions(
        model,
        x,
        y,
        corruptions=names,
        severities=c.severities,
        formats=c.formats,
        table=table,
        seed=cfg.seed,
        batch_size=c.batch_size,
        jpeg_quality=c.jpeg_quality,
        progress=progress,
    )
    if c.released:
        results.accuracy["released"] = _released_table(cfg, model, names, data.classes, progress)
        results.extra["released"] = str(c.released)
    flat, record = summary_metrics(results, baseline)

    headline = headline_metrics(flat)
    write_json(headline, out / CORRUPTION_METRICS)
    write_json(record, out / CORRUPTION_SUMMARY)
    write_text(json.dumps(results.to_dict(), indent=2) + "\n", out / CORRUPTION_RESULTS)
    long_rows = results.rows()
    write_csv(long_rows, ["format", "corruption", "severity", "accuracy"], out / CORRUPTION_ACCURACY_TABLE)
    rows = summary_rows(results)
    write_csv(rows, ["corruption", *results.accuracy], out / CORRUPTION_SUMMARY_TABLE)

    name = run_name(ecfg)
    heatmap = plot_corruption_heatmap(results.accuracy, title=f"{name}: accuracy under corruptions (%)")
    summaries = {
        fmt: {name: {r["corruption"]: r[fmt] for r in rows if r["corruption"] not in ("mean", "clean")}}
        for fmt in results.accuracy
    }
    bars = plot_corruption_bars(summaries, title=f"{name}: accuracy by storage format")
    index = min(c.gallery_index, len(x) - 1)
    image, corrupted = gallery_images(x[index], names, list(c.severities), table, cfg.seed)
    gallery = plot_corruption_gallery(
        image, corrupted, severities=c.severities, title=f"{cfg.data.name} test image {int(keep[index])}, {table} table"
    )
    save_figure(heatmap, out / "heatmap.png")
    save_figure(gallery, out / "gallery.png")

    params = {"corruptions.images": len(x), "corruptions.table_used": table}
    with trained.start_run("eval-corruptions", params=params, tags={"corruption_table": table}) as run:
        run.log_metrics({**headline, **{f"detail/{k}": v for k, v in flat.items()}})
        columns = ("format", "corruption", "severity", "accuracy")
        run.log_table({k: [r[k] for r in long_rows] for k in columns}, "corruption_accuracy.json")
        run.log_figure(heatmap, "corruption_heatmap.png")
        run.log_figure(bars, "corruption_formats.png")
        run.log_figure(gallery, "corruption_gallery.png")
        run.log_artifact(out / CORRUPTION_METRICS, "corruptions")
        run.log_artifact(out / CORRUPTION_SUMMARY, "corruptions")
        run.log_artifact(out / CORRUPTION_RESULTS, "corruptions")
        return CorruptionsEvalResult(run_id=run.run_id, output_dir=out, results=results, metrics=flat)
