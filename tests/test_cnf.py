"""CNF facts: divergence, log-det, invertibility, Hutchinson unbiasedness."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from jkoic.cnf import MLPVelocity, integrate, integrate_adaptive, make_probes


def _random_field(dim: int, hidden: int = 16, seed: int = 0, dtype=torch.float64, n_hidden: int = 3) -> MLPVelocity:
    torch.manual_seed(seed)
    f = MLPVelocity(dim, hidden, n_hidden).to(dtype)
    nn.init.normal_(f.out.weight, std=0.3)
    nn.init.normal_(f.out.bias, std=0.1)
    return f


class LinearField(nn.Module):
    """v(z, t) = A z with a known flow map expm(A) and divergence trace(A)."""

    def __init__(self, a: torch.Tensor) -> None:
        super().__init__()
        self.a = a

    def velocity_and_divergence(self, t, z, probes):
        v = z @ self.a.T
        if probes is None:
            div = torch.full((z.shape[0],), float(torch.trace(self.a)), dtype=z.dtype)
        else:
            div = ((probes @ self.a.T) * probes).sum(-1).mean(-1)
        return v, div


@pytest.mark.parametrize("hidden", [16, 13], ids=["width16", "width13_padded"])
@pytest.mark.parametrize("n_hidden", [1, 2, 3, 4])
@pytest.mark.parametrize("grad", [True, False], ids=["autograd", "no_grad"])
@pytest.mark.parametrize("dim", [1, 2, 3, 7])
def test_exact_divergence_matches_autograd_jacobian(dim, grad, n_hidden, hidden):
    # both kernels: the autograd one (training) and the in-place one (sampling, no_grad, where
    # the tangents meet in the middle and a width of 13 is zero-padded to 16)
    f = _random_field(dim, hidden=hidden, n_hidden=n_hidden)
    z = torch.randn(5, dim, dtype=torch.float64)
    for t in (0.0, 0.37, 1.0):
        with torch.set_grad_enabled(grad):
            v, div = f.velocity_and_divergence(t, z, None)
        assert torch.allclose(v, f(t, z))
        for i in range(5):
            jac = torch.autograd.functional.jacobian(lambda y, t=t: f(t, y[None])[0], z[i])
            assert div[i].item() == pytest.approx(torch.trace(jac).item(), abs=1e-10)


def test_hutchinson_is_unbiased():
    dim = 6
    f = _random_field(dim, seed=1)
    z = torch.randn(3, dim, dtype=torch.float64).repeat_interleave(20000, 0)
    g = torch.Generator().manual_seed(0)
    probes = make_probes(z.shape[0], dim, "hutchinson", 1, g, z.device, z.dtype)
    assert set(probes.unique().tolist()) == {-1.0, 1.0}
    _, est = f.velocity_and_divergence(0.5, z, probes)
    _, exact = f.velocity_and_divergence(0.5, z, None)
    est, exact = est.view(3, -1), exact.view(3, -1)[:, 0]
    se = est.std(1) / math.sqrt(est.shape[1])
    assert ((est.mean(1) - exact).abs() < 4 * se).all()
    assert (est.std(1) > 0).all()  # genuinely random, not the exact trace


def test_zero_initialised_field_is_identity():
    f = MLPVelocity(3, 20).double()
    x = torch.randn(10, 3, dtype=torch.float64)
    z, ld, kin = integrate(f, x, n_steps=4, kinetic=True)
    assert torch.equal(z, x)
    assert torch.all(ld == 0) and torch.all(kin == 0)


def test_linear_field_flow_map_and_logdet():
    a = torch.tensor([[0.3, -1.0], [0.8, -0.2]], dtype=torch.float64)
    x = torch.randn(7, 2, dtype=torch.float64)
    z, ld, _ = integrate(LinearField(a), x, n_steps=40)
    assert torch.allclose(z, x @ torch.linalg.matrix_exp(a).T, atol=1e-9)
    assert torch.allclose(ld, torch.full_like(ld, float(torch.trace(a))), atol=1e-12)


@pytest.mark.parametrize("dim", [2, 4])
def test_logdet_matches_jacobian_of_flow_map(dim):
    f = _random_field(dim, seed=2)
    x = torch.randn(4, dim, dtype=torch.float64)
    _, ld, _ = integrate(f, x, n_steps=60)
    for i in range(4):
        jac = torch.autograd.functional.jacobian(lambda y: integrate(f, y[None], n_steps=60)[0][0], x[i])
        assert ld[i].item() == pytest.approx(torch.linalg.slogdet(jac)[1].item(), abs=1e-7)


def test_inverse_of_forward_is_identity():
    f = _random_field(3, seed=3)
    x = torch.randn(50, 3, dtype=torch.float64)
    z, ld, _ = integrate(f, x, n_steps=50)
    x_back, ld_back, _ = integrate(f, z, n_steps=50, reverse=True)
    assert torch.allclose(x_back, x, atol=1e-8)
    assert torch.allclose(ld_back, -ld, atol=1e-8)


def test_kinetic_energy_of_linear_field():
    # for v = a z with scalar a: |z(t)|^2 = e^{2at}|x|^2, int_0^1 a^2 |z|^2 dt = a (e^{2a}-1)/2 |x|^2
    a = 0.7
    x = torch.randn(5, 2, dtype=torch.float64)
    _, _, kin = integrate(LinearField(a * torch.eye(2, dtype=torch.float64)), x, n_steps=50, kinetic=True)
    expected = a * (math.exp(2 * a) - 1) / 2 * x.square().sum(-1)
    assert torch.allclose(kin, expected, rtol=1e-8)


def test_adaptive_solver_converges_to_fixed_step_solution(device):
    f = _random_field(2, seed=4).to(device)
    x = torch.randn(20, 2, dtype=torch.float64, device=device)
    z2, ld2, kin2 = integrate(f, x, n_steps=200, kinetic=True)
    errs = []
    for tol in (1e-6, 1e-8):
        z1, ld1, kin1, nfe = integrate_adaptive(f, x, atol=tol, rtol=tol, adjoint=False)
        assert nfe > 0
        errs.append(max(float((z1 - z2).abs().max()), float((ld1 - ld2).abs().max()), float((kin1 - kin2).abs().max())))
    # the error control acts on the RMS of the whole state, so log-det errors run ~100 x tol
    assert errs[1] < 1e-5
    assert errs[1] < errs[0] / 10


def test_adjoint_gradients_match_fine_fixed_step_backprop():
    f = _random_field(2, seed=5)
    x = torch.randn(16, 2, dtype=torch.float64)

    def grads(run):
        f.zero_grad()
        z, ld, kin = run()
        (z.square().sum() + ld.sum() + kin.sum()).backward()
        return torch.cat([p.grad.flatten() for p in f.parameters()])

    g_adj = grads(lambda: integrate_adaptive(f, x, atol=1e-8, rtol=1e-8, adjoint=True)[:3])
    g_fine = grads(lambda: integrate(f, x, n_steps=200, kinetic=True))
    assert g_fine.abs().max() > 1.0  # a non-trivial gradient
    assert torch.allclose(g_adj, g_fine, atol=1e-5 * float(g_fine.abs().max()))


def test_bad_arguments():
    f = MLPVelocity(2, 4)
    with pytest.raises(ValueError, match="n_steps"):
        integrate(f, torch.zeros(1, 2), n_steps=0)
    with pytest.raises(ValueError, match="trace must be"):
        make_probes(1, 2, "bogus", 1, None, torch.device("cpu"), torch.float32)
    with pytest.raises(ValueError, match="positive"):
        MLPVelocity(0, 4)


@pytest.mark.parametrize("trace", ["exact", "hutchinson"])
def test_gradient_flow_velocity_divergence_is_laplacian(trace):
    from jkoic.cnf import GradientFlowVelocity

    a = torch.tensor([[2.0, 0.5, 0.0], [0.5, 1.0, 0.3], [0.0, 0.3, 1.5]], dtype=torch.float64)
    field = GradientFlowVelocity(lambda x: -0.5 * ((x @ a) * x).sum(-1), time=3.0)
    z = torch.randn(4000, 3, dtype=torch.float64)
    probes = make_probes(4000, 3, trace, 1, torch.Generator().manual_seed(0), z.device, z.dtype)
    v, div = field.velocity_and_divergence(0.0, z, probes)
    assert torch.allclose(v, -3.0 * z @ a)  # time * grad log g
    expected = -3.0 * float(torch.trace(a))
    if trace == "exact":
        assert torch.allclose(div, torch.full_like(div, expected))
    else:
        assert abs(div.mean().item() - expected) < 4 * div.std().item() / math.sqrt(4000)


@pytest.mark.parametrize("inplace", [True, False])
def test_elu_and_slope_match_elu_and_its_derivative(inplace):
    from jkoic.cnf import _elu_and_slope

    a = torch.linspace(-30.0, 5.0, 2001, dtype=torch.float64).requires_grad_(True)
    ref = torch.nn.functional.elu(a)
    (deriv,) = torch.autograd.grad(ref.sum(), a)
    with torch.set_grad_enabled(not inplace):
        h, s = _elu_and_slope(a.detach().clone(), inplace)
    assert torch.allclose(h, ref.detach(), atol=1e-15, rtol=0)
    assert torch.allclose(s, deriv, atol=1e-15, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_elu2_and_slope_is_elu_in_base_2_units(dtype):
    # for a2 = log2(e) a: returns log2(e) (elu(a) + 1) in place and writes elu'(a) to the slope buffer
    from jkoic.cnf import _LOG2E, _elu2_and_slope_

    a = torch.linspace(-30.0, 5.0, 2001, dtype=torch.float64).requires_grad_(True)
    ref = torch.nn.functional.elu(a)
    (deriv,) = torch.autograd.grad(ref.sum(), a)
    a2 = (a.detach() * _LOG2E).to(dtype)
    slope = torch.full_like(a2, float("nan"))
    out = _elu2_and_slope_(a2, slope)
    assert out.data_ptr() == a2.data_ptr()  # in place
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    assert torch.allclose(out.double(), _LOG2E * (ref.detach() + 1.0), atol=tol, rtol=tol)
    assert torch.allclose(slope.double(), deriv, atol=tol, rtol=tol)


def test_gradient_flow_closed_form_matches_autograd():
    # a GMM's closed-form score and Laplacian give the autograd velocity and exact divergence,
    # also far from every mode (where the naive E|d|^2 - |E d|^2 form cancels)
    from jkoic.bench.targets import GaussianMixture
    from jkoic.cnf import GradientFlowVelocity

    g = torch.Generator().manual_seed(3)
    tgt = GaussianMixture(
        "t",
        torch.randn(5, 4, generator=g, dtype=torch.float64) * 6,
        variance=0.7,
        weights=torch.tensor([0.1, 0.2, 0.3, 0.15, 0.25], dtype=torch.float64),
    )
    z = torch.cat(
        [
            torch.randn(20, 4, generator=g, dtype=torch.float64) * 5,
            torch.randn(3, 4, generator=g, dtype=torch.float64) * 60,
        ]
    )
    auto = GradientFlowVelocity(tgt.log_prob, time=2.5)
    closed = GradientFlowVelocity(tgt.log_prob, time=2.5, score_laplacian=tgt.score_and_laplacian)
    v_a, div_a = auto.velocity_and_divergence(0.0, z, None)
    v_c, div_c = closed.velocity_and_divergence(0.0, z, None)
    assert torch.allclose(v_c, v_a, rtol=1e-10, atol=1e-10)
    assert torch.allclose(div_c, div_a, rtol=1e-8, atol=1e-8)
    assert torch.allclose(closed(0.0, z), v_a, rtol=1e-10, atol=1e-10)
    # float32 input: float32 output, still accurate (computed in float64 inside)
    v32, div32 = closed.velocity_and_divergence(0.0, z.float(), None)
    assert v32.dtype == torch.float32 and torch.allclose(div32.double(), div_a, rtol=1e-4, atol=1e-4)


def test_nograd_scratch_is_shared_bounded_and_not_aliased():
    # the no-grad kernel's scratch is shared by fields of one shape (not one set per layer), the
    # cache keeps a bounded number of shapes, and returned values never alias the scratch
    from jkoic import cnf

    cnf._SCRATCH.clear()
    fields = [_random_field(2, seed=i) for i in range(6)]
    z = torch.randn(100, 2, dtype=torch.float64)
    with torch.no_grad():
        first = [f.velocity_and_divergence(0.3, z, None) for f in fields]
        assert len(cnf._SCRATCH) == 1
        for n in (10, 20, 30, 40, 50, 60):
            fields[0].velocity_and_divergence(0.3, z[:n], None)
        assert len(cnf._SCRATCH) <= cnf._SCRATCH_SLOTS
        again = [f.velocity_and_divergence(0.3, z, None) for f in fields]
    for (v, d), (v2, d2) in zip(first, again, strict=False):
        assert torch.equal(v, v2) and torch.equal(d, d2)


def test_nograd_padded_weights_follow_parameter_updates():
    # the no-grad kernel caches zero-padded weights: an optimizer step and load_state_dict
    # (both in place) must invalidate them, and the padding must not change the field
    f = _random_field(2, hidden=13, seed=7)
    z = torch.randn(50, 2, dtype=torch.float64)
    opt = torch.optim.SGD(f.parameters(), lr=0.1)
    for _ in range(2):
        with torch.no_grad():
            v, div = f.velocity_and_divergence(0.5, z, None)
        v_ref, div_ref = f.velocity_and_divergence(0.5, z, None)  # autograd kernel, unpadded
        assert torch.allclose(v, v_ref, atol=1e-12) and torch.allclose(div, div_ref, atol=1e-12)
        assert f._pad_cache[1]["w"][1].shape == (16, 16)
        opt.zero_grad()
        f(0.5, z).square().sum().backward()
        opt.step()
    other = _random_field(2, hidden=13, seed=8)
    f.load_state_dict(other.state_dict())
    with torch.no_grad():
        v, div = f.velocity_and_divergence(0.2, z, None)
        v_o, div_o = other.velocity_and_divergence(0.2, z, None)
    assert torch.allclose(v, v_o, atol=1e-12) and torch.allclose(div, div_o, atol=1e-12)
