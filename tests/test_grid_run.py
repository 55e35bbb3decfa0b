"""The job grid run for real on a tiny profile: the local engine, a killed grid restarted, and a Dask
LocalCluster on 127.0.0.1 giving the local engine's results bit for bit while a failing job is
retried on another worker and reported.

The profile: 8 Peaky with 2 runs (two jobs) of a few Adam iterations, and the 1-D example; the Dask
run adds a job that fails (8 Modes with an unknown method). About a minute and a half on 2 cores.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from reproduce import engines, grid, gridrun, runner, worker
from reproduce.engines import Progress
from reproduce.gridrun import run_grid
from reproduce.paths import repo_root
from reproduce.results import load_results
from reproduce.tables import write_all_tables

#: what differs between two runs of the same computation: clocks, dates, machines, commits
VOLATILE = {"created", "commit", "machine", "train_seconds", "sample_seconds", "grid"}
#: the tables without timings (Table 6 holds training times, tables.md holds Table 6)
STABLE_TABLES = [f"table{n}.{ext}" for n in (1, 2, 3, 4, 5, 7) for ext in ("csv", "md", "tex")]

TINY = """\
defaults:
  profile: tiny
  results_dir: {rd}
  figures_dir: {rd}/figures
  tables_dir: {rd}/tables
  smoke_test: true
  check_claims: false
  threads: 1
  device: cpu
  runs: 2
  preset_profile: fast
  config_overrides: {{n_flow_steps: 1, n_blocks: 1, n_iters: 5, batch_size: 100, dataset_size: 500}}
  mcmc: {{n_steps: 20, warmup: [5, 5], n_chains: null}}
  n_eval: 300
  n_w2: 50
  n_projections: 20
  n_plot: 100
  n_layer_curve: 0
  log_z_tol: 5.0
eight_modes:
  target: 8peaky
  methods: [jkoic, neural_jko, mala]
  n_path: 0
mode_collapse_1d:
  n_theta: 11
  n_quad: 401
{extra}assemble:
  show: false
"""
BROKEN = "broken:\n  notebook: eight_modes\n  target: 8modes\n  runs: 1\n  methods: [nope]\n"


def _profile(folder: Path, extra: str = "") -> str:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tiny.yaml"
    path.write_text(TINY.format(rd=folder / "res", extra=extra))
    return str(path)


def _strip(obj):
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k not in VOLATILE}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def _json(path: Path):
    return _strip(json.loads(path.read_text()))


def _tables(results_dir: Path, out: Path) -> dict[str, str]:
    write_all_tables(load_results(results_dir), out)
    return {name: (out / name).read_text() for name in STABLE_TABLES}


@pytest.fixture(scope="module")
def local_grid(tmp_path_factory):
    """The tiny profile run by the local engine, two jobs at once."""
    folder = tmp_path_factory.mktemp("local")
    profile = _profile(folder)
    out = io.StringIO()
    report = run_grid(profile, jobs=2, assemble=False, progress=Progress(out))
    return profile, folder / "res", report, out.getvalue()


def test_local_grid_runs_each_target_and_run_as_a_job(local_grid):
    _, rd, report, log = local_grid
    assert report.ok and sorted(report.ran) == ["8peaky.r0", "8peaky.r1", "mode_collapse_1d"], log
    for name in report.ran:
        assert re.search(rf"queued +{re.escape(name)} ", log) and re.search(
            rf"running +{re.escape(name)} +on local-", log
        )
        assert re.search(rf"done +{re.escape(name)} +in [\d.]+ s on local-", log)
        assert (rd / "runs" / name / "job.json").is_file() and (rd / "notebooks" / f"{name}.ipynb").is_file()
        assert (rd / "logs" / f"{name}.log").is_file()
    for r in (0, 1):  # the fits' layers, appended to the job log by the kernel as they finish
        job_log = (rd / "logs" / f"8peaky.r{r}.log").read_text()
        assert re.search(rf"^\[jkoic seed {r}\] 8peaky: layer 1/5 cnf tau=0.01 in [\d.]+ s ", job_log, re.M), job_log
        assert re.search(rf"^\[jkoic seed {r}\] 8peaky: layer 5/5 rejection rejects 0.20 ", job_log, re.M)
        assert re.search(rf"^\[neural_jko seed {r}\] 8peaky: layer 2/2 cnf ", job_log, re.M)
        assert job_log.index("Executing notebook") < job_log.index("layer 1/5") < job_log.index("executed in")
    assert "summary: 3 ran, 0 skipped, 0 failed" in log
    assert report.targets == {"8peaky": "combined (2 runs)", "mode_collapse_1d": "combined (1 run)"}
    combined = json.loads((rd / "8peaky.json").read_text())
    assert [r["seed"] for r in combined["runs"]["jkoic"]] == [0, 1] and len(combined["reference"]["energy"]) == 2
    assert (rd / "8peaky_samples.npz").is_file() and (rd / "mode_collapse_1d_curves.npz").is_file()


def test_the_combined_runs_equal_one_notebook_running_them_all(local_grid, tmp_path):
    """Run r of a job is run r of the notebook's loop: the combined file is the whole notebook's."""
    profile, rd, _, _ = local_grid
    from reproduce.grid import plan_grid

    params = {k: v for k, v in plan_grid(profile).select(["8peaky.r0"])[0].params.items() if k != "run_index"}
    params["results_dir"] = str(tmp_path)
    runner.execute(repo_root() / "notebooks" / "eight_modes.ipynb", tmp_path / "nb.ipynb", params)
    assert _json(tmp_path / "8peaky.json") == _json(rd / "8peaky.json")


def test_a_killed_grid_restarted_runs_only_the_missing_jobs(local_grid, tmp_path, monkeypatch):
    _, rd0, _, _ = local_grid
    # the code as it was when the grid ran (a work tree edited meanwhile would re-run every job)
    recorded = {}
    for m in rd0.glob("runs/*/job.json"):
        data = json.loads(m.read_text())
        recorded[data["notebook"]] = data["code_version"]
    monkeypatch.setattr(grid, "code_version", lambda notebook, root=None: recorded[notebook])
    monkeypatch.setattr(gridrun, "code_version", lambda notebook, root=None: recorded[notebook])
    profile = _profile(tmp_path)
    shutil.copytree(rd0, tmp_path / "res")
    rd = tmp_path / "res"
    before = _tables(rd, tmp_path / "t0")
    # killed while 8peaky.r1 ran: no manifest, no executed notebook (the client writes them when a job ends)
    (rd / "runs" / "8peaky.r1" / "job.json").unlink()
    (rd / "notebooks" / "8peaky.r1.ipynb").unlink()
    out = io.StringIO()
    report = run_grid(profile, jobs=2, assemble=False, progress=Progress(out))
    assert report.ok and list(report.ran) == ["8peaky.r1"], out.getvalue()
    assert sorted(report.skipped) == ["8peaky.r0", "mode_collapse_1d"]
    assert _tables(rd, tmp_path / "t1") == before
    assert _json(rd / "8peaky.json") == _json(rd0 / "8peaky.json")
    again = run_grid(profile, jobs=2, assemble=False, progress=Progress(io.StringIO()))
    assert again.ran == {} and len(again.skipped) == 3


def _listening(pids: list[int]) -> list[tuple[int, str, int]]:
    """The listening TCP sockets of these processes: (pid, address, port)."""
    import psutil

    out = []
    for pid in pids:
        try:
            conns = psutil.Process(pid).net_connections(kind="inet")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        out += [(pid, c.laddr.ip, c.laddr.port) for c in conns if c.status == psutil.CONN_LISTEN]
    return out


def test_dask_local_cluster_on_loopback_gives_the_local_results_and_retries_a_failed_job(
    local_grid, tmp_path, monkeypatch
):
    pytest.importorskip("distributed")
    import psutil
    from distributed import Client

    _, rd_local, _, _ = local_grid
    checked = {}
    real_cluster = engines.local_cluster

    def checked_cluster(n_workers, *, gpu=False):
        cluster = real_cluster(n_workers, gpu=gpu)
        with Client(cluster) as client:
            client.wait_for_workers(n_workers, timeout=120)
            info = client.scheduler_info()
        addresses = [cluster.scheduler_address] + list(info["workers"])
        addresses += [w.get("nanny") for w in info["workers"].values() if w.get("nanny")]
        me = psutil.Process()
        sockets = _listening([me.pid] + [p.pid for p in me.children(recursive=True)])
        checked.update(addresses=addresses, sockets=sockets, workers=len(info["workers"]))
        return cluster

    monkeypatch.setattr(engines, "local_cluster", checked_cluster)
    profile = _profile(tmp_path, BROKEN)
    out = io.StringIO()
    report = run_grid(
        profile, jobs=2, only=["eight_modes", "broken"], assemble=False, scheduler="local-dask", progress=Progress(out)
    )
    log = out.getvalue()

    # every address of the cluster, and every socket listening in this process tree, on loopback
    assert checked["workers"] == 2 and len(checked["addresses"]) == 5, checked
    assert all(a.startswith("tcp://127.0.0.1:") for a in checked["addresses"]), checked
    ports = {int(a.rsplit(":", 1)[1]) for a in checked["addresses"]}
    assert ports <= {port for _, _, port in checked["sockets"]}, checked
    assert all(ip in ("127.0.0.1", "::1") for _, ip, _ in checked["sockets"]), checked

    # the failing job: retried once on the other worker, then reported with its log; the others go on
    assert list(report.failed) == ["8modes.r0"] and "nope" in report.failed["8modes.r0"], log
    first = re.search(r"retry +8modes\.r0 +failed on (.+?):", log).group(1)
    last = re.search(r"FAILED +8modes\.r0 +after 2 attempts \(last on (.+?)\)", log).group(1)
    assert first != last, log
    rd = tmp_path / "res"
    assert "nope" in (rd / "logs" / "8modes.r0.log").read_text()
    assert not (rd / "runs" / "8modes.r0" / "job.json").exists() and not (rd / "8modes.json").exists()
    assert sorted(report.ran) == ["8peaky.r0", "8peaky.r1"], log
    assert re.search(r"running +8peaky\.r0 +on \S+ \(tcp://127\.0\.0\.1:\d+\)", log), log
    assert "summary: 2 ran, 0 skipped, 1 failed (8modes.r0)" in log

    # bit for bit the local engine's results, run by run and combined; the same tables
    for rel in ["runs/8peaky.r0/8peaky.json", "runs/8peaky.r1/8peaky.json", "8peaky.json"]:
        assert _json(rd / rel) == _json(rd_local / rel), rel
    for rel in ["runs/8peaky.r0/8peaky_samples.npz", "8peaky_samples.npz"]:
        assert (rd / rel).read_bytes() == (rd_local / rel).read_bytes(), rel
    shutil.copy(rd_local / "mode_collapse_1d.json", rd)  # not selected here (a numpy-only notebook)
    dask_tables = _tables(rd, tmp_path / "t_dask")
    assert dask_tables == _tables(rd_local, tmp_path / "t_local")

    # the failed target's table cells show '-' (the assemble step reads the same files)
    lines = dask_tables["table1.md"].splitlines()
    header = next(line for line in lines if line.startswith("| Distribution")).split("|")
    row = next(line for line in lines if "8 Modes" in line).split("|")
    ours = [row[i].strip() for i, h in enumerate(header) if "ours" in h]
    assert len(ours) == 5 and set(ours) == {"-"}, row


# ------------------------------------------------------------------------------ stopping


def _wait_for(predicate, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _gone(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _tracked(cmd: list[str]) -> tuple[threading.Thread, list[int]]:
    """A job process run by worker._run_child in a thread, and the list its exit status goes to."""
    codes: list[int] = []
    t = threading.Thread(target=lambda: codes.append(worker._run_child(cmd)))
    t.start()
    assert _wait_for(lambda: bool(worker._CHILDREN))
    return t, codes


def test_stop_children_terminates_then_kills_what_ignores_sigterm():
    worker.allow_children()
    t, codes = _tracked([sys.executable, "-c", "import time; time.sleep(60)"])
    t0 = time.monotonic()
    assert worker.stop_children(grace=5.0) == 1
    t.join(10)
    assert codes == [-signal.SIGTERM] and time.monotonic() - t0 < 5.0 and not worker._CHILDREN
    stubborn = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print(1, flush=True); time.sleep(60)"
    )
    with pytest.raises(RuntimeError, match="stopping"):  # a job slot freed by the stop starts nothing
        worker._run_child([sys.executable, "-c", "pass"])
    worker.allow_children()
    t, codes = _tracked([sys.executable, "-c", stubborn])
    time.sleep(0.5)  # let it install its handler
    assert worker.stop_children(grace=0.5) == 1
    t.join(10)
    assert codes == [-signal.SIGKILL]
    assert worker.stop_children() == 0  # nothing left to stop


def test_a_job_process_sent_sigterm_kills_its_kernel_first():
    """The kernel runs in a session of its own (jupyter_client), out of reach of a signal to the job's group."""
    code = (
        "import signal, subprocess, sys, time\n"
        "from reproduce.worker import _exit_on_sigterm\n"
        "signal.signal(signal.SIGTERM, _exit_on_sigterm)\n"
        "k = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'], start_new_session=True)\n"
        "print(k.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=str(repo_root()), stdout=subprocess.PIPE, text=True)
    kernel = int(proc.stdout.readline())
    assert not _gone(kernel)
    proc.terminate()
    assert proc.wait(10) == 128 + signal.SIGTERM
    assert _wait_for(lambda: _gone(kernel), 10.0), "the kernel outlived its job process"


def test_sigterm_to_a_running_grid_stops_its_jobs_and_their_kernels(tmp_path):
    import psutil

    profile = _profile(tmp_path, extra="")
    me = psutil.Process()
    seen: dict[str, list[int]] = {}

    def kill_when_a_kernel_runs():
        def kernels():
            return [p.pid for p in me.children(recursive=True) if "ipykernel" in " ".join(p.cmdline())]

        if _wait_for(lambda: bool(kernels()), 120.0):
            seen["jobs"] = [p.pid for p in worker._CHILDREN]
            seen["kernels"] = kernels()
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=kill_when_a_kernel_runs, daemon=True).start()
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as exc:
        run_grid(profile, jobs=2, assemble=False, progress=Progress(io.StringIO()))
    assert exc.value.code == 128 + signal.SIGTERM
    assert seen.get("jobs") and seen.get("kernels"), "no job kernel started within 120 s"
    assert all(_wait_for(lambda p=p: _gone(p), 15.0) for p in seen["jobs"] + seen["kernels"])
    assert signal.getsignal(signal.SIGTERM) is before
    # the third job, whose slot the stop freed, never started: no job process of this grid is left
    time.sleep(1.0)
    assert not worker._CHILDREN
    assert not [p for p in me.children(recursive=True) if "reproduce.worker" in " ".join(p.cmdline())]
