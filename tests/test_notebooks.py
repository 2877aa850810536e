"""The notebooks run top to bottom (their code cells, in order, in one namespace)."""

from __future__ import annotations

import json

import pytest

from .conftest import REPO

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, workdir):
    cells = json.loads(path.read_text())["cells"]
    namespace: dict[str, object] = {"__name__": "__main__"}
    for i, cell in enumerate(c for c in cells if c["cell_type"] == "code"):
        source = "".join(cell["source"])
        exec(compile(source, f"{path.name}[cell {i}]", "exec"), namespace)
    if path.stem == "quickstart":
        curves = namespace["curves"]
        # Gaussian augmentation keeps more accuracy in heavy noise than clean training
        assert curves["gaussian-0.4"][-1]["accuracy"] > curves["clean"][-1]["accuracy"]
