"""Tests of the benchmark targets (Hertrich & Gruhlke, ICML 2025, Appendix E.1).

Each test checks a mathematical fact that a wrong definition would break:
normalisation (quadrature in 2-D, importance sampling with an independent
proposal otherwise), exact samplers against their densities, agreement with
independent ``torch.distributions`` implementations in float64, and the LGCP
against a dense float64 formula.  Random tests use fixed seeds; Monte Carlo
bounds are a few standard errors.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import distributions as D

from jkoic.bench import data as jdata
from jkoic.bench import targets as T

NORMALISED = ["mustache", "8modes", "8peaky", "funnel", "gmm", "gmm40"]
TWO_D = ["mustache", "8modes", "8peaky"]

requires_data = pytest.mark.skipif(
    not all((jdata.data_dir() / n).is_file() for n in jdata.FILES),
    reason="data files missing: run `make data` (or set JKOIC_DATA_DIR)",
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _f64(v: float) -> torch.Tensor:
    """A float64 scalar (``torch.distributions`` would turn a Python float into float32)."""
    return torch.tensor(v, dtype=torch.float64)


# ----------------------------------------------------------------------------- registry / API


def test_names_lists_all_targets() -> None:
    assert T.names() == ["mustache", "8modes", "8peaky", "funnel", "gmm", "gmm40", "lgcp"]


@requires_data
@pytest.mark.parametrize(
    "name, dim, log_z",
    [
        ("mustache", 2, 0.0),
        ("8modes", 2, 0.0),
        ("8peaky", 2, 0.0),
        ("funnel", 10, 0.0),
        ("gmm", 10, 0.0),
        ("gmm40", 50, 0.0),
        ("lgcp", 1600, None),
    ],
)
def test_get_builds_each_target(name: str, dim: int, log_z: float | None) -> None:
    t = T.get(name)
    assert isinstance(t, T.Target)
    assert (t.name, t.dim, t.log_z) == (name, dim, log_z)
    assert name in repr(t) and f"dim={dim}" in repr(t)
    assert T.get(name.upper()).name == name  # case-insensitive


def test_mixture_attributes() -> None:
    t = T.get("8peaky")
    assert t.means.shape == (8, 2) and t.weights.shape == (8,)
    assert torch.allclose(t.weights, torch.full((8,), 1 / 8, dtype=torch.float64))
    # means on the circle of radius 1 around (-1, 0), first one at the origin
    assert torch.allclose(
        (t.means - torch.tensor([-1.0, 0.0], dtype=torch.float64)).norm(dim=1), torch.ones(8, dtype=torch.float64)
    )
    assert torch.allclose(t.means[0], torch.zeros(2, dtype=torch.float64), atol=1e-15)
    assert t.variance == 0.005 and T.get("8modes").variance == 0.01
    assert T.get("funnel").means is None and T.get("mustache").weights is None


def test_unknown_name_lists_valid_names_and_suggests() -> None:
    with pytest.raises(
        ValueError,
        match=r"unknown target 'mustach'; valid names: mustache, 8modes.*lgcp\. "
        r"Did you mean 'mustache'\?",
    ):
        T.get("mustach")
    with pytest.raises(TypeError, match="target name must be a str"):
        T.get(3)  # type: ignore[arg-type]


def test_unknown_kwarg_is_a_clear_type_error() -> None:
    with pytest.raises(
        TypeError,
        match=r"target 'funnel' got unexpected keyword argument\(s\) 'sigma'; "
        r"it accepts: dim",
    ):
        T.get("funnel", sigma=3.0)


@pytest.mark.parametrize(
    "name, kwargs, exc, match",
    [
        ("mustache", {"dim": 3}, ValueError, r"'mustache' is only defined for dim=2, got dim=3"),
        ("lgcp", {"dim": 100}, ValueError, r"only defined for dim=1600"),
        ("funnel", {"dim": 1}, ValueError, r"dim must be >= 2, got 1"),
        ("funnel", {"dim": "10"}, TypeError, r"dim must be an int, got str"),
        ("funnel", {"dim": True}, TypeError, r"dim must be an int"),
        ("gmm", {"means_id": 1, "seed": 0}, ValueError, r"exactly one of means_id and seed"),
        ("gmm", {"means_id": 6}, ValueError, r"means_id must be one of \[1, 2, 3, 4, 5\], got 6"),
        ("gmm", {"dim": 30}, ValueError, r"dim in \[10, 20, 50, 100, 200\], got dim=30; pass seed"),
    ],
)
def test_invalid_kwargs(name: str, kwargs: dict, exc: type, match: str) -> None:
    with pytest.raises(exc, match=match):
        T.get(name, **kwargs)


@requires_data
def test_kwargs_rebuild_the_same_target() -> None:
    t = T.get("gmm", dim=20, means_id=3)
    assert t.kwargs == {"dim": 20, "means_id": 3, "seed": None}
    assert torch.equal(T.get(t.name, **t.kwargs).means, t.means)
    assert T.get("funnel").kwargs == {"dim": 10} and T.get("gmm", dim=5, seed=1).kwargs["seed"] == 1


def test_funnel_and_gmm_seed_accept_any_dim() -> None:
    assert T.get("funnel", dim=3).dim == 3
    a, b, c = T.get("gmm", dim=7, seed=3), T.get("gmm", dim=7, seed=3), T.get("gmm", dim=7, seed=4)
    assert a.dim == 7 and a.means.shape == (10, 7)
    assert torch.equal(a.means, b.means) and not torch.equal(a.means, c.means)
    assert a.means.abs().max() <= 1.0 and a.means.min() < 0 < a.means.max()


# ----------------------------------------------------------------------------- input validation


def test_log_prob_rejects_wrong_shapes_and_types() -> None:
    t = T.get("mustache")
    with pytest.raises(ValueError, match=r"'mustache': log_prob expects x of shape \(n, 2\), got shape \(2,\)"):
        t.log_prob(torch.zeros(2))
    with pytest.raises(ValueError, match=r"expects x of shape \(n, 2\), got shape \(4, 3\)"):
        t.log_prob(torch.zeros(4, 3))
    with pytest.raises(ValueError, match=r"got shape \(1, 4, 2\)"):
        t.log_prob(torch.zeros(1, 4, 2))
    with pytest.raises(TypeError, match="expects a torch.Tensor of shape \\(n, 2\\), got list"):
        t.log_prob([[0.0, 0.0]])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="floating point tensor, got dtype torch.int64"):
        t.log_prob(torch.zeros(3, 2, dtype=torch.long))
    assert t.log_prob(torch.zeros(0, 2)).shape == (0,)
    with pytest.raises(ValueError, match="n must be a non-negative integer"):
        t.sample(-1)


# ----------------------------------------------------------------------------- normalisation


def _grid_integral(t: T.Target, x1: tuple[float, float, int], x2: tuple[float, float, int]) -> float:
    """Midpoint rule of exp(log_prob) over a rectangle, float64."""
    a1, b1, n1 = x1
    a2, b2, n2 = x2
    h1, h2 = (b1 - a1) / n1, (b2 - a2) / n2
    g1 = a1 + h1 * (torch.arange(n1, dtype=torch.float64) + 0.5)
    g2 = a2 + h2 * (torch.arange(n2, dtype=torch.float64) + 0.5)
    total = 0.0
    for chunk in g1.split(200):
        pts = torch.stack(torch.meshgrid(chunk, g2, indexing="ij"), -1).reshape(-1, 2)
        total += float(t.log_prob(pts).exp().sum())
    return total * h1 * h2


def test_eight_modes_integrate_to_one() -> None:
    for name in ("8modes", "8peaky"):
        integral = _grid_integral(T.get(name), (-2.6, 0.6, 320), (-1.6, 1.6, 320))  # step 0.01
        assert abs(integral - 1.0) < 1e-6, (name, integral)


def test_mustache_integrates_to_one() -> None:
    # |x1| > 4.5 carries 7e-6 of the mass; for |x1| <= 4.5 the ridge x2 ~ (x1^2-1)^2 stays below 371.
    integral = _grid_integral(T.get("mustache"), (-4.5, 4.5, 450), (-6.0, 380.0, 3860))
    assert abs(integral - 1.0) < 5e-5, integral


def _is_estimate(log_g: torch.Tensor, log_q: torch.Tensor) -> tuple[float, float]:
    w = (log_g - log_q).exp()
    return float(w.mean()), float(w.std() / math.sqrt(w.numel()))


def test_funnel_integrates_to_one_by_importance_sampling() -> None:
    g = _gen(1)
    n, d = 100_000, 10
    # proposal, independent of the funnel code: x1 ~ N(0, 3.5^2), x_rest | x1 ~ N(0, 1.2^2 exp(x1))
    v = 3.5 * torch.randn(n, generator=g, dtype=torch.float64)
    scale = 1.2 * torch.exp(0.5 * v)
    rest = scale[:, None] * torch.randn(n, d - 1, generator=g, dtype=torch.float64)
    log_q = D.Normal(_f64(0.0), _f64(3.5)).log_prob(v) + D.Normal(0.0, scale[:, None]).log_prob(rest).sum(-1)
    est, se = _is_estimate(T.get("funnel").log_prob(torch.cat([v[:, None], rest], 1)), log_q)
    assert se < 0.01
    assert abs(est - 1.0) < 4 * se, (est, se)


@requires_data
def test_gmm_integrates_to_one_by_importance_sampling() -> None:
    t = T.get("gmm", dim=10, means_id=2)
    # proposal, written independently: equal-weight mixture, same means, 1.5x the variance
    g, n, s = _gen(2), 50_000, math.sqrt(0.015)
    x = t.means[torch.randint(0, 10, (n,), generator=g)] + s * torch.randn(n, 10, generator=g, dtype=torch.float64)
    log_q = torch.logsumexp(D.Normal(t.means, _f64(s)).log_prob(x[:, None, :]).sum(-1), 1) - math.log(10)
    est, se = _is_estimate(t.log_prob(x), log_q)
    assert se < 0.01
    assert abs(est - 1.0) < 4 * se, (est, se)


# ----------------------------------------------------------------------------- independent implementations


def _mixture_reference(t: T.Target) -> D.Distribution:
    k, d = t.means.shape
    return D.MixtureSameFamily(
        D.Categorical(probs=t.weights),
        D.MultivariateNormal(t.means, covariance_matrix=t.variance * torch.eye(d, dtype=torch.float64)),
    )


@requires_data
@pytest.mark.parametrize(
    "name, kwargs, scale",
    [("8modes", {}, 1.0), ("8peaky", {}, 1.0), ("gmm", {"dim": 50, "means_id": 3}, 1.0), ("gmm40", {}, 40.0)],
)
def test_mixture_log_prob_matches_torch_distributions(name: str, kwargs: dict, scale: float) -> None:
    t = T.get(name, **kwargs)
    ref = _mixture_reference(t)
    x = torch.cat([ref.sample((200,)), scale * (2 * torch.rand(200, t.dim, dtype=torch.float64) - 1)])
    assert torch.allclose(t.log_prob(x), ref.log_prob(x), rtol=1e-12, atol=1e-10)


def test_mustache_log_prob_matches_multivariate_normal() -> None:
    t = T.get("mustache")
    s = torch.tensor([[1.0, 0.9], [0.9, 1.0]], dtype=torch.float64)
    x = 2 * torch.randn(500, 2, dtype=torch.float64)
    z = torch.stack([x[:, 0], x[:, 1] - (x[:, 0] ** 2 - 1) ** 2], 1)
    ref = D.MultivariateNormal(torch.zeros(2, dtype=torch.float64), covariance_matrix=s).log_prob(z)
    assert torch.allclose(t.log_prob(x), ref, rtol=1e-12, atol=1e-10)


def test_funnel_log_prob_matches_normals() -> None:
    t = T.get("funnel")
    x = 2 * torch.randn(500, 10, dtype=torch.float64)
    ref = D.Normal(_f64(0.0), _f64(3.0)).log_prob(x[:, 0])
    ref = ref + D.Normal(_f64(0.0), torch.exp(x[:, :1] / 2)).log_prob(x[:, 1:]).sum(-1)
    assert torch.allclose(t.log_prob(x), ref, rtol=1e-12, atol=1e-10)


def test_mustache_transform_is_volume_preserving_bijection() -> None:
    x = 2 * torch.randn(50, 2, dtype=torch.float64)
    assert torch.allclose(T.Mustache.inverse_transform(T.Mustache.transform(x)), x, atol=1e-12)
    assert torch.allclose(T.Mustache.transform(T.Mustache.inverse_transform(x)), x, atol=1e-12)
    xr = x.clone().requires_grad_(True)
    out = T.Mustache.transform(xr)
    jac = torch.stack([torch.autograd.grad(out[:, i].sum(), xr, retain_graph=True)[0] for i in range(2)], 1)
    assert torch.allclose(torch.linalg.det(jac), torch.ones(50, dtype=torch.float64), atol=1e-12)
    assert not torch.allclose(jac, torch.eye(2, dtype=torch.float64).expand(50, 2, 2))  # really nonlinear


# ----------------------------------------------------------------------------- exact samplers


def _bin_chi2(
    t: T.Target, samples: torch.Tensor, box: tuple[float, float, float, float], nbins: int, sub: int
) -> tuple[float, int]:
    """Chi-square of 2-D histogram counts against the density integrated per bin (midpoint rule)."""
    a1, b1, a2, b2 = box
    n = samples.shape[0]
    h1, h2 = (b1 - a1) / (nbins * sub), (b2 - a2) / (nbins * sub)
    g1 = a1 + h1 * (torch.arange(nbins * sub, dtype=torch.float64) + 0.5)
    g2 = a2 + h2 * (torch.arange(nbins * sub, dtype=torch.float64) + 0.5)
    pts = torch.stack(torch.meshgrid(g1, g2, indexing="ij"), -1).reshape(-1, 2)
    dens = t.log_prob(pts).exp().reshape(nbins, sub, nbins, sub).sum((1, 3)) * h1 * h2
    expected = (n * dens).reshape(-1)
    s = samples.double()
    inside = (s[:, 0] >= a1) & (s[:, 0] < b1) & (s[:, 1] >= a2) & (s[:, 1] < b2)
    i1 = ((s[inside, 0] - a1) / (b1 - a1) * nbins).long().clamp(max=nbins - 1)
    i2 = ((s[inside, 1] - a2) / (b2 - a2) * nbins).long().clamp(max=nbins - 1)
    observed = torch.bincount(i1 * nbins + i2, minlength=nbins * nbins).double()
    big = expected >= 5
    # all small bins and everything outside the box are pooled into one cell
    rest_e = n - float(expected[big].sum())
    rest_o = n - float(observed[big].sum())
    chi2 = float(((observed[big] - expected[big]) ** 2 / expected[big]).sum()) + (rest_o - rest_e) ** 2 / rest_e
    return chi2, int(big.sum())  # degrees of freedom: (big bins + 1 pooled) - 1


@pytest.mark.parametrize(
    "name, box",
    [("mustache", (-3.0, 3.0, -3.0, 12.0)), ("8modes", (-2.5, 0.5, -1.5, 1.5)), ("8peaky", (-2.5, 0.5, -1.5, 1.5))],
)
def test_two_d_sampler_matches_density(name: str, box: tuple[float, float, float, float]) -> None:
    t = T.get(name)
    x = t.sample(100_000, generator=_gen(3))
    chi2, df = _bin_chi2(t, x, box, nbins=30, sub=8)
    assert df > 50
    assert chi2 < df + 5 * math.sqrt(2 * df), (chi2, df)


def test_chi2_check_detects_a_wrong_sampler() -> None:
    # the same check must fail for a sampler of a slightly different distribution
    t, wrong = T.get("8modes"), T.get("8peaky")
    chi2, df = _bin_chi2(t, wrong.sample(100_000, generator=_gen(3)), (-2.5, 0.5, -1.5, 1.5), 30, 8)
    assert chi2 > df + 5 * math.sqrt(2 * df)


def test_funnel_sampler_moments() -> None:
    n = 200_000
    x = T.get("funnel").sample(n, generator=_gen(4), dtype=torch.float64)
    v = x[:, 0]
    assert abs(float(v.mean())) < 5 * 3 / math.sqrt(n)
    assert abs(float(v.var()) - 9.0) < 5 * 9 * math.sqrt(2 / n)
    u = x[:, 1:] * torch.exp(-v / 2)[:, None]  # should be iid N(0, 1), independent of x1
    for part in (u, u[v < -2], u[v > 2]):
        m = part.numel()
        assert abs(float(part.mean())) < 5 / math.sqrt(m)
        assert abs(float(part.var()) - 1.0) < 5 * math.sqrt(2 / m)


@requires_data
@pytest.mark.parametrize("name, kwargs, n", [("gmm", {"dim": 20, "means_id": 4}, 50_000), ("gmm40", {}, 40_000)])
def test_mixture_sampler_weights_and_covariances(name: str, kwargs: dict, n: int) -> None:
    t = T.get(name, **kwargs)
    x = t.sample(n, generator=_gen(5), dtype=torch.float64)
    assign = torch.cdist(x, t.means).argmin(1)
    k = t.means.shape[0]
    freq = torch.bincount(assign, minlength=k).double() / n
    se = math.sqrt((1 / k) * (1 - 1 / k) / n)
    assert float((freq - 1 / k).abs().max()) < 5 * se
    for j in (0, k - 1):
        r = x[assign == j] - t.means[j]
        cov = r.T @ r / r.shape[0]  # known mean
        tol = 6 * t.variance * math.sqrt(2 / r.shape[0])
        assert float((cov - t.variance * torch.eye(t.dim, dtype=torch.float64)).abs().max()) < tol


def test_sampler_generator_reproducible_and_output_types() -> None:
    t = T.get("8modes")
    a, b = t.sample(10, generator=_gen(7)), t.sample(10, generator=_gen(7))
    assert torch.equal(a, b) and a.dtype == torch.float32 and a.device.type == "cpu" and a.shape == (10, 2)
    assert t.sample(0).shape == (0, 2)


# ----------------------------------------------------------------------------- device / dtype


@requires_data
@pytest.mark.parametrize("name", NORMALISED + ["lgcp"])
def test_log_prob_device_dtype(name: str, device: torch.device, dtype: torch.dtype) -> None:
    t = T.get(name)
    if name == "lgcp":
        x64 = t.mu + 0.3 * torch.randn(4, t.dim, dtype=torch.float64)
    else:
        x64 = t.sample(64, generator=_gen(8), dtype=torch.float64)
    ref = t.log_prob(x64)
    x = x64.to(device=device, dtype=dtype).requires_grad_(True)
    out = t.log_prob(x)
    assert out.shape == (x.shape[0],) and out.dtype == dtype and out.device.type == device.type
    rtol = 1e-12 if dtype == torch.float64 else 2e-5
    assert torch.allclose(out.detach().cpu().double(), ref, rtol=rtol, atol=rtol * 10)
    (grad,) = torch.autograd.grad(out.sum(), x)
    assert torch.isfinite(grad).all()
    if name != "lgcp":
        s = t.sample(5, device=device, dtype=dtype)
        assert s.dtype == dtype and s.device.type == device.type and s.shape == (5, t.dim)


# ----------------------------------------------------------------------------- LGCP


@requires_data
def test_lgcp_counts_and_prior_covariance() -> None:
    t = T.get("lgcp")
    y = t.counts
    assert y.shape == (1600,) and float(y.sum()) == 127.0
    # recount independently: cell = floor(40 p) clamped to 39, x gives the row, row-major
    ref = torch.zeros(40, 40, dtype=torch.float64)
    for px, py in jdata.load_csv("pines.csv").tolist():
        ref[min(int(math.floor(40 * px)), 39), min(int(math.floor(40 * py)), 39)] += 1
    assert torch.equal(y, ref.reshape(-1))
    assert float(y.max()) >= 2  # the duplicated first point is kept
    k = t.covariance
    assert k.shape == (1600, 1600) and torch.equal(k, k.T)
    assert int(torch.linalg.cholesky_ex(k).info) == 0  # positive definite
    c = 40 / 33
    assert math.isclose(float(k[0, 0]), 1.91)
    assert math.isclose(float(k[0, 1]), 1.91 * math.exp(-1 / c), rel_tol=1e-12)  # neighbour in a row
    assert math.isclose(float(k[0, 40]), 1.91 * math.exp(-1 / c), rel_tol=1e-12)  # neighbour in a column
    assert math.isclose(float(k[0, 41]), 1.91 * math.exp(-math.sqrt(2) / c), rel_tol=1e-12)
    assert math.isclose(float(k[45, 1599]), 1.91 * math.exp(-math.hypot(39 - 1, 39 - 5) / c), rel_tol=1e-12)


@requires_data
def test_lgcp_log_prob_matches_dense_formula() -> None:
    t = T.get("lgcp")
    mu = math.log(126.0) - 1.91 / 2
    x = mu + torch.randn(3, 1600, dtype=torch.float64)
    x[0] = mu  # prior mean
    prior = D.MultivariateNormal(torch.full((1600,), mu, dtype=torch.float64), covariance_matrix=t.covariance)
    ref = prior.log_prob(x) + (x * t.counts - torch.exp(x) / 1600).sum(-1)
    assert torch.allclose(t.log_prob(x), ref, rtol=1e-10, atol=1e-8)
    assert t.log_z is None
    with pytest.raises(NotImplementedError, match="'lgcp' has no exact sampler"):
        t.sample(3)


# ----------------------------------------------------------------------------- user targets


def test_as_target_variants() -> None:
    t = T.get("mustache")
    assert T.as_target(t) is t
    with pytest.raises(ValueError, match="has dim=2, but dim=3 was requested"):
        T.as_target(t, dim=3)
    assert T.as_target("funnel", dim=4).dim == 4

    def my_density(x: torch.Tensor) -> torch.Tensor:
        return -0.5 * (x**2).sum(-1)

    c = T.as_target(my_density, dim=3)
    assert isinstance(c, T.CallableTarget) and c.dim == 3 and c.name == "my_density" and c.log_z is None
    assert torch.allclose(c.log_prob(torch.ones(2, 3)), torch.full((2,), -1.5))
    my_density.dim = 5  # type: ignore[attr-defined]
    assert T.as_target(my_density).dim == 5
    assert T.as_target(lambda x: x.sum(-1), dim=2).name == "custom"
    with pytest.raises(TypeError, match="needs a dimension: pass dim="):
        T.as_target(lambda x: x.sum(-1))
    with pytest.raises(TypeError, match="cannot make a target from int"):
        T.as_target(3)
    with pytest.raises(NotImplementedError, match="'custom' is a user-given log density.*no exact sampler"):
        T.CallableTarget(lambda x: x.sum(-1), dim=2).sample(4)


def test_as_target_duck_typed_object() -> None:
    class Gauss:
        dim = 2
        log_z = 0.0

        def log_prob(self, x: torch.Tensor) -> torch.Tensor:
            return D.Normal(0.0, 1.0).log_prob(x).sum(-1)

        def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
            return torch.randn(n, 2, generator=generator)

    t = T.as_target(Gauss())
    assert t.name == "Gauss" and t.dim == 2 and t.log_z == 0.0
    assert t.sample(6, generator=_gen(0), dtype=torch.float64).shape == (6, 2)
    with pytest.raises(ValueError, match=r"log_prob expects x of shape \(n, 2\)"):
        t.log_prob(torch.zeros(3, 4))


def test_check_log_prob_accepts_good_output() -> None:
    t = T.get("8modes")
    x = torch.randn(5, 2)
    assert torch.equal(T.check_log_prob(t, x), t.log_prob(x))
    assert T.check_log_prob(lambda z: -(z**2).sum(-1), x).shape == (5,)


def test_check_log_prob_reports_non_finite_values() -> None:
    def bad(x: torch.Tensor) -> torch.Tensor:
        out = -(x**2).sum(-1)
        out[1] = float("nan")
        out[3] = float("inf")
        out[4] = -float("inf")
        return out

    t = T.CallableTarget(bad, dim=2, name="bad")
    x = torch.arange(10.0).reshape(5, 2)
    with pytest.raises(
        ValueError,
        match=r"log_prob of target 'bad' returned non-finite values at 3 of 5 points "
        r"\(1 NaN, 1 \+inf, 1 -inf\); e\.g\. log_prob\(x\[1\]\) = nan "
        r"at x\[1\] = \[2, 3\]",
    ):
        T.check_log_prob(t, x)


def test_check_log_prob_reports_wrong_output_shape_and_type() -> None:
    x = torch.zeros(5, 2)
    with pytest.raises(ValueError, match=r"'wide' returned shape \(5, 1\), expected \(5,\) .*shape \(5, 2\)"):
        T.check_log_prob(T.CallableTarget(lambda z: z[:, :1], dim=2, name="wide"), x)
    with pytest.raises(ValueError, match=r"must return a torch.Tensor of shape \(5,\), got list"):
        T.check_log_prob(T.CallableTarget(lambda z: [0.0] * 5, dim=2), x)
    with pytest.raises(ValueError, match=r"expected a floating point tensor"):
        T.check_log_prob(T.CallableTarget(lambda z: torch.zeros(5, dtype=torch.long), dim=2), x)


# ----------------------------------------------------------------------------- missing / corrupt data


def test_missing_data_file_is_a_clear_error(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(jdata.ENV_VAR, str(tmp_path))
    with pytest.raises(
        FileNotFoundError,
        match=r"'gmm40_50d_means\.csv' not found in \$JKOIC_DATA_DIR .*"
        r"make data.*JKOIC_DATA_DIR",
    ):
        T.get("gmm40")
    with pytest.raises(FileNotFoundError, match=r"'pines\.csv' not found"):
        T.get("lgcp")
    with pytest.raises(FileNotFoundError, match=r"gmm_means/gmm10_means_id2_20\.csv"):
        T.get("gmm", dim=20, means_id=2)


def test_corrupt_data_file_is_a_clear_error(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(jdata.ENV_VAR, str(tmp_path))
    (tmp_path / "pines.csv").write_text("0.1,0.2\n0.3,abc\n")
    with pytest.raises(ValueError, match=r"corrupt CSV file .*pines\.csv.*line 2 is not numeric"):
        T.get("lgcp")
    (tmp_path / "gmm40_50d_means.csv").write_text("\n".join(",".join(["1.0"] * 49) for _ in range(40)) + "\n")
    with pytest.raises(ValueError, match=r"gmm40_50d_means\.csv.*expected shape \(40, 50\), got \(40, 49\)"):
        T.get("gmm40")
