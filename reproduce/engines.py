"""Where the jobs run: local processes (the default) or a Dask cluster; one retry; progress lines.

* :class:`LocalEngine`: ``jobs`` at once on this machine, no cluster and no Dask needed (each
  job a child process, as ``make paper`` ran its notebooks before).
* :class:`DaskEngine`: a Dask ``distributed`` client, either of a :func:`local_cluster` (one
  worker process per job slot, every socket on 127.0.0.1, no dashboard) or of an existing
  cluster (``tcp://HOST:PORT``: ``dask scheduler`` / ``dask worker``, dask-jobqueue, ...). A job
  asks for its resources (``{"GPU": 1}``: workers started with ``--resources GPU=1``).

:func:`drive` submits the jobs, prints one line per job event (queued, running on which worker,
done in how long, failed), retries a failed job once (on another worker where one offers its
resources) and hands each finished job to a callback as it arrives, so a killed grid keeps
everything finished before.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from .worker import TOPIC, run_job

__all__ = ["DaskEngine", "LocalEngine", "Progress", "drive", "local_cluster"]

#: attempts of a job: the first and one retry
ATTEMPTS = 2


class Progress:
    """Thread-safe progress lines, ``[grid] <event> <job> ...`` on stdout."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stdout
        self._lock = threading.Lock()

    def line(self, text: str) -> None:
        """Print one line (whole, even from several threads)."""
        with self._lock:
            print(f"[grid] {text}", file=self.stream, flush=True)

    def event(self, kind: str, job: str, text: str = "") -> None:
        """One job event: ``queued``, ``running``, ``done``, ``retry``, ``FAILED``, ``skipped``."""
        self.line(f"{kind:8s} {job}" + (f"  {text}" if text else ""))


class LocalEngine:
    """``jobs`` jobs at once on this machine (threads, each waiting on its job's child process).

    Args:
        jobs: job slots.
        progress: where the ``running`` lines go.
    """

    name = "local"

    def __init__(self, jobs: int, progress: Progress) -> None:
        self.jobs = max(1, int(jobs))
        self.progress = progress
        self._pool = ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="jkoic-job")
        self._slots: queue.Queue[str] = queue.Queue()
        for i in range(self.jobs):
            self._slots.put(f"local-{i + 1}")

    def describe(self) -> str:
        return f"this machine, {self.jobs} at once"

    def _run(self, spec: dict[str, Any]) -> dict[str, Any]:
        slot = self._slots.get()
        try:
            self.progress.event("running", spec["name"], f"on {slot} (attempt {spec['attempt']})")
            return run_job({**spec, "slot": slot})
        finally:
            self._slots.put(slot)

    def submit(self, spec: dict[str, Any], avoid: str | None = None) -> Future:
        """Start a job when a slot is free (``avoid`` is meaningless here)."""
        return self._pool.submit(self._run, spec)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def local_cluster(n_workers: int, *, gpu: bool = False) -> Any:
    """A Dask ``LocalCluster`` on the loopback interface only.

    Args:
        n_workers: worker processes (one per job slot), one thread each (two with ``gpu``, so
            that two half-GPU jobs of 2-D targets can share a worker).
        gpu: give every worker the resource ``GPU=1``.

    Returns:
        The cluster: scheduler, nannies and workers listen on 127.0.0.1; no dashboard.
    """
    from distributed import LocalCluster

    return LocalCluster(
        n_workers=max(1, int(n_workers)),
        threads_per_worker=2 if gpu else 1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        worker_dashboard_address=None,
        resources={"GPU": 1} if gpu else None,
        silence_logs=logging.ERROR,
    )


class DaskEngine:
    """Jobs submitted to a Dask cluster.

    Args:
        scheduler: ``local-dask`` (a :func:`local_cluster` of ``jobs`` workers, closed at the
            end), a scheduler address (``tcp://HOST:PORT``), or a ``distributed.Client``.
        jobs: the local cluster's workers.
        gpu: whether jobs ask for GPUs (the local cluster's workers then offer ``GPU=1``).
        progress: where the ``running`` lines go (the workers send them as Dask events).
    """

    def __init__(self, scheduler: Any, *, jobs: int, gpu: bool, progress: Progress) -> None:
        try:
            from distributed import Client
        except ImportError as e:
            raise RuntimeError(
                "--scheduler needs Dask distributed: pip install -e '.[cluster]' (or pip install 'dask[distributed]')"
            ) from e
        self.progress = progress
        self.cluster = None
        self._own_client = True
        if isinstance(scheduler, Client):
            self.client, self._own_client = scheduler, False
        elif scheduler == "local-dask":
            self.cluster = local_cluster(jobs, gpu=gpu)
            self.client = Client(self.cluster)
        else:
            self.client = Client(scheduler, timeout="60s")
        self.name = "local-dask" if self.cluster is not None else str(self.client.scheduler.address)
        self.client.subscribe_topic(TOPIC, self._on_event)

    def _workers(self) -> dict[str, Any]:
        """The connected workers' information, by address (all of them, whatever the release)."""
        try:
            info = self.client.scheduler_info(n_workers=-1)  # 2025 to mid-2026 releases list 5 by default
        except TypeError:
            info = self.client.scheduler_info()
        return info.get("workers", {})

    def describe(self) -> str:
        workers = self._workers()
        gpus = sum(float(w.get("resources", {}).get("GPU", 0)) for w in workers.values())
        where = "a local cluster on 127.0.0.1" if self.cluster is not None else self.client.scheduler.address
        return f"Dask, {where}: {len(workers)} worker(s), GPU resources {gpus:g}"

    def offers(self, resource: str) -> bool:
        """Whether a worker now connected offers ``resource``."""
        workers = self._workers()
        return any(float(w.get("resources", {}).get(resource, 0)) > 0 for w in workers.values())

    def _on_event(self, event: Any) -> None:
        msg = event[1] if isinstance(event, tuple) and len(event) == 2 else event
        if isinstance(msg, dict) and "job" in msg:
            self.progress.event("running", msg["job"], f"on {msg.get('where')} (attempt {msg.get('attempt')})")

    def submit(self, spec: dict[str, Any], avoid: str | None = None) -> Any:
        """Submit a job; ``avoid``: a worker address to keep off where another offers its resources."""
        res = spec.get("resources") or {}
        workers = None
        if avoid:
            info = self._workers()
            others = [
                addr
                for addr, w in info.items()
                if addr != avoid and all(float(w.get("resources", {}).get(k, 0)) >= v for k, v in res.items())
            ]
            workers = others or None
        key = f"jkoic-{spec['name']}-a{spec['attempt']}-{uuid.uuid4().hex[:8]}"
        return self.client.submit(
            run_job,
            spec,
            key=key,
            resources=res or None,
            workers=workers,
            allow_other_workers=workers is not None,
            pure=False,
        )

    def close(self) -> None:
        try:
            self.client.unsubscribe_topic(TOPIC)
        except Exception:  # noqa: BLE001 - closing anyway
            pass
        if self._own_client:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def drive(
    engine: Any,
    specs: list[dict[str, Any]],
    progress: Progress,
    on_result: Callable[[dict[str, Any], dict[str, Any]], None],
) -> dict[str, dict[str, Any]]:
    """Run the jobs on ``engine``; retry each failed one once; report each as it finishes.

    Args:
        engine: :class:`LocalEngine` or :class:`DaskEngine`.
        specs: the jobs (:func:`reproduce.worker.run_job`'s specs; ``attempt`` is set here).
        progress: the progress lines.
        on_result: called in this thread with ``(spec, result)`` for every finished job (done,
            or failed for good), as soon as it finishes.

    Returns:
        Job name -> its last result.
    """
    finished: queue.Queue[tuple[dict[str, Any], Any]] = queue.Queue()
    outcomes: dict[str, dict[str, Any]] = {}
    count = 0

    def submit(spec: dict[str, Any], avoid: str | None = None) -> None:
        fut = engine.submit(spec, avoid)
        fut.add_done_callback(lambda f, s=spec: finished.put((s, f)))

    for spec in specs:
        spec = {**spec, "attempt": 1}
        progress.event("queued", spec["name"], spec.get("describe", ""))
        submit(spec)
        count += 1
    while count:
        spec, fut = finished.get()
        count -= 1
        try:
            res = fut.result()
        except BaseException as e:  # a worker died, the job was cancelled, ...
            res = {"name": spec["name"], "ok": False, "error": f"{type(e).__name__}: {e}", "files": {}}
            res.update(attempt=spec["attempt"], worker="?", worker_address=None, seconds=float("nan"))
        if res.get("ok"):
            progress.event("done", spec["name"], f"in {res['seconds']:.1f} s on {res['worker']}")
        elif spec["attempt"] < ATTEMPTS:
            first = (res.get("error") or "").strip().splitlines() or [""]
            progress.event("retry", spec["name"], f"failed on {res.get('worker')}: {first[-1][:200]}; trying again")
            submit({**spec, "attempt": spec["attempt"] + 1}, res.get("worker_address"))
            count += 1
            continue
        else:
            progress.event("FAILED", spec["name"], f"after {spec['attempt']} attempts (last on {res.get('worker')})")
        outcomes[spec["name"]] = res
        on_result(spec, res)
    return outcomes


def elapsed(t0: float) -> str:
    """Seconds since ``t0`` (``time.perf_counter``), as ``12.3 s`` or ``4 min 5 s``."""
    s = time.perf_counter() - t0
    return f"{s:.1f} s" if s < 120 else f"{int(s // 60)} min {int(s % 60)} s"
