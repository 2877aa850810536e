"""The ``errorset`` command line: a thin shell over :mod:`errorset.jobs`.

Every command reads ``params.yaml`` (or ``--params FILE``) into one typed
config, applies ``--set KEY=VALUE`` overrides and the profile, and runs one job.
Bad input ends with one line ``errorset: error: ...`` naming the parameter, and
exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from errorset import __version__, allocator, interrupts
from errorset.errors import ErrorsetError

EPILOG = """\
Configuration: every command reads params.yaml (or --params FILE); --set KEY=VALUE
overrides any dotted key and may be repeated (or hold several space-separated pairs),
e.g.  errorset train --set data.name=digits --set train.mode=gaussian --set train.sigma_max=0.4
Numbers accept fractions: --set train.adversarial.eps=8/255.
The MLflow tracking store is MLflow's default (sqlite:///mlflow.db) unless
MLFLOW_TRACKING_URI or tracking.uri says otherwise.
"""


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--params",
        metavar="FILE",
        default=None,
        help="parameters file (default: params.yaml if present, else built-in defaults)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="override a config key, e.g. train.mode=gaussian (repeatable)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and the final summary")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="errorset",
        description="Train classifiers and measure how their error rate in noise relates to their "
        "nearest errors (Ford, Gilmer, Carlini & Cubuk 2019).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"errorset {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, help: str, description: str) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name,
            help=help,
            description=description,
            epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        _common(p)
        return p

    p = add(
        "prepare",
        "prepare a dataset into <data.root>/<data.name>.npz",
        "Read the dataset named by data.name (cifar10, digits, imagefolder) from its source and "
        "write it once as a compact uint8 file under data.root; a later train or evaluate reads it.",
    )
    p.add_argument("--force", action="store_true", help="remake the file even if it is up to date")
    p.set_defaults(func=_cmd_prepare)

    p = add(
        "train",
        "train a model (clean, gaussian or adversarial), tracked in MLflow",
        "Train model.name on data.name with train.mode (clean, gaussian: sigma ~ U(0, train.sigma_max), "
        "adversarial: Madry PGD). Writes <train.output_dir>/checkpoint.pt every epoch and model.pt at "
        "the end, logs params, per-epoch metrics, the checkpoint and the model to MLflow, and prints "
        "the MLflow run id.",
    )
    p.add_argument("--resume", action="store_true", help="continue from <train.output_dir>/checkpoint.pt")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier run in train.output_dir")
    p.set_defaults(func=_cmd_train)

    p = add(
        "evaluate",
        "clean accuracy and accuracy in Gaussian noise of a trained model",
        "Evaluate eval.checkpoint (default <train.output_dir>/model.pt) on eval.n_images test images: "
        "clean accuracy and accuracy under x + N(0, sigma^2 I) for each of eval.sigmas, eval.trials "
        "noise draws each (mean and std, the paper's Figure 7). Writes metrics.json and "
        "noise_accuracy.csv to eval.output_dir and logs an MLflow run.",
    )
    p.set_defaults(func=_cmd_evaluate)

    p = add(
        "analyze",
        "per-image sigma(x0, mu), nearest errors, eps*_q and the paper's figures",
        "Measure a trained model (analyze.checkpoint, default <train.output_dir>/model.pt) on analyze.images "
        "test images: sigma(x0, analyze.mu), the error rate in noise at analyze.error_rate_sigmas, the L2 "
        "distance to the nearest error, and for analyze.noisy.images images eps*_q with its isoperimetric "
        "bound. Writes analysis.csv (per image) and analysis.json (summary) to analyze.output_dir and logs "
        "them with Figures 2, 4, 10 and 20 to an MLflow run.",
    )
    p.set_defaults(func=_cmd_analyze)

    p = add(
        "attack",
        "accuracy under PGD L-inf and L2 over a grid of radii",
        "Attack a trained model (attack.checkpoint) with PGD (attack.steps steps of attack.step_ratio * eps, "
        "random start, attack.restarts times; broken = any iterate of any restart misclassified) at every "
        "radius in attack.linf_eps and attack.l2_eps. Writes attack.json and "
        "attack.csv to attack.output_dir and logs an MLflow run.",
    )
    p.set_defaults(func=_cmd_attack)

    p = add(
        "report",
        "figures and tables comparing models",
        "Combine the result folders report.inputs (default reports/<variant> for each variant) into the "
        "paper's comparison figures (7, 2, 4, 20, 10 and the Lp robustness table) under report.output_dir, "
        "and log them to an MLflow run.",
    )
    p.set_defaults(func=_cmd_report)

    p = add(
        "summary",
        "print one table of every variant's headline numbers",
        "Read the headline numbers of each result folder (report.inputs, default reports/<variant> for each "
        "variant) from the files evaluate, analyze, attack, eval-corruptions and compare-corruptions wrote, and "
        "print one table: clean accuracy, accuracy at sigma 0.1, median sigma(x0, analyze.mu), median d(x0, E), "
        "accuracy under PGD L-inf 8/255, the corruption 'All' accuracy and mCE; '-' where a job has not run.",
    )
    p.set_defaults(func=_cmd_summary)

    p = add(
        "sweep",
        "an Optuna study of training parameters against robustness objectives",
        "Run (or join, or resume) the Optuna study sweep.study_name in sweep.storage: each trial trains a "
        "model with parameters drawn from sweep.space (plus sweep.fixed), measures sweep.objectives on "
        "sweep.validation_images held-out training images, and is an MLflow run nested under the sweep's "
        "parent run. Stops when the study has sweep.n_trials completed or pruned trials. Several processes "
        "(sweep.workers here, or more `errorset sweep` commands with other --worker numbers) share the "
        "study. Writes summary.json, trials.csv and figures to sweep.output_dir.",
    )
    p.add_argument("--worker", type=int, default=0, help="this worker's number (its sampler seed is seed + N)")
    # set by sweep.workers for the workers it starts: trials only, the launcher reports
    p.add_argument("--spawned", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=_cmd_sweep)

    _add_corruption_commands(add)

    p = add(
        "config",
        "print the resolved configuration",
        "Print the configuration every command would use (params file, overrides and profile applied).",
    )
    p.set_defaults(func=_cmd_config)
    return parser


def _print_outputs(output: object, run_id: str | None, *, what: str = "results") -> None:
    """The closing lines of every command that writes results: where they are, and the MLflow run."""
    if output is not None:
        print(f"{what}: {output}")
    print(f"mlflow run id: {run_id}")


def load_args_config(args: argparse.Namespace, extra: Sequence[str] = ()) -> Any:
    from errorset.resolve import load_config

    path: str | None = args.params
    if path is None:
        path = "params.yaml" if Path("params.yaml").is_file() else None
    return load_config(path, [*args.overrides, *extra])


def _cmd_prepare(args: argparse.Namespace) -> int:
    from errorset.data import file_md5
    from errorset.jobs.prepare import prepare

    cfg = load_args_config(args)
    path = prepare(cfg, force=args.force, progress=not args.no_progress)
    print(f"prepared {cfg.data.name}: {path} (md5 {file_md5(path)})")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from errorset.jobs.train import train

    extra = (["train.resume=true"] if args.resume else []) + (["train.overwrite=true"] if args.overwrite else [])
    cfg = load_args_config(args, extra)
    result = train(cfg, progress=not args.no_progress)
    if result.already_complete:
        print(f"the run is already complete ({len(result.history)} epochs); nothing was written")
    print(f"test accuracy {result.test_accuracy:.4f}")
    _print_outputs(result.model_path, result.run_id, what="model")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from errorset.jobs.evaluate import evaluate

    cfg = load_args_config(args)
    result = evaluate(cfg, progress=not args.no_progress)
    m = result.metrics
    noisy = ", ".join(f"{s}: {a:.3f}" for s, a in m["noise_accuracy"].items())
    print(f"clean accuracy {m['clean_accuracy']:.4f}; in noise (sigma: accuracy) {noisy}")
    _print_outputs(result.output_dir, result.run_id)
    return 0


def _cmd_analyze(args: argparse.Namespace) -> int:
    from errorset.jobs.analyze import analyze

    result = analyze(load_args_config(args), progress=not args.no_progress)
    from errorset.measure.analysis import format_median

    s = result.summary
    level = f"{s['level']:.0%} intervals"
    print(
        f"{s['images']} images ({level}): median sigma(x0, {s['mu']:g}) {format_median(s['sigma_at_mu'])}, "
        f"median distance to the nearest error {format_median(s['nearest_distance'])}, "
        f"median ratio to the linear model {format_median(s['distance_ratio'])}"
    )
    print(
        f"over the {s['sigma_at_mu_correct']['n']} correctly classified images: median sigma(x0, {s['mu']:g}) "
        f"{format_median(s['sigma_at_mu_correct'])}, median distance {format_median(s['nearest_distance_correct'])}"
    )
    print(
        f"eps*_{s['noisy_q']:g} at sigma {s['noisy_sigma']:g} ({s['noisy_images_below_half']} correct images with "
        f"an error rate below 1/2): median {format_median(s['eps_star'])}, "
        f"median eps* / isoperimetric bound {format_median(s['eps_star_over_bound'])}"
    )
    _print_outputs(result.output_dir, result.run_id)
    return 0


def _cmd_attack(args: argparse.Namespace) -> int:
    from errorset.jobs.attack import attack

    result = attack(load_args_config(args), progress=not args.no_progress)
    for norm, rows in result.results.items():
        print(f"PGD {norm}: " + ", ".join(f"eps {r['eps']:.4g}: {r['accuracy']:.3f}" for r in rows))
    _print_outputs(result.output_dir, result.run_id)
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from errorset.jobs.report import report

    result = report(load_args_config(args), progress=not args.no_progress)
    for path in result.figures:
        print(f"figure: {path}")
    _print_outputs(None, result.run_id)
    return 0


def _cmd_summary(args: argparse.Namespace) -> int:
    from errorset.jobs.summary import format_table, summary_rows

    print(format_table(summary_rows(load_args_config(args))))
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from errorset.config import read_config
    from errorset.jobs.sweep import sweep

    path = args.params if args.params is not None else ("params.yaml" if Path("params.yaml").is_file() else None)
    base = read_config(path, args.overrides)
    result = sweep(base, worker=args.worker, progress=not args.no_progress, spawned=args.spawned)
    if args.spawned:
        return 0
    s = result.summary
    print(f"study {s['study']}: " + ", ".join(f"{k} {v}" for k, v in s["trials"].items() if v))
    for t in s.get("best") or s.get("pareto_front") or []:
        values = ", ".join(f"{k} {v:.4f}" for k, v in t["values"].items())
        params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in t["params"].items())
        print(f"trial {t['number']}: {params}: {values}")
    _print_outputs(result.output_dir, result.parent_run_id)
    return 0


# --- the corruption benchmark -------------------------------------------------------


def _add_corruption_commands(add: Callable[[str, str, str], argparse.ArgumentParser]) -> None:
    p = add(
        "eval-corruptions",
        "accuracy under the 19 common corruptions, in memory and after PNG / JPEG storage",
        "Evaluate corruptions.checkpoint (default eval.checkpoint, else <train.output_dir>/model.pt) on "
        "corruptions.n_images test images under every corruption (corruptions.names, default all 19) at "
        "corruptions.severities, with the CIFAR-10-C or ImageNet-C constants (corruptions.table), each "
        "batch fed to the model in every corruptions.formats (memory, png, jpeg) and, with "
        "corruptions.released, from released files. Writes metrics.json, accuracy.json, accuracy.csv, "
        "summary.csv, heatmap.png and gallery.png to corruptions.output_dir and logs an MLflow run "
        "(metrics corruption/<name>/<severity>, corruption/<name>, corruption/all, ...).",
    )
    p.set_defaults(func=_cmd_eval_corruptions)

    p = add(
        "make-corruptions",
        "write a CIFAR-10-C-format folder of the test set under the corruptions",
        "Corrupt the same corruptions.n_images test images that eval-corruptions uses, at severities "
        "1-5, with generator seed `seed`, and write <corruption>.npy (uint8, 5 n x H x W x C) and "
        "labels.npy to corruptions.make_dir (default <data.root>/<data.name>-c), as CIFAR-10-C is released.",
    )
    p.set_defaults(func=_cmd_make_corruptions)

    p = add(
        "compare-corruptions",
        "compare eval-corruptions results of several models (default: every variant)",
        "Read the eval-corruptions results in corruptions.compare (default reports/<variant>/corruptions "
        "for every variant), compute mCE relative to corruptions.baseline, write comparison.csv, "
        "metrics.json and bars.png to corruptions.compare_dir, and log an MLflow run with the bar chart.",
    )
    p.set_defaults(func=_cmd_compare_corruptions)


def _cmd_eval_corruptions(args: argparse.Namespace) -> int:
    from errorset.jobs.eval_corruptions import METRIC_PREFIX, eval_corruptions

    result = eval_corruptions(load_args_config(args), progress=not args.no_progress)
    m = result.metrics
    parts = [f"{fmt}: {m[f'{p}/all']:.4f}" for fmt, p in METRIC_PREFIX.items() if f"{p}/all" in m]
    print(f"accuracy under corruptions (All, without gaussian_noise) {'; '.join(parts)}")
    _print_outputs(result.output_dir, result.run_id)
    return 0


def _cmd_make_corruptions(args: argparse.Namespace) -> int:
    from errorset.jobs.make_corruptions import make_corruptions

    path = make_corruptions(load_args_config(args), progress=not args.no_progress)
    print(f"wrote a CIFAR-10-C-format set: {path}")
    return 0


def _cmd_compare_corruptions(args: argparse.Namespace) -> int:
    from errorset.jobs.compare_corruptions import compare_corruptions

    result = compare_corruptions(load_args_config(args), progress=not args.no_progress)
    _print_outputs(result.output_dir, result.run_id, what="comparison")
    return 0


def _cmd_config(args: argparse.Namespace) -> int:
    from errorset.config import to_yaml

    print(to_yaml(load_args_config(args)), end="")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("mlflow", "alembic", "urllib3", "git", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # MLflow logs a failing SQL store's traceback before raising; errorset reports it as one line
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
    if os.environ.get(allocator.ENV_SWITCH, "1") != "0":
        allocator.keep_freed_memory()  # torch's short-lived CPU tensors are reused, not page-faulted afresh
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        # SIGTERM (a killed DVC stage or batch job) and Ctrl-C stop at the next batch, epoch or trial:
        # runs are marked KILLED, checkpoints kept.
        with interrupts.handling_signals():
            code = func(args)
            late = interrupts.stop_requested()
        if late is not None:  # the signal came after the last check: the work is complete
            print(
                f"errorset: {signal.Signals(late).name} came after the work had finished; its results are complete",
                file=sys.stderr,
            )
        return code
    except ErrorsetError as e:
        message = " ".join(str(e).split())  # always one line
        print(f"errorset: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "errorset: interrupted; the MLflow run is marked KILLED "
            "(an interrupted `errorset train` continues from its last epoch with --resume)",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
