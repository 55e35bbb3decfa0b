"""The sampling-error references as expectations: an exact sampler's score, over many draws.

A target notebook scores one exact-vs-exact draw per run beside each method's run
(:func:`reproduce.evaluation.reference_errors`). One draw is a noisy reference: at N = 2000 the
exact W2^2 of two exact 8 Modes sets spans a factor of five over 20 seeds, and an exact
mixture sampler's mode MSE spreads as a scaled chi-square with (modes - 1) degrees of freedom
around ``sum_k w_k (1 - w_k) / N``. The ``references`` notebook (one job per profile) repeats
the draw: draw ``k`` of run ``r`` uses seed ``r + runs * k``, so its draws ``k = 0`` are the
target notebooks' own references and the other draws extend them. The tables show the mean ±
std over all draws as the sampling-error row (:func:`with_references`).

The file, ``<results_dir>/references.json``::

    {"format": "jkoic-references", "profile": ..., "smoke_test": ..., "machine": ...,
     "targets": {<target key>: {"n_eval", "n_w2", "n_projections", "runs", "draws", "seeds",
                                "values": {<metric>: [one value per seed]}}}}

This module is the references job's computation: its code version covers this file
(:data:`reproduce.grid.JOB_CODE`); the other jobs' does not.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

__all__ = [
    "REFERENCES_FILE",
    "REFERENCES_FORMAT",
    "compute",
    "draw_seeds",
    "load_references",
    "save_references",
    "summary",
    "target_of",
    "with_references",
]

#: the file, in a profile's results folder
REFERENCES_FILE = "references.json"
#: its ``format`` field
REFERENCES_FORMAT = "jkoic-references"
#: the sizes a target's results and its references entry must share
SIZES = ("n_eval", "n_w2", "n_projections", "runs")


def draw_seeds(runs: int, draws: int) -> list[int]:
    """The seeds of the draws, run-major within each draw index: draw ``k`` of run ``r`` is ``r + runs * k``.

    Args:
        runs: the target's runs (seed ``r`` is run ``r``'s own reference).
        draws: draws per run.

    Returns:
        ``runs * draws`` distinct seeds, the runs' own ``0 .. runs - 1`` first.

    Raises:
        ValueError: ``runs`` or ``draws`` below 1.
    """
    if int(runs) < 1 or int(draws) < 1:
        raise ValueError(f"runs and draws must be at least 1, got runs={runs!r}, draws={draws!r}")
    return [r + int(runs) * k for k in range(int(draws)) for r in range(int(runs))]


def target_of(key: str) -> tuple[str, int | None]:
    """The target name and dimension of a results key (``"gmm20"`` -> ``("gmm", 20)``).

    Raises:
        ValueError: no target of :mod:`jkoic.bench.targets` has that key.
    """
    from jkoic.bench import targets as T

    if key in T.names():
        return key, None
    if key.startswith("gmm") and key[3:].isdigit():
        return "gmm", int(key[3:])
    raise ValueError(f"unknown target key {key!r}; known: {', '.join(T.names())} and gmm<d>")


def _specs(
    targets: list[str], *, runs: int, n_eval: int, n_w2: int, n_projections: int, per_target: dict[str, Any]
) -> dict[str, dict[str, int]]:
    """Each target's sizes (the defaults updated by ``per_target``), checked before anything is computed."""
    if not isinstance(targets, list) or not targets or not all(isinstance(k, str) for k in targets):
        raise ValueError(f"targets must be a non-empty list of results keys, got {targets!r}")
    if len(set(targets)) != len(targets):
        raise ValueError(f"a target is listed twice: {targets!r}")
    stray = set(per_target) - set(targets)
    if stray:
        raise ValueError(f"per_target names targets not listed: {sorted(stray)}")
    out = {}
    for key in targets:
        target_of(key)
        extra = per_target.get(key) or {}
        unknown = set(extra) - set(SIZES)
        if unknown:
            raise ValueError(f"per_target[{key!r}]: unknown keys {sorted(unknown)}; allowed: {', '.join(SIZES)}")
        spec = {"runs": runs, "n_eval": n_eval, "n_w2": n_w2, "n_projections": n_projections, **extra}
        for size, least in (("runs", 1), ("n_eval", 2), ("n_w2", 0), ("n_projections", 1)):
            if not isinstance(spec[size], int) or isinstance(spec[size], bool) or spec[size] < least:
                raise ValueError(f"{key}: {size} must be an integer >= {least}, got {spec[size]!r}")
        out[key] = spec
    return out


def compute(
    targets: list[str],
    *,
    draws: int,
    runs: int = 1,
    n_eval: int = 50000,
    n_w2: int = 5000,
    n_projections: int = 1000,
    per_target: dict[str, Any] | None = None,
    progress: bool = False,
) -> dict[str, dict[str, Any]]:
    """The references of ``targets``: :func:`reproduce.evaluation.reference_errors` at every draw seed.

    Args:
        targets: results keys (``"8modes"``, ``"gmm20"``, ...).
        draws: draws per run.
        runs: runs per target, as its notebook (run ``r`` of GMM-d: the paper's mean set ``r % 5 + 1``).
        n_eval: samples per set for the energy distance and the mode MSE.
        n_w2: samples per set for W2^2 (0 skips it).
        n_projections: directions of the sliced energy distance.
        per_target: results key -> overrides of ``runs``, ``n_eval``, ``n_w2``, ``n_projections``.
        progress: print one line per target.

    Returns:
        Target key -> entry (module docstring).

    Raises:
        ValueError: an unknown target, a malformed override or a size out of range (before anything
            is computed).
    """
    from .evaluation import reference_errors
    from .methods import make_target

    draw_seeds(1, draws)
    specs = _specs(
        targets, runs=runs, n_eval=n_eval, n_w2=n_w2, n_projections=n_projections, per_target=per_target or {}
    )
    out: dict[str, dict[str, Any]] = {}
    for key, spec in specs.items():
        name, dim = target_of(key)
        seeds = draw_seeds(spec["runs"], draws)
        values: dict[str, list[float]] = {}
        for seed in seeds:
            tgt = make_target(name, dim=dim, run=seed % spec["runs"])
            refs = reference_errors(
                tgt, n_eval=spec["n_eval"], n_w2=spec["n_w2"], n_projections=spec["n_projections"], seed=seed
            )
            for metric, v in refs.items():
                values.setdefault(metric, []).append(float(v))
        out[key] = {**spec, "draws": int(draws), "seeds": seeds, "values": values}
        if progress:
            print(f"{key}: {len(seeds)} draws")
    return out


def save_references(
    results_dir: str | os.PathLike[str],
    entries: dict[str, dict[str, Any]],
    *,
    profile: str,
    smoke_test: bool = False,
    machine: dict[str, Any] | None = None,
) -> Path:
    """Write ``<results_dir>/references.json`` atomically.

    Args:
        results_dir: the folder (relative to the repository root or absolute).
        entries: :func:`compute`'s result.
        profile: the profile name, recorded.
        smoke_test: recorded.
        machine: :func:`reproduce.environment.machine_info`, recorded.

    Returns:
        The path written.
    """
    from .paths import resolve_path
    from .results import write_json

    data = {
        "format": REFERENCES_FORMAT,
        "profile": profile,
        "smoke_test": bool(smoke_test),
        "machine": machine or {},
        "targets": entries,
    }
    return write_json(resolve_path(results_dir) / REFERENCES_FILE, data)


def _read(path: Path) -> dict[str, dict[str, Any]]:
    import json

    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(data, dict) or data.get("format") != REFERENCES_FORMAT:
        raise ValueError(f"{path} is not a references file (format {REFERENCES_FORMAT!r})")
    entries = data.get("targets")
    if not isinstance(entries, dict):
        raise ValueError(f"{path}: 'targets' must map target keys to entries")
    for key, e in entries.items():
        vals = e.get("values") if isinstance(e, dict) else None
        seeds = e.get("seeds") if isinstance(e, dict) else None
        if (
            not isinstance(vals, dict)
            or not isinstance(seeds, list)
            or any(not isinstance(v, list) or len(v) != len(seeds) for v in vals.values())
        ):
            raise ValueError(f"{path}: target {key!r} needs 'seeds' and one value per seed for every metric")
        missing = [s for s in SIZES if s not in e]
        if missing:
            raise ValueError(f"{path}: target {key!r} lacks {', '.join(missing)}")
    return entries


def load_references(
    results_dir: str | os.PathLike[str], base: str | os.PathLike[str] | None = None
) -> dict[str, dict[str, Any]]:
    """Read the references of a profile (and of ``base`` for the targets it lacks).

    Args:
        results_dir: the profile's results folder.
        base: another profile's folder (as :func:`reproduce.results.load_results`).

    Returns:
        Target key -> entry; empty where neither folder has a references file.

    Raises:
        ValueError: a references file that does not parse or is not one.
    """
    from .paths import resolve_path

    out: dict[str, dict[str, Any]] = {}
    for folder in [results_dir] + ([] if base is None else [base]):
        path = resolve_path(folder) / REFERENCES_FILE
        if path.is_file():
            for key, entry in _read(path).items():
                out.setdefault(key, entry)
    return out


def with_references(
    results: dict[str, dict[str, Any]], references: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """``results`` with each target's sampling-error references replaced by its draws.

    A target whose recorded sizes (``n_eval``, ``n_w2``, ``n_projections``, ``runs``) differ from
    its references entry keeps its own per-run references, with a warning: draws at other sizes
    are not its reference.

    Args:
        results: :func:`reproduce.results.load_results`.
        references: :func:`load_references`.

    Returns:
        A new dict; a replaced target gains ``reference_draws`` (the number of draws).
    """
    out = dict(results)
    for key, entry in references.items():
        res = results.get(key)
        if res is None:
            continue
        settings = res.get("settings") or {}
        differ = [f"{s} {settings.get(s)!r} vs {entry[s]!r}" for s in SIZES if settings.get(s) != entry[s]]
        if differ:
            warnings.warn(
                f"{key}: the references were drawn at other sizes ({'; '.join(differ)}); "
                "its tables keep the runs' own sampling errors",
                stacklevel=2,
            )
            continue
        out[key] = {**res, "reference": dict(entry["values"]), "reference_draws": len(entry["seeds"])}
    return out


def summary(entries: dict[str, dict[str, Any]], digits: int = 2) -> str:
    """One line per target and metric: mean ± std over the draws, the range and the runs' own draws."""
    from .results import fmt, fmt_pm, mean_std

    lines = []
    for key, e in entries.items():
        runs = int(e["runs"])
        for metric, vals in e["values"].items():
            mean, std, n = mean_std(vals)
            own = ", ".join(fmt(v, digits) for v in vals[:runs])
            lines.append(
                f"{key:9s} {metric:9s} {fmt_pm(mean, std, n, digits):>22s} over {n:3d} draws"
                f"  [{fmt(min(vals), digits)} .. {fmt(max(vals), digits)}]  runs' own: {own}"
            )
    return "\n".join(lines)
