"""Importance-based rejection step: bisection, Theorem 4.2, KL decrease."""

from __future__ import annotations

import math

import pytest
import torch

from jkoic.rejection import RejectionParams, fit_rejection, log_alpha, log_density_factor

GRID = torch.linspace(-16, 16, 80001, dtype=torch.float64)
DX = float(GRID[1] - GRID[0])


def _log_normal(x, m, s):
    return -0.5 * ((x - m) / s) ** 2 - math.log(s) - 0.5 * math.log(2 * math.pi)


def _log_g(x):  # unnormalised bimodal target, Z = 3
    return math.log(3.0) + torch.logaddexp(_log_normal(x, -2, 0.5), _log_normal(x, 1.5, 0.7)) - math.log(2)


def _log_p(x):  # proposal N(0.5, 1.5^2)
    return _log_normal(x, 0.5, 1.5)


@pytest.mark.parametrize("rate", [0.05, 0.2, 0.5, 0.9])
def test_bisection_hits_requested_rate(rate):
    torch.manual_seed(1)
    lw = torch.randn(10000, dtype=torch.float64) * 3
    params = fit_rejection(lw, torch.zeros_like(lw), rate)
    assert params.mean_alpha == pytest.approx(1 - rate, abs=1e-6)
    assert torch.exp(log_alpha(lw, torch.zeros_like(lw), params.log_c)).mean().item() == pytest.approx(
        1 - rate, abs=1e-6
    )


def _true_mean_alpha(log_c):
    la = log_alpha(_log_g(GRID), _log_p(GRID), log_c)
    return float((torch.exp(la + _log_p(GRID))).sum() * DX)


@pytest.mark.parametrize("log_c", [0.0, 0.8, 1.5])
def test_theorem_4_2_density_integrates_to_one(log_c):
    ea = _true_mean_alpha(log_c)
    la = log_alpha(_log_g(GRID), _log_p(GRID), log_c)
    p_new = torch.exp(_log_p(GRID) + log_density_factor(la, ea))
    assert float(p_new.sum() * DX) == pytest.approx(1.0, abs=1e-8)


def test_theorem_4_2_matches_histogram_of_resampled_points():
    gen = torch.Generator().manual_seed(0)
    n = 400_000
    x = 0.5 + 1.5 * torch.randn(n, generator=gen, dtype=torch.float64)
    x_new = 0.5 + 1.5 * torch.randn(n, generator=gen, dtype=torch.float64)
    params = fit_rejection(_log_g(x), _log_p(x), 0.2)
    la = log_alpha(_log_g(x), _log_p(x), params.log_c)
    keep = torch.rand(n, generator=gen, dtype=torch.float64) < torch.exp(la)
    y = torch.where(keep, x, x_new)  # one resample from the model, no second test
    ea = _true_mean_alpha(params.log_c)
    assert params.mean_alpha == pytest.approx(ea, abs=4e-3)  # Corollary 4.3 scale 1/sqrt(N)
    edges = torch.linspace(-5, 5, 41, dtype=torch.float64)
    counts = torch.histc(y, bins=40, min=-5, max=5)
    fine = torch.linspace(-5, 5, 40 * 200 + 1, dtype=torch.float64)
    la_f = log_alpha(_log_g(fine), _log_p(fine), params.log_c)
    dens = torch.exp(_log_p(fine) + log_density_factor(la_f, ea))
    probs = torch.stack(
        [torch.trapezoid(dens[i * 200 : (i + 1) * 200 + 1], fine[i * 200 : (i + 1) * 200 + 1]) for i in range(40)]
    )
    expected = n * probs
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 40 + 5 * math.sqrt(80)  # chi-square with ~40 dof
    # and the step actually changed the distribution: the old density fails the same test
    old = torch.stack(
        [
            torch.trapezoid(torch.exp(_log_p(fine))[i * 200 : (i + 1) * 200 + 1], fine[i * 200 : (i + 1) * 200 + 1])
            for i in range(40)
        ]
    )
    assert float(((counts - n * old) ** 2 / (n * old)).sum()) > 10 * chi2
    assert edges.numel() == 41


@pytest.mark.parametrize("log_c", [-1.0, 0.0, 0.8, 1.5, 3.0])
def test_kl_does_not_increase(log_c):
    log_q = _log_g(GRID) - math.log(3.0)
    lp = _log_p(GRID)
    ea = _true_mean_alpha(log_c)
    lp_new = lp + log_density_factor(log_alpha(_log_g(GRID), lp, log_c), ea)
    kl_old = float((torch.exp(lp) * (lp - log_q)).sum() * DX)
    kl_new = float((torch.exp(lp_new) * (lp_new - log_q)).sum() * DX)
    assert kl_new <= kl_old + 1e-12


def test_bad_input():
    with pytest.raises(ValueError, match="rejection rate"):
        fit_rejection(torch.zeros(3), torch.zeros(3), 1.5)
    with pytest.raises(ValueError, match="non-finite"):
        fit_rejection(torch.tensor([0.0, float("nan")]), torch.zeros(2), 0.2)
    with pytest.raises(ValueError, match="shapes"):
        fit_rejection(torch.zeros(3), torch.zeros(4), 0.2)
    with pytest.raises(ValueError, match="mean_alpha"):
        RejectionParams(0.0, 0.0)


@pytest.mark.parametrize("log_c", [0.0, 0.8, 1.5])
def test_density_factor_is_at_most_one_plus_rate(log_c):
    """p_new / p = alpha + 1 - E[alpha] lies in [r, 1 + r] with r = 1 - E[alpha]; the top where g >= c p.

    So one rejection step can raise the density of a region the model lacks by at most 1 + r.
    """
    ea = _true_mean_alpha(log_c)
    la = log_alpha(_log_g(GRID), _log_p(GRID), log_c)
    factor = torch.exp(log_density_factor(la, ea))
    r = 1.0 - ea
    assert float(factor.max()) <= 1.0 + r + 1e-12
    assert float(factor.min()) >= r - 1e-12
    full = _log_g(GRID) >= log_c + _log_p(GRID)  # accepted for sure
    assert bool(full.any()) and bool((~full).any())
    assert torch.allclose(factor[full], torch.full_like(factor[full], 1.0 + r))
    assert bool((factor[~full] < 1.0 + r).all())
