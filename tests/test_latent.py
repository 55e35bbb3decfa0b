"""The latent: the mode search (gradient ascent, L-BFGS) and the Laplace latent's covariance."""

from __future__ import annotations

import math

import pytest
import torch

from jkoic import CheckpointError, Config, Sampler, training
from jkoic.stack import Latent

D = 6


def _gaussian(dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and covariance of a correlated, ill-conditioned Gaussian (eigenvalues 0.05 .. 20)."""
    g = torch.Generator().manual_seed(4)
    q, _ = torch.linalg.qr(torch.randn(D, D, generator=g, dtype=torch.float64))
    cov = q @ torch.diag(torch.logspace(math.log10(0.05), math.log10(20.0), D, dtype=torch.float64)) @ q.T
    mean = torch.linspace(-2.0, 3.0, D, dtype=torch.float64)
    return mean.to(dtype), cov.to(dtype)


def _normal_log_prob(mean: torch.Tensor, cov: torch.Tensor):
    """log N(x; mean, cov), normalised (log Z = 0), for the model's dtype."""
    dist = torch.distributions.MultivariateNormal(mean.double(), covariance_matrix=cov.double())
    return lambda x: dist.log_prob(x.double()).to(x.dtype)


def _config(**kw) -> Config:
    base = dict(n_flow_steps=1, n_blocks=0, hidden=8, n_iters=1, batch_size=64, dataset_size=256, solver="rk4")
    base.update(kw)
    return Config(**base)


def test_laplace_latent_of_a_gaussian_is_the_gaussian(dtype):
    """For a Gaussian target the Laplace latent at the L-BFGS mode is the target itself: every
    point's log density equals the target's (ELBO = log Z = 0), and samples have its moments."""
    mean, cov = _gaussian()
    cfg = _config(latent_mode_steps=200, latent_mode_method="lbfgs", latent_covariance="laplace")
    model = Sampler(_normal_log_prob(mean, cov), cfg, dim=D, dtype=dtype).fit(seed=0, progress=False, max_layers=1)
    tol = 1e-4 if dtype == torch.float32 else 1e-8
    assert torch.allclose(model.latent_mean.double(), mean, atol=50 * tol)
    x, log_p, log_g = model.sample(20000, seed=1, upto=0, return_log_g=True)
    assert (log_g - log_p).abs().max() < 1e3 * tol
    assert torch.allclose(torch.cov(x.double().T), cov, rtol=0.05, atol=0.05)
    # the latent's log_prob agrees with its sampling density and with torch's MultivariateNormal
    lat = model.latent()
    assert torch.allclose(lat.log_prob(x[:100]), log_p[:100], atol=1e3 * tol)


@pytest.mark.parametrize("scale", [1.0, 1.7])
def test_latent_density_is_the_scaled_normal(scale):
    mean, cov = _gaussian()
    factor = torch.linalg.cholesky(torch.linalg.inv(cov))
    lat = Latent(mean, scale, factor)
    b = lat.sample(5, torch.Generator().manual_seed(0))
    ref = torch.distributions.MultivariateNormal(mean, covariance_matrix=scale**2 * cov)
    assert torch.allclose(b.log_p, ref.log_prob(b.x), atol=1e-10)
    assert torch.allclose(lat.log_prob(b.x), ref.log_prob(b.x), atol=1e-10)


def test_hessian_matches_autograd_on_a_non_quadratic_log_density():
    """LGCP-like: x.y - a exp(x) plus a correlated quadratic; the Hessian has a closed form."""
    mean, cov = _gaussian()
    prec = torch.linalg.inv(cov)
    y = torch.arange(D, dtype=torch.float64)

    def log_g(x):
        z = x - mean
        return -0.5 * (z @ prec * z).sum(-1) + (x * y - 0.3 * torch.exp(x)).sum(-1)

    model = Sampler(log_g, _config(), dim=D, dtype=torch.float64)
    x = torch.randn(D, dtype=torch.float64)
    h = training.hessian_log_g(model, x, chunk=4)  # two blocks, the second partial
    assert torch.allclose(h, -prec - torch.diag(0.3 * torch.exp(x)), atol=1e-10)


def test_lbfgs_finds_the_mode_where_the_paper_ascent_stalls():
    mean, cov = _gaussian()
    target = _normal_log_prob(mean, cov)
    far = {}
    for method in ("gradient", "lbfgs"):
        cfg = _config(latent_mode_steps=100, latent_mode_method=method, latent_mode_lr=0.01)
        model = Sampler(target, cfg, dim=D, dtype=torch.float64)
        far[method] = float((training.fit_latent_mean(model) - mean).norm())
    assert far["lbfgs"] < 1e-6 < 0.1 < far["gradient"]  # the flat direction (variance 20) barely moves


def test_laplace_away_from_a_mode_is_refused_before_training():
    """Between two modes log g is convex in one direction: a clear error, no layer trained."""

    def two_modes(x):
        return torch.logsumexp(torch.stack([-0.5 * ((x - 3) ** 2).sum(-1), -0.5 * ((x + 3) ** 2).sum(-1)]), 0)

    model = Sampler(two_modes, _config(latent_covariance="laplace"), dim=2, dtype=torch.float64)
    with pytest.raises(ValueError, match="not positive definite"):
        model.fit(seed=0, progress=False)
    assert model.n_layers == 0


def test_laplace_latent_survives_save_and_load(tmp_path):
    mean, cov = _gaussian()
    cfg = _config(latent_mode_steps=100, latent_mode_method="lbfgs", latent_covariance="laplace")
    model = Sampler(_normal_log_prob(mean, cov), cfg, dim=D, dtype=torch.float64).fit(seed=0, progress=False)
    path = model.save(tmp_path / "m.pt")
    back = Sampler.load(path, _normal_log_prob(mean, cov), dim=D)
    x = torch.randn(50, D, dtype=torch.float64)
    assert torch.equal(back.latent_factor, model.latent_factor)
    assert torch.allclose(back.log_prob(x), model.log_prob(x))
    # a checkpoint whose factor does not fit the model is refused with its reason
    st = torch.load(path, weights_only=True)
    st["latent_factor"] = st["latent_factor"][:3, :3]
    from jkoic import checkpoint

    st["checksum"] = checkpoint.checksum(st)
    torch.save(st, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="latent_factor has shape"):
        Sampler.load(tmp_path / "bad.pt", _normal_log_prob(mean, cov), dim=D)


def test_config_rejects_unknown_latent_options():
    with pytest.raises(ValueError, match="latent_covariance"):
        Config(latent_covariance="full")
    with pytest.raises(ValueError, match="latent_mode_method"):
        Config(latent_mode_method="newton")
