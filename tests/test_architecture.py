"""The layout the package promises: the core apart from the zoo and the reproduction, modules of one job."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORE = sorted((ROOT / "jkoic").glob("*.py"))
#: modules past the size limit, each with its reason
LARGE = {"values.py": "the paper's published tables transcribed as data, with a note per corrected cell"}
LIMIT = 520


def _imports(path: Path) -> list[tuple[str, bool]]:
    """``(imported module, at module level)`` for every import in ``path``, resolved to absolute names."""
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    pkg = "jkoic"
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, id(node) in top) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([pkg] + ([base] if base else []))
            names = [f"{base}.{a.name}" for a in node.names]
            out += [(n, id(node) in top) for n in names] + [(base, id(node) in top)]
    return out


def test_core_never_imports_the_evaluation_code_or_the_reproduction():
    for path in CORE:
        for name, _ in _imports(path):
            assert not name.startswith(
                ("jkoic.bench.metrics", "jkoic.bench.baselines", "jkoic.bench.data", "reproduce")
            ), f"{path.name} imports {name}"


def test_core_reaches_the_zoo_only_for_target_names_and_only_on_demand():
    allowed = {"__init__.py"}  # re-exports jkoic.targets for users
    for path in CORE:
        for name, top_level in _imports(path):
            if name.startswith("jkoic.bench") and path.name not in allowed:
                assert name.startswith("jkoic.bench.targets") or name == "jkoic.bench", (path.name, name)
                assert not top_level, f"{path.name} imports {name} at module level"


def test_no_module_outgrows_one_job():
    for path in sorted((ROOT / "jkoic").rglob("*.py")) + sorted((ROOT / "reproduce").rglob("*.py")):
        n = len(path.read_text().splitlines())
        assert n <= LIMIT or path.name in LARGE, f"{path.relative_to(ROOT)} has {n} lines"
