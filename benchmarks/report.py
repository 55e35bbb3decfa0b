"""The results tables of ``benchmarks/README.md``, generated from ``benchmarks/results.json``
and ``benchmarks/default_fit.json``.

``bench.py`` prints the same rows after a run and rewrites the page's block between
``<!-- results:start -->`` and ``<!-- results:end -->`` (also alone: ``python
benchmarks/bench.py --write-readme``); ``default_fit.py`` rewrites the block between
``<!-- default-fit:start -->`` and ``<!-- default-fit:end -->``; :func:`profile_block` renders
the ``cpu`` profile's committed results (``results/cpu/<target>.json``) of GMM-d and LGCP between
``<!-- cpu-profile:start -->`` and ``<!-- cpu-profile:end -->``, its sampling-error references
(``results/cpu/references.json``) between ``<!-- references:start -->`` and
``<!-- references:end -->``. A unit test fails when the
committed page differs from what :func:`render` makes of the committed JSON files.
"""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path
from typing import Any

from jkoic.config import Config, schedule

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results.json"
DEFAULT_FIT = HERE / "default_fit.json"
README = HERE / "README.md"
START, END = "<!-- results:start -->", "<!-- results:end -->"
DEFAULT_START, DEFAULT_END = "<!-- default-fit:start -->", "<!-- default-fit:end -->"
PROFILE_DIR = HERE.parent / "results" / "cpu"
PROFILE_START, PROFILE_END = "<!-- cpu-profile:start -->", "<!-- cpu-profile:end -->"
REFS_START, REFS_END = "<!-- references:start -->", "<!-- references:end -->"
#: the targets of the profile table, in order of dimension
PROFILE_TARGETS = ("gmm10", "gmm20", "gmm50", "gmm100", "gmm200", "lgcp")

#: the goals of the default configuration on each of default_fit.py's targets
DEFAULT_GOALS = {"seconds": 180.0, "energy_ratio": 2.0, "mode_err": 0.02, "log_z_err": 0.05}

#: the goal of each quick case (the performance targets the package is held to)
GOALS = {
    "train8peaky": "<= 300 s; energy <= 5e-5, mode MSE <= 3e-5",
    "sample50k": "<= 10 s",
    "sample1m": "peak < 2048 MiB",
    "energy": "<= 60 s, peak < 2048 MiB",
    "sliced": "<= 2 s",
}

#: the suite's targets: results.json key -> (label, key of the paper's values)
SUITE = {
    "mustache": ("Mustache", "mustache"),
    "8modes": ("8 Modes", "8modes"),
    "funnel": ("Funnel", "funnel"),
    "gmm": ("GMM-10", "gmm10"),
}


def _e(x: float | None, digits: int = 2) -> str:
    """A metric in scientific notation with ``digits`` significant digits, ``1.2e-5`` (``-`` for None)."""
    return "-" if x is None else re.sub(r"e([+-])0(\d)", r"e\1\2", f"{x:.{digits - 1}e}")


def _threads(entry: dict[str, Any], results: dict[str, Any]) -> str:
    """The torch threads a case ran with (its own record, else the file's)."""
    return str(entry.get("threads", results.get("threads", "?")))


def quick_rows(results: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """One row per quick case in ``results``: case, threads, measured, quality, goal."""
    rows = []
    t = results.get("train8peaky")
    if t:
        med, runs = t["median"], t["runs"]
        quality = f"energy {_e(med['energy'])}, mode MSE {_e(med['mode_mse'])}"
        if t.get("draws"):
            quality += (
                f" (mean of {t['draws']} further draws: {_e(med['energy_draws_mean'])}, "
                f"{_e(med['mode_mse_draws_mean'])})"
            )
        rows.append(
            (
                f"`train8peaky`: 8 Peaky, `fast` preset, training + 50000 samples (median of {len(runs)} seeds)",
                _threads(t, results),
                f"{med['total_s']:.0f} s (training {med['train_s']:.0f} s)",
                quality,
                GOALS["train8peaky"],
            )
        )
    s = results.get("sample50k")
    if s:
        each = " / ".join(f"{x:.1f}" for x in s.get("runs", [s["seconds"]]))
        rows.append(
            (
                f"`sample50k`: 50000 samples with densities from that model ({s['layers']})",
                _threads(s, results),
                f"{s['seconds']:.1f} s (median of {each})",
                "-",
                GOALS["sample50k"],
            )
        )
    s = results.get("sample1m")
    if s:
        rows.append(
            (
                "`sample1m`: 1,000,000 samples with densities",
                _threads(s, results),
                f"{s['seconds']:.0f} s, peak {s['peak_mib']:.0f} MiB",
                "-",
                GOALS["sample1m"],
            )
        )
    for case, what in (("energy", "exact"), ("sliced", "sliced")):
        s = results.get(case)
        if s:
            secs = f"{s['seconds']:.1f} s" if s["seconds"] >= 1 else f"{s['seconds']:.2f} s"
            rows.append(
                (
                    f"`{case}`: {what} energy distance, 50000 vs 50000 in 2-D",
                    _threads(s, results),
                    f"{secs}, peak {s['peak_mib']:.0f} MiB",
                    _e(s["value"], 4),
                    GOALS[case],
                )
            )
    return rows


_METRICS = {"energy": "energy", "log_z": "log Z", "mode_mse": "mode MSE"}


def _paper(key: str) -> dict[str, tuple[float, float]]:
    """The paper's JKO-IC mean and std in Tables 1 (energy), 2 (log Z) and 4 (mode MSE)."""
    from reproduce import values as paper_values

    out = {}
    for number, metric in ((1, "energy"), (2, "log_z"), (4, "mode_mse")):
        try:
            v = paper_values.value(number, key, "jkoic")
        except KeyError:  # the paper has no such cell (Table 4 lists the mixtures only)
            continue
        if v.reported:
            out[metric] = (float(v.mean), float(v.std or 0.0))
    return out


def _draws(r: dict[str, Any], metric: str) -> str:
    """``timed draw / mean of k further draws`` of a metric."""
    if metric not in r:
        return "-"
    text = _e(r[metric])
    draws = r.get(f"{metric}_draws") or []
    if draws:
        text += f" / {_e(statistics.mean(draws))} ({len(draws)})"
    return text


def suite_rows(results: dict[str, Any]) -> list[tuple[str, ...]]:
    """One row per target of the ``suite`` case: timings, metrics and the paper's values."""
    rows = []
    for name, r in (results.get("suite") or {}).items():
        label, key = SUITE.get(name, (name, name))
        paper = _paper(key)
        rows.append(
            (
                label,
                _threads(r, results),
                f"{r['train_s']:.0f} + {r['sample_s']:.0f} s = {r['total_s'] / 60:.1f} min",
                _draws(r, "energy"),
                _e(r.get("log_z")),
                _draws(r, "mode_mse"),
                "; ".join(f"{_METRICS[m]} {_e(mu)} ± {_e(sd)}" for m, (mu, sd) in paper.items()),
            )
        )
    return rows


def scaling_rows(results: dict[str, Any]) -> list[tuple[str, ...]]:
    """One row per dimension of the ``scaling`` case, in order of d."""
    rows = []
    for key in sorted(results.get("scaling", {}), key=int):
        r = results["scaling"][key]
        exact = r.get("sample10k_exact_s")
        rows.append(
            (
                f"GMM-{r['dim']}" if r["target"] == "gmm" else f"{r['target'].upper()} ({r['dim']})",
                f"{r['hidden']} / {r['batch_size']}",
                f"{1000 * r['adam_iter_s']:.0f} ms",
                f"{r['sample10k_hutchinson_s']:.1f} s ({r['n_probes_eval']} probes)",
                "-" if exact is None else f"{exact:.1f} s",
                f"{r['peak_mib']:.0f} MiB",
            )
        )
    return rows


def load_profile(
    folder: Path = PROFILE_DIR, references: dict[str, dict[str, Any]] | None = None
) -> dict[str, dict[str, Any]]:
    """The combined results of :data:`PROFILE_TARGETS` found in ``folder`` (missing ones left out),
    their sampling errors the references job's draws where it ran (:mod:`reproduce.references`;
    ``references``: :func:`load_references` of ``folder``, read here when not given)."""
    from reproduce.references import with_references

    out = {}
    for key in PROFILE_TARGETS:
        path = folder / f"{key}.json"
        if path.is_file():
            out[key] = json.loads(path.read_text())
    return with_references(out, load_references(folder) if references is None else references)


def load_references(folder: Path = PROFILE_DIR) -> dict[str, dict[str, Any]]:
    """The ``cpu`` profile's sampling-error draws (``references.json``; empty without one)."""
    from reproduce import references

    return references.load_references(folder)


def _spread(values: list[float], digits: int = 2) -> str:
    """``mean [min .. max]`` of the draws (``-`` for none)."""
    return f"{_e(_mean(values), digits)} [{_e(min(values))} .. {_e(max(values))}]" if values else "-"


def references_block(entries: dict[str, dict[str, Any]]) -> str:
    """The references job's draws per target: mean and range of each metric, as Markdown."""
    if not entries:
        return "No references of the `cpu` profile in results/cpu/.\n"
    from reproduce import values as paper_values

    head = ("target", "N (W2²)", "draws", "energy: mean [range]", "W2²: mean [range]", "mode MSE: mean [range]")
    rows = [
        (
            paper_values.TARGETS.get(key, key),
            f"{e['n_eval']} ({e['n_w2']})",
            str(len(e["seeds"])),
            *(_spread(e["values"].get(m) or []) for m in ("energy", "w2", "mode_mse")),
        )
        for key, e in entries.items()
    ]
    return "\n".join(_table(head, rows)) + "\n"


def _mean(values: list[float]) -> float | None:
    """The mean of a list, None for an empty one."""
    return statistics.mean(values) if values else None


def _run_mean(runs: list[dict[str, Any]], name: str) -> float | None:
    """The mean of a metric over the runs that have it."""
    return _mean([r["metrics"][name] for r in runs if r["metrics"].get(name) is not None])


def _triple(ours: float | None, exact: float | None, paper: tuple[float, float] | None) -> str:
    """``ours / exact / paper`` (``-`` where ours is missing)."""
    return "-" if ours is None else f"{_e(ours)} / {_e(exact)} / {_e(paper[0] if paper else None)}"


def profile_rows(results: dict[str, dict[str, Any]]) -> list[tuple[str, ...]]:
    """One row per target of :func:`load_profile`: the whole JKO-IC fit at the profile, and its quality.

    Each metric is ours (mean over runs) / an exact sampler's at the same N (the sampling error;
    for log Z the standard error of our estimate) / the paper's JKO-IC mean.
    """
    rows = []
    for key, res in results.items():
        runs = (res.get("runs") or {}).get("jkoic") or []
        cfg = (res.get("configs") or {}).get("jkoic") or {}
        if not runs or not cfg:
            continue
        from reproduce import values as paper_values

        dim = int(paper_values.table6(key)["dim"])
        paper = _paper(key)
        ref = res.get("reference") or {}

        config = Config.from_dict(cfg)
        kinds = [kind for kind, _ in schedule(config)]
        mode = config.trace_mode(dim, evaluation=True)
        trace = "exact" if mode == "exact" else f"Hutchinson ({config.n_probes_eval})"
        log_z = _run_mean(runs, "log_z")
        lz_paper = paper.get("log_z", (None,))[0]
        rows.append(
            (
                res.get("label", key),
                f"{config.hidden_width(dim)} / {config.n_iters}",
                ("GF + " if "gradient_flow" in kinds else "") + f"{kinds.count('cnf')} + {kinds.count('rejection')}",
                trace,
                f"{_mean([r['train_seconds'] for r in runs]) / 60:.1f} min",
                f"{_mean([r['sample_seconds'] for r in runs]):.0f} s ({runs[0].get('n_samples')})",
                _triple(_run_mean(runs, "energy"), _mean(ref.get("energy") or []), paper.get("energy")),
                "-" if log_z is None else f"{log_z:+.3g} ± {_e(_run_mean(runs, 'log_z_se'))} / {lz_paper:+.3g}",
                _triple(_run_mean(runs, "mode_mse"), _mean(ref.get("mode_mse") or []), paper.get("mode_mse")),
            )
        )
    return rows


def profile_block(results: dict[str, dict[str, Any]]) -> str:
    """The ``cpu`` profile's high-dimensional fits (:func:`profile_rows`) as Markdown, without the markers."""
    rows = profile_rows(results)
    if not rows:
        return "No results of the `cpu` profile in results/cpu/.\n"
    head = ("target", "width / Adam it.", "CNF + rejection layers", "densities", "training", "sampling (N)")
    head += ("energy: ours / exact / paper", "log Z: ours ± se / paper", "mode MSE: ours / exact / paper")
    machines = sorted(
        {
            f"{m.get('cpu', '?')}, {m.get('cores', '?')} cores, {m.get('torch_threads', '?')} torch thread(s) per job"
            for m in ((r.get("machine") or {}) for r in results.values())
        }
    )
    out = [f"Machine: {'; '.join(machines)}.", ""] + _table(head, rows)
    return "\n".join(out) + "\n"


def _table(head: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    """A Markdown table."""
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |" for r in rows]


def results_block(results: dict[str, Any]) -> str:
    """The page's generated block: the machine, the quick cases and the suite.

    Args:
        results: the content of ``results.json``.

    Returns:
        Markdown, without the markers.
    """
    out = [f"Machine: {results.get('machine', '?')}.", ""]
    out += _table(("case", "threads", "measured", "quality", "goal"), quick_rows(results))
    suite = suite_rows(results)
    if suite:
        out += ["", "`suite` (seed 0, N = 50000; in brackets the number of further untimed draws averaged):", ""]
        head = ("target", "threads", "train + sample", "energy: timed / draws", "log Z (ELBO)")
        out += _table((*head, "mode MSE: timed / draws", "paper (JKO-IC)"), suite)
    scaling = scaling_rows(results)
    if scaling:
        out += ["", "`scaling` (one CNF step of the `fast` preset, Table 6 widths, 2 RK4 steps):", ""]
        head = ("target", "width / batch", "Adam iteration", "10000 samples: Hutchinson", "exact", "peak")
        out += _table(head, scaling)
    return "\n".join(out) + "\n"


def default_fit_block(fits: dict[str, Any]) -> str:
    """The default configuration's table: one row per fit of ``default_fit.json``, each goal
    of :data:`DEFAULT_GOALS` marked where it is missed.

    Args:
        fits: the content of ``default_fit.json``.

    Returns:
        Markdown, without the markers.
    """
    g = DEFAULT_GOALS
    rows = []
    for r in fits.get("rows", {}).values():
        misses = []
        if r["seconds"] > g["seconds"]:
            misses.append("time")
        if r["energy"] > g["energy_ratio"] * r["energy_ref"]:
            misses.append("energy")
        if r.get("mode_err") is not None and r["mode_err"] > g["mode_err"]:
            misses.append("mode weights")
        if abs(r["log_z_err"]) > g["log_z_err"]:
            misses.append("log Z")
        if abs(r.get("log_z_err_iw", 0.0)) > g["log_z_err"]:
            misses.append("log Z (IW)")
        budget = f" ({r['budget']})" if r.get("budget") else ""
        stop = (r["stop"] or "schedule complete").split(":")[0]
        rows.append(
            (
                f"{r['target']}{budget}",
                str(r["dim"]),
                f"{r['seconds']:.0f}",
                f"{r['energy']:.1e} / {r['energy_ref']:.1e}",
                "-" if r.get("mode_err") is None else f"{r['mode_err']:.3f}",
                f"{r['log_z_err']:+.3f} / {r['log_z_err_iw']:+.3f}"
                if "log_z_err_iw" in r
                else f"{r['log_z_err']:+.3f}",
                f"{r['layers']} ({r.get('cnf_steps', '?')} CNF)",
                stop,
                "all" if not misses else "missed: " + ", ".join(misses),
            )
        )
    head = (
        "target",
        "d",
        "fit s",
        "energy / exact-vs-exact",
        "mode weight err",
        "log Z err: ELBO / IW",
        "layers",
        "stop",
        "goals",
    )
    return "\n".join([f"Machine: {fits.get('machine', '?')}.", "", *_table(head, rows)]) + "\n"


def _replace(page: str, start: str, end: str, block: str) -> str:
    i, j = page.find(start), page.find(end)
    if i < 0 or j < i:
        raise ValueError(f"{README.name} has no {start} ... {end} block")
    return page[: i + len(start)] + "\n" + block + page[j:]


def render(
    page: str,
    results: dict[str, Any],
    fits: dict[str, Any] | None = None,
    profile: dict[str, dict[str, Any]] | None = None,
    references: dict[str, dict[str, Any]] | None = None,
) -> str:
    """``page`` with its results block replaced by :func:`results_block`, (``fits`` given) its
    default-fit block by :func:`default_fit_block`, (``profile`` given) its cpu-profile block
    by :func:`profile_block` and (``references`` given) its references block by
    :func:`references_block`.

    Raises:
        ValueError: the page lacks the markers.
    """
    page = _replace(page, START, END, results_block(results))
    if fits is not None:
        page = _replace(page, DEFAULT_START, DEFAULT_END, default_fit_block(fits))
    if profile is not None:
        page = _replace(page, PROFILE_START, PROFILE_END, profile_block(profile))
    return page if references is None else _replace(page, REFS_START, REFS_END, references_block(references))


def write_readme(results_path: Path = RESULTS, readme: Path = README, fits_path: Path = DEFAULT_FIT) -> bool:
    """Rewrite the page's generated blocks from ``results_path`` and ``fits_path``.

    Returns:
        Whether the page changed.
    """
    page = readme.read_text()
    results, fits = json.loads(results_path.read_text()), json.loads(fits_path.read_text())
    refs = load_references()
    new = render(page, results, fits, load_profile(references=refs), refs)
    if new != page:
        readme.write_text(new)
    return new != page
