"""The adaptive schedule, the training budgets, the per-layer report and the default configuration."""

from __future__ import annotations

import math

import pytest
import torch

import jkoic
from jkoic import Config, Sampler
from jkoic.defaults import DEFAULTS, SPREAD_FACTOR, auto_config, probe_latent
from jkoic.training import improved


def tiny(**kw) -> Config:
    base = dict(
        n_flow_steps=1,
        n_blocks=6,
        rejections_per_block=2,
        tau0=0.05,
        hidden=16,
        n_iters=30,
        batch_size=256,
        dataset_size=4000,
        solver="rk4",
        train_steps=2,
        adjoint=False,
        sample_steps=2,
        lr=1e-2,
    )
    base.update(kw)
    return Config(**base)


def _stats(elbo, elbo_se, iw, iw_se):
    return {"log_z_elbo": elbo, "log_z_elbo_se": elbo_se, "log_z_importance": iw, "log_z_importance_se": iw_se}


def test_improved_compares_against_the_standard_error_of_the_difference():
    before = _stats(-0.10, 0.003, -0.01, 0.004)
    assert improved(before, _stats(-0.09, 0.003, -0.01, 0.004))  # ELBO up by 0.01 > 0.0042
    assert not improved(before, _stats(-0.097, 0.003, -0.01, 0.004))  # 0.003 < 0.0042
    assert improved(before, _stats(-0.10, 0.003, 0.0, 0.004))  # IW log Z up by 0.01 > 0.0057
    assert not improved(before, _stats(-0.11, 0.003, -0.02, 0.004))  # worse
    # a tolerance above the standard error: the rise must exceed it too
    assert improved(before, _stats(-0.09, 0.003, -0.01, 0.004), tol=0.009)
    assert not improved(before, _stats(-0.09, 0.003, -0.01, 0.004), tol=0.011)
    assert improved(before, _stats(-0.09, 0.003, 0.01, 0.004), tol=0.011)  # IW log Z up by 0.02


class Gaussian:
    """A standard normal in 2-D: the latent itself, so a model is exact from the start."""

    dim = 2
    name = "gauss"

    def log_prob(self, x):
        return -0.5 * x.square().sum(-1) - math.log(2 * math.pi)


def test_adaptive_schedule_stops_when_a_block_adds_nothing():
    # the latent is the target: no block can improve the model beyond the estimates' noise
    model = Sampler(Gaussian(), tiny(adaptive=True)).fit(seed=0, progress=False)
    assert model.stop_reason is not None and model.stop_reason.startswith("converged")
    assert model.is_trained and model.n_layers < len(jkoic.schedule(model.config))
    assert model.layer_kinds()[-1] == "rejection"  # the block it stops in is completed
    x, log_p = model.sample(2000, seed=1)
    torch.testing.assert_close(model.log_prob(x, seed=1), log_p, atol=2e-3, rtol=0)


def test_adaptive_schedule_uses_its_blocks_on_a_target_that_keeps_improving():
    full = len(jkoic.schedule(tiny(adaptive=True, n_blocks=2)))
    model = Sampler(jkoic.targets.get("8modes"), tiny(adaptive=True, n_blocks=2)).fit(seed=0, progress=False)
    assert model.stop_reason is None and model.n_layers == full
    # with a tolerance no block can meet, a longer schedule stops where it first compares two blocks
    strict = Sampler(jkoic.targets.get("8modes"), tiny(adaptive=True, n_blocks=3, adaptive_tol=100.0))
    strict.fit(seed=0, progress=False)
    assert strict.stop_reason.endswith("and 100") and strict.n_layers == full
    assert [e["log_z_elbo"] for e in strict.log[:-1]] == [e["log_z_elbo"] for e in model.log[:-1]]
    with pytest.raises(ValueError, match="adaptive_tol"):
        tiny(adaptive_tol=-0.1)


def test_budgets_stop_training_and_the_model_stays_usable(tmp_path):
    target = jkoic.targets.get("8modes")
    capped = Sampler(target, tiny()).fit(seed=0, progress=False, max_layers=5)
    assert capped.n_layers == 5 and capped.is_trained and capped.stop_reason == "max_layers=5"
    timed = Sampler(target, tiny()).fit(seed=0, progress=False, max_time=1e-9)
    assert timed.n_layers == 0 or timed.layer_kinds()[-1] == "rejection"
    assert timed.stop_reason == "max_time=1e-09 s"
    # a stopped model saves and loads as trained, with its reason
    again = Sampler.load(capped.save(tmp_path / "m.pt"))
    assert again.is_trained and again.n_layers == 5 and again.stop_reason == "max_layers=5"
    x, _ = again.sample(10, seed=0)
    assert x.shape == (10, 2)
    for bad in ({"max_layers": 0}, {"max_time": -1.0}, {"max_time": "60"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            Sampler(target, tiny()).fit(seed=0, progress=False, **bad)


def test_summary_reports_every_layer():
    model = Sampler(jkoic.targets.get("8modes"), tiny(n_blocks=1)).fit(seed=0, progress=False)
    lines = model.summary().splitlines()
    assert lines[0].split()[:4] == ["layer", "kind", "tau", "ELBO"]
    rows = lines[2:]
    assert len(rows) == model.n_layers
    assert [r.split()[1] for r in rows] == model.layer_kinds()
    assert "0.20" in rows[-1]  # the rejection rate of a rejection layer
    assert "+-" in rows[-1]  # the final layer's estimates with standard errors
    assert lines[0].split()[-1] == "sec"
    bare = model.summary(seconds=False).splitlines()
    assert bare[0].split()[-1] == "rej" and len(bare) == len(lines)
    assert all(b == line[: len(b)] for b, line in zip(bare, lines, strict=True))  # the same rows, timings cut


def test_probe_finds_location_and_scale_of_a_shifted_gaussian():
    class Shifted:
        dim = 3
        name = "shifted"

        def log_prob(self, x):
            return -0.5 * ((x - torch.tensor([4.0, -2.0, 1.0])) / 2.0).square().sum(-1)

    mean, scale, info = probe_latent(Shifted(), 3)
    assert torch.allclose(torch.tensor(mean), torch.tensor([4.0, -2.0, 1.0]), atol=0.3)
    assert 1.4 <= info["rounds"][-1]["scale"] <= 2.9  # the grid's neighbours of the true scale 2
    assert 1.7 <= info["spread"] <= 2.3  # the importance-weighted RMS spread per coordinate: 2
    assert scale == pytest.approx(SPREAD_FACTOR * info["spread"])  # twice as broad as the target


def test_default_config_reads_the_target_and_stays_overridable():
    target = jkoic.targets.get("8modes")
    cfg = auto_config(target, 2)
    assert cfg.adaptive and cfg.solver == "rk4" and cfg.n_iters == DEFAULTS["n_iters"]
    assert cfg.tau0 == pytest.approx(0.01 * cfg.latent_scale**2)
    # the first three CNF steps train with the full budget, the later (warm-started) ones with the late one
    cnf_taus = [tau for kind, tau in jkoic.schedule(cfg) if kind == "cnf"]
    assert [cfg.budget(t)[0] for t in cnf_taus[:4]] == [DEFAULTS["n_iters"]] * 3 + [DEFAULTS["late_n_iters"]]
    assert cfg.learning_rate(cnf_taus[3]) == DEFAULTS["late_lr"] and cfg.warm_start
    assert cfg.latent_mean is not None and abs(cfg.latent_mean[0] + 1.0) < 0.2  # the ring is centred at (-1, 0)
    model = Sampler(target)
    assert model.config == cfg and model.latent_mean.tolist() == pytest.approx(cfg.latent_mean)
    assert auto_config(target, 2, n_iters=7).n_iters == 7


def test_latent_mean_must_match_the_dimension():
    with pytest.raises(ValueError, match="latent_mean has 3 entries"):
        Sampler(jkoic.targets.get("8modes"), tiny(latent_mean=[0.0, 0.0, 0.0]))
    with pytest.raises(ValueError, match="Config.latent_mean"):
        tiny(latent_mean=[0.0, float("nan")])


def test_probe_refuses_a_density_without_mass():
    with pytest.raises(ValueError, match="no mass"):
        probe_latent(lambda_target(), 2)


def lambda_target():
    class Empty:
        dim = 2
        name = "empty"

        def log_prob(self, x):
            return torch.full((x.shape[0],), -torch.inf, dtype=x.dtype)

    return Empty()
