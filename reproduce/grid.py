"""The job grid of a profile: one job per (target, run index), its identity and the skip rule.

A profile run (``notebooks/profiles/<name>.yaml``) of a notebook with a ``runs`` parameter
becomes one job per run index: the notebook's ``run_index`` parameter (seed and, for GMM-d,
mean set) selects the one run it executes. A ``gmm`` run becomes one target per dimension
(``dims: [d]``), each with its runs. A notebook without runs (quickstart, mode_collapse_1d) is
one job. The ``assemble`` notebook is no job: it runs last, on the client, over all results.

Where a job's files go, under the profile's ``results_dir`` (whichever machine ran it):

* ``runs/<job>/``: the notebook's results (its ``results_dir``), then ``runs/<job>/job.json``,
  the manifest, written last and atomically: the job's parameters hash, code version, git
  commit, worker, time, and the SHA-256 of every file of the job;
* ``notebooks/<job>.ipynb``: the executed notebook; ``logs/<job>.log``: its log;
* ``<target>.json`` (and its arrays): the runs of a target combined (:mod:`reproduce.combine`).

Skip rule: a job is done, and skipped unless ``--force``, when its manifest exists, records the
same parameters hash (:func:`params_hash`) and code version (:func:`code_version`), and every
file it lists is there with the recorded checksum.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .paths import repo_root, resolve_path

__all__ = [
    "Grid",
    "Job",
    "MANIFEST",
    "code_version",
    "done",
    "plan_grid",
    "params_hash",
    "write_manifest",
]

#: the manifest of a finished job, in ``runs/<job>/``
MANIFEST = "job.json"
#: its ``format`` field
MANIFEST_FORMAT = "jkoic-grid-job"
#: parameters naming folders: no part of a job's identity (a job writes into a folder of its
#: own wherever it runs; figures_dir / tables_dir are read by the assemble notebook alone)
PATH_PARAMETERS = ("results_dir", "figures_dir", "tables_dir")
#: the 2-D targets: on a GPU two of their jobs may share one worker (``resources={"GPU": 0.5}``)
TWO_D_TARGETS = frozenset({"mustache", "8modes", "8peaky"})
#: reproduce/ modules that schedule, combine or report: outside a job's code version (editing
#: them re-runs no job; the tables and figures are rebuilt from the results on every run)
NOT_COMPUTE = frozenset(
    {
        "__init__.py",
        "__main__.py",
        "combine.py",
        "engines.py",
        "figures.py",
        "grid.py",
        "gridrun.py",
        "pages.py",
        "references.py",
        "runner.py",
        "table_render.py",
        "tables.py",
        "verdicts.py",
        "worker.py",
    }
)
#: modules of :data:`NOT_COMPUTE` that are one notebook's computation: in its code version only
#: (the references job; the tables read its file through the same module)
JOB_CODE: dict[str, tuple[str, ...]] = {"references": ("references.py",)}


@dataclass
class Job:
    """One notebook execution: one run of one target.

    Attributes:
        name: the job id, ``<target>.r<run index>`` (``<target>`` for a notebook without runs).
        run: the profile run it comes from (a key of the profile).
        notebook: the source notebook's stem.
        target: the results key of its target (``gmm10``, ``8peaky``, ``quickstart``, ...).
        run_index: the run it executes (None: the notebook has no runs).
        runs: how many runs (jobs) the target has.
        params: the notebook parameters (declared ones only); the worker sets ``results_dir``.
        resources: the Dask worker resources it asks for (``{"GPU": 1.0}``; empty: any worker).
    """

    name: str
    run: str
    notebook: str
    target: str
    run_index: int | None
    runs: int
    params: dict[str, Any] = field(default_factory=dict)
    resources: dict[str, float] = field(default_factory=dict)

    def describe(self) -> str:
        """``notebook, run r, GPU=1`` for the progress lines and ``python -m reproduce jobs``."""
        res = ", ".join(f"{k}={v:g}" for k, v in sorted(self.resources.items())) or "CPU"
        run = f"run {self.run_index} of {self.runs}" if self.run_index is not None else "no runs"
        return f"{self.notebook}, {run}, {res}"


@dataclass
class Grid:
    """The jobs of a profile.

    Attributes:
        profile: the profile name (or the path it was loaded from).
        results_dir: the profile's results folder (absolute).
        jobs: the jobs, in profile order (each target's runs in order).
        assemble: the assemble notebook's parameters (None: the profile has no assemble run).
        runs: the profile's run names (``assemble`` last), for messages.
    """

    profile: str
    results_dir: Path
    jobs: list[Job]
    assemble: dict[str, Any] | None
    runs: list[str]

    def select(self, only: Iterable[str] | None) -> list[Job]:
        """The jobs named by ``only``.

        Args:
            only: run names, targets or job ids (``assemble`` is no job and selects none);
                None: every job.

        Returns:
            The selected jobs in grid order.

        Raises:
            ValueError: ``only`` is empty, has an empty name, or names nothing of the profile.
        """
        if only is None:
            return list(self.jobs)
        wanted = list(only)
        listing = f"runs of profile {self.profile!r}: {', '.join(self.runs)}"
        if not wanted:
            raise ValueError(f"no run selected; {listing}")
        if any(not o.strip() for o in wanted):
            raise ValueError(f"empty run name in the selection {wanted!r}; {listing}")
        known = set(self.runs) | {n for j in self.jobs for n in (j.name, j.target)}
        unknown = sorted(set(wanted) - known)
        if unknown:
            raise ValueError(f"profile {self.profile!r} has no run(s) {', '.join(unknown)}; {listing}")
        return [j for j in self.jobs if {j.run, j.target, j.name} & set(wanted)]

    def targets(self) -> dict[str, list[Job]]:
        """The jobs of each target, in run order."""
        out: dict[str, list[Job]] = {}
        for j in self.jobs:
            out.setdefault(j.target, []).append(j)
        return out


@functools.cache
def _notebook_defaults(stem: str) -> tuple[tuple[str, Any], ...]:
    """The parameters a notebook declares, with their default values (literals)."""
    import papermill

    out = []
    for name, info in papermill.inspect_notebook(str(repo_root() / "notebooks" / f"{stem}.ipynb")).items():
        try:
            default = ast.literal_eval(info["default"])
        except (ValueError, SyntaxError):
            default = info["default"]
        out.append((name, default))
    return tuple(out)


def notebook_defaults(stem: str) -> dict[str, Any]:
    """The parameters a notebook declares, with their defaults.

    Args:
        stem: the notebook (``notebooks/<stem>.ipynb``).

    Returns:
        Parameter -> default value.
    """
    return dict(_notebook_defaults(stem))


def _resources(params: dict[str, Any], target: str) -> dict[str, float]:
    """What a job asks of a Dask worker: a GPU on ``device: cuda`` (half of one for a 2-D target)."""
    if not str(params.get("device", "cpu")).startswith("cuda"):
        return {}
    return {"GPU": 0.5 if target in TWO_D_TARGETS else 1.0}


def _jobs_of(run: str, notebook: str, params: dict[str, Any]) -> list[Job]:
    """The jobs of one profile run (``params``: defaults updated by the run's own)."""
    from .methods import target_key

    defaults = notebook_defaults(notebook)
    passed = {k: v for k, v in params.items() if k in defaults}
    eff = {**defaults, **passed}
    if notebook == "gmm":
        per_dim = eff.get("per_dim") or {}
        parts = [
            (target_key("gmm", int(d)), {"dims": [d]}, (per_dim.get(str(d)) or {}).get("runs", eff["runs"]))
            for d in eff["dims"]
        ]
    else:
        target = str(eff.get("target", notebook))
        parts = [(target_key(target) if "target" in eff else notebook, {}, eff.get("runs"))]
    jobs = []
    for target, extra, runs in parts:
        base = {**passed, **extra}
        if runs is None or "run_index" not in defaults:
            jobs.append(Job(target, run, notebook, target, None, 1, base, _resources(eff, target)))
            continue
        runs = int(runs)
        if runs > 1 and "check_claims" in defaults:
            # the paper's claims are about the mean of the runs: a single run is not held to them
            base["check_claims"] = False
        for r in range(runs):
            params_r = {**base, "run_index": r}
            jobs.append(Job(f"{target}.r{r}", run, notebook, target, r, runs, params_r, _resources(eff, target)))
    return jobs


def plan_grid(profile: str) -> Grid:
    """The jobs of a profile.

    Args:
        profile: the profile name (``notebooks/profiles/<name>.yaml``) or a path to its YAML.

    Returns:
        The :class:`Grid`.

    Raises:
        ValueError: no such profile, or two jobs of the profile share a name (two runs of one
            target).
    """
    from .runner import load_profile, plan

    prof = load_profile(profile)
    runs = plan(prof)
    jobs: list[Job] = []
    assemble = None
    for run, nb, params in runs:
        if nb == "assemble":
            assemble = params
            continue
        jobs += _jobs_of(run, nb, params)
    seen: dict[str, str] = {}
    for j in jobs:
        if j.name in seen:
            raise ValueError(f"profile {profile!r}: runs {seen[j.name]!r} and {j.run!r} both make job {j.name!r}")
        seen[j.name] = j.run
    results_dir = (prof.get("defaults") or {}).get("results_dir", f"results/{Path(profile).stem}")
    return Grid(str(profile), resolve_path(results_dir), jobs, assemble, [r[0] for r in runs])


# ------------------------------------------------------------------------------- identity


def params_hash(job: Job) -> str:
    """The SHA-256 of what a job computes: its name, notebook, run index and parameters.

    Args:
        job: the job.

    Returns:
        The hex digest (folder parameters left out: see :data:`PATH_PARAMETERS`).
    """
    ident = {
        "job": job.name,
        "notebook": job.notebook,
        "run_index": job.run_index,
        "params": {k: v for k, v in job.params.items() if k not in PATH_PARAMETERS},
    }
    return hashlib.sha256(json.dumps(ident, sort_keys=True, default=repr).encode()).hexdigest()


def _notebook_code(path: Path) -> str:
    """The code cells of a notebook (outputs, metadata and Markdown left out)."""
    nb = json.loads(path.read_text())
    cells = [c["source"] for c in nb.get("cells", []) if c.get("cell_type") == "code"]
    return "\n\0".join("".join(s) if isinstance(s, list) else s for s in cells)


def code_version(notebook: str, root: str | os.PathLike[str] | None = None) -> str:
    """The SHA-256 of the code a job runs.

    The ``jkoic`` package's Python files, the ``reproduce`` modules a notebook computes with
    (:data:`NOT_COMPUTE` left out, but the notebook's own :data:`JOB_CODE`) and the notebook's
    code cells. The git commit is recorded in the manifest too, but is not compared: a commit of
    documentation re-runs nothing.

    Args:
        notebook: the source notebook's stem.
        root: the checkout (default: this one).

    Returns:
        The hex digest.
    """
    base = Path(root) if root is not None else repo_root()
    h = hashlib.sha256()
    files = sorted(p for p in (base / "jkoic").rglob("*.py") if "__pycache__" not in p.parts)
    files += sorted(p for p in (base / "reproduce").glob("*.py") if p.name not in NOT_COMPUTE)
    files += [base / "reproduce" / name for name in JOB_CODE.get(notebook, ())]
    for p in files:
        h.update(p.relative_to(base).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    h.update(_notebook_code(base / "notebooks" / f"{notebook}.ipynb").encode())
    return h.hexdigest()


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def manifest_path(results_dir: Path, job: Job) -> Path:
    """``<results_dir>/runs/<job>/job.json``."""
    return results_dir / "runs" / job.name / MANIFEST


def done(results_dir: Path, job: Job, code: str) -> dict[str, Any] | None:
    """The manifest of ``job`` if it is done with these parameters and this code.

    Args:
        results_dir: the profile's results folder.
        job: the job.
        code: its current :func:`code_version`.

    Returns:
        The manifest, or None: missing, unreadable, failed, written by other parameters or
        other code, or one of its files is missing or changed.
    """
    try:
        m = json.loads(manifest_path(results_dir, job).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(m, dict) or m.get("format") != MANIFEST_FORMAT or m.get("status") != "done":
        return None
    if m.get("params_hash") != params_hash(job) or m.get("code_version") != code:
        return None
    for rel, digest in (m.get("files") or {}).items():
        p = results_dir / rel
        if not p.is_file() or sha256_file(p) != digest:
            return None
    return m


def write_manifest(results_dir: Path, job: Job, code: str, files: list[str], info: dict[str, Any]) -> Path:
    """Write a finished job's manifest (atomically, after its files).

    Args:
        results_dir: the profile's results folder.
        job: the job.
        code: its :func:`code_version`.
        files: its files, relative to ``results_dir``.
        info: recorded as well (worker, host, seconds, attempts, commit).

    Returns:
        The manifest's path.
    """
    from .results import write_json

    data = {
        "format": MANIFEST_FORMAT,
        "status": "done",
        "job": job.name,
        "run": job.run,
        "notebook": job.notebook,
        "target": job.target,
        "run_index": job.run_index,
        "runs": job.runs,
        "params_hash": params_hash(job),
        "code_version": code,
        "params": job.params,
        "resources": job.resources,
        **info,
        "files": {rel: sha256_file(results_dir / rel) for rel in sorted(files)},
    }
    return write_json(manifest_path(results_dir, job), data)
