"""Tests of the baselines: MALA, HMC (App. E.5) and the reverse-KL coupling flow (Table 7).

Moment checks use bounds of 5 standard errors of the sample mean / covariance of
independent draws (one final state per chain), with fixed seeds.
"""

from __future__ import annotations

import math

import pytest
import torch

from jkoic.bench.baselines import CouplingFlow, MCMCResult, hmc, mala, train_reverse_kl

MEAN = [1.0, -0.5]
COV = [[1.0, 0.6], [0.6, 0.5]]  # eigenvalues ~1.39 and ~0.11: anisotropic, correlated


class Gaussian2D:
    """Correlated Gaussian target with an optional additive constant ``log_z``."""

    def __init__(self, mean=MEAN, cov=COV, log_z: float = 0.0) -> None:
        self.dim = 2
        self.mean = torch.tensor(mean, dtype=torch.float64)
        self.cov = torch.tensor(cov, dtype=torch.float64)
        self.prec = torch.linalg.inv(self.cov)
        self.log_z = log_z
        self._norm = -0.5 * (2 * math.log(2 * math.pi) + torch.logdet(self.cov).item())

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        d = x - self.mean.to(x)
        quad = torch.einsum("ni,ij,nj->n", d, self.prec.to(x), d)
        return -0.5 * quad + self._norm + self.log_z

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        chol = torch.linalg.cholesky(self.cov)
        z = torch.randn(n, 2, generator=generator, dtype=torch.float64)
        return self.mean + z @ chol.T


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These tests use tiny batches: extra intra-op threads only add synchronisation cost,
    so run this module single-threaded."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _gen(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def assert_moments(x: torch.Tensor, target: Gaussian2D, n_se: float = 5.0) -> None:
    """Sample mean and covariance within ``n_se`` standard errors of the truth."""
    x = x.double().cpu()
    n = x.shape[0]
    cov = target.cov
    mean_se = torch.sqrt(torch.diagonal(cov) / n)
    assert torch.all((x.mean(0) - target.mean).abs() < n_se * mean_se), (x.mean(0), target.mean)
    var = torch.diagonal(cov)
    cov_se = torch.sqrt((var[:, None] * var[None, :] + cov.square()) / n)
    emp = torch.cov(x.T)
    assert torch.all((emp - cov).abs() < n_se * cov_se), (emp, cov)


# ----------------------------------------------------------------------------- MCMC


@pytest.mark.parametrize(
    ("sampler", "kwargs"),
    [
        (mala, dict(n_steps=300, step_size=0.2, warmup=(20, 20))),
        (hmc, dict(n_steps=100, step_size=0.3, warmup=(10, 10))),
    ],
    ids=["mala", "hmc"],
)
def test_recovers_gaussian_moments(sampler, kwargs) -> None:
    target = Gaussian2D()
    res = sampler(target, 2000, generator=_gen(0), progress=False, dtype=torch.float64, **kwargs)
    assert isinstance(res, MCMCResult)
    assert res.samples.shape == (2000, 2)
    assert res.n_steps == kwargs["n_steps"]
    assert 0.2 < res.acceptance_rate < 1.0
    assert set(res.acceptance_per_phase) == {"warmup x0.01", "warmup x0.1", "main"}
    assert res.n_nonfinite == 0 and res.seconds > 0
    assert_moments(res.samples, target)


def test_mala_default_float32_on_device(device: torch.device) -> None:
    target = Gaussian2D()
    res = mala(target, 2000, 300, 0.2, warmup=(20, 20), generator=_gen(1, device), progress=False, device=device)
    assert res.samples.dtype == torch.float32 and res.samples.device.type == device.type
    assert_moments(res.samples, target)


@pytest.mark.parametrize(
    ("sampler", "steps", "extra"),
    [(mala, (0.05, 0.2, 0.5), {}), (hmc, (0.2, 0.5, 0.65), {"n_leapfrog": 5})],
    ids=["mala", "hmc"],
)
def test_acceptance_decreases_with_step(sampler, steps, extra) -> None:
    target = Gaussian2D()
    x0 = target.sample(1000, _gen(2))
    rates = [
        sampler(
            target,
            1000,
            30,
            s,
            warmup=(0,),
            warmup_factors=(1.0,),
            x0=x0,
            generator=_gen(3),
            progress=False,
            dtype=torch.float64,
            **extra,
        ).acceptance_rate
        for s in steps
    ]
    assert rates[0] > rates[1] > rates[2], rates
    assert 0.2 < rates[1] <= 1.0, rates


@pytest.mark.parametrize(
    ("sampler", "step"),
    # MALA at step 0.5 accepts ~16%; without the MH correction (ULA) this step
    # would diverge along the stiff direction (s * 9 > 2).
    [(mala, 0.5), (hmc, 0.5)],
    ids=["mala", "hmc"],
)
def test_exact_start_stays_exact(sampler, step) -> None:
    """Detailed balance sanity: chains started at the target keep its moments."""
    target = Gaussian2D()
    x0 = target.sample(4000, _gen(4))
    res = sampler(
        target,
        4000,
        20,
        step,
        warmup=(0,),
        warmup_factors=(1.0,),
        x0=x0,
        generator=_gen(5),
        progress=False,
        dtype=torch.float64,
    )
    assert res.acceptance_rate > 0.1
    assert (res.samples != x0).any(dim=1).float().mean() > 0.5  # chains actually moved
    assert_moments(res.samples, target)


@pytest.mark.parametrize("sampler", [mala, hmc], ids=["mala", "hmc"])
def test_reproducible_with_seed(sampler) -> None:
    target = Gaussian2D()

    def run(seed: int) -> torch.Tensor:
        return sampler(target, 50, 20, step_size=0.2, warmup=(5, 5), generator=_gen(seed), progress=False).samples

    assert torch.equal(run(7), run(7))
    assert not torch.equal(run(7), run(8))


class HalfPlaneGaussian(Gaussian2D):
    """Gaussian restricted to x_0 > 0 (log density -inf outside, NaN at |x_1| > 3)."""

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        lp = super().log_prob(x)
        lp = torch.where(x[:, 0] > 0, lp, torch.full_like(lp, -math.inf))
        return torch.where(x[:, 1].abs() < 3, lp, torch.full_like(lp, math.nan))


@pytest.mark.parametrize("sampler", [mala, hmc], ids=["mala", "hmc"])
def test_nonfinite_proposals_are_rejected(sampler) -> None:
    target = HalfPlaneGaussian()
    x0 = torch.tensor([[0.5, -0.5]]).repeat(500, 1)
    res = sampler(
        target, 500, 60, step_size=0.3, warmup=(0,), warmup_factors=(1.0,), x0=x0, generator=_gen(6), progress=False
    )
    assert res.n_nonfinite > 0
    assert torch.isfinite(res.samples).all()
    assert (res.samples[:, 0] > 0).all() and (res.samples[:, 1].abs() < 3).all()


def test_log_density_is_the_duck_type_the_samplers_take() -> None:
    from jkoic.bench import baselines
    from jkoic.bench.targets import get

    assert isinstance(Gaussian2D(), baselines.LogDensity)
    assert isinstance(get("8modes"), baselines.LogDensity)  # every jkoic target qualifies
    assert not isinstance(object(), baselines.LogDensity)
    # one meaning of "Target" in the package: the sampler's class in jkoic.target
    assert not hasattr(baselines, "Target")


def test_bad_inputs_raise() -> None:
    target = Gaussian2D()
    with pytest.raises(ValueError, match="finite"):
        mala(target, 3, 10, x0=torch.tensor([[0.0, 0.0], [math.nan, 0.0], [0.0, 1.0]]), warmup=(1, 1), progress=False)
    with pytest.raises(ValueError, match=r"shape \(n_chains, target.dim\)"):
        hmc(target, 3, 10, 0.1, x0=torch.zeros(3, 5), warmup=(1, 1), progress=False)

    wrong_dim = Gaussian2D()
    wrong_dim.dim = 3  # claims 3 dimensions, evaluates 2
    with pytest.raises(ValueError, match="target.log_prob failed"):
        mala(wrong_dim, 3, 10, warmup=(1, 1), progress=False)
    wrong_dim.dim = 0
    with pytest.raises(ValueError, match="integer attribute dim"):
        mala(wrong_dim, 3, 10, warmup=(1, 1), progress=False)
    with pytest.raises(ValueError, match="must exceed"):
        mala(target, 3, 100, warmup=(50, 50), progress=False)
    with pytest.raises(ValueError, match="not finite at 3 initial"):
        mala(HalfPlaneGaussian(), 3, 10, x0=-torch.ones(3, 2), warmup=(1, 1), progress=False)
    with pytest.raises(ValueError, match="n_leapfrog"):
        hmc(target, 3, 10, 0.1, n_leapfrog=0, warmup=(1, 1), progress=False)

    class BadShape(Gaussian2D):
        def log_prob(self, x: torch.Tensor) -> torch.Tensor:
            return super().log_prob(x)[:, None]

    with pytest.raises(ValueError, match=r"map \(n, dim\) to \(n,\)"):
        mala(BadShape(), 3, 10, warmup=(1, 1), progress=False)


# ----------------------------------------------------------------------------- coupling flow


def _random_flow(dim: int = 2, hidden: int = 16, scale: float = 0.2, seed: int = 0) -> CouplingFlow:
    """A float64 flow whose parameters are moved away from the identity init."""
    torch.manual_seed(seed)
    flow = CouplingFlow(dim, hidden).double()
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(scale * torch.randn_like(p))
    return flow


def test_flow_structure() -> None:
    flow = CouplingFlow(4, 12)
    assert flow.dim == 4 and flow.n_blocks == 5
    assert len(flow.transform.transforms) == 15  # 5 x (LU linear + 2 couplings)
    z = torch.randn(7, 4)
    x, ladj = flow(z)  # zero-initialised conditioners + identity LU -> identity map
    assert torch.allclose(x, z) and torch.allclose(ladj, torch.zeros(7))


@pytest.mark.parametrize("dim", [2, 5])
def test_flow_invertible(dim: int) -> None:
    flow = _random_flow(dim)
    z = torch.randn(64, dim, dtype=torch.float64)
    x, ladj_fwd = flow(z)
    z_back, ladj_inv = flow.inverse(x)
    assert (z_back - z).abs().max() < 1e-5
    assert (ladj_fwd + ladj_inv).abs().max() < 1e-5
    assert not torch.allclose(x, z)  # the test flow is not the identity


@pytest.mark.parametrize("dim", [2, 3])
def test_flow_logdet_matches_autograd(dim: int) -> None:
    flow = _random_flow(dim)
    z = torch.randn(4, dim, dtype=torch.float64)
    _, ladj = flow(z)
    x, _ = flow(z)
    _, ladj_inv = flow.inverse(x)
    for i in range(z.shape[0]):
        jac = torch.autograd.functional.jacobian(lambda v: flow(v[None])[0][0], z[i])
        assert abs(torch.linalg.slogdet(jac)[1] - ladj[i]) < 1e-8
        jac_inv = torch.autograd.functional.jacobian(lambda v: flow.inverse(v[None])[0][0], x[i])
        assert abs(torch.linalg.slogdet(jac_inv)[1] - ladj_inv[i]) < 1e-8


def test_flow_density_integrates_to_one() -> None:
    flow = _random_flow(2, scale=0.1)
    grid = torch.linspace(-10.0, 10.0, 401, dtype=torch.float64)
    h = (grid[1] - grid[0]).item()
    xx, yy = torch.meshgrid(grid, grid, indexing="ij")
    with torch.no_grad():
        dens = flow.log_prob(torch.stack([xx.ravel(), yy.ravel()], dim=1)).exp()
    assert abs(dens.sum().item() * h * h - 1.0) < 1e-2
    # the sampler's log density is the density of its samples
    x, log_p = flow.sample_and_log_prob(32, _gen(0))
    assert torch.allclose(log_p, flow.log_prob(x), atol=1e-8)


def test_flow_sampling_reproducible() -> None:
    flow = _random_flow(2)
    assert torch.equal(flow.sample(10, _gen(3)), flow.sample(10, _gen(3)))


def test_reverse_kl_training_fits_gaussian() -> None:
    torch.manual_seed(0)
    target = Gaussian2D(mean=[1.0, -1.0], cov=[[1.0, 0.5], [0.5, 0.8]], log_z=1.5)
    flow = CouplingFlow(2, 16)
    losses = train_reverse_kl(flow, target, n_iters=200, batch_size=128, lr=5e-3, generator=_gen(0), progress=False)
    assert len(losses) == 200 and all(math.isfinite(v) for v in losses)
    start, end = sum(losses[:20]) / 20, sum(losses[-50:]) / 50
    assert end < start - 0.5
    # loss = KL(p || g / Z) - log Z >= -log Z, and close to it after training
    assert abs(end - (-1.5)) < 0.05, end
    x = flow.sample(4000, _gen(1)).double()
    # the reverse KL is flat in the covariance (KL ~ 0.01 for a 20 % variance
    # error), so a short run pins the mean well and the covariance loosely
    assert (x.mean(0) - target.mean).abs().max() < 0.1
    assert (torch.cov(x.T) - target.cov).abs().max() < 0.3


def test_reverse_kl_errors() -> None:
    flow = CouplingFlow(2, 8)

    class NaNTarget(Gaussian2D):
        def log_prob(self, x: torch.Tensor) -> torch.Tensor:
            return super().log_prob(x) * math.nan

    with pytest.raises(FloatingPointError, match="NaN"):
        train_reverse_kl(flow, NaNTarget(), n_iters=5, batch_size=8, progress=False)

    three_d = Gaussian2D()
    three_d.dim = 3
    with pytest.raises(ValueError, match="does not match flow.dim"):
        train_reverse_kl(flow, three_d, n_iters=5, batch_size=8, progress=False)
    with pytest.raises(ValueError, match="dim >= 2"):
        CouplingFlow(1, 8)
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        flow.log_prob(torch.zeros(4, 3))
