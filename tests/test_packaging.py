"""Packaging: pyproject.toml, environment.yml and the Makefile agree; the wheel ships the library only."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
#: the torch version the project is tested with (the local CPU wheel on the project's machines)
TORCH_PIN = "torch==2.13.0"


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text))


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _pyproject_requirements() -> set[str]:
    meta = _pyproject()
    reqs = set(meta["dependencies"])
    for extra in meta["optional-dependencies"].values():
        reqs.update(extra)
    return {r.replace(" ", "") for r in reqs}


def _conda_pip_requirements() -> set[str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)["pip"]
    return {r.replace(" ", "") for r in pip if not r.startswith("-e")}


def _torch(reqs: set[str]) -> list[str]:
    return [r for r in reqs if re.match(r"torch\b(?!diffeq)", r)]


def test_environment_yml_mirrors_pyproject():
    """Every requirement but torch is the same; environment.yml pins torch exactly."""
    py, conda = _pyproject_requirements(), _conda_pip_requirements()
    py_rest, conda_rest = py - set(_torch(py)), conda - set(_torch(conda))
    assert py_rest == conda_rest, (
        f"only in pyproject: {sorted(py_rest - conda_rest)}; only in environment.yml: {sorted(conda_rest - py_rest)}"
    )
    assert _torch(conda) == [TORCH_PIN]


def test_library_requires_a_minimum_torch_that_the_pin_satisfies():
    torch_reqs = [r.replace(" ", "") for r in _pyproject()["dependencies"] if re.match(r"torch\b(?!diffeq)", r)]
    assert len(torch_reqs) == 1 and torch_reqs[0].startswith("torch>="), (
        f"pyproject.toml must require a minimum torch (torch>=X), not {torch_reqs}"
    )
    assert _version(TORCH_PIN) >= _version(torch_reqs[0])


def test_makefile_installs_the_pinned_torch_before_the_project():
    lines = (ROOT / "Makefile").read_text().splitlines()
    installs = [i for i, line in enumerate(lines) if "pip install" in line and not line.lstrip().startswith("#")]
    torch_lines = [i for i in installs if TORCH_PIN in lines[i]]
    project_lines = [i for i in installs if re.search(r"-e\s+\"?\.", lines[i])]
    assert torch_lines and project_lines, "the Makefile must install torch==2.13.0 and then the project"
    assert torch_lines[0] < project_lines[0], "the Makefile installs the project before the pinned torch"


def test_python_versions_agree():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert _pyproject()["requires-python"] == ">=3.11"
    assert "python=3.11" in env["dependencies"]


def test_wheel_ships_the_library_only(tmp_path):
    """Built from a copy of the checkout (no build artefacts in the work tree), offline."""
    src = tmp_path / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", ".ipynb_checkpoints")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for name in ("jkoic", "reproduce", "tests", "notebooks", "benchmarks"):
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=ignore)
    out = tmp_path / "wheel"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(src),
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            "-w",
            str(out),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"pip wheel failed:\n{proc.stdout}\n{proc.stderr}"
    wheels = list(out.glob("jkoic-*.whl"))
    assert len(wheels) == 1, f"expected one jkoic wheel, got {[w.name for w in out.iterdir()]}"
    names = zipfile.ZipFile(wheels[0]).namelist()
    assert {"jkoic/__init__.py", "jkoic/bench/targets.py"} <= set(names), sorted(names)
    stray = [n for n in names if n.split("/")[0] in ("reproduce", "tests", "notebooks", "benchmarks")]
    assert not stray, f"the wheel ships files outside the library: {stray}"
