"""The importance corrected neural JKO model: densities, Theorem 4.2, save/load, resume, errors."""

from __future__ import annotations

import math
import unittest.mock

import pytest
import torch

import jkoic
from jkoic import CheckpointError, Config, Sampler
from jkoic.bench.metrics import energy_distance


def tiny_config(**kw) -> Config:
    base = dict(
        n_flow_steps=1,
        n_blocks=1,
        rejections_per_block=2,
        tau0=0.05,
        tau_base=4.0,
        hidden=16,
        n_iters=40,
        batch_size=256,
        dataset_size=20000,
        solver="rk4",
        train_steps=3,
        adjoint=False,
        sample_steps=3,
        lr=1e-2,
    )
    base.update(kw)
    return Config(**base)


@pytest.fixture(scope="module")
def trained() -> Sampler:
    torch.manual_seed(0)
    return Sampler(jkoic.targets.get("8modes"), tiny_config()).fit(seed=3, progress=False)


def test_schedule_matches_paper_layout():
    kinds = [k for k, _ in jkoic.schedule(jkoic.preset("8peaky"))]
    assert "".join(k[0].upper() for k in kinds) == "CCCRRRCRRRCRRRCRRR"  # the authors' 8 Peaky checkpoint
    taus = [t for k, t in jkoic.schedule(jkoic.preset("8peaky")) if k == "cnf"]
    assert taus == pytest.approx([0.01 * 4**i for i in range(6)])
    must = jkoic.schedule(jkoic.preset("mustache"))
    assert sum(k == "cnf" for k, _ in must) == 12 and sum(k == "rejection" for k, _ in must) == 18
    gmm = jkoic.schedule(jkoic.preset("gmm", dim=10))
    assert sum(k == "cnf" for k, _ in gmm) == 10 and sum(k == "rejection" for k, _ in gmm) == 18
    assert all(k == "cnf" for k, _ in jkoic.schedule(jkoic.preset("8peaky", rejection=False)))


def test_trained_layers_and_log(trained):
    assert trained.layer_kinds() == ["cnf", "cnf", "rejection", "rejection"]
    assert len(trained.log) == 4
    for entry in trained.log:
        assert {"layer", "kind", "train_seconds", "log_z_elbo"} <= set(entry)
    for layer in trained.layers[2:]:
        assert layer.params.mean_alpha == pytest.approx(0.8, abs=1e-6)


def test_log_prob_agrees_with_sampled_log_p(trained):
    x, log_p = trained.sample(3000, seed=1)
    assert x.shape == (3000, 2) and log_p.shape == (3000,)
    assert torch.allclose(trained.log_prob(x), log_p, atol=2e-3)


def test_log_prob_agreement_converges_with_solver_steps(trained, tmp_path):
    fine = Sampler.load(trained.save(tmp_path / "m.pt")).to(torch.float64).set_sample_steps(40)
    x, log_p = fine.sample(2000, seed=1)
    assert torch.allclose(fine.log_prob(x), log_p, atol=1e-7)


def test_model_density_integrates_to_one(trained):
    # Theorem 4.2 with E[alpha] frozen from N samples: normalised up to the Corollary 4.3 error
    xs = torch.linspace(-3.0, 1.5, 301)
    ys = torch.linspace(-2.25, 2.25, 301)
    gx, gy = torch.meshgrid(xs, ys, indexing="ij")
    pts = torch.stack([gx.flatten(), gy.flatten()], -1)
    dens = trained.log_prob(pts).exp().view(301, 301)
    integral = torch.trapezoid(torch.trapezoid(dens, ys, dim=1), xs).item()
    n_rej = sum(k == "rejection" for k in trained.layer_kinds())
    assert abs(integral - 1) < 4 * 0.5 * math.sqrt(n_rej / trained.config.dataset_size) + 1e-3


@pytest.mark.parametrize("spare_sigmas", [None, 0.0], ids=["default_spares", "frequent_shortfalls"])
def test_samples_follow_model_density(trained, spare_sigmas, monkeypatch):
    # Theorem 4.2 numerically: a histogram of model samples matches the integrated model density.
    # With no margin on the spare replacements about half the rejection steps run short and
    # draw again through the layers below: the samples must follow the same density.
    if spare_sigmas is not None:
        monkeypatch.setattr(trained, "config", trained.config.replace(spare_sigmas=spare_sigmas))
    n = 60000
    x, _ = trained.sample(n, seed=5)
    bins = 12
    lo, hi = torch.tensor([-2.4, -1.4]), torch.tensor([0.6, 1.4])
    counts = torch.histogramdd(
        x.double(), bins=[bins, bins], range=[lo[0].item(), hi[0].item(), lo[1].item(), hi[1].item()]
    ).hist
    sub = 20
    edges = [torch.linspace(lo[i].item(), hi[i].item(), bins * sub + 1) for i in range(2)]
    mids = [(e[1:] + e[:-1]) / 2 for e in edges]
    gx, gy = torch.meshgrid(mids[0], mids[1], indexing="ij")
    dens = trained.log_prob(torch.stack([gx.flatten(), gy.flatten()], -1)).double().exp().view(bins * sub, bins * sub)
    cell = float((edges[0][1] - edges[0][0]) * (edges[1][1] - edges[1][0]))
    probs = dens.view(bins, sub, bins, sub).sum((1, 3)) * cell
    expected = n * probs
    mask = expected > 20
    chi2 = float((((counts - expected) ** 2) / expected)[mask].sum())
    dof = int(mask.sum())
    assert dof > 30
    assert chi2 < dof + 5 * math.sqrt(2 * dof)


def test_training_reduces_energy_distance():
    # two separated, unequal-looking-from-the-latent modes: CNF steps move mass, rejection fixes weights
    target = jkoic.targets.GaussianMixture("two", torch.tensor([[2.0, 0.5], [-1.0, -1.5]]), 0.25)
    truth = target.sample(4000, generator=torch.Generator().manual_seed(0))
    cfg = tiny_config(n_iters=150, tau0=0.1)
    untrained = Sampler(target, cfg)
    trained = Sampler(target, cfg).fit(seed=0, progress=False)
    x0, _ = untrained.sample(4000, seed=0, upto=0)  # the latent
    x1, _ = trained.sample(4000, seed=0)
    e0, e1 = float(energy_distance(x0, truth)), float(energy_distance(x1, truth))
    assert e1 < 0.25 * e0


def test_rejection_improves_elbo(trained):
    stats_before = trained.log[1]["log_z_elbo"]  # after the CNF steps
    stats_after = trained.log[3]["log_z_elbo"]  # after two rejection steps
    assert stats_after > stats_before


def test_seeded_training_is_reproducible(trained):
    again = Sampler(jkoic.targets.get("8modes"), tiny_config()).fit(seed=3, progress=False)
    for a, b in zip(trained.state_dict().values(), again.state_dict().values(), strict=False):
        assert torch.equal(a, b)
    assert torch.equal(trained.sample(500, seed=2)[0], again.sample(500, seed=2)[0])


def test_save_load_gives_identical_samples(trained, tmp_path):
    path = trained.save(tmp_path / "m.pt")
    raw = torch.load(path, weights_only=True)  # no pickled objects
    assert raw["format"] == "jkoic.Sampler"
    loaded = Sampler.load(path)
    assert loaded.target.name == "8modes" and loaded.layer_kinds() == trained.layer_kinds()
    xa, la = trained.sample(1000, seed=11)
    xb, lb = loaded.sample(1000, seed=11)
    assert torch.equal(xa, xb) and torch.equal(la, lb)
    assert loaded.log == trained.log


def test_resume_equals_uninterrupted_training(trained, tmp_path):
    ckpt = tmp_path / "run.pt"

    class Stop(Exception):
        pass

    def stop_after_two(model, entry):
        if entry["layer"] == 1:
            raise Stop

    with pytest.raises(Stop):
        Sampler(jkoic.targets.get("8modes"), tiny_config()).fit(
            seed=3, progress=False, checkpoint=ckpt, callback=stop_after_two
        )
    partial = Sampler.load(ckpt)
    assert partial.n_layers == 2 and not partial.is_trained
    resumed = Sampler(jkoic.targets.get("8modes"), tiny_config()).fit(seed=3, progress=False, checkpoint=ckpt)
    assert resumed.is_trained
    assert torch.equal(resumed.sample(800, seed=4)[0], trained.sample(800, seed=4)[0])
    with pytest.raises(ValueError, match="seed"):
        Sampler(jkoic.targets.get("8modes"), tiny_config()).fit(seed=4, progress=False, checkpoint=ckpt)


def test_sampling_is_chunked_and_seeded(trained):
    a = trained.sample(5000, seed=9, chunk_size=700)
    b = trained.sample(5000, seed=9, chunk_size=700)
    assert torch.equal(a[0], b[0])
    assert a[0].shape == (5000, 2)
    x, lp, lg = trained.sample(10, seed=1, return_log_g=True)
    assert torch.allclose(lg, jkoic.targets.get("8modes").log_prob(x))
    assert trained.sample(0, seed=1)[0].shape == (0, 2)


def test_log_z_estimates(trained):
    est = trained.log_z(5000, seed=0)
    assert est["elbo"] <= est["importance"] + 1e-9  # Jensen
    assert 0 < est["ess_fraction"] <= 1
    assert abs(est["importance"]) < 0.2  # 8 modes is normalised: log Z = 0


def test_log_z_recomputes_the_hutchinson_densities_that_rejection_layers_select(trained):
    cfg = tiny_config(n_iters=20, dataset_size=4000, exact_trace_eval_max_dim=1, n_probes_eval=1)
    model = Sampler(jkoic.targets.get("8modes"), cfg).fit(seed=0, progress=False)
    assert model.selects_density_noise() and not trained.selects_density_noise()  # trained: exact divergence
    x, lp, lg = model.sample(4000, seed=4, return_log_g=True)
    fresh = model.log_prob(x, seed=5)
    auto, path = model.log_z(4000, seed=4), model.log_z(4000, seed=4, densities="path")
    assert auto["elbo"] == pytest.approx(float((lg - fresh).mean()), rel=1e-6)
    assert path["elbo"] == pytest.approx(float((lg - lp).mean()), rel=1e-6)
    assert not torch.equal(fresh, lp)  # probes independent of the sampling paths' ones
    exact = trained.log_z(2000, seed=1)
    assert exact == trained.log_z(2000, seed=1, densities="path")  # exact densities: nothing to recompute
    with pytest.raises(ValueError, match="densities must be"):
        model.log_z(10, densities="fresh")


def test_ablation_without_rejection():
    cfg = tiny_config(rejection=False, n_iters=5)
    model = Sampler(jkoic.targets.get("8modes"), cfg).fit(seed=0, progress=False)
    assert model.layer_kinds() == ["cnf", "cnf"]


def test_user_callable_target_five_lines():
    def log_g(x):  # unnormalised N((1, -1), 0.5^2 I) times 7
        return math.log(7.0) - 2.0 * (x - torch.tensor([1.0, -1.0])).square().sum(-1)

    model = Sampler(log_g, tiny_config(n_iters=150, tau0=0.5), dim=2).fit(seed=0, progress=False)
    x, log_p = model.sample(4000, seed=0)
    assert (x.mean(0) - torch.tensor([1.0, -1.0])).abs().max() < 0.15
    assert model.log_z(4000, seed=1)["importance"] == pytest.approx(math.log(7.0 * 2 * math.pi * 0.25), abs=0.05)


def test_device(device):
    model = Sampler(jkoic.targets.get("8modes"), tiny_config(n_iters=3), device=device).fit(seed=0, progress=False)
    x, lp = model.sample(100, seed=0)
    assert x.device.type == device.type and torch.isfinite(lp).all()


@pytest.mark.parametrize(
    "bad, match",
    [
        (lambda x: torch.full((x.shape[0],), float("nan")), "NaN"),
        (lambda x: torch.full((x.shape[0],), float("inf")), "inf"),
        (lambda x: x.sum(), "shape"),
        (lambda x: x, "shape"),
    ],
)
def test_bad_user_density_gives_clear_error(bad, match):
    # reported by the construction-time probe, before any training
    with pytest.raises(ValueError, match=match):
        Sampler(bad, tiny_config(n_iters=2), dim=2)


def test_bad_inputs(trained, tmp_path):
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        trained.log_prob(torch.zeros(3, 5))
    with pytest.raises(ValueError, match="NaN"):
        trained.log_prob(torch.tensor([[float("nan"), 0.0]]))
    with pytest.raises(ValueError, match="n must be an int >= 0"):
        trained.sample(-1)
    with pytest.raises(ValueError, match="rejection_rate"):
        tiny_config(rejection_rate=1.5)
    with pytest.raises(ValueError, match="unknown Config field"):
        Config.from_dict({"n_flow_stepz": 1})
    with pytest.raises(TypeError, match="dim"):
        Sampler(lambda x: x.sum(-1))  # no dim
    bad = tmp_path / "corrupt.pt"
    bad.write_bytes(b"this is not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable jkoic checkpoint"):
        Sampler.load(bad)
    good = trained.save(tmp_path / "ok.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:200])
    with pytest.raises(CheckpointError):
        Sampler.load(truncated)
    other = tmp_path / "other.pt"
    torch.save({"hello": 1}, other)
    with pytest.raises(CheckpointError, match="format marker"):
        Sampler.load(other)
    with pytest.raises(FileNotFoundError):
        Sampler.load(tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="dimension"):
        Sampler.load(good, jkoic.targets.get("funnel"))


def test_save_is_atomic(trained, tmp_path, monkeypatch):
    path = tmp_path / "m.pt"
    trained.save(path)
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError):
        trained.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]


def test_sample_path_and_upto(trained):
    stages = trained.sample_path(3000, seed=0)
    assert [s["kind"] for s in stages] == ["latent", "cnf", "cnf", "rejection", "rejection"]
    rate = stages[2]["rejected"].float().mean().item()
    assert abs(rate - 0.2) < 4 * math.sqrt(0.2 * 0.8 / 3000)  # the fitted rejection rate
    assert torch.equal(stages[3]["resampled"], stages[2]["rejected"])
    last = stages[-1]
    assert torch.allclose(trained.log_prob(last["x"]), last["log_p"], atol=2e-3)
    x0, lp0 = trained.sample(2000, seed=1, upto=0)
    assert torch.allclose(lp0, torch.distributions.Normal(0.0, 1.0).log_prob(x0).sum(-1), atol=1e-5)
    x2, lp2 = trained.sample(2000, seed=1, upto=2)
    assert torch.allclose(trained.log_prob(x2, upto=2), lp2, atol=2e-3)
    with pytest.raises(ValueError, match="upto"):
        trained.sample(10, upto=9)


def test_sample_path_stages_are_draws_of_the_truncated_models(trained):
    # stage k of one path must be distributed as sample(upto=k): the layer curve (Figure 11)
    # reads every layer off one path. Compare means of x and of log p (the entropy), 5 sigma.
    n = 6000
    stages = trained.sample_path(n, seed=11)
    for k, stage in enumerate(stages):
        x, lp = trained.sample(n, seed=12, upto=k)
        assert torch.allclose(trained.log_prob(stage["x"], upto=k), stage["log_p"], atol=2e-3)
        for a, b in ((stage["x"], x), (stage["log_p"][:, None], lp[:, None])):
            se = torch.sqrt((a.var(0) + b.var(0)) / n)
            assert torch.all((a.mean(0) - b.mean(0)).abs() < 5 * se), (k, a.mean(0), b.mean(0))


def test_layer_curve_one_entry_per_stage(trained):
    from reproduce import paper

    truth = paper.ground_truth(trained.target, 2000, 0)
    curve = paper.layer_curve(trained, truth, n=2000, n_projections=50)
    assert [c["kind"] for c in curve] == ["latent"] + trained.layer_kinds()
    assert all(math.isfinite(c["log_z"]) and c["energy"] >= -1e-3 for c in curve)
    # each entry's ELBO agrees with an independent draw of that truncated model (5 sigma)
    for k in (0, len(curve) - 1):
        x, lp, lg = trained.sample(20000, seed=5, upto=k, return_log_g=True)
        w = lg - lp
        assert abs(curve[k]["log_z"] - w.mean().item()) < 5 * w.std().item() * math.sqrt(1 / 2000 + 1 / 20000)


def test_small_draws_do_not_inflate_the_bottom_load(trained, monkeypatch):
    # 300 samples through C C R R: each rejection layer draws its proposals plus a spare of
    # rate * m + sqrt(rate * m + 1) + 16 from below (a shortfall draws again, at least
    # Config.min_draw), so the latent serves about 500 points.
    # Fresh draws have a floor (Config.min_draw) against tiny recursive batches; a large floor
    # (e.g. 4096) makes every short draw, e.g. a training dataset's replacements, cost the
    # floor at every level below.
    drawn = []
    latent = trained.latent()
    sample = latent.sample

    def counting(n, gen):
        drawn.append(n)
        return sample(n, gen)

    monkeypatch.setattr(latent, "sample", counting)
    monkeypatch.setattr(trained, "latent", lambda: latent)
    x, _ = trained.sample(300, seed=4)
    assert x.shape == (300, 2)
    assert 300 < sum(drawn) <= 2 * 542, drawn


def test_fit_final_stats_optional():
    cfg = tiny_config(n_iters=4, dataset_size=2000, n_blocks=1, rejections_per_block=1)
    with_stats = Sampler(jkoic.targets.get("8modes"), cfg).fit(seed=0, progress=False)
    without = Sampler(jkoic.targets.get("8modes"), cfg).fit(seed=0, progress=False, final_stats=False)
    assert "log_z_elbo" in with_stats.log[-1] and "log_z_elbo" not in without.log[-1]
    assert all("log_z_elbo" in e for e in without.log[:-1])
    # the final statistics draw nothing the model depends on: the two models sample alike
    x1, lp1 = with_stats.sample(500, seed=1)
    x2, lp2 = without.sample(500, seed=1)
    assert torch.equal(x1, x2) and torch.equal(lp1, lp2)


def test_fit_logs_one_info_record_per_layer_and_prints_nothing(caplog, capsys):
    cfg = tiny_config(n_iters=4, dataset_size=2000, n_blocks=1, rejections_per_block=1)
    with caplog.at_level("INFO", logger="jkoic"):
        model = Sampler(jkoic.targets.get("8modes"), cfg).fit(seed=0, progress=False)
    records = [r for r in caplog.records if r.name == "jkoic.sampler"]
    assert [r.levelname for r in records] == ["INFO"] * 3
    msgs = [r.getMessage() for r in records]
    assert msgs[0].startswith("8modes: layer 1/3 cnf tau=0.05 in ") and "layer 3/3 rejection rejects 0.20" in msgs[2]
    for msg, entry in zip(msgs[1:], model.log[:-1], strict=True):  # each line carries the ELBO of the layers below it
        assert f"(ELBO of the model below it {entry['log_z_elbo']:.4g})" in msg
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""  # a library attaches no handler of its own


def test_reverse_kl_cnf_and_neural_jko_baselines():
    from jkoic.bench.baselines import neural_jko, reverse_kl_cnf

    cfg = tiny_config(n_iters=4)
    kl = reverse_kl_cnf(jkoic.targets.get("8modes"), cfg).fit(seed=0, progress=False)
    assert kl.layer_kinds() == ["cnf"] and kl.config.n_iters == 8 and kl.config.tau0 >= 1e12
    # curved KL-only paths: finer fixed-step grids than the JKO steps, adaptive solvers untouched
    assert kl.config.train_steps >= 8 and kl.config.sample_steps >= 32
    from jkoic.bench.baselines import reverse_kl_cnf_config

    assert reverse_kl_cnf_config(cfg.replace(solver="dopri5")).sample_steps == cfg.sample_steps
    jko = neural_jko(jkoic.targets.get("8modes"), cfg).fit(seed=0, progress=False)
    assert jko.layer_kinds() == ["cnf", "cnf"]
    with pytest.raises(ValueError, match="no layers"):
        tiny_config(n_flow_steps=0, n_blocks=0)


def test_paper_protocol_adaptive_training_runs():
    # the paper's protocol: adaptive dopri5 with the adjoint; sampling steps derived from the NFE
    cfg = tiny_config(
        solver="dopri5", adjoint=True, n_iters=2, sample_steps=None, n_flow_steps=1, n_blocks=0, atol=1e-3, rtol=1e-3
    )
    model = Sampler(jkoic.targets.get("8modes"), cfg).fit(seed=0, progress=False)
    entry = model.log[0]
    assert entry["mean_nfe"] > 0 and entry["sample_steps"] >= 4
    x, log_p = model.sample(500, seed=0)
    assert torch.allclose(model.log_prob(x), log_p, atol=1e-3)
    paper = jkoic.preset("8peaky")
    assert (paper.solver, paper.adjoint, paper.n_iters, paper.batch_size, paper.dataset_size) == (
        "dopri5",
        True,
        5000,
        5000,
        50000,
    )


def test_late_cnf_steps_train_with_the_late_budget():
    # tau = 0.05, 0.2, 0.8: the steps from late_tau = 0.2 on get 7 iterations of batch 64
    cfg = tiny_config(
        n_flow_steps=2,
        n_blocks=1,
        rejections_per_block=1,
        n_iters=3,
        batch_size=32,
        dataset_size=500,
        late_tau=0.2,
        late_n_iters=7,
        late_batch_size=64,
    )
    assert [cfg.budget(t) for t in (0.05, 0.2, 0.8)] == [(3, 32), (7, 64), (7, 64)]
    assert cfg.replace(late_batch_size=None).budget(1.0) == (7, 32)
    drawn: list[int] = []
    real_randint = torch.randint

    def spy(low, high, size, **kw):
        drawn.append(size[0])
        return real_randint(low, high, size, **kw)

    model = Sampler(jkoic.targets.get("8modes"), cfg)
    import unittest.mock

    with unittest.mock.patch.object(torch, "randint", spy):
        model.fit(seed=0, progress=False, final_stats=False)
    cnf = [e for e in model.log if e["kind"] == "cnf"]
    assert [e["iterations"] for e in cnf] == [3, 7, 7]
    assert drawn.count(32) == 3 and drawn.count(64) == 14
    # the reverse-KL baseline sums the steps' iterations and drops the late fields
    from jkoic.bench.baselines import reverse_kl_cnf_config

    kl = reverse_kl_cnf_config(cfg)
    assert kl.n_iters == 17 and kl.late_tau is None and kl.budget(kl.tau0) == (17, 32)
    with pytest.raises(ValueError, match="late_tau is None"):
        tiny_config(late_batch_size=64)
    with pytest.raises(ValueError, match="late_batch_size .* exceeds dataset_size"):
        tiny_config(late_tau=1.0, late_batch_size=30000)
    for bad in (0, -1.0, True, "1"):
        with pytest.raises(ValueError, match="late_tau must be"):
            tiny_config(late_tau=bad)
    with pytest.raises(ValueError, match="late_n_iters must be"):
        tiny_config(late_tau=1.0, late_n_iters=0)


def test_eval_trace_can_be_exact_while_training_uses_hutchinson():
    cfg = tiny_config(n_iters=5, exact_trace_max_dim=1, exact_trace_eval_max_dim=3, dataset_size=2000)
    assert cfg.trace_mode(3) == "hutchinson" and cfg.trace_mode(3, evaluation=True) == "exact"
    assert cfg.replace(exact_trace_eval_max_dim=None).trace_mode(3, evaluation=True) == "hutchinson"
    target = jkoic.targets.get("funnel", dim=3)
    model = Sampler(target, cfg).fit(seed=0, progress=False)
    x = target.sample(64, generator=torch.Generator().manual_seed(1))
    # exact divergence: the density does not depend on the probe seed
    assert torch.equal(model.log_prob(x, seed=0), model.log_prob(x, seed=1))
    noisy = Sampler(target, cfg.replace(exact_trace_eval_max_dim=None))
    noisy.layers = model.layers
    assert not torch.allclose(noisy.log_prob(x, seed=0), noisy.log_prob(x, seed=1))


def test_eval_trace_limit_is_validated():
    with pytest.raises(ValueError, match="exact_trace_eval_max_dim"):
        tiny_config(exact_trace_eval_max_dim=-1)
    for bad in (-1, 2.5, None, True):
        with pytest.raises(ValueError, match="exact_trace_max_dim must be"):
            tiny_config(exact_trace_max_dim=bad)


def test_fewest_steps_keeps_only_what_the_tolerance_allows():
    from jkoic.calibration import fewest_steps as _fewest_steps
    from jkoic.cnf import MLPVelocity

    x = torch.randn(500, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    still = MLPVelocity(2, 8).to(torch.float64)  # zero last layer: v = 0, every step count agrees
    assert _fewest_steps(still, x, 4, 1e-12) == (1, 0.0)
    torch.manual_seed(1)
    moving = MLPVelocity(2, 8).to(torch.float64)
    for p in moving.parameters():
        torch.nn.init.normal_(p, std=1.0)
    steps, err = _fewest_steps(moving, x, 4, 1e-12)  # a strongly curved field keeps its 4 steps
    assert (steps, err) == (4, 0.0)
    steps, err = _fewest_steps(moving, x, 4, math.inf)  # any map passes an infinite tolerance
    assert steps == 1 and err > 0
    # the error reported is the one measured against the reference step count, both ways
    z1, l1, _ = jkoic.cnf.integrate(moving, x, n_steps=1)
    z4, l4, _ = jkoic.cnf.integrate(moving, x, n_steps=4)
    xb, lb, _ = jkoic.cnf.integrate(moving, z4, n_steps=1, reverse=True)
    parts = [(z1 - z4).abs().max(), (l1 - l4).abs().max(), (xb - x).abs().max(), (lb + l4).abs().max()]
    assert err == pytest.approx(max(float(p) for p in parts))
    # the bisection over 32 reference steps returns a passing count whose predecessor fails
    mild = MLPVelocity(2, 8).to(torch.float64)
    for p in mild.parameters():
        torch.nn.init.normal_(p, std=0.3)
    z32, l32, _ = jkoic.cnf.integrate(mild, x, n_steps=32)

    def two_way_error(s):
        z, ld, _ = jkoic.cnf.integrate(mild, x, n_steps=s)
        xb, lb, _ = jkoic.cnf.integrate(mild, z32, n_steps=s, reverse=True)
        return max(
            float(v)
            for v in ((z - z32).abs().max(), (ld - l32).abs().max(), (xb - x).abs().max(), (lb + l32).abs().max())
        )

    chosen = []
    for tol in (1e-3, 1e-4, 3e-5):
        s, e = _fewest_steps(mild, x, 32, tol)
        assert e == pytest.approx(two_way_error(s)) and e <= tol
        assert s == 1 or two_way_error(s - 1) > tol
        chosen.append(s)
    assert chosen == sorted(chosen) and 1 < chosen[-1] < 32


def test_sample_steps_tol_calibrates_each_cnf_layer():
    # each trained CNF layer samples with the fewest steps within the tolerance on its data (a
    # tiny tolerance keeps the trained 3, a huge one takes 1), the next layers train on data
    # drawn that way, and densities at the samples (backward pass) stay within the trained
    # steps' own disagreement plus the tolerance forward and backward per layer
    steps = {}
    for tol in (1e-9, 1e-2, 10.0):
        cfg = tiny_config(n_iters=30, dataset_size=2000, sample_steps_tol=tol)
        model = Sampler(jkoic.targets.get("8modes"), cfg).fit(seed=0, progress=False)
        cnf_logs = [e for e in model.log if e["kind"] == "cnf"]
        cnf_layers = [la for la in model.layers if getattr(la, "kind", None) == "cnf"]
        assert [e["sample_steps"] for e in cnf_logs] == [la.sample_steps for la in cnf_layers]
        assert all(e["sample_steps_error"] <= tol for e in cnf_logs)
        steps[tol] = [la.sample_steps for la in cnf_layers]
        if tol < 1.0:
            x, log_p = model.sample(2000, seed=1)
            assert torch.allclose(model.log_prob(x), log_p, atol=2e-3 + 2 * tol * len(cnf_layers))
    assert steps[1e-9] == [3, 3] and steps[10.0] == [1, 1]
    assert all(s < 3 for s in steps[1e-2])
    for bad in (0.0, -1e-3, True, "1e-4"):
        with pytest.raises(ValueError, match="sample_steps_tol"):
            tiny_config(sample_steps_tol=bad)


def test_gradient_flow_layer_uses_the_targets_closed_form(tmp_path):
    # a mixture target gets the closed-form Laplacian (exact, no probes): the layer's density
    # equals the autograd one, and a saved / loaded model keeps the closed form
    import jkoic
    from jkoic.cnf import GradientFlowVelocity

    tgt = jkoic.targets.get("8modes")
    cfg = jkoic.Config(n_flow_steps=0, n_blocks=0, gradient_flow_time=0.5, gradient_flow_steps=4)
    model = jkoic.Sampler(tgt, cfg, dtype=torch.float64)
    model.fit(seed=0, progress=False)
    field = model.layers[0].field
    assert isinstance(field, GradientFlowVelocity) and field._score_laplacian is not None
    z = torch.randn(50, 2, dtype=torch.float64) * 3
    auto = GradientFlowVelocity(tgt.log_prob, time=0.5)
    v, div = field.velocity_and_divergence(0.0, z, None)
    v_a, div_a = auto.velocity_and_divergence(0.0, z, None)
    assert torch.allclose(v, v_a, atol=1e-10) and torch.allclose(div, div_a, atol=1e-8)
    model.save(tmp_path / "m.pt")
    again = jkoic.Sampler.load(tmp_path / "m.pt")
    assert again.layers[0].field._score_laplacian is not None
    x = torch.randn(30, 2, dtype=torch.float64)
    assert torch.allclose(again.log_prob(x.float()).double(), model.log_prob(x).double(), atol=1e-4)


@pytest.mark.parametrize("dim", [3, 50])
def test_gradient_flow_layer_is_the_affine_contraction_of_a_gaussian(dim):
    # For g = N(m, s2 I) the flow of v = grad log g = -(x - m) / s2 is x(T) = m + (x - m) f with
    # f = exp(-T / s2): the latent N(0, l^2 I) goes to N(m (1 - f), (l f)^2 I) exactly. The
    # layer's samples and their log densities (RK4 of the closed-form Laplacian) must be those of
    # that Gaussian, whatever the dimension (a broad latent contracted onto narrow modes: the
    # GMM-d initialisation of the cpu profile).
    from jkoic.bench.targets import GaussianMixture

    s2, scale, time = 0.01, 4.0, 0.0369
    m = torch.linspace(-1.0, 1.0, dim, dtype=torch.float64)[None]
    tgt = GaussianMixture("one", m, s2)
    cfg = Config(n_flow_steps=0, n_blocks=0, latent_scale=scale, gradient_flow_time=time, gradient_flow_steps=40)
    model = Sampler(tgt, cfg, dtype=torch.float64).fit(seed=0, progress=False)
    x, lp = model.sample(2000, seed=1)
    f = math.exp(-time / s2)
    mean, sd = m[0] * (1 - f), scale * f
    expected = torch.distributions.Normal(mean, sd).log_prob(x).sum(-1)
    # RK4's amplification per step differs from exp(-h / s2) by ~(h / s2)^5 / 120 (2e-6 over the
    # 40 steps): the log density then differs by that times |chi^2 - dim| (< 1e-4 here), while a
    # wrong Laplacian would be off by dim * time / s2 = 3.7 nats per dimension
    assert torch.allclose(lp, expected, atol=2e-4)
    assert float((x.mean(0) - mean).abs().max()) < 5 * sd / math.sqrt(2000)
    assert abs(float(x.std(0).mean()) / sd - 1) < 0.02
    assert torch.allclose(model.log_prob(x[:100]), expected[:100], atol=2e-4)


def test_warm_start_begins_each_cnf_step_at_the_previous_field():
    # lr 1e-9: Adam moves a weight by at most ~1e-9 per iteration, so a trained field still
    # equals its starting point to ~1e-8. The callback marks the first step's field (after its
    # training, before the next step starts) so that the next step's starting point is visible.
    cfg = tiny_config(n_flow_steps=3, n_blocks=0, n_iters=5, lr=1e-9, dataset_size=2000)

    def mark(model: Sampler, entry: dict) -> None:
        if entry["layer"] == 0:
            with torch.no_grad():
                model.layers[0].field.out.weight.fill_(0.01)

    for warm in (False, True):
        model = Sampler(jkoic.targets.get("8modes"), cfg.replace(warm_start=warm))
        model.fit(seed=0, progress=False, final_stats=False, callback=mark)
        later = [layer.field.out.weight for layer in model.layers[1:]]
        assert len(later) == 2
        # warm: start from the previous step's field (0.01, passed on from step to step);
        # cold: every step starts as the identity map (zero last layer, App. F.2)
        expected = 0.01 if warm else 0.0
        for w in later:
            torch.testing.assert_close(w, torch.full_like(w, expected), atol=1e-7, rtol=0)
    with pytest.raises(ValueError, match="warm_start must be True or False"):
        tiny_config(warm_start=1)


def test_scale_search_keeps_the_multiple_with_the_lowest_jko_objective():
    cfg = tiny_config(
        n_flow_steps=2, n_blocks=1, rejections_per_block=1, n_iters=30, dataset_size=2000, validation_size=1000
    )
    target = jkoic.targets.get("8modes")
    plain = Sampler(target, cfg).fit(seed=0, progress=False, final_stats=False)
    # the search draws its samples with a generator of its own: with the single multiple 1 the
    # model is the same as without the search, bit for bit
    same = Sampler(target, cfg.replace(scale_search=[1.0])).fit(seed=0, progress=False, final_stats=False)
    for a, b in zip(plain.layers, same.layers, strict=False):
        if a.kind == "cnf":
            torch.testing.assert_close(a.field.out.weight, b.field.out.weight, atol=0, rtol=0)
    x = target.sample(256, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(plain.log_prob(x), same.log_prob(x), atol=0, rtol=0)

    grid = [0.0, 0.5, 1.0, 3.0]
    model = Sampler(target, cfg.replace(scale_search=grid)).fit(seed=0, progress=False, final_stats=False)
    cnf = [e for e in model.log if e["kind"] == "cnf"]
    for e in cnf:
        assert e["scale"] in grid and len(e["scale_objectives"]) == len(grid)
        assert e["scale_objectives"][grid.index(e["scale"])] == min(e["scale_objectives"])
    # the first step trains on the same data either way: its kept field is s times the plain one
    s0 = cnf[0]["scale"]
    torch.testing.assert_close(model.layers[0].field.out.weight, s0 * plain.layers[0].field.out.weight)
    # the first JKO step from the latent moves mass a long way: the identity (s = 0) scores worst
    assert cnf[0]["scale_objectives"][0] > min(cnf[0]["scale_objectives"]) + 0.1
    # the density stays exact whatever multiple is kept (the field is just another CNF)
    xs, log_p = model.sample(512, seed=3)
    torch.testing.assert_close(model.log_prob(xs, seed=3), log_p, atol=2e-3, rtol=0)

    only_identity = Sampler(target, cfg.replace(scale_search=[0.0])).fit(seed=0, progress=False, final_stats=False)
    assert all(float(la.field.out.weight.abs().max()) == 0.0 for la in only_identity.layers if la.kind == "cnf")
    # zero fields are the identity map: sampling and densities skip their integration, and the
    # model is then the latent followed by the rejection layers (Theorem 4.2 densities)
    import jkoic.stack as model_module

    calls = []
    real_integrate = model_module.integrate

    def spy(*a, **kw):
        calls.append(1)
        return real_integrate(*a, **kw)

    with unittest.mock.patch.object(model_module, "integrate", spy):
        xs, log_p = only_identity.sample(512, seed=3)
        lp = only_identity.log_prob(xs, seed=3)
    assert calls == []
    torch.testing.assert_close(lp, log_p, atol=1e-5, rtol=0)
    # with only rejection layers left the density is the latent's times the rejection factors;
    # it still integrates to one (Monte Carlo over the latent: E_latent[p / latent] = 1)
    z = torch.randn(200000, 2, generator=torch.Generator().manual_seed(4))
    latent = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
    ratio = torch.exp(only_identity.log_prob(z, seed=5) - latent)
    assert abs(float(ratio.mean()) - 1.0) < 0.02
    for bad in ([], [-0.5], [float("nan")], [True], 0.5, ["1"]):
        with pytest.raises(ValueError, match="scale_search must be"):
            tiny_config(scale_search=bad)
    with pytest.raises(ValueError, match="validation_size must be"):
        tiny_config(validation_size=0)


def test_alpha_samples_estimate_e_alpha_on_fresh_samples():
    # Theorem 4.2: the factor alpha + 1 - E[alpha] keeps the density normalised only with the
    # true E[alpha]. CNF steps left out (scale 0): the model is the latent followed by rejection
    # layers, whose E[alpha] a grid integral gives without ODE error.
    target = jkoic.targets.get("8modes")
    cfg = tiny_config(n_iters=20, dataset_size=2000, validation_size=500, scale_search=[0.0])
    plain = Sampler(target, cfg).fit(seed=0, progress=False, final_stats=False)
    n = 200000
    fresh = Sampler(target, cfg.replace(alpha_samples=n)).fit(seed=0, progress=False, final_stats=False)
    assert fresh.layer_kinds() == ["cnf", "cnf", "rejection", "rejection"]
    xs = torch.linspace(-6.0, 6.0, 1201, dtype=torch.float64)
    gx, gy = torch.meshgrid(xs, xs, indexing="ij")
    pts = torch.stack([gx.flatten(), gy.flatten()], -1)
    log_g = target.log_prob(pts)
    for k in (2, 3):
        below = fresh.log_prob(pts.float(), upto=k).double()  # the model the layer was fitted on
        alpha = torch.exp(torch.clamp(log_g - fresh.layers[k].params.log_c - below, max=0.0))
        p = below.exp()
        e_true = torch.trapezoid(torch.trapezoid((p * alpha).view(1201, 1201), xs, dim=1), xs).item()
        mass = torch.trapezoid(torch.trapezoid(p.view(1201, 1201), xs, dim=1), xs).item()
        sd = math.sqrt(max(e_true * mass - e_true**2, 0.0) + 1e-12)  # alpha in [0, 1]: var <= E - E^2
        assert abs(fresh.layers[k].params.mean_alpha - e_true / mass) < 4 * sd / math.sqrt(n) + 1e-4
        assert abs(fresh.log[k]["mean_alpha_dataset"] - 0.8) < 1e-6  # c still from the dataset
    # c of the first rejection layer and everything below are fitted on the same training draws
    assert fresh.layers[2].params.log_c == plain.layers[2].params.log_c
    assert fresh.log[2]["mean_alpha_dataset"] == plain.layers[2].params.mean_alpha
    # the whole model is normalised to the precision of the fresh estimates
    p_top = fresh.log_prob(pts.float()).double().exp().view(1201, 1201)
    assert abs(torch.trapezoid(torch.trapezoid(p_top, xs, dim=1), xs).item() - 1.0) < 8 * 0.5 / math.sqrt(n)
    for bad in (0, -1, 1.5, True, "100"):
        with pytest.raises(ValueError, match="alpha_samples must be"):
            tiny_config(alpha_samples=bad)


def test_late_cnf_steps_train_with_the_late_learning_rate():
    # tau = 0.05, 0.2, 0.8: Adam starts at late_lr from late_tau = 0.2 on, at lr before
    cfg = tiny_config(
        n_flow_steps=2,
        n_blocks=1,
        rejections_per_block=1,
        n_iters=3,
        batch_size=32,
        dataset_size=500,
        lr=1e-2,
        late_tau=0.2,
        late_lr=2e-3,
    )
    assert [cfg.learning_rate(t) for t in (0.05, 0.2, 0.8)] == [1e-2, 2e-3, 2e-3]
    assert cfg.replace(late_lr=None).learning_rate(1.0) == 1e-2
    seen: list[float] = []
    real_adam = torch.optim.Adam

    def spy(params, lr, **kw):
        seen.append(lr)
        return real_adam(params, lr=lr, **kw)

    with unittest.mock.patch.object(torch.optim, "Adam", spy):
        Sampler(jkoic.targets.get("8modes"), cfg).fit(seed=0, progress=False, final_stats=False)
    assert seen == [1e-2, 2e-3, 2e-3]
    from jkoic.bench.baselines import reverse_kl_cnf_config

    assert reverse_kl_cnf_config(cfg).learning_rate(0.8) == 1e-2
    with pytest.raises(ValueError, match="late_tau is None"):
        tiny_config(late_lr=1e-3)
    for bad in (0, -1e-3, True, "1e-3"):
        with pytest.raises(ValueError, match="late_lr must be"):
            tiny_config(late_tau=1.0, late_lr=bad)


class _ScaledField(torch.nn.Module):
    """``v(x) = a x``: the flow map is ``e^a x``, its log-determinant ``d a``."""

    def __init__(self, a: float) -> None:
        super().__init__()
        self.a = a

    def velocity_and_divergence(self, t, z, probes):
        return self.a * z, torch.full((z.shape[0],), self.a * z.shape[1], dtype=z.dtype)


def test_converged_steps_make_samples_and_densities_one_flow():
    # a strong contraction of a broad latent (the first JKO step from a wide Gaussian): with 2 RK4
    # steps the RK4-integrated divergence (-6, exact for a constant divergence) is not the
    # log-determinant of the discrete map that moves the samples, so the claimed density is off
    # by a constant; the converged count agrees with the exact flow within the tolerance
    from jkoic.calibration import converged_steps

    field, a, d = _ScaledField(-3.0), -3.0, 2
    x = 8.9 * torch.randn(500, d, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    def discrete_logdet(s):  # log |det| of s RK4 steps of v = a x: d s log R(a / s)
        h = a / s
        return d * s * math.log(abs(1 + h + h**2 / 2 + h**3 / 6 + h**4 / 24))

    assert abs(discrete_logdet(2) - d * a) > 0.1  # the mismatch the training discretisation leaves
    for tol in (1e-2, 1e-3, 1e-4):
        s, err = converged_steps(field, x, 256, tol)
        assert err <= tol and s & (s - 1) == 0  # a power of two that passed
        z, ld, _ = jkoic.cnf.integrate(field, x, n_steps=s)
        exact = math.exp(a) * x
        # Richardson: |T_s - T*| = |T_s - T_2s| / (1 - 2^-4) to leading order
        assert float((z - exact).abs().max()) <= 1.1 * tol
        assert abs(discrete_logdet(s) - d * a) <= 1.1 * tol  # samples and densities of one flow
        if s > 1:  # and s / 2 does not pass, forward or backward (from the s-step end point)
            z_half, _, _ = jkoic.cnf.integrate(field, x, n_steps=s // 2)
            z_ref, _, _ = jkoic.cnf.integrate(field, x, n_steps=s)
            x_back, _, _ = jkoic.cnf.integrate(field, z_ref, n_steps=s // 2, reverse=True)
            assert max(float((z_half - z_ref).abs().max()), float((x_back - x).abs().max())) > tol
    assert converged_steps(field, x, 4, 1e-12)[0] == 4  # capped at max_steps
    with pytest.raises(ValueError, match="sample_steps_tol"):
        Config(sample_steps_max=8)
    with pytest.raises(ValueError, match="sample_steps_max"):
        Config(sample_steps_max=0, sample_steps_tol=1e-3)
