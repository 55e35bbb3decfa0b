"""Verdicts on the JKO-IC cells of Tables 1-4: at the paper, and reproduced.

Two readings of the same cells, each one sentence under README.md's headline table:

* :func:`at_paper`: our value within the paper's mean ± std, or beyond it on the better side;
* :func:`reproduced`: the reproduction's tolerance. A distance (energy, W2², mode MSE) counts
  when it is at most the paper's mean + 2 std, or at most twice our own sampling error (the same
  metric between exact samples at our sample size: a single run at a smaller N than the paper's
  cannot be read more finely than that). A log Z counts when it is as close to the true log Z as
  the paper's mean + 2 std; without a known truth (LGCP), when it is at least the paper's mean
  minus one nat (both are ELBOs, lower bounds of log Z).

Both read the tables' CSV files (``figures/tables/table1.csv`` ..), so the sentences follow the
committed tables.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from pathlib import Path

from . import values as PV
from .paths import resolve_path

__all__ = ["HEADLINE", "LOG_Z_SLACK", "at_paper", "cell_number", "is_reproduced", "reproduced", "table_rows"]

#: Tables 1-4: metric label and whether higher is better
HEADLINE = {1: ("energy", False), 2: ("log Z", True), 3: ("W2²", False), 4: ("mode MSE", False)}

#: nats below the paper's log Z that still count as reproduced where the truth is unknown
LOG_Z_SLACK = 1.0


def table_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a table's CSV (none if it is missing)."""
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def cell_number(text: str | None) -> float | None:
    """A CSV cell as a number (None when empty)."""
    return float(text) if text else None


#: one cell: table number, label, higher is better, target, ours, paper mean, paper std, the target's rows
_Cell = tuple[int, str, bool, str, float, float, float, dict[str, dict[str, str]]]


def _cells(tables_dir: str | os.PathLike[str], method: str) -> Iterator[_Cell]:
    """The cells of ``method`` in Tables 1-4 that have both our value and the paper's."""
    for number, (label, higher) in HEADLINE.items():
        rows = table_rows(resolve_path(tables_dir) / f"table{number}.csv")
        by_target: dict[str, dict[str, dict[str, str]]] = {}
        for r in rows:
            by_target.setdefault(r["target"], {})[r["method"]] = r
        for r in rows:
            ours, mean = cell_number(r["ours_mean"]), cell_number(r["paper_mean"])
            if r["method"] != method or ours is None or mean is None:
                continue
            std = cell_number(r["paper_std"]) or 0.0
            yield number, label, higher, r["target"], ours, mean, std, by_target[r["target"]]


def at_paper(tables_dir: str | os.PathLike[str], method: str = "jkoic") -> str:
    """One sentence: the cells of Tables 1-4 where ``method`` is at or better than the paper.

    A cell counts when our mean lies within the paper's mean ± std or beyond it on the better
    side (lower for the distances, higher for log Z).

    Args:
        tables_dir: the folder with ``table1.csv`` .. ``table4.csv``.
        method: the method.

    Returns:
        The sentence (Markdown).
    """
    hits: dict[str, list[str]] = {}
    total = 0
    for _, label, higher, target, ours, mean, std, _ in _cells(tables_dir, method):
        total += 1
        if (ours >= mean - std) if higher else (ours <= mean + std):
            hits.setdefault(target, []).append(label)
    n = sum(map(len, hits.values()))
    listed = "; ".join(f"{PV.TARGETS.get(t, t)} ({', '.join(m)})" for t, m in hits.items())
    return f"At or better than the paper's mean ± std in {n} of {total} cells" + (f": {listed}." if listed else ".")


def _other(rows: dict[str, dict[str, str]], method: str) -> float | None:
    r = rows.get(method)
    return cell_number(r["ours_mean"]) if r else None


def is_reproduced(number: int, ours: float, mean: float, std: float, rows: dict[str, dict[str, str]]) -> bool:
    """Whether one cell of Table ``number`` is within the reproduction's tolerance (module docstring).

    Args:
        number: the table (1-4).
        ours: our value.
        mean, std: the paper's.
        rows: the target's rows of that table by method (``sampling_error``, ``ground_truth``).
    """
    if number == 2:
        truth = _other(rows, "ground_truth")
        if truth is None:
            return ours >= mean - LOG_Z_SLACK
        return abs(ours - truth) <= abs(mean - truth) + 2 * std
    if ours <= mean + 2 * std:
        return True
    error = _other(rows, "sampling_error")
    return error is not None and ours <= 2 * error


def reproduced(tables_dir: str | os.PathLike[str], method: str = "jkoic") -> str:
    """One sentence: how many cells of Tables 1-4 are reproduced, and which are not.

    Args:
        tables_dir: the folder with ``table1.csv`` .. ``table4.csv``.
        method: the method.

    Returns:
        The sentence (Markdown), naming the cells outside the tolerance.
    """
    misses: dict[str, list[str]] = {}
    order: list[str] = []  # targets as Table 1 (then 2, ..) lists them
    total = 0
    for number, label, _, target, ours, mean, std, rows in _cells(tables_dir, method):
        total += 1
        order += [target] if target not in order else []
        if not is_reproduced(number, ours, mean, std, rows):
            misses.setdefault(target, []).append(label)
    n = total - sum(map(len, misses.values()))
    rule = (
        "Reproduced (a distance at most the paper's mean + 2 std or twice our sampling error; log Z as close "
        "to the truth as the paper's mean + 2 std, or without a truth at least the paper's mean - "
        f"{LOG_Z_SLACK:g}) in {n} of {total} cells"
    )
    if not misses:
        return rule + "."
    listed = "; ".join(f"{PV.TARGETS.get(t, t)} ({', '.join(misses[t])})" for t in order if t in misses)
    return f"{rule}; not reproduced: {listed}."
