"""Source notebooks stay clean; the nbval copies (notebooks/smoke/) exist and match their sources."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "notebooks").glob("*.ipynb"))
SMOKE = ROOT / "notebooks" / "smoke"
EXPECTED = {"mustache", "eight_modes", "funnel", "gmm", "gmm40", "lgcp", "mode_collapse_1d", "quickstart", "assemble"}


def _smoke_copy(stem: str) -> Path | None:
    hits = [p for p in SMOKE.glob("*.ipynb") if re.fullmatch(rf"\d+_{re.escape(stem)}\.ipynb", p.name)]
    return hits[0] if len(hits) == 1 else None


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def test_all_notebooks_present():
    assert {p.stem for p in SOURCES} == EXPECTED


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.stem)
def test_source_notebook_is_clean(path):
    nb = nbformat.read(str(path), as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    for c in code:
        assert c.get("outputs", []) == [], f"{path.name}: a code cell has outputs"
        assert c.get("execution_count") is None, f"{path.name}: a code cell has an execution count"
    params = [c for c in nb.cells if "parameters" in _tags(c)]
    assert len(params) == 1, f"{path.name}: {len(params)} cells tagged 'parameters'"
    assert params[0].cell_type == "code"
    for line in params[0].source.splitlines():  # plain literals, each with a comment (papermill --help-notebook)
        if line.strip() and not line.lstrip().startswith("#"):
            assert re.match(r"^\w+(: \w+)? = .+  # \S", line), f"{path.name}: parameter line without a comment: {line}"
    assert "papermill" not in nb.metadata


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.stem)
def test_smoke_copy_exists_and_matches_source(path):
    copy = _smoke_copy(path.stem)
    assert copy is not None, f"no notebooks/smoke/NN_{path.stem}.ipynb: run `make smoke` (python -m reproduce smoke)"
    nb = nbformat.read(str(copy), as_version=4)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    src = nbformat.read(str(path), as_version=4)
    strip = [c.source for c in nb.cells if "injected-parameters" not in _tags(c)]
    assert strip == [c.source for c in src.cells], (
        f"{copy.name} is out of date with {path.name}: run `make smoke` (python -m reproduce smoke)")
    assert any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), f"{copy.name} has no outputs"
    injected = [c for c in nb.cells if "injected-parameters" in _tags(c)]
    assert len(injected) == 1 and "smoke_test = True" in injected[0].source


def test_smoke_copies_run_assemble_last():
    names = sorted(p.name for p in SMOKE.glob("*.ipynb"))
    assert names and names[-1].endswith("_assemble.ipynb")
    assert len(names) == len(EXPECTED)
