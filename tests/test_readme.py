"""The README's Python snippets run as written, and the figure names it gives are the ones the code writes."""

from __future__ import annotations

import re
import shutil
import uuid

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
    from errorset.config import load_config
    from errorset.jobs.train import train

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
