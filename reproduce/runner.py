"""Regenerate the paper's tables and figures: profiles, notebook execution and the command line.

Command line::

    python -m reproduce run --profile cpu [--jobs N] [--only NAMES] [--no-assemble]
                            [--scheduler local | local-dask | tcp://HOST:PORT] [--force] [--shared]
    python -m reproduce smoke                # regenerate notebooks/smoke/*.ipynb (nbval copies)
    python -m reproduce list --profile cpu   # the notebook runs of a profile
    python -m reproduce jobs --profile paper # its jobs: one per (target, run), with their resources
    python -m reproduce headline             # JKO-IC's cells of Tables 1-4 beside the paper's

A *profile* is ``notebooks/profiles/<name>.yaml``: a ``defaults`` mapping of parameters
given to every notebook that declares them, then one mapping per notebook run (the key is
the run name; ``notebook:`` selects the source notebook when it differs from the key).
``run`` executes the profile's job grid (:mod:`reproduce.grid`: one job per target and run
index, each a papermill execution into ``<results_dir>/notebooks/<job>.ipynb``; jobs done
before are skipped; locally or on Dask, :mod:`reproduce.gridrun`), combines the runs of each
target and then runs the ``assemble`` notebook, which turns the per-target results JSON into the
tables (Markdown, LaTeX, CSV) and figures (PNG, PDF). ``smoke`` executes each notebook whole
(:func:`run_notebooks`).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .paths import repo_root, resolve_path

# reproduce.results and reproduce.tables (torch, numpy) are imported where used: a grid job's child
# process (python -m reproduce.worker) imports this module to execute its notebook, and no more

__all__ = [
    "execute",
    "load_profile",
    "main",
    "plan",
    "profiles_dir",
    "run_names",
    "run_notebooks",
    "run_profile",
    "smoke",
]

#: ``(run name, source notebook stem, parameters)``
Run = tuple[str, str, dict[str, Any]]

#: tries to start a notebook's kernel (see :func:`_kernel_start_failed`)
_KERNEL_START_ATTEMPTS = 3
_LOG = "[reproduce]"


def profiles_dir() -> Path:
    """The folder of the profiles.

    Returns:
        ``<repository root>/notebooks/profiles``.
    """
    return repo_root() / "notebooks" / "profiles"


def load_profile(name: str) -> dict[str, Any]:
    """Parse a profile.

    Args:
        name: a profile name (``notebooks/profiles/<name>.yaml``) or a path to a YAML file.

    Returns:
        The profile mapping.

    Raises:
        ValueError: no such profile, or its YAML is not a mapping.
    """
    import yaml

    p = Path(name)
    if not p.suffix:
        p = profiles_dir() / f"{name}.yaml"
    if not p.is_file():
        avail = ", ".join(sorted(q.stem for q in profiles_dir().glob("*.yaml")))
        raise ValueError(f"no profile {name!r} ({p}); profiles: {avail}")
    data = yaml.safe_load(p.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{p}: a profile must be a mapping")
    return data


def plan(profile: dict[str, Any]) -> list[Run]:
    """The notebook runs of a profile.

    Args:
        profile: :func:`load_profile`.

    Returns:
        ``[(run name, source notebook stem, parameters)]`` in profile order, ``assemble``
        last; each run's parameters are the profile's ``defaults`` updated by its own.
    """
    defaults = dict(profile.get("defaults") or {})
    runs = []
    for name, spec in profile.items():
        if name == "defaults":
            continue
        spec = dict(spec or {})
        nb = str(spec.pop("notebook", name))
        runs.append((str(name), nb, {**defaults, **spec}))
    runs.sort(key=lambda r: r[1] == "assemble")
    return runs


def run_names(profile: dict[str, Any]) -> list[str]:
    """The run names of a profile.

    Args:
        profile: :func:`load_profile`.

    Returns:
        The names in :func:`plan` order (``assemble`` last).
    """
    return [name for name, _, _ in plan(profile)]


def _select(profile_name: str, runs: list[Run], only: Iterable[str]) -> list[Run]:
    """The runs named in ``only``.

    Raises:
        ValueError: ``only`` is empty, has an empty name, or names a run the profile lacks.
    """
    names = [r[0] for r in runs]
    wanted = list(only)
    if not wanted:
        raise ValueError(f"no run selected; runs of profile {profile_name!r}: {', '.join(names)}")
    if any(not o.strip() for o in wanted):
        raise ValueError(
            f"empty run name in the selection {wanted!r}; runs of profile {profile_name!r}: {', '.join(names)}"
        )
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        raise ValueError(f"profile {profile_name!r} has no run(s) {', '.join(unknown)}; runs: {', '.join(names)}")
    return [r for r in runs if r[0] in wanted]


def _declared_parameters(path: Path) -> set[str]:
    """The parameters a notebook declares in its ``parameters`` cell."""
    import papermill

    return set(papermill.inspect_notebook(str(path)).keys())


def _clean_executed(path: Path) -> None:
    """Drop volatile metadata (timings, random ids) from an executed notebook, keep the outputs."""
    import nbformat

    from .results import write_text

    nb = nbformat.read(str(path), as_version=4)
    nb.metadata.pop("papermill", None)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        if "injected-parameters" in cell.metadata.get("tags", []):
            cell.id = "injected-parameters"  # papermill gives it a random id on every run
    buf = nbformat.writes(nb)
    write_text(path, buf if buf.endswith("\n") else buf + "\n")


def _kernel_start_failed(error: BaseException) -> bool:
    """Whether ``error`` is a kernel that died while starting, before any cell ran.

    Two notebooks started at the same moment (``make paper -j2``) can be handed the same free
    TCP port by jupyter_client; the second kernel then fails to bind it ("Address already in
    use") and nbclient reports "Kernel died before replying to kernel_info". Nothing was
    executed, so starting the notebook again is safe.
    """
    return isinstance(error, RuntimeError) and "before replying to kernel_info" in str(error)


def execute(
    src: Path, out: Path, parameters: dict[str, Any], *, clean: bool = False, log_output: bool = False
) -> float:
    """Execute a notebook with papermill (working directory: the repository root).

    A kernel that dies while starting is started again, up to ``_KERNEL_START_ATTEMPTS``
    times; a failing cell is not retried.

    Args:
        src: the source notebook.
        out: the executed copy to write.
        parameters: parameters; those ``src`` does not declare are left out.
        clean: drop volatile metadata from ``out`` (:func:`_clean_executed`).
        log_output: log the cells' output as they run (logger ``papermill``; the grid's job logs).

    Returns:
        The seconds taken.

    Raises:
        papermill.PapermillExecutionError: a cell failed.
        RuntimeError: the kernel did not start.
    """
    import papermill

    declared = _declared_parameters(src)
    params = {k: v for k, v in parameters.items() if k in declared}
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    for attempt in range(_KERNEL_START_ATTEMPTS):
        try:
            papermill.execute_notebook(
                str(src),
                str(out),
                parameters=params,
                cwd=str(repo_root()),
                kernel_name="python3",
                progress_bar=False,
                log_output=log_output,
            )
            break
        except Exception as e:
            if not _kernel_start_failed(e) or attempt + 1 == _KERNEL_START_ATTEMPTS:
                raise
            # no cell ran yet: start a fresh kernel after a random pause (new ports)
            delay = random.uniform(1.0, 4.0)
            print(
                f"{_LOG} {src.stem}: kernel did not start ({e}); retrying in {delay:.1f} s", file=sys.stderr, flush=True
            )
            time.sleep(delay)
    if clean:
        _clean_executed(out)
    return time.perf_counter() - t0


#: one notebook job: (run name, notebook stem, parameters, output path, clean)
_Job = tuple[str, str, dict[str, Any], str, bool]


def _execute_job(job: _Job) -> tuple[str, float, str | None]:
    """Run one job; returns ``(run name, seconds, error or None)`` instead of raising."""
    name, nb, params, out, clean = job
    src = repo_root() / "notebooks" / f"{nb}.ipynb"
    try:
        return name, execute(src, Path(out), params, clean=clean), None
    except Exception as e:  # report and go on with the other notebooks
        return name, float("nan"), f"{type(e).__name__}: {str(e)[:2000]}"


def run_profile(
    profile: str,
    *,
    jobs: int = 1,
    only: Iterable[str] | None = None,
    assemble: bool = True,
    scheduler: str | None = None,
    force: bool = False,
    shared: bool = False,
) -> dict[str, float]:
    """Run the job grid of a profile (:mod:`reproduce.gridrun`): every (target, run) a job.

    Jobs done before with the same parameters and code are skipped; a failed job is retried
    once; ``assemble`` runs last, also after a failure.

    Args:
        profile: the profile name (or a path to its YAML).
        jobs: jobs at once (local engine) or workers (``local-dask``).
        only: run names, targets or job ids (``assemble`` for the assemble notebook; None: all).
        assemble: run the ``assemble`` notebook (if selected).
        scheduler: None (``$DASK_SCHEDULER_ADDRESS`` if set, else local processes), ``local``,
            ``local-dask`` or ``tcp://HOST:PORT``.
        force: re-run the selected jobs even where done.
        shared: the results folder is shared by the workers at the same path (no file transfer).

    Returns:
        Seconds per job run (skipped jobs are not listed).

    Raises:
        ValueError: no such profile, or ``only`` is empty or names nothing of the profile.
        RuntimeError: jobs or the assemble notebook failed (listed with their errors).
    """
    from .gridrun import run_grid

    report = run_grid(profile, jobs=jobs, only=only, assemble=assemble, scheduler=scheduler, force=force, shared=shared)
    errors = dict(report.failed)
    if report.assemble_error:
        errors["assemble"] = report.assemble_error
    if errors:
        raise RuntimeError(
            "job(s) failed: "
            + "; ".join(f"{k}: {v.strip().splitlines()[-1] if v.strip() else v}" for k, v in errors.items())
        )
    return dict(report.ran)


def run_notebooks(
    profile: str,
    *,
    jobs: int = 1,
    only: Iterable[str] | None = None,
    assemble: bool = True,
    out_dir: str | os.PathLike[str] | None = None,
    numbered: bool = False,
    clean: bool = False,
) -> dict[str, float]:
    """Execute the notebooks of a profile whole (all runs in one notebook); ``assemble`` last.

    The nbval copies are made this way (:func:`smoke`); ``python -m reproduce run`` runs
    the job grid instead (:func:`run_profile`).

    Args:
        profile: the profile name (or a path to its YAML).
        jobs: notebooks executed at once.
        only: the run names to execute (None: all of them).
        assemble: run the ``assemble`` notebook (if selected).
        out_dir: where the executed copies go (default ``<results_dir>/notebooks``).
        numbered: name the copies ``NN_<run>.ipynb`` (the nbval order) instead of ``<run>.ipynb``.
        clean: drop volatile metadata from the copies.

    Returns:
        Seconds per run.

    Raises:
        ValueError: no such profile, or ``only`` is empty or names a run the profile lacks.
        RuntimeError: notebooks failed (listed with their errors).
    """
    prof = load_profile(profile)
    runs = plan(prof)
    names = [r[0] for r in runs]
    if only is not None:
        runs = _select(profile, runs, only)
    if not assemble:
        runs = [r for r in runs if r[1] != "assemble"]
    results_dir = (prof.get("defaults") or {}).get("results_dir", f"results/{profile}")
    dest = resolve_path(out_dir) if out_dir is not None else resolve_path(results_dir) / "notebooks"
    width = max(2, len(str(len(names))))
    jobs_args: list[_Job] = []
    for name, nb, params in runs:
        fname = f"{names.index(name) + 1:0{width}d}_{name}.ipynb" if numbered else f"{name}.ipynb"
        jobs_args.append((name, nb, params, str(dest / fname), clean))
    body = [j for j in jobs_args if j[1] != "assemble"]
    tail = [j for j in jobs_args if j[1] == "assemble"]
    times: dict[str, float] = {}
    errors: dict[str, str] = {}

    def record(res: tuple[str, float, str | None]) -> None:
        """Keep a run's time (and error) and print its status."""
        name, secs, err = res
        times[name] = secs
        status = f"FAILED ({err.splitlines()[0] if err else ''})" if err else f"{secs:.1f} s"
        print(f"{_LOG} {name}: {status}", flush=True)
        if err:
            errors[name] = err

    if jobs > 1 and len(body) > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=jobs) as pool:
            for res in pool.map(_execute_job, body):
                record(res)
    else:
        for j in body:
            record(_execute_job(j))
    if tail and errors:
        print(f"{_LOG} assembling anyway (tables show '-' for the failed notebooks)", flush=True)
    for j in tail:
        record(_execute_job(j))
    if errors:
        raise RuntimeError("notebook(s) failed: " + "; ".join(f"{k}: {v}" for k, v in errors.items()))
    return times


def smoke(jobs: int = 1) -> dict[str, float]:
    """Regenerate ``notebooks/smoke/NN_<run>.ipynb``: the smoke profile with outputs (for nbval).

    Args:
        jobs: notebooks executed at once.

    Returns:
        Seconds per run.

    Raises:
        RuntimeError: notebooks failed.
    """
    dest = repo_root() / "notebooks" / "smoke"
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob("*.ipynb"):
        old.unlink()
    return run_notebooks("smoke", jobs=jobs, out_dir=dest, numbered=True, clean=True)


def _parser() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """The command-line parser and its ``run`` subparser."""
    ap = argparse.ArgumentParser(prog="python -m reproduce", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run the job grid of a profile (what is not done), then assemble tables and figures")
    r.add_argument("--profile", default="cpu", help="smoke | cpu | paper (notebooks/profiles/<name>.yaml)")
    r.add_argument("--jobs", type=int, default=1, help="jobs at once (local), or workers (local-dask)")
    r.add_argument(
        "--only", default=None, help="comma-separated run names, targets or job ids (see `list`, `jobs`; assemble)"
    )
    r.add_argument("--no-assemble", action="store_true", help="skip the assemble notebook")
    r.add_argument(
        "--scheduler",
        default=None,
        help="local (default; $DASK_SCHEDULER_ADDRESS if set), local-dask (a Dask cluster on 127.0.0.1), "
        "or tcp://HOST:PORT (an existing Dask scheduler); see docs/cluster.md",
    )
    r.add_argument("--force", action="store_true", help="re-run the selected jobs even where done")
    r.add_argument(
        "--shared", action="store_true", help="the results folder is on a file system every worker shares (same path)"
    )
    s = sub.add_parser("smoke", help="regenerate notebooks/smoke/*.ipynb (the nbval copies)")
    s.add_argument("--jobs", type=int, default=1)
    l_ = sub.add_parser("list", help="print the run names of a profile (assemble excluded)")
    l_.add_argument("--profile", default="cpu")
    j = sub.add_parser("jobs", help="print the jobs of a profile: one per (target, run), with its resources")
    j.add_argument("--profile", default="cpu")
    h = sub.add_parser("headline", help="print JKO-IC's cells of Tables 1-4, ours beside the paper's (Markdown)")
    h.add_argument("--tables", default="figures/tables", help="directory with table1.csv .. table4.csv")
    return ap, r


def _parse_only(run_parser: argparse.ArgumentParser, profile: str, only: str) -> list[str]:
    """The names of ``--only``; exits with a usage error (status 2) if one is empty or unknown."""
    from .grid import plan_grid

    wanted = [o.strip() for o in only.split(",")]
    names = run_names(load_profile(profile))
    grid = plan_grid(profile)
    known = set(names) | {n for jb in grid.jobs for n in (jb.name, jb.target)}
    if not all(wanted):
        run_parser.error(
            f"argument --only: empty run name in {only!r}; runs of profile {profile!r}: {', '.join(names)}"
        )
    unknown = [o for o in wanted if o not in known]
    if unknown:
        run_parser.error(
            f"argument --only: profile {profile!r} has no run(s) {', '.join(unknown)}; runs: {', '.join(names)}"
        )
    return wanted


def main(argv: Sequence[str] | None = None) -> int:
    """The command line (``python -m reproduce``).

    Args:
        argv: the arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit status: 0 on success, 1 for a failed notebook or a bad profile; usage errors
        exit with status 2 (argparse).
    """
    ap, run_parser = _parser()
    a = ap.parse_args(argv)
    try:
        if a.cmd == "headline":
            from .tables import headline

            print(headline(resolve_path(a.tables)), end="")
            return 0
        if a.cmd == "list":
            print(" ".join(name for name, nb, _ in plan(load_profile(a.profile)) if nb != "assemble"))
            return 0
        if a.cmd == "jobs":
            from .grid import plan_grid

            grid = plan_grid(a.profile)
            width = max(len(jb.name) for jb in grid.jobs)
            for jb in grid.jobs:
                print(f"{jb.name:{width}s}  {jb.describe()}")
            gpu = sum(1 for jb in grid.jobs if jb.resources.get("GPU"))
            print(
                f"{len(grid.jobs)} jobs ({gpu} on a GPU), {len(grid.targets())} targets; results in {grid.results_dir}"
            )
            return 0
        if a.cmd == "smoke":
            t0 = time.perf_counter()
            times = smoke(jobs=a.jobs)
            print(f"{_LOG} done: {len(times)} notebook(s) in {time.perf_counter() - t0:.1f} s", flush=True)
            return 0
        only = _parse_only(run_parser, a.profile, a.only) if a.only is not None else None
        run_profile(
            a.profile,
            jobs=a.jobs,
            only=only,
            assemble=not a.no_assemble,
            scheduler=a.scheduler,
            force=a.force,
            shared=a.shared,
        )
        return 0
    except (ValueError, RuntimeError) as e:
        print(f"reproduce: error: {e}", file=sys.stderr)
        return 1
