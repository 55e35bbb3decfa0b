"""The job grid (reproduce.grid): one job per (target, run), its identity, the skip rule and combining.

Fast: no notebook runs. The grid's runs through the local engine and a Dask LocalCluster are in
tests/test_grid_run.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from reproduce import combine, grid, runner, tables
from reproduce.grid import Job, code_version, done, params_hash, plan_grid, write_manifest

ROOT = Path(__file__).resolve().parents[1]


def test_paper_profile_lists_55_independent_jobs_with_their_resources():
    """11 targets x 5 runs, each job one notebook execution asking for a GPU (2-D targets half of one)."""
    g = plan_grid("paper")
    runs = [j for j in g.jobs if j.run_index is not None]
    targets = {j.target for j in runs}
    assert targets == {"mustache", "8modes", "8peaky", "funnel", "gmm10", "gmm20", "gmm50", "gmm100", "gmm200"} | {
        "gmm40",
        "lgcp",
    }
    assert len(runs) >= 55 and all(sum(1 for j in runs if j.target == t) == 5 for t in targets)
    assert len({j.name for j in g.jobs}) == len(g.jobs)
    for j in runs:
        assert j.params["run_index"] == j.run_index and j.params["device"] == "cuda"
        assert j.resources == {"GPU": 0.5 if j.target in grid.TWO_D_TARGETS else 1.0}, j
        assert j.params["check_claims"] is False  # claims hold for the mean of 5 runs, not for one
        if j.notebook == "gmm":
            assert j.params["dims"] == [int(j.target[3:])]
    assert {j.name for j in g.jobs if j.run_index is None} == {"quickstart", "mode_collapse_1d", "references"}
    assert all(j.resources == {} for j in g.jobs if j.run_index is None)  # CPU notebooks: any worker
    assert g.assemble is not None and "assemble" not in {j.notebook for j in g.jobs}


def test_cli_lists_the_jobs(capsys):
    assert runner.main(["jobs", "--profile", "paper"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "gmm200.r4" in out[-2] or any(line.startswith("gmm200.r4 ") for line in out)
    assert any(line.split()[0] == "8peaky.r0" and line.endswith("GPU=0.5") for line in out[:-1])
    assert out[-1].startswith("58 jobs (55 on a GPU), 14 targets")


def test_smoke_and_cpu_profiles_one_job_per_target_and_run():
    smoke = plan_grid("smoke")
    assert [j.name for j in smoke.jobs] == [
        "quickstart",
        "mode_collapse_1d",
        "mustache.r0",
        "8peaky.r0",
        "funnel.r0",
        "gmm10.r0",
        "gmm40.r0",
        "lgcp.r0",
        "references",
    ]
    assert all(j.resources == {} for j in smoke.jobs)
    # runs: 1 keeps the profile's check_claims (the claims are checked as before)
    assert all("check_claims" not in j.params or j.params["check_claims"] is False for j in smoke.jobs)
    cpu = plan_grid("cpu")
    assert all(j.params["check_claims"] is True for j in cpu.jobs if j.run == "mustache")
    # a run of several dimensions is one job per dimension (and run)
    gmm = [j for j in plan_grid("paper").jobs if j.run == "gmm" and j.run_index == 0]
    assert [(j.name, j.params["dims"]) for j in gmm] == [(f"gmm{d}.r0", [d]) for d in (10, 20, 50, 100, 200)]


def test_full_profile_writes_its_own_folder_and_fills_in_from_the_cpu_results():
    """The full profile's targets are also cpu targets; its tables take the rest from results/cpu."""
    full, cpu = plan_grid("full"), plan_grid("cpu")
    assert full.results_dir != cpu.results_dir
    assert {j.target for j in full.jobs} <= {j.target for j in cpu.jobs}
    assert full.assemble is not None and runner.resolve_path(full.assemble["base_results_dir"]) == cpu.results_dir
    mine, theirs = runner.load_profile("full")["defaults"], runner.load_profile("cpu")["defaults"]
    assert all(mine[k] != theirs[k] for k in ("figures_dir", "tables_dir"))  # cpu's committed figures stay


def test_select_by_run_target_or_job():
    g = plan_grid("cpu")
    assert [j.name for j in g.select(["gmm_mid"])] == ["gmm20.r0"]
    assert [j.name for j in g.select(["gmm100", "8modes.r0"])] == ["gmm100.r0", "8modes.r0"]
    with pytest.raises(ValueError, match="runs.*mustache"):
        g.select(["nope"])
    with pytest.raises(ValueError, match="no run selected"):
        g.select([])


def test_cli_accepts_targets_and_job_ids(monkeypatch):
    calls = []
    monkeypatch.setattr(runner, "run_profile", lambda profile, **kw: calls.append((profile, kw)) or {})
    assert runner.main(["run", "--profile", "cpu", "--only", "gmm100,8modes.r0", "--scheduler", "local-dask"]) == 0
    assert calls[0][1]["only"] == ["gmm100", "8modes.r0"] and calls[0][1]["scheduler"] == "local-dask"
    with pytest.raises(SystemExit):
        runner.main(["run", "--profile", "cpu", "--only", "gmm100.r1"])  # the cpu profile has 1 run


def _job(**params) -> Job:
    base = {"n_eval": 100, "results_dir": "results/x", "run_index": 0}
    return Job("8peaky.r0", "eight_modes", "eight_modes", "8peaky", 0, 2, {**base, **params})


def test_params_hash_covers_the_settings_not_the_folders():
    h = params_hash(_job())
    assert h == params_hash(_job()) and len(h) == 64
    assert params_hash(_job(results_dir="/elsewhere", figures_dir="f", tables_dir="t")) == h
    assert params_hash(_job(n_eval=101)) != h
    assert params_hash(_job(run_index=1)) != h


def _checkout(tmp_path: Path) -> Path:
    """A copy of the code a job's version covers."""
    dst = tmp_path / "checkout"
    shutil.copytree(ROOT / "jkoic", dst / "jkoic", ignore=shutil.ignore_patterns("__pycache__", "*.csv", "*.json"))
    shutil.copytree(ROOT / "reproduce", dst / "reproduce", ignore=shutil.ignore_patterns("__pycache__"))
    (dst / "notebooks").mkdir()
    shutil.copy(ROOT / "notebooks" / "eight_modes.ipynb", dst / "notebooks")
    return dst


def test_code_version_covers_the_computation_only(tmp_path):
    root = _checkout(tmp_path)
    v0 = code_version("eight_modes", root)
    (root / "reproduce" / "tables.py").write_text("# reporting only\n")  # tables are rebuilt every run
    nb = json.loads((root / "notebooks" / "eight_modes.ipynb").read_text())
    md = next(c for c in nb["cells"] if c["cell_type"] == "markdown")
    md["source"] = ["# another title\n"]
    (root / "notebooks" / "eight_modes.ipynb").write_text(json.dumps(nb))
    assert code_version("eight_modes", root) == v0
    code = next(
        c for c in nb["cells"] if c["cell_type"] == "code" and "parameters" not in c["metadata"].get("tags", [])
    )
    code["source"] = ["x = 1\n"]
    (root / "notebooks" / "eight_modes.ipynb").write_text(json.dumps(nb))
    v1 = code_version("eight_modes", root)
    assert v1 != v0
    with open(root / "jkoic" / "sampler.py", "a") as fh:
        fh.write("\n# changed\n")
    assert code_version("eight_modes", root) != v1


def test_a_notebooks_own_module_is_in_its_code_version_only(tmp_path):
    root = _checkout(tmp_path)
    shutil.copy(ROOT / "notebooks" / "references.ipynb", root / "notebooks")
    before = {nb: code_version(nb, root) for nb in ("eight_modes", "references")}
    with open(root / "reproduce" / "references.py", "a") as fh:
        fh.write("\n# changed\n")
    assert code_version("eight_modes", root) == before["eight_modes"]
    assert code_version("references", root) != before["references"]


def test_a_job_is_done_with_its_manifest_parameters_code_and_files(tmp_path):
    job = _job()
    (tmp_path / "runs" / job.name).mkdir(parents=True)
    (tmp_path / "runs" / job.name / "8peaky.json").write_text("{}")
    assert done(tmp_path, job, "code") is None  # no manifest: the job was killed or never ran
    write_manifest(tmp_path, job, "code", [f"runs/{job.name}/8peaky.json"], {"worker": "w"})
    assert done(tmp_path, job, "code")["worker"] == "w"
    assert done(tmp_path, job, "other code") is None
    assert done(tmp_path, _job(n_eval=7), "code") is None
    (tmp_path / "runs" / job.name / "8peaky.json").write_text('{"changed": 1}')
    assert done(tmp_path, job, "code") is None


def _part(seed: int, energy: float, arrays: bool) -> dict:
    return {
        "format": "jkoic-paper-results",
        "target": "8peaky",
        "label": "8 Peaky",
        "settings": {"runs": 2},
        "log_z_true": 0.0,
        "configs": {"jkoic": {"hidden": 3}},
        "runs": {"jkoic": [{"seed": seed, "metrics": {"energy": energy, "log_z": -energy}, "train_seconds": 1.0}]},
        "reference": {"energy": [energy / 10]},
        "layer_curves": {"jkoic": [{"kind": "cnf"}]} if arrays else {},
        "extra": {},
        "arrays": {"samples": "8peaky_samples.npz"} if arrays else {},
    }


def test_merge_runs_gives_what_one_notebook_running_both_writes():
    merged = combine.merge_runs([_part(0, 0.1, True), _part(1, 0.3, False)])
    assert [r["seed"] for r in merged["runs"]["jkoic"]] == [0, 1]
    assert merged["reference"]["energy"] == [0.01, 0.03]
    assert merged["arrays"] == {"samples": "8peaky_samples.npz"} and merged["layer_curves"]["jkoic"]
    values = tables.collect({"8peaky": merged})
    assert values[("8peaky", "jkoic", "energy")] == [0.1, 0.3]


def test_combine_writes_complete_targets_and_drops_failed_ones(tmp_path):
    prof = tmp_path / "p.yaml"
    prof.write_text(
        f"defaults: {{results_dir: {tmp_path / 'res'}, runs: 2}}\n"
        "eight_modes: {target: 8peaky}\n"
        "mustache: {}\n"
        "assemble: {}\n"
    )
    g = plan_grid(str(prof))
    rd = g.results_dir
    assert [j.name for j in g.jobs] == ["8peaky.r0", "8peaky.r1", "mustache.r0", "mustache.r1"]
    for j, part in zip(g.jobs[:2], [_part(0, 0.1, True), _part(1, 0.3, False)], strict=True):
        (rd / "runs" / j.name).mkdir(parents=True)
        (rd / "runs" / j.name / "8peaky.json").write_text(json.dumps(part))
    (rd / "runs" / "8peaky.r0" / "8peaky_samples.npz").write_bytes(b"npz")
    (rd / "mustache.json").write_text("{}")  # from an earlier run
    manifests = {j.name: {"host": "h", "code_version": "c"} for j in g.jobs[:3]}
    status = combine.combine(g, manifests, failed={"mustache.r1"})
    assert status == {"8peaky": "combined (2 runs)", "mustache": "failed: mustache.r1"}
    out = json.loads((rd / "8peaky.json").read_text())
    assert [r["seed"] for r in out["runs"]["jkoic"]] == [0, 1] and out["grid"]["jobs"] == ["8peaky.r0", "8peaky.r1"]
    assert (rd / "8peaky_samples.npz").read_bytes() == b"npz"
    assert not (rd / "mustache.json").exists()  # its table cells show '-'
    status = combine.combine(g, {k: v for k, v in manifests.items() if k != "8peaky.r1"}, failed=set())
    assert status["8peaky"] == "incomplete (1 of 2 runs)" and status["mustache"] == "incomplete (1 of 2 runs)"


def test_job_log_lines_go_to_the_named_file_only_while_the_block_runs(tmp_path, monkeypatch):
    import logging

    from reproduce import joblog

    log = logging.getLogger("jkoic.sampler")
    path = tmp_path / "job.log"
    path.write_text("before\n")
    monkeypatch.delenv(joblog.ENV, raising=False)
    with joblog.layer_lines("jkoic seed 0"):
        log.info("no file named: dropped")
    monkeypatch.setenv(joblog.ENV, str(path))
    handlers = list(logging.getLogger("jkoic").handlers)
    with joblog.layer_lines("jkoic seed 0"):
        log.info("layer 1/2")
        log.debug("below INFO: dropped")
    log.info("after the block: dropped")
    assert path.read_text() == "before\n[jkoic seed 0] layer 1/2\n"  # appended, nothing else
    assert logging.getLogger("jkoic").handlers == handlers and logging.getLogger("jkoic").level == logging.NOTSET
