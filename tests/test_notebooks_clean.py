"""Source notebooks stay clean; the nbval copies (notebooks/smoke/) exist and match their sources."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import nbformat
import pytest

from reproduce.runner import load_profile, plan

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "notebooks").glob("*.ipynb"))
SMOKE = ROOT / "notebooks" / "smoke"
EXPECTED = {
    "mustache",
    "eight_modes",
    "funnel",
    "gmm",
    "gmm40",
    "lgcp",
    "mode_collapse_1d",
    "quickstart",
    "references",
    "assemble",
}


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
        f"{copy.name} is out of date with {path.name}: run `make smoke` (python -m reproduce smoke)"
    )
    assert any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), f"{copy.name} has no outputs"
    injected = [c for c in nb.cells if "injected-parameters" in _tags(c)]
    assert len(injected) == 1 and "smoke_test = True" in injected[0].source


def test_smoke_copies_run_assemble_last():
    names = sorted(p.name for p in SMOKE.glob("*.ipynb"))
    assert names and names[-1].endswith("_assemble.ipynb")
    assert len(names) == len(EXPECTED)


# ---------------------------------------------------------------- the label of the parameter defaults

#: where a profile writes, relative to its ``results/<profile>`` folder (cpu: the committed figures/)
OUTPUT_DIRS = {"results_dir": "", "figures_dir": "/figures", "tables_dir": "/tables"}
PROFILES = sorted(p.stem for p in (ROOT / "notebooks" / "profiles").glob("*.yaml"))


def _defaults(path: Path) -> dict[str, Any]:
    """The parameter defaults of a source notebook (its cell tagged ``parameters``)."""
    nb = nbformat.read(str(path), as_version=4)
    cell = next(c for c in nb.cells if "parameters" in _tags(c))
    out = {}
    for node in ast.parse(cell.source).body:
        target = node.target if isinstance(node, ast.AnnAssign) else node.targets[0]
        out[target.id] = ast.literal_eval(node.value)
    return out


LABELLED = {p.stem: _defaults(p) for p in SOURCES if "profile" in _defaults(p)}


def _differences(defaults: dict[str, Any], profile: str, notebook: str) -> list[dict[str, tuple[Any, Any]]]:
    """For every run of ``notebook`` in ``profile``: the parameters whose default differs from the run's value."""
    runs = [params for _, nb, params in plan(load_profile(profile)) if nb == notebook]
    return [{k: (defaults[k], v) for k, v in params.items() if k in defaults and defaults[k] != v} for params in runs]


def test_default_labels_agree_across_notebooks():
    """Run directly, every notebook writes where the assemble notebook's defaults read."""
    assert len(LABELLED) == len(EXPECTED) - 1  # all but the quickstart record a profile
    labels = {(d["profile"], d["results_dir"], d.get("figures_dir")) for d in LABELLED.values()}
    assert len(labels) == 1, f"the notebooks' default profile labels / folders differ: {sorted(map(str, labels))}"


@pytest.mark.parametrize("stem", sorted(LABELLED))
def test_default_profile_label_matches_the_defaults(stem):
    """A notebook's defaults labelled ``profile=X`` are profile X's settings (or, for a label
    with no profile YAML, write to ``results/X`` only), so running it directly with papermill
    never overwrites another profile's results under a wrong label."""
    d = LABELLED[stem]
    label = d["profile"]
    if label in PROFILES:
        diffs = _differences(d, label, stem)
        assert diffs, f"{stem}.ipynb: labelled profile={label!r}, but {label}.yaml has no run of it"
        closest = min(diffs, key=len)
        assert not closest, f"{stem}.ipynb: defaults labelled profile={label!r} differ from {label}.yaml: {closest}"
        return
    for key, sub in OUTPUT_DIRS.items():
        if key in d:
            assert d[key] == f"results/{label}{sub}", f"{stem}.ipynb: {key}={d[key]!r} under profile={label!r}"
    for profile in PROFILES:
        theirs = {str(load_profile(profile)["defaults"].get(k)) for k in OUTPUT_DIRS}
        assert not theirs & {str(d.get(k)) for k in OUTPUT_DIRS}, (
            f"{stem}.ipynb writes into profile {profile}'s folders"
        )


@pytest.mark.parametrize("profile", PROFILES)
def test_unlabelled_defaults_are_no_profile(profile):
    """Defaults labelled with a name of their own must differ from every profile (else: use its name)."""
    labels = {d["profile"] for d in LABELLED.values()}
    if labels == {profile}:
        return  # labelled by this profile: checked above
    equal = [
        stem
        for stem, d in LABELLED.items()
        if any(
            not {k: v for k, v in diff.items() if k not in OUTPUT_DIRS and k != "profile"}
            for diff in _differences(d, profile, stem)
        )
    ]
    assert len(equal) < len(LABELLED), f"the notebooks' defaults equal profile {profile}: label them {profile!r}"
