"""A results table and its renderings: Markdown, LaTeX and CSV, written side by side."""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .paths import resolve_path
from .results import write_text

__all__ = ["Table", "header_cells", "to_csv", "to_latex", "to_markdown", "write_table"]


@dataclass
class Table:
    """A rendered table: grouped header, rows of display strings, and CSV records.

    Attributes:
        name: the file stem (``"table1"``).
        title: the heading.
        caption: the caption.
        groups: ``(label, span)`` over the data columns.
        subheader: one label per data column (``"ours"`` / ``"paper"``).
        row_labels: one label per row.
        rows: the cells, display strings.
        records: the numbers behind the cells, one dict per cell (the CSV rows).
        footer: notes under the table.
        stub: the heading of the row-label column.
    """

    name: str
    title: str
    caption: str
    groups: list[tuple[str, int]]
    subheader: list[str]
    row_labels: list[str]
    rows: list[list[str]]
    records: list[dict[str, Any]]
    footer: list[str] = field(default_factory=list)
    stub: str = "Distribution"


def header_cells(table: Table) -> list[str]:
    """Flat column headings.

    Args:
        table: the table.

    Returns:
        One heading per data column (``"Neural JKO IC: ours"``, ``"DDS (paper, quoted)"``).
    """
    out, i = [], 0
    for label, span in table.groups:
        for k in range(span):
            sublabel = table.subheader[i + k]
            if span > 1:
                out.append(f"{label}: {sublabel}")
            elif sublabel == "paper":
                out.append(label.replace(" (quoted)", "") + (" (paper, quoted)" if "(quoted)" in label else " (paper)"))
            else:
                out.append(label)
        i += span
    return out


def to_markdown(table: Table) -> str:
    """Render a table as Markdown.

    Args:
        table: the table.

    Returns:
        A heading, the caption, a pipe table and the footer.
    """
    head = [table.stub] + header_cells(table)
    lines = [
        f"### {table.title}",
        "",
        table.caption,
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---"] * len(head)) + "|",
    ]
    for label, row in zip(table.row_labels, table.rows, strict=False):
        lines.append("| " + " | ".join([label] + [c.replace("|", "\\|") for c in row]) + " |")
    if table.footer:
        lines += [""] + [f"{f}  " for f in table.footer]
    return "\n".join(lines) + "\n"


_TEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\^{}",
    "$": r"\$",
    "±": r"$\pm$",
}


def _tex(s: str) -> str:
    """``s`` with LaTeX's special characters escaped."""
    return "".join(_TEX_ESCAPES.get(ch, ch) for ch in s)


def to_latex(table: Table) -> str:
    """Render a table as LaTeX.

    Args:
        table: the table.

    Returns:
        A ``table`` environment with booktabs rules and the grouped header.
    """
    ncol = len(table.subheader)
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        r"\scriptsize",
        rf"\caption{{{_tex(table.title)}. {_tex(table.caption)}}}",
        r"\begin{tabular}{l" + "c" * ncol + "}",
        r"\toprule",
    ]
    lines.append(
        _tex(table.stub)
        + " & "
        + " & ".join(rf"\multicolumn{{{span}}}{{c}}{{{_tex(label)}}}" for label, span in table.groups)
        + r" \\"
    )
    lines.append(" & " + " & ".join(_tex(s) for s in table.subheader) + r" \\")
    lines.append(r"\midrule")
    for label, row in zip(table.row_labels, table.rows, strict=False):
        lines.append(_tex(label) + " & " + " & ".join(_tex(c) for c in row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if table.footer:
        lines.append(r"\par\smallskip\raggedright " + r"\\ ".join(_tex(f) for f in table.footer))
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def to_csv(table: Table) -> str:
    """Render a table's records as CSV.

    Args:
        table: the table.

    Returns:
        CSV text: the union of the records' keys as columns, None as an empty cell.
    """
    keys: list[str] = []
    for r in table.records:
        keys += [k for k in r if k not in keys]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    w.writeheader()
    for r in table.records:
        w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in keys})
    return buf.getvalue()


def write_table(table: Table, out_dir: str | os.PathLike[str]) -> list[Path]:
    """Write ``<out_dir>/<name>.md``, ``.tex`` and ``.csv``, each atomically.

    Args:
        table: the table.
        out_dir: the folder (relative to the repository root or absolute).

    Returns:
        The three paths.
    """
    d = resolve_path(out_dir)
    return [
        write_text(d / f"{table.name}.md", to_markdown(table)),
        write_text(d / f"{table.name}.tex", to_latex(table)),
        write_text(d / f"{table.name}.csv", to_csv(table)),
    ]
