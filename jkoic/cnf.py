"""Continuous normalizing flows for neural JKO steps.

A neural JKO step (Sec. 3.2 of the paper) is a CNF ``dz/dt = v(z, t)`` on the rescaled
time interval ``t in [0, 1]`` trained on

    E[-log g(z(1)) - int_0^1 div v dt] + (1 / tau) E[int_0^1 |v|^2 dt],

i.e. the reverse KL plus the kinetic energy, one Wasserstein proximal (JKO) step of
step size ``tau``. The log density of a pushed sample is ``log p_k(x) - int div v``.

This module holds the velocity fields, the fixed-step integrator used for sampling and
fast training, the adaptive (torchdiffeq) integrator used for the paper's training
protocol, and the exact / Hutchinson divergence.

References:
    J. Hertrich, R. Gruhlke. Importance Corrected Neural JKO Sampling. ICML 2025.
    Sec. 3.2, Alg. 3, 4, 6, App. E.5, F.2.
    R. T. Q. Chen et al. Neural ordinary differential equations. NeurIPS 2018.
    W. Grathwohl et al. FFJORD. ICLR 2019 (Hutchinson trace estimator in CNFs).
    D. Onken et al. OT-Flow. AAAI 2021 (kinetic regularisation).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "MLPVelocity",
    "GradientFlowVelocity",
    "integrate",
    "integrate_adaptive",
    "make_probes",
]


def make_probes(
    n: int,
    dim: int,
    trace: str,
    n_probes: int,
    generator: torch.Generator | None,
    device: torch.device,
    dtype: torch.dtype,
) -> Tensor | None:
    """Tangent vectors for the divergence.

    ``trace == "exact"`` returns ``None`` (the velocity field then uses the identity, i.e.
    the full Jacobian); ``"hutchinson"`` returns Rademacher vectors of shape
    ``(n, n_probes, dim)`` (Hutchinson 1989; the paper's App. F.2).
    """
    if trace == "exact":
        return None
    if trace != "hutchinson":
        raise ValueError(f"trace must be 'exact' or 'hutchinson', got {trace!r}")
    e = torch.randint(0, 2, (n, n_probes, dim), generator=generator, device=device)
    return e.to(dtype).mul_(2).sub_(1)


def _elu_and_slope(a: Tensor, inplace: bool) -> tuple[Tensor, Tensor]:
    """``(elu(a), elu'(a))``.

    Without autograd (``inplace``, overwrites ``a``):
    one exponential, ``s = exp(min(a, 0))`` is the slope and ``elu(a) = max(a, 0) + s - 1``.
    The exponential is taken as ``exp2(log2(e) * min(a, 0))``, which on CPU is ~1.9x faster
    than ``exp`` (1.5 vs 0.8 ns per float32 entry, AVX2) at one extra rounding; the whole is
    ~3x faster than ``F.elu`` (an ``expm1`` on every entry) followed by the slope. With
    autograd: ``F.elu`` and ``elu'(a) = 1 + min(elu(a), 0)``, whose backward is cheaper than
    that of the one-exponential form.
    """
    if inplace:
        s = a.clamp(max=0.0)
        s.mul_(_LOG2E).exp2_()
        return a.clamp_(min=0.0).add_(s).sub_(1.0), s
    h = F.elu(a)
    return h, h.clamp(max=0.0).add_(1.0)


_LOG2E = 1.0 / math.log(2.0)


def _elu2_and_slope_(a2: Tensor, out_slope: Tensor) -> Tensor:
    """ELU in base-2 units, in place: for ``a2 = log2(e) a`` returns ``log2(e) (elu(a) + 1)``.

    Writes the slope ``elu'(a) = exp(min(a, 0)) = exp2(min(a2, 0))`` to ``out_slope``. Four
    passes over the entries instead of the six of ``_elu_and_slope``: the factor log2(e)
    and the ``- 1`` are folded into the weights and biases of the layers around it (see
    ``MLPVelocity._padded``); the slope is the one of the unscaled network.
    """
    s = torch.clamp(a2, max=0.0, out=out_slope).exp2_()
    return a2.clamp_(min=0.0).add_(s, alpha=_LOG2E)


#: scratch of the no-grad exact-divergence kernel, shared by all fields (see ``_workspace``)
_SCRATCH: dict[tuple, dict[str, Tensor]] = {}
_SCRATCH_SLOTS = 4
#: float32 lanes of an AVX2 register: the no-grad kernel pads the hidden width to a multiple
_LANES = 8


class MLPVelocity(nn.Module):
    """Dense ELU network ``v(z, t)`` with the time appended to the input of every layer.

    The last layer is zero-initialised so that every neural JKO step starts as the
    identity map (App. F.2, "Initialization"). ``velocity_and_divergence`` propagates
    tangent vectors through the network in forward mode, which gives the exact
    divergence (identity tangents) or a Hutchinson estimate (Rademacher tangents) in one
    pass that is differentiable with ordinary backprop (no double backward).

    Args:
        dim: dimension d of the state.
        hidden: width of each hidden layer (the paper's Table 6; default there 2d + 50).
        n_hidden: number of hidden layers (3 in the paper).
    """

    def __init__(self, dim: int, hidden: int, n_hidden: int = 3) -> None:
        super().__init__()
        if dim < 1 or hidden < 1 or n_hidden < 1:
            raise ValueError(f"dim, hidden and n_hidden must be positive, got {dim}, {hidden}, {n_hidden}")
        self.dim = dim
        widths = [dim] + [hidden] * n_hidden
        self.hidden_layers = nn.ModuleList(nn.Linear(w + 1, hidden) for w in widths[:-1])
        self.out = nn.Linear(hidden + 1, dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    @staticmethod
    def _affine(layer: nn.Linear, h: Tensor, t: float | Tensor) -> tuple[Tensor, Tensor]:
        """``layer(cat([h, t]))`` without the concatenation; returns (output, W_h).

        The no-grad kernel folds the time column into the bias the same way, on its
        zero-padded copies of the weights (``_padded``).
        """
        w = layer.weight
        w_h = w[:, :-1]
        bias = layer.bias + w[:, -1] * t
        return F.linear(h, w_h, bias), w_h

    def forward(self, t: float | Tensor, z: Tensor) -> Tensor:
        h = z
        for layer in self.hidden_layers:
            a, _ = self._affine(layer, h, t)
            h = F.elu(a)
        v, _ = self._affine(self.out, h, t)
        return v

    def velocity_and_divergence(self, t: float | Tensor, z: Tensor, probes: Tensor | None) -> tuple[Tensor, Tensor]:
        """Velocity ``v(z, t)`` and its divergence (exact if ``probes is None``).

        Args:
            t: time in [0, 1].
            z: states of shape (n, d).
            probes: ``None`` for the exact trace, else (n, k, d) Hutchinson vectors.
        Returns:
            ``(v, div)`` with shapes (n, d) and (n,).
        """
        inplace = not torch.is_grad_enabled()
        if probes is None and inplace and len(self.hidden_layers) > 1:
            return self._velocity_and_exact_divergence_nograd(t, z)
        # One (n, hidden) tangent per direction, each pushed by a plain 2-D matmul: on CPU this
        # is ~1.8x faster than one batched (n, k, hidden) tangent tensor (benchmarks/README.md).
        h = z
        tangents: list[Tensor] = []
        k = z.shape[1] if probes is None else probes.shape[1]
        for i, layer in enumerate(self.hidden_layers):
            a, w_h = self._affine(layer, h, t)
            h, slope = _elu_and_slope(a, inplace)
            if i == 0 and probes is None:
                tangents = [slope * w_h[:, j] for j in range(k)]
            elif i == 0:
                tangents = [slope * (probes[:, j, :] @ w_h.t()) for j in range(k)]
            elif inplace:
                tangents = [(tj @ w_h.t()).mul_(slope) for tj in tangents]
            else:
                tangents = [(tj @ w_h.t()) * slope for tj in tangents]
        v, w_o = self._affine(self.out, h, t)
        if probes is None:
            # component j of J e_j, summed: the trace
            div = sum(tj @ w_o[j] for j, tj in enumerate(tangents))
        else:
            div = sum(((tj @ w_o.t()) * probes[:, j, :]).sum(-1) for j, tj in enumerate(tangents)) / k
        return v, div

    def _workspace(self, n: int, width: int, like: Tensor) -> dict[str, Tensor]:
        """Scratch tensors of the no-grad kernel, shared by every field of the same shape.

        Reusing them avoids a fresh multi-megabyte allocation per layer and call, which glibc
        serves from ``mmap`` and pays for with page faults (a third of the kernel's time on
        one CPU thread). The cache is module-wide and keeps the last ``_SCRATCH_SLOTS``
        shapes, so a model's many CNF layers share one set (memory bounded by the shapes,
        not by the layers); keyed by thread so that concurrent callers do not share scratch.
        """
        k, n_layers = self.dim, len(self.hidden_layers)
        key = (n, width, k, n_layers, like.dtype, like.device, threading.get_ident())
        ws = _SCRATCH.pop(key, None)
        if ws is None:
            while len(_SCRATCH) >= _SCRATCH_SLOTS:
                _SCRATCH.pop(next(iter(_SCRATCH)))
            new = lambda *shape: torch.empty(*shape, dtype=like.dtype, device=like.device)  # noqa: E731
            ws = {
                "act": new(2, n, width),
                "slope": new(n_layers, n, width),
                "fwd": new(n, k * width),
                "bwd": new(n, k * width),
            }
        _SCRATCH[key] = ws  # most recently used last
        return ws

    def _padded(self) -> dict[str, list[Tensor]]:
        """The weights of the no-grad kernel, hidden width zero-padded to a multiple of 8.

        A padded unit has zero weights and bias, so its activation is ``elu(0) = 0``, and zero
        outgoing weights, so it adds exact zeros: the field and its divergence are unchanged
        (up to float rounding in the reductions). The point is speed: on CPU a float32 GEMM
        whose output width is not a multiple of the 8 AVX2 lanes runs far slower, e.g.
        (8192, 54) x (54, 54) 0.92-1.04 ms against 0.75-0.78 ms for (54, 56)
        (``benchmarks/README.md``). Cached until a parameter changes (``_version`` counts
        in-place updates such as optimizer steps and ``load_state_dict``).
        """
        key = tuple((p.data_ptr(), p._version, p.dtype, p.device) for p in self.parameters())
        cached = getattr(self, "_pad_cache", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        hidden = self.out.in_features - 1
        width = -(-hidden // _LANES) * _LANES
        like = self.out.weight

        def pad(m: Tensor, rows: int, cols: int) -> Tensor:
            out = torch.zeros(rows, cols, dtype=like.dtype, device=like.device)
            out[: m.shape[0], : m.shape[1]] = m
            return out

        with torch.no_grad():
            w, b, wt = [], [], []
            for i, layer in enumerate(self.hidden_layers):
                cols = self.dim if i == 0 else width
                w.append(pad(layer.weight[:, :-1], width, cols))
                b.append(pad(layer.bias[:, None], width, 1)[:, 0])
                wt.append(pad(layer.weight[:, -1:], width, 1)[:, 0])
            w_o = pad(self.out.weight[:, :-1], self.dim, width)
            b_o, wt_o = self.out.bias.detach(), self.out.weight[:, -1].detach()
            k = self.dim
            # S_1 @ (W_1[:, j] * W_2^T) for all j (forward tangents at layer 2's pre-activation)
            fold_in = (w[0].t()[:, :, None] * w[1].t()[None]).permute(1, 0, 2).reshape(width, k * width).contiguous()
            # S_L @ (W_o[j] * W_L) for all j (output cotangents at h_{L-1})
            fold_out = (w_o[:, :, None] * w[-1][None]).permute(1, 0, 2).reshape(width, k * width).contiguous()
            # the forward pass in base-2 units (`_elu2_and_slope_`): pre-activations a2 = log2(e) a
            # and hidden states u = log2(e) (h + 1). Only the first layer's weights and the output
            # weights change; the biases absorb the "+ 1": W h = W u / log2(e) - W 1.
            w2 = [w[0] * _LOG2E] + w[1:]
            b2 = (
                [b[0] * _LOG2E]
                + [(b_i - w_i.sum(1)) * _LOG2E for w_i, b_i in zip(w[1:], b[1:], strict=False)]
                + [b_o - w_o.sum(1)]
            )
            wt2 = [wt_i * _LOG2E for wt_i in wt] + [wt_o]
        out = {
            "w": w,
            "w_o": w_o,
            "fold": [fold_in, fold_out],
            "w2": w2 + [w_o / _LOG2E],
            "b2": b2,
            "wt2": wt2,
            "bias_at": {},
        }
        self._pad_cache = (key, out)
        return out

    @staticmethod
    def _biases_at(pw: dict, t: float | Tensor) -> list[Tensor]:
        """The base-2 kernel's bias of every layer at time ``t`` (the time column folded in).

        Cached per time: a fixed-step solver visits a handful of times, and the tiny ops that
        fold ``t`` in cost about as much as an elementwise pass over a chunk.
        """
        cache = pw["bias_at"]
        key = float(t) if not isinstance(t, Tensor) else None
        if key is not None and key in cache:
            return cache[key]
        biases = [b_i + wt_i * t for b_i, wt_i in zip(pw["b2"], pw["wt2"], strict=False)]
        if key is not None:
            if len(cache) >= 64:
                cache.clear()
            cache[key] = biases
        return biases

    def _velocity_and_exact_divergence_nograd(self, t: float | Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        """Velocity and exact divergence without autograd, for two or more hidden layers.

        With ``S_i`` the ELU slopes and ``W_i`` the weights (time column removed), the Jacobian
        is ``W_o S_L W_L ... S_2 W_2 S_1 W_1``. Its trace ``sum_j e_j^T J e_j`` is met in the
        middle: tangents of the input directions ``e_j`` forward to layer 2's pre-activation,
        ``S_1 @ (W_1[:, j] * W_2^T)`` (one matmul for all j), and cotangents of the outputs
        ``e_j`` backward to ``h_2``, ``S_L @ (W_o[j] * W_L)`` (one matmul for all j, then
        back through the layers between), contracted with ``S_2``. The flops are those of
        forward-mode tangents; the matmuls are fewer and wider and the slopes multiply once.
        The hidden width is zero-padded to a multiple of 8 (``_padded``), and the forward pass
        runs in base-2 units, which saves two elementwise passes per layer
        (``_elu2_and_slope_``).
        """
        n, k = z.shape
        pw = self._padded()
        weights = pw["w"]
        n_layers = len(weights)
        width = weights[0].shape[0]
        ws = self._workspace(n, width, z)
        act, slopes = ws["act"], ws["slope"]
        biases = self._biases_at(pw, t)
        h = z
        for i in range(n_layers):
            a = torch.addmm(biases[i], h, pw["w2"][i].t(), out=act[i % 2])
            h = _elu2_and_slope_(a, slopes[i])
        v = torch.addmm(biases[-1], h, pw["w2"][-1].t())
        w_o = pw["w_o"]
        fold_in, fold_out = pw["fold"]
        fwd = torch.mm(slopes[0], fold_in, out=ws["fwd"]).view(n, k, width)
        if n_layers == 2:
            # the cotangent of output j at layer 2's pre-activation is S_2 * W_o[j]
            prod = fwd.mul_(w_o[None])
        else:
            bwd = torch.mm(slopes[-1], fold_out, out=ws["bwd"]).view(n, k, width)
            for i in range(n_layers - 2, 1, -1):  # back to h_2 through layers L-1 .. 3
                bwd = (bwd * slopes[i][:, None]).view(n * k, width).mm(weights[i]).view(n, k, width)
            prod = fwd.mul_(bwd)
        div = prod.mul_(slopes[1][:, None]).view(n, k * width).sum(-1)
        return v, div


class GradientFlowVelocity(nn.Module):
    """Fixed velocity ``v(z, t) = grad log g(z)`` (gradient-flow initialisation, Rem. E.2).

    The layer has no parameters; it integrates over ``[0, time]`` (the paper's
    "gradient flow initialization", time 3 for GMM40-50D). Since the integrator works on
    ``[0, 1]``, the velocity is scaled by ``time``. The divergence is the Laplacian of
    ``log g``: in closed form where ``score_laplacian`` is given (then ``probes`` are not
    needed and ignored: the exact value), else by autograd, exactly (``probes is None``) or by
    Hutchinson with Hessian-vector products.

    Args:
        log_prob: ``log g``.
        time: the flow time T.
        score_laplacian: optional ``x -> (grad log g(x), Laplacian log g(x))``, e.g.
            :meth:`jkoic.targets.GaussianMixture.score_and_laplacian`.
    """

    def __init__(
        self,
        log_prob: Callable[[Tensor], Tensor],
        time: float,
        score_laplacian: Callable[[Tensor], tuple[Tensor, Tensor]] | None = None,
    ) -> None:
        super().__init__()
        self._log_prob = log_prob
        self._score_laplacian = score_laplacian
        self.time = float(time)

    def forward(self, t: float | Tensor, z: Tensor) -> Tensor:
        if self._score_laplacian is not None:
            return self.time * self._score_laplacian(z)[0]
        with torch.enable_grad():
            zz = z.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(self._log_prob(zz).sum(), zz)
        return self.time * g

    def velocity_and_divergence(self, t: float | Tensor, z: Tensor, probes: Tensor | None) -> tuple[Tensor, Tensor]:
        if self._score_laplacian is not None:
            g, lap = self._score_laplacian(z)
            return self.time * g, self.time * lap
        with torch.enable_grad():
            zz = z.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(self._log_prob(zz).sum(), zz, create_graph=True)
            if probes is None:
                div = torch.zeros(z.shape[0], dtype=z.dtype, device=z.device)
                for i in range(z.shape[1]):
                    (hi,) = torch.autograd.grad(g[:, i].sum(), zz, retain_graph=True)
                    div = div + hi[:, i]
            else:
                div = torch.zeros(z.shape[0], dtype=z.dtype, device=z.device)
                k = probes.shape[1]
                for j in range(k):
                    e = probes[:, j, :]
                    (hv,) = torch.autograd.grad((g * e).sum(), zz, retain_graph=j < k - 1)
                    div = div + (hv * e).sum(-1)
                div = div / k
        return self.time * g.detach(), self.time * div.detach()


def integrate(
    field: nn.Module,
    z: Tensor,
    *,
    n_steps: int,
    reverse: bool = False,
    trace: str = "exact",
    n_probes: int = 1,
    kinetic: bool = False,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Fixed-step classical RK4 for ``(z, l, w)`` of eq. (7), rescaled to ``[0, 1]``.

    Args:
        field: a velocity field with ``velocity_and_divergence(t, z, probes)``.
        z: initial states (n, d) at t = 0 (``reverse=False``) or t = 1 (``reverse=True``).
        n_steps: number of RK4 steps.
        reverse: integrate from t = 1 back to t = 0 (density at arbitrary points, Alg. 6).
        trace: ``"exact"`` or ``"hutchinson"``; Rademacher probes are redrawn every step
            and shared by the four stages of a step (App. E.5).
        n_probes: Hutchinson probes per step.
        kinetic: also integrate ``|v|^2`` (the kinetic energy of eq. (7)).
        generator: random generator for the probes.
    Returns:
        ``(z_end, logdet, kin)`` where ``logdet = int div v dt`` along the path in the
        direction of integration (so for ``reverse=True`` it is minus the forward
        log-determinant of the inverse map's preimage) and ``kin`` the kinetic energy
        (``None`` unless requested).
    """
    if n_steps < 1:
        raise ValueError(f"n_steps must be >= 1, got {n_steps}")
    n, d = z.shape
    h = (-1.0 if reverse else 1.0) / n_steps
    t = 1.0 if reverse else 0.0
    logdet = torch.zeros(n, dtype=z.dtype, device=z.device)
    kin = torch.zeros(n, dtype=z.dtype, device=z.device) if kinetic else None
    for _ in range(n_steps):
        probes = make_probes(n, d, trace, n_probes, generator, z.device, z.dtype)
        v1, d1 = field.velocity_and_divergence(t, z, probes)
        v2, d2 = field.velocity_and_divergence(t + h / 2, z + (h / 2) * v1, probes)
        v3, d3 = field.velocity_and_divergence(t + h / 2, z + (h / 2) * v2, probes)
        v4, d4 = field.velocity_and_divergence(t + h, z + h * v3, probes)
        z = z + (h / 6) * (v1 + 2 * v2 + 2 * v3 + v4)
        logdet = logdet + (h / 6) * (d1 + 2 * d2 + 2 * d3 + d4)
        if kin is not None:
            # the kinetic energy is a time integral: positive weight in either direction
            q = [v.square().sum(-1) for v in (v1, v2, v3, v4)]
            kin = kin + (abs(h) / 6) * (q[0] + 2 * q[1] + 2 * q[2] + q[3])
        t = t + h
    return z, logdet, kin


class _AugmentedDynamics(nn.Module):
    """Right-hand side of eq. (7) for torchdiffeq, with probes fixed for the solve."""

    def __init__(self, field: nn.Module, probes: Tensor | None) -> None:
        super().__init__()
        self.field = field
        self.probes = probes
        self.nfe = 0

    def forward(self, t: Tensor, state: tuple[Tensor, Tensor, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        self.nfe += 1
        z = state[0]
        v, div = self.field.velocity_and_divergence(t, z, self.probes)
        return v, div, v.square().sum(-1)


def integrate_adaptive(
    field: nn.Module,
    z: Tensor,
    *,
    trace: str = "exact",
    n_probes: int = 1,
    atol: float = 1e-3,
    rtol: float = 1e-3,
    method: str = "dopri5",
    adjoint: bool = True,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor, Tensor, int]:
    """Adaptive solve of eq. (7) on ``[0, 1]`` with torchdiffeq (the paper's training).

    Hutchinson probes are drawn once per solve (required by the adjoint method, as in
    FFJORD). Returns ``(z1, logdet, kinetic, nfe)``.
    """
    import torchdiffeq

    n, d = z.shape
    probes = make_probes(n, d, trace, n_probes, generator, z.device, z.dtype)
    dyn = _AugmentedDynamics(field, probes)
    zeros = torch.zeros(n, dtype=z.dtype, device=z.device)
    ts = torch.tensor([0.0, 1.0], dtype=z.dtype, device=z.device)
    solve = torchdiffeq.odeint_adjoint if adjoint else torchdiffeq.odeint
    kwargs = {"adjoint_params": tuple(field.parameters())} if adjoint else {}
    zt, lt, wt = solve(dyn, (z, zeros, zeros), ts, atol=atol, rtol=rtol, method=method, **kwargs)
    return zt[-1], lt[-1], wt[-1], dyn.nfe


#: function evaluations per accepted step of each adaptive solver (first-same-as-last counted once)
_EVALS_PER_STEP = {"dopri5": 6, "bosh3": 3, "adaptive_heun": 2}


def steps_from_nfe(nfe: int, method: str = "dopri5") -> int:
    """Fixed RK4 step count from an adaptive solve's NFE: about a quarter of its steps, at least 4 (App. E.5).

    Raises:
        ValueError: for a solver other than those ``Config.solver`` accepts as adaptive.
    """
    if method not in _EVALS_PER_STEP:
        raise ValueError(f"no step count for solver {method!r}; adaptive solvers: {', '.join(_EVALS_PER_STEP)}")
    return max(4, math.ceil(nfe / _EVALS_PER_STEP[method] / 4))
