"""Reporting and runner helpers of the reproduction package (fast: one tiny model trained, for a few seconds)."""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pytest
import torch

import jkoic
from reproduce import examples, paper, runner, tables
from reproduce import values as PV
from reproduce.methods import METRIC_SEED


def jkoic_schedule(cfg):
    return [kind for kind, _ in jkoic.schedule(cfg)]


def _results(tmp=None):
    """Synthetic results of two targets as the notebooks write them."""

    def run(seed, **metrics):
        return {
            "seed": seed,
            "metrics": metrics,
            "train_seconds": 120.0 * (seed + 1),
            "sample_seconds": 2.0,
            "n_samples": 1000,
            "info": {},
        }

    return {
        "8peaky": {
            "format": "jkoic-paper-results",
            "target": "8peaky",
            "profile": "test",
            "log_z_true": 0.0,
            "machine": {
                "cpu": "CPU X",
                "cores": 2,
                "device": "cpu",
                "torch": "2",
                "platform": "linux",
                "torch_threads": 1,
            },
            "configs": {
                "jkoic": {
                    "n_flow_steps": 2,
                    "n_blocks": 4,
                    "tau0": 0.01,
                    "latent_scale": 1.0,
                    "gradient_flow_time": None,
                    "hidden": 54,
                    "batch_size": 1000,
                    "n_iters": 1500,
                }
            },
            "runs": {
                "jkoic": [
                    run(0, energy=1e-4, log_z=-0.01, log_z_se=2e-3, w2=0.01, mode_mse=1e-5),
                    run(1, energy=3e-4, log_z=-0.03, log_z_se=4e-3, w2=0.02, mode_mse=3e-5),
                ],
                "mala": [run(0, energy=0.1, w2=0.5, mode_mse=0.08)],
            },
            "reference": {"energy": [2e-5, 4e-5], "w2": [5e-3, 7e-3], "mode_mse": [1e-5, 2e-5]},
        },
        "gmm40": {
            "format": "jkoic-paper-results",
            "target": "gmm40",
            "profile": "test",
            "log_z_true": 0.0,
            "runs": {"jkoic": [run(0, sinkhorn=3000.0, sinkhorn_values=[2900.0, 3100.0], sinkhorn_paper=2700.0)]},
            "reference": {"sinkhorn": [3160.0], "sinkhorn_paper": [2800.0]},
        },
    }


def test_fmt():
    assert paper.fmt(1.234e-5) == "1.2e-05"
    assert paper.fmt(508.23) == "508.2"
    assert paper.fmt(0.0) == "0"
    assert paper.fmt(None) == "-" and paper.fmt(float("nan")) == "-"
    assert paper.fmt_pm(1.2e-5, 5.1e-6, 5) == "1.2e-05 ± 5.1e-06"
    assert paper.fmt_pm(1.2e-5, 0.0, 1) == "1.2e-05"  # one run: no std


def test_collect_flattens_and_adds_references():
    c = paper.collect(_results())
    assert c[("8peaky", "jkoic", "energy")] == [1e-4, 3e-4]
    assert c[("8peaky", "sampling_error", "energy")] == [2e-5, 4e-5]
    assert c[("8peaky", "ground_truth", "log_z")] == [0.0]
    assert c[("gmm40", "jkoic", "sinkhorn")] == [2900.0, 3100.0]  # every evaluation, as the paper
    # the authors' Sinkhorn call is a column of its own in Table 5, for the model and the exact sampler
    assert c[("gmm40", "jkoic_geomloss", "sinkhorn")] == [2700.0]
    assert c[("gmm40", "sampling_error_geomloss", "sinkhorn")] == [2800.0]
    # Table 2's sampling error: the standard error of JKO-IC's estimate; Table 4's: exact samples' mode MSE
    assert c[("8peaky", "sampling_error", "log_z")] == [2e-3, 4e-3]
    assert c[("8peaky", "sampling_error", "mode_mse")] == [1e-5, 2e-5]


def test_build_table1_ours_beside_paper():
    t = paper.build_table(1, _results())
    assert t.name == "table1" and "Energy distance" in t.title
    row = t.rows[t.row_labels.index("shifted 8 Peaky")]
    head = tables.header_cells(t)
    cell = dict(zip(head, row, strict=False))
    assert cell["Neural JKO IC: ours"] == "2.0e-04 ± 1.0e-04"  # mean ± std (ddof 0) of the two runs
    assert cell["Neural JKO IC: paper"] == "3.4e-05 ± 8.2e-06"
    assert cell["MALA: ours"] == "1.0e-01"
    assert cell["DDS (paper, quoted)"] == "1.1e-02 ± 3.4e-03"
    assert cell["HMC: ours"] == "-"  # not run
    assert cell["Sampling error: ours"] == "3.0e-05 ± 1.0e-05"
    other = dict(zip(head, t.rows[t.row_labels.index("GMM-200")], strict=False))
    assert other["Neural JKO IC: ours"] == "-" and other["Neural JKO IC: paper"] == "3.3e-03 ± 1.9e-03"
    rec = [r for r in t.records if r["target"] == "8peaky" and r["method"] == "jkoic"][0]
    assert rec["ours_runs"] == 2 and rec["paper_mean"] == 3.4e-5 and rec["quoted"] is False


def test_build_table5_and_7():
    t5 = paper.build_table(5, _results())
    cell = dict(zip(tables.header_cells(t5), t5.rows[0], strict=False))
    assert cell["Neural JKO IC: ours"] == "3000.0 ± 100.0"
    assert cell["SCLD (paper, quoted)"] == "3787.7 ± 249.8*"  # * : note (quoted from Chen et al. 2025)
    assert cell["Neural JKO IC, authors' Sinkhorn call: ours"] == "2700.0"
    assert cell["Neural JKO IC, authors' Sinkhorn call: paper"] == "3025.6 ± 418.1"
    assert cell["Sampling error, authors' Sinkhorn call: ours"] == "2800.0"
    assert cell["Sampling error: ours"] == "3160.0" and cell["Sampling error: paper"] == "n/a"
    t2 = paper.build_table(2, _results())
    c2 = dict(zip(tables.header_cells(t2), t2.rows[t2.row_labels.index("shifted 8 Peaky")], strict=False))
    assert c2["Sampling error: ours"] == "3.0e-03 ± 1.0e-03" and c2["Sampling error: paper"] == "n/a"
    t4 = paper.build_table(4, _results())
    c4 = dict(zip(tables.header_cells(t4), t4.rows[t4.row_labels.index("shifted 8 Peaky")], strict=False))
    assert c4["Sampling error: ours"] == "1.5e-05 ± 5.0e-06"
    # one run whose two Sinkhorn evaluations are pooled: the caption says so, not "2 runs"
    assert "over 1 run(s) (2 evaluations pooled)" in t5.caption
    assert "over 1/2 run(s) (profile test)" in paper.build_table(1, _results()).caption
    t7 = paper.build_table(7, _results())
    assert len(t7.subheader) == 3 * 3 * 2  # 3 metrics x 3 methods x (ours, paper)
    assert any(h.startswith("log(Z) estimate: Neural JKO IC") for h in tables.header_cells(t7))


def test_build_table6_times_and_machine():
    t = paper.build_table6(_results())
    cell = dict(zip(tables.header_cells(t), t.rows[t.row_labels.index("shifted 8 Peaky")], strict=False))
    assert cell["Training time (min): ours"] == "3"  # mean of 2 and 4 minutes
    assert cell["Training time (min): paper"] == "21"
    assert cell["Hidden neurons: ours"] == "54" and cell["Iterations per CNF step: paper"] == "5000"
    assert cell["Sampling time (s): ours"].startswith("2 (N=1000)")
    assert any("CPU X" in f for f in t.footer)
    res = _results()
    res["8peaky"]["configs"]["jkoic"].update(late_tau=10.24, late_batch_size=5000, late_n_iters=None)
    cell = dict(
        zip(tables.header_cells(t), paper.build_table6(res).rows[t.row_labels.index("shifted 8 Peaky")], strict=False)
    )
    assert cell["Batch size: ours"].endswith("(5000 from tau 10.24)")
    assert "from tau" not in cell["Iterations per CNF step: ours"]  # no late iteration count set
    # training choices without a column of their own are listed under the table
    assert not any(f.startswith("Ours, shifted 8 Peaky") for f in t.footer)  # no dataset size recorded
    res["8peaky"]["configs"]["jkoic"].update(
        dataset_size=20000, warm_start=True, scale_search=[0.0, 0.5, 1.0], validation_size=5000
    )
    notes = [f for f in paper.build_table6(res).footer if f.startswith("Ours, shifted 8 Peaky")]
    assert len(notes) == 1
    assert "dataset of 20000 samples per CNF step (paper 50000)" in notes[0]
    assert "previous step's trained field" in notes[0] and "0/0.5/1" in notes[0] and "5000 fresh" in notes[0]


def test_write_table_formats(tmp_path):
    t = paper.build_table(2, _results())
    paths = paper.write_table(t, tmp_path)
    assert sorted(p.name for p in paths) == ["table2.csv", "table2.md", "table2.tex"]
    md = (tmp_path / "table2.md").read_text()
    assert md.startswith("### Table 2") and "| Distribution |" in md
    tex = (tmp_path / "table2.tex").read_text()
    assert r"\begin{tabular}" in tex and r"\multicolumn{2}{c}{Neural JKO IC}" in tex and "±" not in tex
    rows = list(csv.DictReader(io.StringIO((tmp_path / "table2.csv").read_text())))
    assert len(rows) == 10 * 6 and {"ours_mean", "paper_mean", "quoted"} <= set(rows[0])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def test_write_all_tables(tmp_path):
    tables = paper.write_all_tables(_results(), tmp_path)
    assert list(tables) == [f"table{n}" for n in range(1, 8)]
    assert (tmp_path / "tables.md").read_text().count("### Table") == 7


def test_headline_lists_our_jkoic_cells_beside_the_paper(tmp_path):
    paper.write_all_tables(_results(), tmp_path)
    md = paper.headline(tmp_path).splitlines()
    assert len(md) == 3  # header, rule, 8 Peaky only (no jkoic results elsewhere in Tables 1-4)
    row = md[2].split(" | ")
    assert PV.TARGETS["8peaky"] in row[0]
    assert row[1] == "2.0e-04 ± 1.0e-04"  # mean +- std (as in the tables) of the two runs
    pv = PV.value(1, "8peaky", "jkoic")
    assert row[2] == paper.fmt_pm(pv.mean, pv.std, 2)
    assert row[3] == "3.0e-05"  # our sampling error
    with pytest.raises(ValueError, match="table1.csv"):
        paper.headline(tmp_path / "missing")


def test_study_roundtrip(tmp_path):
    st = paper.Study("8modes", results_dir=tmp_path, profile="test", notebook="eight_modes", machine={"cpu": "x"})
    x = torch.randn(50, 2)
    run = paper.MethodRun(
        "jkoic", 0, x, torch.zeros(50), torch.zeros(50), 1.0, 0.5, info={"layers": "CCR"}, config={"n_flow_steps": 1}
    )
    st.add(run, {"energy": 0.1, "log_z": float("nan")})
    st.add_reference(0, {"energy": 0.01})
    st.keep_samples("jkoic", x, 10)
    st.keep_arrays("path", x=np.zeros((2, 3, 2)), kind=np.array(["latent", "cnf"]))
    p = st.save()
    data = json.loads(p.read_text())
    assert data["runs"]["jkoic"][0]["metrics"] == {"energy": 0.1, "log_z": None}  # NaN -> null
    assert data["arrays"] == {"samples": "8modes_samples.npz", "path": "8modes_path.npz"}
    with np.load(tmp_path / "8modes_samples.npz") as z:
        assert z["jkoic"].shape == (10, 2)
    loaded = paper.load_results(tmp_path)
    assert list(loaded) == ["8modes"] and loaded["8modes"]["configs"]["jkoic"] == {"n_flow_steps": 1}
    assert "energy" in st.summary() and "1.0e-01" in st.summary()


def test_load_results_fills_in_from_a_base_folder(tmp_path):
    """A profile's own results win; the base folder's fill in the other targets, arrays included."""
    from reproduce import figures as F

    def study(folder, target, value):
        st = paper.Study(target, results_dir=folder, profile=folder.name, notebook="eight_modes")
        st.add(paper.MethodRun("jkoic", 0, torch.zeros(4, 2), None, None, 0.0, 0.0), {"energy": value})
        st.keep_samples("jkoic", torch.full((4, 2), value), 4)
        st.save()

    own, base = tmp_path / "full", tmp_path / "cpu"
    study(own, "8modes", 1.0)
    study(base, "8modes", 2.0)
    study(base, "8peaky", 3.0)
    loaded = paper.load_results(own, base=base)
    assert sorted(loaded) == ["8modes", "8peaky"]
    assert loaded["8modes"]["runs"]["jkoic"][0]["metrics"]["energy"] == 1.0
    assert loaded["8peaky"]["loaded_from"] == str(base)
    # the arrays come from the folder each target was read from, whatever folder the caller names
    assert F.load_arrays(loaded["8peaky"], own, "samples")["jkoic"][0, 0] == 3.0
    assert F.load_arrays(loaded["8modes"], base, "samples")["jkoic"][0, 0] == 1.0


def test_table2_notes_the_log_z_on_recomputed_densities():
    res = _results()
    plain = paper.build_table(2, res)
    assert not any("recomputed" in line for line in plain.footer)
    for r, v in zip(res["8peaky"]["runs"]["jkoic"], (-0.8, -0.9), strict=True):
        r["metrics"]["log_z_recomputed"] = v
    t = paper.build_table(2, res)
    notes = [line for line in t.footer if "recomputed by log_prob" in line]
    assert len(notes) == 1 and notes[0].startswith("Ours, shifted 8 Peaky, Neural JKO IC: the ELBO on the densities")
    assert notes[0].endswith(": -8.5e-01 ± 5.0e-02")
    assert t.rows == plain.rows  # the cell keeps the paths' ELBO
    assert not any("recomputed" in line for line in paper.build_table(1, res).footer)


def test_evaluate_recomputes_the_densities_that_rejection_layers_selected():
    from jkoic import Sampler
    from jkoic.bench import targets

    tgt = targets.get("8modes")
    cfg = jkoic.preset("8modes", "fast", n_flow_steps=1, n_blocks=1, rejections_per_block=2, hidden=16, n_iters=10)
    cfg = cfg.replace(dataset_size=2000, exact_trace_eval_max_dim=1, n_probes_eval=1)
    model = Sampler(tgt, cfg).fit(seed=0, progress=False)
    x, lp, lg = model.sample(500, seed=1, return_log_g=True)
    m = paper.evaluate(tgt, paper.MethodRun("jkoic", 0, x, lp, lg, 0.0, 0.0, model), None)
    fresh = model.log_prob(x, seed=METRIC_SEED)
    assert m["log_z_recomputed"] == pytest.approx(float((lg - fresh).mean()), rel=1e-6)
    assert m["log_z"] == pytest.approx(float((lg - lp).mean()), rel=1e-6) and m["log_z"] != m["log_z_recomputed"]
    exact = Sampler(tgt, cfg.replace(exact_trace_eval_max_dim=2)).fit(seed=0, progress=False)
    x, lp, lg = exact.sample(200, seed=1, return_log_g=True)
    assert "log_z_recomputed" not in paper.evaluate(tgt, paper.MethodRun("jkoic", 0, x, lp, lg, 0.0, 0.0, exact))


def test_evaluate_exact_samples_score_like_the_sampling_error():
    from jkoic.bench import targets

    tgt = targets.get("8modes")
    x = tgt.sample(400, generator=torch.Generator().manual_seed(1))
    run = paper.MethodRun("jkoic", 0, x, tgt.log_prob(x), tgt.log_prob(x), 0.0, 0.0)
    truth = paper.ground_truth(tgt, 400, 0)
    m = paper.evaluate(tgt, run, truth, n_w2=100, n_projections=20)
    assert set(m) >= {"energy", "w2", "log_z", "log_z_importance", "ess_fraction", "mode_mse"}
    assert m["log_z"] == pytest.approx(0.0, abs=1e-6) and m["ess_fraction"] == pytest.approx(1.0)
    assert 0 <= m["energy"] < 0.05 and m["mode_mse"] < 0.01
    assert m["log_z_se"] == pytest.approx(0.0, abs=1e-6)  # log g - log p is constant for exact densities
    # a model off by a factor 2 at half its samples: the standard error is std(log g - log p) / sqrt(n)
    lp = tgt.log_prob(x) + torch.log(torch.tensor(2.0)) * (torch.arange(400) % 2)
    m2 = paper.evaluate(tgt, paper.MethodRun("jkoic", 0, x, lp, tgt.log_prob(x), 0.0, 0.0), None)
    assert m2["log_z_se"] == pytest.approx(0.5 * math.log(2.0) / math.sqrt(399), rel=1e-4)


def test_reference_mode_mse_is_the_multinomial_noise_of_exact_samples():
    """E[sum_k (w_k - 1/K)^2] = (1 - 1/K) / n for n exact samples of K equal, separated modes."""
    from jkoic.bench import targets

    tgt = targets.get("8modes")
    n, k = 2000, 8
    vals = [paper.reference_errors(tgt, n_eval=n, n_w2=0, n_projections=10, seed=s)["mode_mse"] for s in range(40)]
    expected = (1 - 1 / k) / n
    assert sum(vals) / len(vals) == pytest.approx(expected, rel=0.3)  # 40 draws: the mean's sd is ~8 %
    assert len(set(vals)) == len(vals)  # every run index draws its own samples


def test_method_config_variants():
    base = paper.method_config("jkoic", "8peaky", preset_profile="fast", iters_scale=0.5)
    full = jkoic.preset("8peaky", "fast").n_iters
    assert base.n_iters == max(1, round(full * 0.5)) and base.n_iters < full and base.rejection
    assert not paper.method_config("neural_jko", "8peaky").rejection
    kl = paper.method_config("cnf_kl", "gmm40", kl_overrides={"n_iters": 7, "lr": 1e-4})
    assert (kl.n_flow_steps + kl.n_blocks, kl.rejection, kl.gradient_flow_time, kl.n_iters, kl.lr) == (
        1,
        False,
        None,
        7,
        1e-4,
    )
    assert kl.tau0 >= 1e6  # no kinetic term
    assert jkoic_schedule(kl) == ["cnf"]
    kl_full = paper.method_config("cnf_kl", "8peaky", preset_profile="fast")
    assert kl_full.n_iters == full * 6  # default: the budget of all six CNF steps of 8 Peaky
    late = paper.method_config(
        "jkoic", "mustache", overrides={"late_tau": 10.0, "late_n_iters": 800}, iters_scale=0.5, njko_iters_scale=0.25
    )
    assert (late.n_iters, late.late_n_iters) == (500, 400)  # the late budget scales alike
    njko = paper.method_config(
        "neural_jko",
        "mustache",
        overrides={"late_tau": 10.0, "late_n_iters": 800},
        iters_scale=0.5,
        njko_iters_scale=0.25,
    )
    assert (njko.n_iters, njko.late_n_iters, njko.rejection) == (125, 100, False)
    with pytest.raises(ValueError):
        paper.method_config("mala", "8peaky")


def test_plan_merges_defaults_and_puts_assemble_last():
    prof = {
        "defaults": {"runs": 1, "profile": "p"},
        "assemble": {},
        "a": {"runs": 2},
        "b": {"notebook": "eight_modes", "target": "8modes"},
    }
    assert paper.plan(prof) == [
        ("a", "a", {"runs": 2, "profile": "p"}),
        ("b", "eight_modes", {"runs": 1, "profile": "p", "target": "8modes"}),
        ("assemble", "assemble", {"runs": 1, "profile": "p"}),
    ]


@pytest.mark.parametrize("profile", ["smoke", "cpu", "paper"])
def test_profiles_name_declared_parameters(profile):
    """Every parameter a profile sets (outside `defaults`) is declared by its notebook."""
    import papermill

    root = paper.repo_root()
    for name, nb, _ in paper.plan(paper.load_profile(profile)):
        src = root / "notebooks" / f"{nb}.ipynb"
        assert src.is_file(), f"{profile}: run {name} names a missing notebook {nb}"
        declared = set(papermill.inspect_notebook(str(src)))
        own = set(paper.load_profile(profile)[name] or {}) - {"notebook"}
        assert own <= declared, f"{profile}/{name}: unknown parameters {sorted(own - declared)}"


def test_profile_output_locations():
    assert paper.load_profile("smoke")["defaults"]["results_dir"] == "results/smoke"
    cpu = paper.load_profile("cpu")["defaults"]
    assert (cpu["results_dir"], cpu["figures_dir"], cpu["tables_dir"]) == ("results/cpu", "figures", "figures/tables")
    pp = paper.load_profile("paper")["defaults"]
    assert pp["device"] == "cuda" and pp["runs"] == 5 and pp["results_dir"] == "results/paper"
    with pytest.raises(ValueError, match="no profile"):
        paper.load_profile("nope")


def test_repo_root_and_paths(tmp_path, monkeypatch):
    root = paper.repo_root()
    assert (root / "pyproject.toml").is_file() and (root / "reproduce" / "paper.py").is_file()
    monkeypatch.chdir(tmp_path)  # independent of the working directory (nbval runs notebooks in theirs)
    assert paper.repo_root() == root
    assert paper.resolve_path("results/x") == root / "results" / "x"
    assert paper.resolve_path(tmp_path) == tmp_path


def test_machine_info():
    m = paper.machine_info()
    assert {"platform", "cpu", "cores", "torch", "device", "torch_threads"} <= set(m)
    assert m["device"] == "cpu"


def test_atomic_json_writer(tmp_path):
    p = paper.write_json(tmp_path / "a" / "b.json", {"x": np.float32(1.5), "y": [np.int64(2)], "z": math.inf})
    assert json.loads(p.read_text()) == {"x": 1.5, "y": [2], "z": None}


def test_mode_collapse_example():
    theta = np.array([0.0, 0.02, 0.5, 0.98, 1.0])
    kl = examples.geodesic_kl(theta, n=4001)
    assert abs(kl[0]) < 1e-10 and kl[-1] == pytest.approx(math.log(2), abs=1e-6)
    assert kl[1] > kl[0] and kl[3] > kl[4] and kl[2] > kl[4] + 1  # two local minima, a barrier between
    z = np.linspace(-3, 3, 7)
    t0 = examples.ot_map_mixture(z)
    assert np.all(np.diff(t0) > 0) and np.allclose(t0, -t0[::-1])  # monotone, odd
    assert np.allclose(examples.mixture_cdf(t0[z != 0]), torch.special.ndtr(torch.tensor(z[z != 0])).numpy())
    x, p = examples.geodesic_density(1.0)  # the collapsed map: N(1/2, 0.05^2)
    assert p.max() == pytest.approx(1 / (0.05 * math.sqrt(2 * math.pi)), rel=1e-6)
    assert x[p.argmax()] == pytest.approx(0.5)


def _fake_papermill(monkeypatch, errors):
    """papermill.execute_notebook raising ``errors`` in turn, then succeeding; returns the calls."""
    import papermill

    calls = []

    def fake(src, out, **kwargs):
        calls.append(out)
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]

    monkeypatch.setattr(papermill, "execute_notebook", fake)
    monkeypatch.setattr(runner.time, "sleep", lambda s: None)
    return calls


def test_execute_retries_a_kernel_that_died_starting(monkeypatch, tmp_path):
    """Two notebooks started together can race for a port: the kernel start is retried."""
    src = paper.repo_root() / "notebooks" / "quickstart.ipynb"
    died = RuntimeError("Kernel died before replying to kernel_info")
    calls = _fake_papermill(monkeypatch, [died, died])
    paper.execute(src, tmp_path / "q.ipynb", {})
    assert len(calls) == 3
    calls = _fake_papermill(monkeypatch, [died] * runner._KERNEL_START_ATTEMPTS)
    with pytest.raises(RuntimeError, match="kernel_info"):
        paper.execute(src, tmp_path / "q.ipynb", {})
    assert len(calls) == runner._KERNEL_START_ATTEMPTS


def test_execute_does_not_retry_a_failing_cell(monkeypatch, tmp_path):
    """A notebook whose cells fail is not run again."""
    import papermill

    src = paper.repo_root() / "notebooks" / "quickstart.ipynb"
    err = papermill.PapermillExecutionError(0, 1, "ValueError", "bad", "bad", [])
    calls = _fake_papermill(monkeypatch, [err])
    with pytest.raises(papermill.PapermillExecutionError):
        paper.execute(src, tmp_path / "q.ipynb", {})
    assert len(calls) == 1


def test_notebook_kernels_listen_on_loopback_only(tmp_path):
    """The kernels that execute the notebooks bind their ZeroMQ sockets to 127.0.0.1 (jupyter_client's
    default, checked from inside a kernel started as every notebook's is)."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    code = "from ipykernel.kernelapp import IPKernelApp\napp = IPKernelApp.instance()\nprint(app.transport, app.ip)"
    nb.cells = [nbformat.v4.new_code_cell(code)]
    src, out = tmp_path / "ip.ipynb", tmp_path / "ip.out.ipynb"
    nbformat.write(nb, src)
    runner.execute(src, out, {})
    printed = "".join(o.get("text", "") for o in nbformat.read(out, as_version=4).cells[0].outputs)
    assert printed.split() == ["tcp", "127.0.0.1"], printed


@pytest.mark.parametrize("only", ["", ",", "mustache,", "nope", "mustache,nope"])
def test_cli_rejects_an_empty_or_unknown_selection(monkeypatch, capsys, only):
    """`run --only` with an empty or unknown run name is a usage error naming the runs; nothing runs."""

    def must_not_run(*args, **kwargs):
        raise AssertionError("a notebook ran")

    monkeypatch.setattr(runner, "run_profile", must_not_run)
    monkeypatch.setattr(runner, "execute", must_not_run)
    with pytest.raises(SystemExit) as exc:
        runner.main(["run", "--profile", "smoke", "--only", only])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--only" in err and "mode_collapse_1d, mustache" in err and "assemble" in err


def test_cli_passes_a_valid_selection(monkeypatch):
    calls = []
    monkeypatch.setattr(runner, "run_profile", lambda profile, **kw: calls.append((profile, kw)) or {"mustache": 1.0})
    assert runner.main(["run", "--profile", "smoke", "--only", "mustache, assemble"]) == 0
    grid = {"scheduler": None, "force": False, "shared": False}
    assert calls == [("smoke", {"jobs": 1, "only": ["mustache", "assemble"], "assemble": True, **grid})]


@pytest.mark.parametrize("only", [[], [""], ["nope"]])
def test_run_profile_rejects_an_empty_or_unknown_selection(monkeypatch, only):
    monkeypatch.setattr(runner, "_execute_job", lambda job: pytest.fail("a notebook ran"))
    with pytest.raises(ValueError, match="runs.*mustache"):
        runner.run_profile("smoke", only=only)


def test_normal_cdf_keeps_the_left_tail():
    """Phi = erfc(-x / sqrt 2) / 2 to a few ulps, down to Phi(-37) ~ 6e-300 (erf would give 0 below -8)."""
    x = np.array([-37.0, -20.0, -8.0, -1.0, -1e-3, 0.0, 0.5, 3.0, 9.0])
    ref = np.array(
        [0.5 * math.erfc(-v * math.sqrt(0.5)) for v in x]
    )  # the same argument: erfc is ill-conditioned there
    np.testing.assert_allclose(examples.normal_cdf(x), ref, rtol=1e-14, atol=0)
    assert examples.normal_cdf(0.0).shape == ()


def test_mode_collapse_values_are_pinned():
    """Loss and map at fixed points (computed with the scipy ndtr implementation; equal to float64 accuracy)."""
    theta = np.array([0.1, 0.25, 0.5, 0.52, 0.75, 0.9, 1.0])
    pinned = [
        9.2550028520874650e-01,
        5.7853580431315912e00,
        2.1662866529835210e01,
        2.1939884456311454e01,
        8.0847106882242006e00,
        2.2348271397248172e00,
        6.9314721848436500e-01,
    ]
    np.testing.assert_allclose(examples.geodesic_kl(theta, n=4001), pinned, rtol=1e-13, atol=0)
    z = np.array([-8.0, -5.0, -2.0, -0.01, -0.003, 0.5, 3.0, 8.0])
    t0 = [
        -0.8957102392730084,
        -0.7432324046564832,
        -0.5845071689034641,
        -0.3795056078949236,
        -0.3589495975996294,
        0.48510960895843513,
        0.6391087483443602,
        0.8957102392730084,
    ]
    np.testing.assert_allclose(examples.ot_map_mixture(z), t0, rtol=1e-14, atol=0)
    # the map inverts the CDF in the tails: F_nu(T_0(z)) = Phi(z) in relative terms
    np.testing.assert_allclose(
        examples.mixture_cdf(examples.ot_map_mixture(z[:3])), examples.normal_cdf(z[:3]), rtol=1e-12
    )
