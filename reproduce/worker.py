"""One job on whichever machine runs it: the notebook in a scratch folder, its files back to the client.

:func:`run_job` is what the local engine's threads and the Dask workers call. It executes the
job's notebook in a child process (``python -m reproduce.worker SPEC``: papermill, the cell
output logged to the job's log), with ``results_dir`` set to a scratch folder, and returns the
files the job wrote: their bytes (the client writes them into the profile's results folder), or
their paths where the scratch folder lies on a file system the client shares (``--shared``,
and the local engine). The job's code version is checked against the client's first: a worker
on another checkout of the code fails the job instead of computing something else.

Stopping: the client's job processes are tracked, and :func:`stop_children` (called by the grid
when it is interrupted or sent SIGTERM) stops them; a job process sent SIGTERM first kills the
notebook kernel it started (in a session of its own, so the signal does not reach it), then exits.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from . import joblog

__all__ = ["TOPIC", "allow_children", "run_job", "stop_children"]

#: the Dask event topic on which a worker says that it started a job
TOPIC = "jkoic-grid"
#: characters of a failed job's log kept in its error message
_TAIL = 3000
#: the job processes started by this process and still running
_CHILDREN: set[subprocess.Popen] = set()
_CHILDREN_LOCK = threading.Lock()
#: set by :func:`stop_children`: no job process starts until :func:`allow_children`
_STOPPING = threading.Event()


def _run_child(cmd: list[str], **kwargs: Any) -> int:
    """Run a job process to its end, tracked so that :func:`stop_children` can stop it.

    Returns:
        Its exit status.

    Raises:
        RuntimeError: :func:`stop_children` was called (the grid is stopping).
    """
    with _CHILDREN_LOCK:
        if _STOPPING.is_set():
            raise RuntimeError("the grid is stopping: job process not started")
        proc = subprocess.Popen(cmd, **kwargs)
        _CHILDREN.add(proc)
    try:
        return proc.wait()
    finally:
        with _CHILDREN_LOCK:
            _CHILDREN.discard(proc)


def allow_children() -> None:
    """Let job processes start (again): a grid calls this before it runs its jobs."""
    _STOPPING.clear()


def stop_children(grace: float = 10.0) -> int:
    """Stop the running job processes: SIGTERM, then SIGKILL for any still running after ``grace`` s.

    No job process starts after this call (a job slot freed by it would start the next job)
    until :func:`allow_children`.

    Args:
        grace: seconds a job process has to stop its kernel and exit.

    Returns:
        How many job processes were running.
    """
    with _CHILDREN_LOCK:
        _STOPPING.set()
        procs = [p for p in _CHILDREN if p.poll() is None]
    for p in procs:
        p.terminate()
    deadline = time.monotonic() + grace
    for p in procs:
        try:
            p.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    return len(procs)


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    """SIGTERM in a job process: kill its descendants (the notebook kernel), then exit 128 + signum."""
    try:
        import psutil  # a dependency of ipykernel, so present wherever notebooks run

        for child in psutil.Process().children(recursive=True):
            try:
                child.kill()
            except psutil.Error:
                pass
    finally:
        os._exit(128 + signum)


def _dask_worker() -> Any:
    """The Dask worker running this call, or None (the local engine)."""
    try:
        from distributed import get_worker
    except ImportError:
        return None
    try:
        return get_worker()
    except ValueError:
        return None


def _error_of(log: str, returncode: int) -> str:
    """The last lines of a failed job's log: the error papermill printed."""
    lines = [line for line in log.strip().splitlines() if line.strip()]
    tail = "\n".join(lines[-25:])
    return f"exit status {returncode}:\n{tail[-_TAIL:]}" if tail else f"exit status {returncode}, no output"


def run_job(spec: dict[str, Any]) -> dict[str, Any]:
    """Execute one job; never raises for a failing notebook (the result says it failed).

    Args:
        spec: ``name``, ``notebook``, ``params``, ``code_version`` (the client's),
            ``attempt``; ``scratch``: a folder the client shares, where the job's files stay
            for the client to move (None: a temporary folder here, the files' bytes returned);
            ``slot``: the local engine's worker name.

    Returns:
        ``name``, ``attempt``, ``ok``, ``error`` (None or the log's tail), ``seconds``,
        ``worker`` (a name to show), ``worker_address`` (Dask; None locally), ``host``, and
        ``files``: path relative to the results folder -> bytes, or -> the absolute path of the
        file in the shared scratch folder (``shared`` True); a failed job returns its notebook and
        log only.
    """
    from .grid import code_version
    from .paths import repo_root

    t0 = time.perf_counter()
    name = spec["name"]
    worker = _dask_worker()
    label = spec.get("slot") or "local"
    if worker is not None:
        label = f"{worker.name} ({worker.address})" if str(worker.name) != worker.address else worker.address
        worker.log_event(TOPIC, {"job": name, "attempt": spec.get("attempt", 1), "where": label})
    out: dict[str, Any] = {
        "name": name,
        "attempt": spec.get("attempt", 1),
        "ok": False,
        "error": None,
        "worker": label,
        "worker_address": worker.address if worker is not None else None,
        "host": socket.gethostname(),
        "files": {},
        "shared": spec.get("scratch") is not None,
        "scratch_dir": None,
    }
    if spec.get("scratch"):
        Path(spec["scratch"]).mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{name}.", dir=spec.get("scratch")))
    if out["shared"]:
        out["scratch_dir"] = str(tmp)
    try:
        here = code_version(spec["notebook"])
        if here != spec["code_version"]:
            out["error"] = (
                f"the code here ({repo_root()} on {out['host']}) differs from the client's: code version "
                f"{here[:12]} != {spec['code_version'][:12]}; run the workers from the same checkout"
            )
            return out
        params = {**spec["params"], "results_dir": str(tmp / "results")}
        (tmp / "spec.json").write_text(json.dumps({"notebook": spec["notebook"], "params": params}))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(repo_root())] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        env.setdefault("MPLBACKEND", "Agg")
        env[joblog.ENV] = str(tmp / "job.log")  # the kernel appends per-layer lines (reproduce.joblog)
        with open(tmp / "job.log", "ab") as log:  # append: the kernel writes into it as well
            returncode = _run_child(
                [sys.executable, "-m", "reproduce.worker", str(tmp / "spec.json")],
                cwd=str(repo_root()),
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        out["ok"] = returncode == 0
        if not out["ok"]:
            out["error"] = _error_of((tmp / "job.log").read_text(errors="replace"), returncode)
        files = {f"logs/{name}.log": tmp / "job.log"}
        if (tmp / "notebook.ipynb").is_file():
            files[f"notebooks/{name}.ipynb"] = tmp / "notebook.ipynb"
        if out["ok"]:
            for p in sorted((tmp / "results").rglob("*")):
                if p.is_file():
                    files[f"runs/{name}/{p.relative_to(tmp / 'results').as_posix()}"] = p
        out["files"] = {rel: (str(p) if out["shared"] else p.read_bytes()) for rel, p in files.items()}
        return out
    except Exception as e:  # the client reports it and retries once
        out["ok"] = False
        out["error"] = f"{type(e).__name__}: {e}\n{traceback.format_exc()[-_TAIL:]}"
        return out
    finally:
        out["seconds"] = time.perf_counter() - t0
        if not out["shared"] or not out["files"]:
            shutil.rmtree(tmp, ignore_errors=True)
            out["scratch_dir"] = None


def _main(argv: list[str]) -> int:
    """The child process: execute the notebook of ``argv[0]`` (a spec JSON) into its folder."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout, force=True)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    spec_path = Path(argv[0])
    spec = json.loads(spec_path.read_text())
    from .paths import repo_root
    from .runner import execute

    src = repo_root() / "notebooks" / f"{spec['notebook']}.ipynb"
    try:
        seconds = execute(src, spec_path.parent / "notebook.ipynb", spec["params"], log_output=True)
    except Exception as e:
        traceback.print_exc(file=sys.stdout)
        detail = f"{e.ename}: {e.evalue}" if hasattr(e, "ename") else f"{type(e).__name__}: {e}"
        print(f"[reproduce] {spec['notebook']} failed: {' '.join(str(detail).split())[:500]}", flush=True)
        return 1
    print(f"[reproduce] {spec['notebook']} executed in {seconds:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
