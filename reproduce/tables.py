"""The paper's Tables 1-7 from the results JSON: ours beside the published values.

:func:`build_table` (Tables 1-5, 7) and :func:`build_table6` return a :class:`Table`;
:func:`to_markdown`, :func:`to_latex` and :func:`to_csv` render it, :func:`write_table` and
:func:`write_all_tables` write the files, :func:`headline` summarises JKO-IC's cells.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from jkoic import preset

from . import values as PV
from .paths import resolve_path
from .results import fmt, fmt_pm, mean_std, write_text
from .table_render import Table, header_cells, to_csv, to_latex, to_markdown, write_table

__all__ = [
    "Table",
    "build_table",
    "build_table6",
    "collect",
    "header_cells",
    "headline",
    "load_for_tables",
    "machine_line",
    "to_csv",
    "to_latex",
    "to_markdown",
    "write_all_tables",
    "write_table",
]

Results = dict[str, dict[str, Any]]

#: Table 6 rows: (row key of :data:`reproduce.values.TABLE6`, Config field)
_TABLE6_PARAMS = [
    ("n1", "n_flow_steps"),
    ("n2", "n_blocks"),
    ("tau0", "tau0"),
    ("latent_scale", "latent_scale"),
    ("gradient_flow_time", "gradient_flow_time"),
    ("hidden", "hidden"),
    ("batch_size", "batch_size"),
]


def load_for_tables(results_dir: str | os.PathLike[str], base: str | os.PathLike[str] | None = None) -> Results:
    """The results the tables are built from: :func:`reproduce.results.load_results`, each target's
    sampling errors replaced by the references job's draws where they match its sizes
    (:func:`reproduce.references.with_references`).

    Args:
        results_dir: the profile's results folder.
        base: another profile's folder for the targets ``results_dir`` lacks.
    """
    from .references import load_references, with_references
    from .results import load_results

    return with_references(load_results(results_dir, base=base), load_references(results_dir, base=base))


def collect(results: Results) -> dict[tuple[str, str, str], list[float]]:
    """Gather every value of every metric.

    Args:
        results: :func:`reproduce.results.load_results`.

    Returns:
        ``(target, method, metric) -> values``. ``<metric>_values`` lists (Sinkhorn
        evaluations) are flattened into their metric; the sampling-error references become
        method ``sampling_error`` and the true log Z method ``ground_truth``; a metric of
        :data:`reproduce.values.METRIC_VARIANTS` is filed under its table metric and suffixed
        method; neural JKO IC's ``log_z_se`` is Table 2's sampling error.
    """
    out: dict[tuple[str, str, str], list[float]] = {}
    for key, res in results.items():
        for method, runs in res.get("runs", {}).items():
            for r in runs:
                m = r.get("metrics", {})
                for metric, v in m.items():
                    if metric.endswith("_values"):
                        continue
                    vals = m.get(f"{metric}_values")
                    out.setdefault((key, method, metric), []).extend(vals if vals else [v])
        for metric, vals in res.get("reference", {}).items():
            out.setdefault((key, "sampling_error", metric), []).extend(vals)
        if res.get("log_z_true") is not None:
            out[(key, "ground_truth", "log_z")] = [float(res["log_z_true"])]
    for (key, method, metric), vals in list(out.items()):
        if metric in PV.METRIC_VARIANTS:
            base, suffix = PV.METRIC_VARIANTS[metric]
            out[(key, method + suffix, base)] = vals
        elif method == "jkoic" and metric == "log_z_se":
            out[(key, "sampling_error", "log_z")] = vals
    return out


def _columns(pt: PV.PaperTable) -> tuple[list[tuple[str, int]], list[str], list[tuple[str, str, bool]]]:
    """Header groups, subheader and ``(method, metric, quoted)`` columns of a paper table."""
    groups: list[tuple[str, int]] = []
    sub: list[str] = []
    cols: list[tuple[str, str, bool]] = []
    for metric in pt.metrics:
        for method in pt.columns:
            quoted = method in PV.QUOTED
            label = PV.METHODS[method] + (" (quoted)" if quoted else "")
            if len(pt.metrics) > 1:
                label = f"{PV.METRICS[metric]}: {label}"
            if quoted:
                groups.append((label, 1))
                sub.append("paper")
            else:
                groups.append((label, 2))
                sub.extend(["ours", "paper"])
            cols.append((method, metric, quoted))
    return groups, sub, cols


def _runs_caption(
    pt: PV.PaperTable, results: Results, cols: list[tuple[str, str, bool]], records: list[dict[str, Any]]
) -> str:
    """``"1/2 run(s)"``: the run counts behind the cells, with pooled per-evaluation counts."""
    methods = {c[0] for c in cols}
    runs = sorted(
        {
            len(v)
            for key, res in results.items()
            if key in pt.rows
            for m, v in res.get("runs", {}).items()
            if m in methods and v
        }
    )
    # metrics with per-evaluation lists (Sinkhorn) pool every evaluation of every run
    pooled = sorted(
        {
            r["ours_runs"]
            for r in records
            if r["ours_runs"]
            and any(
                f"{r['metric']}_values" in run.get("metrics", {})
                for run in results.get(r["target"], {}).get("runs", {}).get(r["method"], [])
            )
        }
    )
    over = f"{'/'.join(map(str, runs)) or 'no'} run(s)"
    if pooled:
        over += f" ({'/'.join(map(str, pooled))} evaluations pooled)"
    return over


def build_table(number: int, results: Results, digits: int = 2) -> Table:
    """Table ``number``: our mean ± std over runs beside the paper's value.

    Columns: per method (and metric, Table 7) an ``ours`` and a ``paper`` column; quoted
    methods (DDS, CRAFT, ...) have only the paper's column. ``-``: not run / not reported.

    Args:
        number: 1-5 or 7.
        results: :func:`reproduce.results.load_results`.
        digits: significant digits of the cells.

    Returns:
        The :class:`Table`.
    """
    pt = PV.table(number)
    ours = collect(results)
    groups, sub, cols = _columns(pt)
    rows, labels, records = [], [], []
    for target in pt.rows:
        labels.append(PV.TARGETS[target])
        row: list[str] = []
        for method, metric, quoted in cols:
            pv = pt.get(target, method, metric)
            mean, std, n = mean_std(ours.get((target, method, metric), []))
            paper_txt = fmt_pm(pv.mean, pv.std, 2, digits) if pv.reported else "n/a"
            if pv.note and pv.reported:
                paper_txt += "*"
            if not quoted:
                row.append(fmt_pm(mean, std, n, digits))
            row.append(paper_txt)
            records.append(
                {
                    "table": number,
                    "target": target,
                    "method": method,
                    "metric": metric,
                    "ours_mean": mean,
                    "ours_std": std,
                    "ours_runs": n,
                    "paper_mean": pv.mean,
                    "paper_std": pv.std,
                    "quoted": quoted,
                    "note": pv.note,
                }
            )
        rows.append(row)
    notes = sorted(
        {
            f"{PV.TARGETS[t]}, {PV.METHODS[m]}: {pv.note}"
            for (t, m, _), pv in pt.cells.items()
            if pv.note and pv.reported and not pv.note.startswith("no std")
        }
    )
    footer = [f"* {n}" for n in notes] + _recomputed_notes(pt, ours, digits)
    caption = (
        f"{pt.caption} Ours: mean ± std over {_runs_caption(pt, results, cols, records)} "
        f"(profile {_profiles(results)}); paper: the published value.{_draws_caption(pt, results)}"
    )
    return Table(f"table{number}", f"Table {number}: {pt.title}", caption, groups, sub, labels, rows, records, footer)


def _draws_caption(pt: PV.PaperTable, results: Results) -> str:
    """``" Sampling error: ... over 20 draws ..."``: where the sampling errors are the
    references job's draws (:func:`reproduce.references.with_references`), else ``""``."""
    if "sampling_error" not in pt.columns:
        return ""
    draws = sorted(
        {
            int(res["reference_draws"])
            for key, res in results.items()
            if key in pt.rows and res.get("reference_draws") and set(pt.metrics) & set(res.get("reference", {}))
        }
    )
    if not draws:
        return ""
    return (
        f" Sampling error: mean ± std over {' / '.join(map(str, draws))} draws of an exact sampler against "
        "another at our sample sizes (its expected level: single draws scatter widely around it)."
    )


def _recomputed_notes(pt: PV.PaperTable, ours: dict[tuple[str, str, str], list[float]], digits: int) -> list[str]:
    """Footer lines for our log Z cells whose evaluation also recomputed the densities
    (``log_z_recomputed`` of :func:`reproduce.evaluation.evaluate`)."""
    if "log_z" not in pt.metrics:
        return []
    notes = []
    for target in pt.rows:
        for method in pt.columns:
            mean, std, n = mean_std(ours.get((target, method, "log_z_recomputed"), []))
            if n:
                notes.append(
                    f"Ours, {PV.TARGETS[target]}, {PV.METHODS[method]}: the ELBO on the densities of the sampling "
                    "paths, Hutchinson estimates that the rejection layers select for low values; on the same "
                    f"samples' densities recomputed by log_prob: {fmt_pm(mean, std, n, digits)}"
                )
    return notes


def _profiles(results: Results) -> str:
    """The profiles the results come from, comma-separated (``"-"`` for none)."""
    return ", ".join(sorted({str(r.get("profile")) for r in results.values()})) or "-"


def _num(v: Any) -> str:
    """A setting as text: integral floats without decimals, ``"-"`` for None."""
    if v is None:
        return "-"
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e6:
        return str(int(v))
    return f"{v:g}"


def _late(cfg: dict[str, Any], field_name: str, text: str) -> str:
    """``text``, followed by the late CNF steps' value of ``field_name`` where one is set."""
    late = cfg.get(f"late_{field_name}") if field_name in ("batch_size", "n_iters") else None
    if late is None or cfg.get("late_tau") is None:
        return text
    return f"{text} ({_num(late)} from tau {_num(cfg['late_tau'])})"


def _protocol_notes(results: Results) -> list[str]:
    """Footer lines for the training choices of ours that Table 6 has no column for.

    The dataset size (paper: 50000, Funnel 200000), the warm start of each CNF step from the
    previous one, and the search over multiples of each trained field (``Config.scale_search``).
    """
    notes = []
    for target in PV.TABLE6:
        cfg = results.get(target, {}).get("configs", {}).get("jkoic")
        if not cfg:
            continue
        parts = []
        paper_data = preset(target, "paper").dataset_size
        if cfg.get("dataset_size") is not None and cfg["dataset_size"] != paper_data:
            parts.append(f"dataset of {_num(cfg['dataset_size'])} samples per CNF step (paper {_num(paper_data)})")
        if cfg.get("warm_start"):
            parts.append("each CNF step starts from the previous step's trained field (paper: from zero)")
        if cfg.get("scale_search"):
            grid = "/".join(_num(float(v)) for v in cfg["scale_search"])
            parts.append(
                f"each trained field scaled by the multiple in {grid} with the lowest JKO objective "
                f"on {_num(cfg.get('validation_size'))} fresh samples"
            )
        if parts:
            notes.append(f"Ours, {PV.TARGETS[target]}: " + "; ".join(parts) + ".")
    return notes


def _table6_row(target: str, paper: dict[str, Any], res: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
    """The cells and CSV records of ``target``'s row of Table 6."""
    cfg = res.get("configs", {}).get("jkoic")
    runs = res.get("runs", {}).get("jkoic", [])
    row = [_num(paper["dim"])]
    records: list[dict[str, Any]] = []
    for p, field_name in _TABLE6_PARAMS:
        ours = None
        if cfg is not None:
            ours = cfg.get(field_name)
            if p == "hidden" and ours is None:
                ours = 2 * paper["dim"] + 50
        row += [_late(cfg, field_name, _num(ours)) if cfg is not None else "-", _num(paper[p])]
        records.append({"table": 6, "target": target, "row": p, "ours": ours, "paper": paper[p]})
    paper_iters = preset(target, "paper").n_iters
    ours_iters = cfg.get("n_iters") if cfg else None
    row += [_late(cfg, "n_iters", _num(ours_iters)) if cfg else "-", _num(paper_iters)]
    records.append({"table": 6, "target": target, "row": "n_iters", "ours": ours_iters, "paper": paper_iters})
    tr, _, _ = mean_std([r["train_seconds"] / 60.0 for r in runs])
    sm, _, _ = mean_std([r["sample_seconds"] for r in runs])
    n_s = sorted({int(r["n_samples"]) for r in runs})
    row += [f"{tr:.3g}" if tr is not None else "-", _num(paper["train_minutes"])]
    row += [
        f"{sm:.3g} (N={'/'.join(map(str, n_s))})" if sm is not None else "-",
        f"{_num(paper['sample_seconds'])} (N=50000)",
    ]
    records.append({"table": 6, "target": target, "row": "train_minutes", "ours": tr, "paper": paper["train_minutes"]})
    records.append(
        {
            "table": 6,
            "target": target,
            "row": "sample_seconds",
            "ours": sm,
            "paper": paper["sample_seconds"],
            "ours_n_samples": n_s[0] if n_s else None,
        }
    )
    return row, records


def machine_line(m: dict[str, Any]) -> str:
    """One line describing a machine (:func:`reproduce.environment.machine_info`).

    Args:
        m: the ``machine`` entry of a results file.

    Returns:
        ``"<device> on <cpu> (<cores> cores, <threads> torch threads; <platform>; torch <version>)"``.
    """
    return (
        f"{m.get('device', '?')} on {m.get('cpu', '?')} ({m.get('cores', '?')} cores, "
        f"{m.get('torch_threads', '?')} torch threads; {m.get('platform', '?')}; torch {m.get('torch', '?')})"
    )


def build_table6(results: Results) -> Table:
    """Table 6: our settings, training and sampling times beside the paper's (and the machine).

    Args:
        results: :func:`reproduce.results.load_results`.

    Returns:
        The :class:`Table`.
    """
    groups = (
        [("Dimension", 1)]
        + [(PV.TABLE6_ROWS[p], 2) for p, _ in _TABLE6_PARAMS]
        + [("Iterations per CNF step", 2), ("Training time (min)", 2), ("Sampling time (s)", 2)]
    )
    sub = ["d"] + ["ours", "paper"] * (len(_TABLE6_PARAMS) + 3)
    rows, labels, records = [], [], []
    machines: set[str] = set()
    for target, paper in PV.TABLE6.items():
        res = results.get(target, {})
        labels.append(PV.TARGETS[target])
        row, recs = _table6_row(target, paper, res)
        rows.append(row)
        records += recs
        if res.get("runs", {}).get("jkoic"):
            machines.add(machine_line(res.get("machine", {})))
    footer = [f"Ours measured on: {m}" for m in sorted(machines)] or ["Ours: no JKO-IC runs found."]
    footer += _protocol_notes(results)
    footer.append(
        f"Paper measured on {PV.TABLE6_MACHINE}; GPU memory (paper): "
        + ", ".join(f"{PV.TARGETS[t]} {v['gpu_memory_gb']} GB" for t, v in PV.TABLE6.items())
        + "."
    )
    footer += [f"* {PV.TARGETS[t]}, {PV.TABLE6_ROWS[r]}: {n}" for (t, r), n in PV.TABLE6_NOTES.items()]
    caption = (
        "Parameters, training and sampling times of neural JKO IC. Ours: the settings used by this run "
        f"(profile {_profiles(results)}) and the mean time over runs; paper: Table 6."
    )
    return Table(
        "table6",
        "Table 6: Parameters, training and sampling times",
        caption,
        groups,
        sub,
        labels,
        rows,
        records,
        footer,
        stub="Target",
    )


def write_all_tables(results: Results, out_dir: str | os.PathLike[str]) -> dict[str, Table]:
    """Build and write Tables 1-7, plus ``tables.md`` with all of them.

    Args:
        results: :func:`reproduce.results.load_results`.
        out_dir: the folder (relative to the repository root or absolute).

    Returns:
        The tables by name, ``table1`` .. ``table7``.
    """
    tables: dict[str, Table] = {}
    for n in (1, 2, 3, 4, 5):
        tables[f"table{n}"] = build_table(n, results)
    tables["table6"] = build_table6(results)
    tables["table7"] = build_table(7, results)
    for t in tables.values():
        write_table(t, out_dir)
    write_text(resolve_path(out_dir) / "tables.md", "\n".join(to_markdown(t) for t in tables.values()))
    return tables


_HEADLINE_METRICS = ("energy", "log_z", "w2", "mode_mse")


def _csv_number(text: str) -> float | None:
    """A CSV cell as a number; an empty cell is a missing value."""
    return float(text) if text else None


def headline(tables_dir: str | os.PathLike[str], method: str = "jkoic") -> str:
    """A Markdown table of ``method``'s cells of Tables 1-4, ours beside the paper's.

    One row per target with energy distance, log Z, W2^2 and mode MSE (ours / paper), and our
    sampling error of the energy distance for scale. Targets without any result of ours are
    left out.

    Args:
        tables_dir: the folder with ``table1.csv`` .. ``table4.csv`` (:func:`write_all_tables`).
        method: the method whose cells are shown.

    Returns:
        The Markdown table.

    Raises:
        ValueError: a table's CSV is missing.
    """
    cells: dict[str, dict[str, tuple[str, str]]] = {}
    ref: dict[str, str] = {}
    for number, metric in enumerate(_HEADLINE_METRICS, start=1):
        path = Path(tables_dir) / f"table{number}.csv"
        if not path.is_file():
            raise ValueError(f"{path} not found: run the assemble notebook first")
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                if row["method"] == "sampling_error" and number == 1:
                    ref[row["target"]] = fmt(_csv_number(row["ours_mean"]))
                if row["method"] == method:
                    ours = fmt_pm(
                        _csv_number(row["ours_mean"]), _csv_number(row["ours_std"]), int(row["ours_runs"] or 0)
                    )
                    paper_ = fmt_pm(_csv_number(row["paper_mean"]), _csv_number(row["paper_std"]))
                    cells.setdefault(row["target"], {})[metric] = (ours, paper_)
    head = (
        "| target | energy: ours | energy: paper | (our sampling error) | log Z: ours | log Z: paper "
        "| W2²: ours | W2²: paper | mode MSE: ours | mode MSE: paper |"
    )
    lines = [head, "|" + "---|" * 10]
    for target, c in cells.items():
        if all(ours == "-" for ours, _ in c.values()):
            continue
        (e_ours, e_paper), *rest = (c.get(m, ("-", "-")) for m in _HEADLINE_METRICS)
        row_cells = [
            PV.TARGETS.get(target, target),
            e_ours,
            e_paper,
            ref.get(target, "-"),
            *(v for p in rest for v in p),
        ]
        lines.append("| " + " | ".join(row_cells) + " |")
    return "\n".join(lines) + "\n"
