"""The client's side of the results: store each job's files, then combine the runs of each target.

:func:`store` writes what a job returned into the profile's results folder (atomically, the
manifest last; see :mod:`reproduce.grid`). :func:`combine` then turns the per-run results of every
target whose runs are all done into the one ``<results_dir>/<target>.json`` (and its arrays) that
the assemble notebook reads, as a notebook running all runs in a row writes it: the runs of every
method and the sampling-error references concatenated in run order, the rest (settings, layer
curves, kept samples) from the first run. The tables take mean ± std over the runs from there.
A target with a failed job gets no file (its table cells show '-'). The references job's
``references.json`` (:mod:`reproduce.references`) is copied up as it is.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
from pathlib import Path
from typing import Any

from jkoic._io import atomic_write

from .grid import MANIFEST, Grid, Job
from .references import REFERENCES_FILE
from .results import RESULTS_FORMAT, write_json

__all__ = ["combine", "merge_runs", "store"]


def store(results_dir: Path, job: Job, result: dict[str, Any]) -> list[str]:
    """Write a job's files into ``results_dir``.

    Args:
        results_dir: the profile's results folder.
        job: the job.
        result: :func:`reproduce.worker.run_job`'s result (bytes, or paths in a shared scratch
            folder, which are moved and the folder removed).

    Returns:
        The files written, relative to ``results_dir``.
    """
    run_dir = results_dir / "runs" / job.name
    if result.get("ok") and run_dir.is_dir():
        for p in run_dir.rglob("*"):  # a previous attempt's results: replaced as a whole
            if p.is_file() and p.name != MANIFEST:
                p.unlink()
    written = []
    for rel, content in sorted(result.get("files", {}).items()):
        dest = results_dir / rel
        if result.get("shared"):
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(content, dest)
        else:
            atomic_write(dest, content)
        written.append(rel)
    if result.get("scratch_dir"):
        shutil.rmtree(result["scratch_dir"], ignore_errors=True)
    return written


def merge_runs(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One target's results of several runs as one.

    Args:
        parts: the results JSON of each run, in run order.

    Returns:
        The first run's results with every method's runs and every sampling-error reference
        of the others appended, and the configs, layer curves, extras and arrays they add.
    """
    out = copy.deepcopy(parts[0])
    for p in parts[1:]:
        for method, entries in (p.get("runs") or {}).items():
            out.setdefault("runs", {}).setdefault(method, []).extend(copy.deepcopy(entries))
        for metric, vals in (p.get("reference") or {}).items():
            out.setdefault("reference", {}).setdefault(metric, []).extend(vals)
        for group in ("configs", "layer_curves", "extra", "arrays"):
            for k, v in (p.get(group) or {}).items():
                out.setdefault(group, {}).setdefault(k, copy.deepcopy(v))
    return out


def _results_of(results_dir: Path, job: Job) -> dict[str, dict[str, Any]]:
    """The results JSON files a job wrote, by target."""
    out = {}
    for p in sorted((results_dir / "runs" / job.name).glob("*.json")):
        if p.name == MANIFEST:
            continue
        data = json.loads(p.read_text())
        if isinstance(data, dict) and data.get("format") == RESULTS_FORMAT:
            out[str(data["target"])] = data
    return out


def combine(grid: Grid, done: dict[str, dict[str, Any]], failed: set[str]) -> dict[str, str]:
    """Write ``<results_dir>/<target>.json`` for every target whose jobs are all done.

    Args:
        grid: the profile's jobs.
        done: the manifests of the jobs done (by job name).
        failed: the jobs that failed in this run: their targets' combined files are removed.

    Returns:
        Target -> ``"combined"`` (with the number of runs), ``"incomplete"`` (runs missing: the
        file, if any, is left as it was), ``"failed"`` (removed) or ``"no results"``.
    """
    rd = grid.results_dir
    status: dict[str, str] = {}
    for target, jobs in grid.targets().items():
        combined = rd / f"{target}.json"
        if any(j.name in failed for j in jobs):
            combined.unlink(missing_ok=True)
            status[target] = "failed: " + ", ".join(j.name for j in jobs if j.name in failed)
            continue
        missing = [j.name for j in jobs if j.name not in done]
        if missing:
            status[target] = f"incomplete ({len(jobs) - len(missing)} of {len(jobs)} runs)"
            continue
        parts = [(j, _results_of(rd, j).get(target)) for j in jobs]
        refs = rd / "runs" / jobs[0].name / REFERENCES_FILE
        if len(jobs) == 1 and parts[0][1] is None and refs.is_file():
            atomic_write(rd / REFERENCES_FILE, refs.read_bytes())  # the references job
            status[target] = "combined (references)"
            continue
        if all(p is None for _, p in parts):
            status[target] = "no results"  # the quickstart: a demo, no table entry
            continue
        if any(p is None for _, p in parts):
            lacking = ", ".join(j.name for j, p in parts if p is None)
            status[target] = f"failed: {lacking} wrote no {target}.json"
            combined.unlink(missing_ok=True)
            continue
        merged = merge_runs([p for _, p in parts if p is not None])
        for name in (merged.get("arrays") or {}).values():
            src = next((rd / "runs" / j.name / name for j, _ in parts if (rd / "runs" / j.name / name).is_file()), None)
            if src is not None:
                atomic_write(rd / name, src.read_bytes())
        merged["grid"] = {
            "jobs": [j.name for j in jobs],
            "run_index": [j.run_index for j in jobs],
            "workers": [done[j.name].get("host") for j in jobs],
            "code_version": sorted({done[j.name].get("code_version") for j in jobs}),
        }
        write_json(combined, merged)
        status[target] = f"combined ({len(jobs)} run{'s' if len(jobs) > 1 else ''})"
    return status
