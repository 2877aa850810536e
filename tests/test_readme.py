"""The README's Python snippets run as written, its figure names are the code's, and git ignores what a run leaves."""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid

import pytest

from .conftest import REPO

README = (REPO / "README.md").read_text()


def python_blocks(text: str) -> list[str]:
    """The README's ```python blocks, in order."""
    return re.findall(r"^```python\n(.*?)^```$", text, flags=re.S | re.M)


def test_the_readme_python_snippets_run(workdir, capsys):
    """Every ```python block, in order and in one namespace, on the Quick start's clean digits model.

    The model is what the Quick start's first command (`errorset train --set data.name=digits`) writes, in
    the folder a user runs the snippet from, with the repository's params.yaml; a snippet that raises fails.
    """
    from errorset.jobs.train import train
    from errorset.resolve import load_config

    shutil.copy(REPO / "params.yaml", workdir / "params.yaml")
    cfg = load_config(
        "params.yaml",
        ["data.name=digits", "tracking.log_model=false", f"tracking.experiment=readme-{uuid.uuid4().hex[:8]}"],
    )
    train(cfg, progress=False)
    assert (workdir / "models/digits/mlp/clean/model.pt").is_file()

    blocks = python_blocks(README)
    assert len(blocks) >= 2
    namespace: dict[str, object] = {"__name__": "__main__"}
    for i, source in enumerate(blocks):
        exec(compile(source, f"README.md[python block {i}]", "exec"), namespace)
    printed = capsys.readouterr().out.strip().splitlines()
    # the distance ratio, as `errorset analyze` would print it: a median with its interval
    assert re.fullmatch(r"\d\S* \[\S+, \S+\]", printed[-1]), printed
    assert namespace["x_c"].shape == namespace["x"].shape


def _code_figure_names() -> set[str]:
    names: set[str] = set()
    for path in (REPO / "src" / "errorset").rglob("*.py"):
        names |= set(re.findall(r'"([\w.-]+\.png)"', path.read_text()))
    return names


def test_the_readme_names_the_figures_the_code_writes():
    """Each `*.png` the README names is a file name the code saves or logs, and each one the code has is named."""
    readme = set(re.findall(r"`([\w.-]+\.png)`", README))
    code = _code_figure_names()
    assert readme - code == set(), "named in the README, written nowhere"
    assert code - readme == set(), "written by the code, not in the README"


IGNORED = [
    "mlflow.db",  # MLflow's default store (README: Tracking)
    "mlflow.db.lock",
    "mlruns/1/abc/artifacts/config.yaml",
    "data/digits.npz",  # DVC outputs, in DVC's cache
    "models/clean/model.pt",
    "models/digits/mlp/clean/model.pt",
    "sweeps/optuna.db",
    "sweeps/optuna.db.lock",
    "dvc_plots/index.html",  # `dvc plots show`
    "reports/digits/mlp/clean/metrics.json",  # the command line's default result folders
    "reports/cifar10/resnet8/clean/analysis.csv",
    "notebooks/data/digits.npz",
]
COMMITTED = [  # the DVC stages' cache: false outputs and what describes the pipeline
    "reports/clean/metrics.json",
    "reports/gaussian-0.4/corruptions/heatmap.png",
    "reports/summary/figure7_accuracy_in_noise.png",
    "reports/sweep/summary.json",
    "reports/corruptions/metrics.json",
    "dvc.lock",
    "params.yaml",
]


def test_gitignore_leaves_out_what_a_run_leaves_and_keeps_the_dvc_results():
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")

    def ignored(path: str) -> bool:
        run = subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=REPO, check=False)
        assert run.returncode in (0, 1), run
        return run.returncode == 0

    assert [p for p in IGNORED if not ignored(p)] == []
    assert [p for p in COMMITTED if ignored(p)] == []
