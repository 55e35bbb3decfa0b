"""A profile's grid from start to end: skip what is done, run the rest, combine, assemble, sum up.

``python -m reproduce run`` (``make paper``) calls :func:`run_grid` through
:func:`reproduce.runner.run_profile`. The jobs run on the local engine (default), a local Dask
cluster (``scheduler="local-dask"``) or an existing one (``tcp://HOST:PORT``, or the
``DASK_SCHEDULER_ADDRESS`` environment variable); see :mod:`reproduce.engines`. A job's files
are stored as soon as it finishes, so a grid killed midway and started again runs only the jobs
whose results are missing (:func:`reproduce.grid.done`); interrupted (Ctrl-C, or SIGTERM, which
it turns into an exception while the jobs run), it stops its job processes and their kernels
(:func:`reproduce.worker.stop_children`) before it exits. The assemble notebook runs last, here,
also after failures (the failed targets' cells show '-').
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .combine import combine, store
from .engines import DaskEngine, LocalEngine, Progress, drive, elapsed
from .grid import Grid, code_version, done, plan_grid, write_manifest
from .worker import allow_children, stop_children

__all__ = ["GridReport", "run_grid"]


def _raise_on_sigterm(signum: int, frame: Any) -> None:
    """SIGTERM while the jobs run: exit through the ``finally`` that stops them (status 128 + 15)."""
    raise SystemExit(128 + signum)


def _sigterm_raises() -> Any:
    """Turn SIGTERM into :class:`SystemExit` (main thread only); returns the handler it replaced, or None."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_on_sigterm)


@dataclass
class GridReport:
    """What a grid run did.

    Attributes:
        grid: the profile's jobs.
        ran: the jobs run to success, with their seconds.
        skipped: the jobs skipped (done before, same parameters and code).
        failed: the jobs that failed twice, with the tail of their log.
        targets: each target's combine status (:func:`reproduce.combine.combine`).
        assemble_error: the assemble notebook's error (None: it ran, or was not selected).
    """

    grid: Grid
    ran: dict[str, float] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    targets: dict[str, str] = field(default_factory=dict)
    assemble_error: str | None = None

    @property
    def ok(self) -> bool:
        """No job and no assemble failed."""
        return not self.failed and self.assemble_error is None


def _engine(scheduler: Any, jobs: int, gpu: bool, progress: Progress) -> Any:
    """The engine a ``scheduler`` names (None: ``DASK_SCHEDULER_ADDRESS`` if set, else local)."""
    if scheduler is None:
        scheduler = os.environ.get("DASK_SCHEDULER_ADDRESS") or "local"
    if scheduler == "local":
        return LocalEngine(jobs, progress)
    return DaskEngine(scheduler, jobs=jobs, gpu=gpu, progress=progress)


def run_grid(
    profile: str,
    *,
    jobs: int = 1,
    only: Iterable[str] | None = None,
    assemble: bool = True,
    scheduler: Any = None,
    force: bool = False,
    shared: bool = False,
    progress: Progress | None = None,
) -> GridReport:
    """Run the jobs of a profile that are not done, combine the runs, run the assemble notebook.

    Args:
        profile: the profile name (or a path to its YAML).
        jobs: job slots of the local engine and of a local Dask cluster.
        only: run names, targets or job ids (``assemble`` selects the assemble notebook); None:
            everything.
        assemble: run the assemble notebook (if selected).
        scheduler: None / ``"local"``, ``"local-dask"``, ``"tcp://HOST:PORT"`` or a
            ``distributed.Client``.
        force: run the selected jobs even where done.
        shared: the results folder is on a file system every worker shares at the same path:
            workers write there and return no bytes.
        progress: the progress lines (default: stdout).

    Returns:
        The :class:`GridReport`.

    Raises:
        ValueError: no such profile, or ``only`` names nothing of it.
        RuntimeError: the Dask scheduler was asked for without Dask installed.
    """
    from .paths import repo_root
    from .runner import execute

    t0 = time.perf_counter()
    progress = progress or Progress()
    grid = plan_grid(profile)
    only = list(only) if only is not None else None
    names = [o for o in only if o != "assemble"] if only is not None else None
    selected = [] if only and not names else grid.select(names)  # raises for an empty or unknown name
    run_assemble = assemble and grid.assemble is not None and (only is None or "assemble" in only)
    rd, report = grid.results_dir, GridReport(grid)
    codes = {nb: code_version(nb) for nb in {j.notebook for j in grid.jobs}}
    manifests = {j.name: m for j in grid.jobs if (m := done(rd, j, codes[j.notebook])) is not None}
    todo = [j for j in selected if force or j.name not in manifests]
    report.skipped = [j.name for j in selected if j not in todo]
    progress.line(
        f"profile {grid.profile}: {len(grid.jobs)} jobs, {len(selected)} selected, "
        f"{len(report.skipped)} done before (skipped), {len(todo)} to run; results in {rd}"
    )
    for name in report.skipped:
        progress.event("skipped", name, "done before (same parameters and code)")
    if todo:
        from .environment import source_commit

        commit = source_commit()
        by_name = {j.name: j for j in todo}
        engine = _engine(scheduler, jobs, any(j.resources.get("GPU") for j in todo), progress)
        progress.line(f"engine: {engine.describe()}")
        if isinstance(engine, DaskEngine) and any(j.resources.get("GPU") for j in todo) and not engine.offers("GPU"):
            progress.line("warning: no worker offers GPU yet (start them with: dask worker ... --resources GPU=1)")
        scratch = str(rd / "runs" / ".scratch") if (shared or isinstance(engine, LocalEngine)) else None

        def finished(spec: dict[str, Any], res: dict[str, Any]) -> None:
            job = by_name[spec["name"]]
            files = store(rd, job, res)
            if not res.get("ok"):
                report.failed[job.name] = res.get("error") or "failed"
                progress.line(f"         log of {job.name}: {rd / 'logs' / f'{job.name}.log'}")
                return
            info = {"worker": res["worker"], "host": res["host"], "seconds": round(res["seconds"], 3)}
            info.update(attempts=res["attempt"], commit=commit, finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
            write_manifest(rd, job, codes[job.notebook], files, info)
            manifests[job.name] = done(rd, job, codes[job.notebook]) or {}
            report.ran[job.name] = res["seconds"]

        specs = [
            {
                "name": j.name,
                "notebook": j.notebook,
                "params": j.params,
                "resources": j.resources,
                "code_version": codes[j.notebook],
                "scratch": scratch,
                "describe": j.describe(),
            }
            for j in todo
        ]
        previous = _sigterm_raises()
        allow_children()
        try:
            drive(engine, specs, progress, finished)
        finally:
            if stop_children():  # interrupted (Ctrl-C, SIGTERM): no job process outlives the grid
                progress.line("stopped the running jobs")
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
            engine.close()
            if scratch is not None:  # what a killed job left: this run's jobs only (another grid may share it)
                for spec in specs:
                    for left in Path(scratch).glob(f"{spec['name']}.*"):
                        shutil.rmtree(left, ignore_errors=True)
                with contextlib.suppress(OSError):
                    Path(scratch).rmdir()  # only if empty
    report.targets = combine(grid, manifests, set(report.failed))
    touched = {j.target for j in selected}
    for target, status in report.targets.items():
        if target in touched and not status.startswith(("combined", "no results")):
            progress.line(f"target {target}: {status}")
    if run_assemble:
        if report.failed:
            progress.line("assembling anyway (tables show '-' for the failed targets)")
        src = repo_root() / "notebooks" / "assemble.ipynb"
        try:
            secs = execute(src, rd / "notebooks" / "assemble.ipynb", dict(grid.assemble or {}))
            progress.event("done", "assemble", f"in {secs:.1f} s")
        except Exception as e:  # reported in the summary
            report.assemble_error = f"{type(e).__name__}: {str(e)[:2000]}"
            progress.event("FAILED", "assemble", report.assemble_error.splitlines()[0])
    progress.line(
        f"summary: {len(report.ran)} ran, {len(report.skipped)} skipped, {len(report.failed)} failed"
        + (f" ({', '.join(report.failed)})" if report.failed else "")
        + (", assemble failed" if report.assemble_error else "")
        + f", in {elapsed(t0)}"
    )
    for name, err in report.failed.items():
        progress.line(f"failed {name}: {err.strip().splitlines()[-1] if err.strip() else ''} (log: logs/{name}.log)")
    return report
