"""MCMC baselines of the paper: MALA and HMC, one independent chain per sample.

Both samplers run all chains as one batch: a state is a tensor of shape
``(n_chains, dim)`` and every step costs one batched call of ``target.log_prob``
and of its gradient (MALA) or ``n_leapfrog`` of them (HMC). The sample set that
is returned is the final state of every chain, as in the paper (App. E.5): "we
run an independent chain for each generated sample and perform 50000 steps".

Step-size schedule (App. E.5): the first ``warmup[0]`` iterations use
``warmup_factors[0] * step_size``, the next ``warmup[1]`` iterations use
``warmup_factors[1] * step_size``, the remaining ones ``step_size``. ``n_steps``
counts all iterations, warm-up included (paper: 50000 with (1000, 1000) warm-up
and factors (0.01, 0.1); MALA step 0.001; HMC step 0.1 for 8 Modes / Funnel and
0.01 for Mustache with 5 leapfrog steps and identity mass).

Target contract (:class:`LogDensity`, a duck type): ``target.dim`` (int) and
``target.log_prob(x)`` mapping ``(n, dim)`` to ``(n,)``, differentiable by autograd; the
density may be unnormalised. Every :class:`jkoic.target.Target` satisfies it.

Proposals whose log density or gradient is not finite (NaN / inf, e.g. a
leapfrog trajectory that diverged) are rejected and counted in
``MCMCResult.n_nonfinite``.

References:
    G. O. Roberts and R. L. Tweedie. Exponential convergence of Langevin
    distributions and their discrete approximations. Bernoulli 2(4), 1996.

    M. Betancourt. A conceptual introduction to Hamiltonian Monte Carlo.
    arXiv:1701.02434, 2017.

    J. Hertrich and R. Gruhlke. Importance corrected neural JKO sampling.
    ICML 2025, Appendix E.5 (baseline settings).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor
from tqdm.auto import tqdm

__all__ = ["LogDensity", "MCMCResult", "hmc", "mala"]


@runtime_checkable
class LogDensity(Protocol):
    """What the baselines need of a target: its dimension and a differentiable log density.

    ``log_prob`` maps ``(n, dim)`` to ``(n,)`` and may be unnormalised.
    """

    dim: int

    def log_prob(self, x: Tensor) -> Tensor:  # pragma: no cover - protocol
        ...


@dataclass
class MCMCResult:
    """Output of :func:`mala` and :func:`hmc`.

    Attributes:
        samples: final state of every chain, shape ``(n_chains, dim)``.
        acceptance_rate: fraction of accepted proposals over all chains in the
            main phase (after warm-up); NaN if there was no main phase.
        acceptance_per_phase: acceptance rate of every phase, keyed
            ``"warmup x<factor>"`` and ``"main"`` (phases of length 0 omitted).
        n_steps: total number of iterations, warm-up included.
        seconds: wall-clock time of the run.
        step_size: the final (main-phase) step size.
        n_nonfinite: number of proposals rejected because their log density or
            gradient was not finite, summed over chains and iterations.
    """

    samples: Tensor
    acceptance_rate: float
    acceptance_per_phase: dict[str, float] = field(default_factory=dict)
    n_steps: int = 0
    seconds: float = 0.0
    step_size: float = 0.0
    n_nonfinite: int = 0


# --------------------------------------------------------------------------- #
# helpers
# --------------------------------------------------------------------------- #


def _log_prob_and_grad(target: LogDensity, x: Tensor) -> tuple[Tensor, Tensor]:
    """Log density (n,) and its gradient (n, dim) at ``x``, both detached."""
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        lp = target.log_prob(xg)
        if lp.shape != (x.shape[0],):
            raise ValueError(
                f"target.log_prob must map (n, dim) to (n,); got shape {tuple(lp.shape)} for input {tuple(x.shape)}"
            )
        (grad,) = torch.autograd.grad(lp.sum(), xg)
    return lp.detach(), grad.detach()


def _finite_rows(*tensors: Tensor) -> Tensor:
    """Boolean (n,) mask: True where every entry of every tensor's row is finite."""
    ok = torch.ones(tensors[0].shape[0], dtype=torch.bool, device=tensors[0].device)
    for t in tensors:
        ok &= torch.isfinite(t.reshape(t.shape[0], -1)).all(dim=1)
    return ok


def _phases(
    n_steps: int, step_size: float, warmup: tuple[int, ...], factors: tuple[float, ...]
) -> list[tuple[str, int, float]]:
    """List of ``(name, length, step)`` phases; checks the schedule."""
    if len(warmup) != len(factors):
        raise ValueError(f"warmup {warmup} and warmup_factors {factors} must have the same length")
    if any(int(w) < 0 for w in warmup):
        raise ValueError(f"warmup lengths must be >= 0, got {warmup}")
    if any(not f > 0 for f in factors):
        raise ValueError(f"warmup_factors must be > 0, got {factors}")
    if not step_size > 0 or not math.isfinite(step_size):
        raise ValueError(f"step_size must be a positive finite number, got {step_size}")
    n_warm = sum(int(w) for w in warmup)
    if n_steps <= n_warm:
        raise ValueError(
            f"n_steps ({n_steps}) counts the warm-up iterations and must exceed their "
            f"total ({n_warm}); shorten warmup or increase n_steps"
        )
    phases = [(f"warmup x{f:g}", int(w), f * step_size) for w, f in zip(warmup, factors, strict=False) if int(w) > 0]
    phases.append(("main", n_steps - n_warm, step_size))
    return phases


def _initial_state(
    target: LogDensity,
    n_chains: int,
    x0: Tensor | None,
    generator: torch.Generator | None,
    device: torch.device | str | None,
    dtype: torch.dtype,
) -> Tensor:
    """Validated initial states; default: standard normal ``N(0, I)`` draws."""
    dim = getattr(target, "dim", None)
    if not isinstance(dim, int) or dim < 1:
        raise ValueError(f"target must have an integer attribute dim >= 1, got {dim!r}")
    if n_chains < 1:
        raise ValueError(f"n_chains must be >= 1, got {n_chains}")
    if x0 is None:
        dev = torch.device(device) if device is not None else torch.device("cpu")
        return torch.randn(n_chains, dim, generator=generator, device=dev, dtype=dtype)
    x0 = torch.as_tensor(x0)
    dev = torch.device(device) if device is not None else x0.device
    x0 = x0.detach().to(device=dev, dtype=dtype)
    if x0.shape != (n_chains, dim):
        raise ValueError(f"x0 must have shape (n_chains, target.dim) = ({n_chains}, {dim}), got {tuple(x0.shape)}")
    if not torch.isfinite(x0).all():
        raise ValueError("x0 contains non-finite values (NaN or inf)")
    return x0.clone()


def _check_start(lp: Tensor, grad: Tensor) -> None:
    bad = int((~_finite_rows(lp, grad)).sum())
    if bad:
        raise ValueError(
            f"target.log_prob or its gradient is not finite at {bad} initial state(s); "
            "pass an x0 inside the support of the target"
        )


StepFn = Callable[[Tensor, Tensor, Tensor, float], tuple[Tensor, Tensor, Tensor, Tensor, Tensor]]


def _run_chains(
    step_fn: StepFn,
    target: LogDensity,
    x: Tensor,
    phases: list[tuple[str, int, float]],
    progress: bool,
    desc: str,
) -> MCMCResult:
    """Drive ``step_fn`` through the phases, counting acceptances on device."""
    t0 = time.perf_counter()
    try:
        lp, grad = _log_prob_and_grad(target, x)
    except ValueError:
        raise
    except Exception as exc:  # e.g. a target whose .dim does not match its log_prob
        raise ValueError(
            f"target.log_prob failed on the initial states of shape {tuple(x.shape)} (target.dim = {target.dim}): {exc}"
        ) from exc
    _check_start(lp, grad)
    n_total = sum(length for _, length, _ in phases)
    per_phase: dict[str, float] = {}
    n_nonfinite = torch.zeros((), dtype=torch.long, device=x.device)
    with tqdm(total=n_total, desc=desc, disable=not progress, leave=False) as bar:
        for name, length, step in phases:
            n_acc = torch.zeros((), dtype=torch.long, device=x.device)
            for it in range(length):
                x, lp, grad, accepted, nonfinite = step_fn(x, lp, grad, step)
                n_acc += accepted.sum()
                n_nonfinite += nonfinite.sum()
                bar.update(1)
                if progress and (it + 1) % 100 == 0:
                    bar.set_postfix(phase=name, acc=f"{n_acc.item() / ((it + 1) * x.shape[0]):.3f}")
            per_phase[name] = n_acc.item() / (length * x.shape[0])
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)
    return MCMCResult(
        samples=x,
        acceptance_rate=per_phase.get("main", float("nan")),
        acceptance_per_phase=per_phase,
        n_steps=n_total,
        seconds=time.perf_counter() - t0,
        step_size=phases[-1][2],
        n_nonfinite=int(n_nonfinite.item()),
    )


def _accept(log_alpha: Tensor, finite: Tensor, generator: torch.Generator | None) -> Tensor:
    """Metropolis-Hastings decision ``log u < log_alpha`` restricted to finite proposals."""
    u = torch.rand(log_alpha.shape, generator=generator, device=log_alpha.device, dtype=log_alpha.dtype)
    return finite & (torch.log(u) < log_alpha)


def _select(accept: Tensor, new: Tensor, old: Tensor) -> Tensor:
    mask = accept.reshape(-1, *([1] * (new.dim() - 1)))
    return torch.where(mask, new, old)


# --------------------------------------------------------------------------- #
# MALA
# --------------------------------------------------------------------------- #


def _mala_step(target: LogDensity, generator: torch.Generator | None) -> StepFn:
    """One vectorised MALA transition (closure over target and generator)."""

    def step(x: Tensor, lp: Tensor, grad: Tensor, s: float) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        y = x + s * grad + math.sqrt(2.0 * s) * noise
        lp_y, grad_y = _log_prob_and_grad(target, y)
        finite = _finite_rows(y, lp_y, grad_y)
        # log q(y | x) = -|y - x - s grad(x)|^2 / (4 s) + const, and back.
        log_q_fwd = -(noise.square().sum(dim=1)) / 2.0
        back = x - y - s * grad_y
        log_q_bwd = -back.square().sum(dim=1) / (4.0 * s)
        log_alpha = lp_y - lp + log_q_bwd - log_q_fwd
        log_alpha = torch.where(finite, log_alpha, torch.full_like(log_alpha, -math.inf))
        acc = _accept(log_alpha, finite, generator)
        return (
            _select(acc, y, x),
            _select(acc, lp_y, lp),
            _select(acc, grad_y, grad),
            acc,
            ~finite,
        )

    return step


def mala(
    target: LogDensity,
    n_chains: int,
    n_steps: int,
    step_size: float = 1e-3,
    warmup: tuple[int, ...] = (1000, 1000),
    warmup_factors: tuple[float, ...] = (0.01, 0.1),
    x0: Tensor | None = None,
    generator: torch.Generator | None = None,
    progress: bool = True,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> MCMCResult:
    """Metropolis-adjusted Langevin algorithm, one independent chain per sample.

    Proposal ``x' = x + s grad log g(x) + sqrt(2 s) xi`` with ``xi ~ N(0, I)``,
    accepted with probability
    ``min(1, g(x') q(x | x') / (g(x) q(x' | x)))``, where
    ``q(x' | x) = N(x'; x + s grad log g(x), 2 s I)``.

    Args:
        target: object with ``dim`` and a differentiable ``log_prob``.
        n_chains: number of chains = number of returned samples.
        n_steps: total iterations, warm-up included (paper: 50000).
        step_size: main-phase step ``s`` (paper: 0.001 for every target).
        warmup: lengths of the warm-up phases (paper: 1000, 1000).
        warmup_factors: step multipliers of the warm-up phases (paper: 0.01, 0.1).
        x0: initial states ``(n_chains, dim)``; default: standard normal draws.
        generator: ``torch.Generator`` through which all randomness is drawn.
        progress: show a tqdm progress bar.
        device: device of the chains (default: that of ``x0``, else CPU).
        dtype: floating dtype of the chains.

    Returns:
        :class:`MCMCResult` with the final states.

    References:
        Roberts & Tweedie (1996), Bernoulli 2(4); Hertrich & Gruhlke (2025), App. E.5.
    """
    phases = _phases(n_steps, step_size, tuple(warmup), tuple(warmup_factors))
    x = _initial_state(target, n_chains, x0, generator, device, dtype)
    return _run_chains(_mala_step(target, generator), target, x, phases, progress, "MALA")


# --------------------------------------------------------------------------- #
# HMC
# --------------------------------------------------------------------------- #


def _hmc_step(target: LogDensity, n_leapfrog: int, generator: torch.Generator | None) -> StepFn:
    """One vectorised HMC transition with identity mass and leapfrog integration."""

    def step(x: Tensor, lp: Tensor, grad: Tensor, eps: float) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        p0 = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        q, p, lp_q, grad_q = x, p0 + 0.5 * eps * grad, lp, grad
        for i in range(n_leapfrog):
            q = q + eps * p
            lp_q, grad_q = _log_prob_and_grad(target, q)
            p = p + (eps if i < n_leapfrog - 1 else 0.5 * eps) * grad_q
        finite = _finite_rows(q, p, lp_q, grad_q)
        h_old = -lp + 0.5 * p0.square().sum(dim=1)
        h_new = -lp_q + 0.5 * p.square().sum(dim=1)
        log_alpha = torch.where(finite, h_old - h_new, torch.full_like(lp, -math.inf))
        acc = _accept(log_alpha, finite, generator)
        return (
            _select(acc, q, x),
            _select(acc, lp_q, lp),
            _select(acc, grad_q, grad),
            acc,
            ~finite,
        )

    return step


def hmc(
    target: LogDensity,
    n_chains: int,
    n_steps: int,
    step_size: float,
    n_leapfrog: int = 5,
    warmup: tuple[int, ...] = (1000, 1000),
    warmup_factors: tuple[float, ...] = (0.01, 0.1),
    x0: Tensor | None = None,
    generator: torch.Generator | None = None,
    progress: bool = True,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> MCMCResult:
    """Hamiltonian Monte Carlo with identity mass, one independent chain per sample.

    Every iteration draws a momentum ``p ~ N(0, I)``, runs ``n_leapfrog``
    leapfrog steps of size ``eps`` on ``H(x, p) = -log g(x) + |p|^2 / 2`` and
    accepts the end point with probability ``min(1, exp(H_old - H_new))``.

    Args:
        target: object with ``dim`` and a differentiable ``log_prob``.
        n_chains: number of chains = number of returned samples.
        n_steps: total iterations, warm-up included (paper: 50000).
        step_size: main-phase leapfrog step (paper: 0.1 for 8 Modes and Funnel,
            0.01 for Mustache).
        n_leapfrog: leapfrog steps per iteration (paper: 5).
        warmup: lengths of the warm-up phases (paper: 1000, 1000).
        warmup_factors: step multipliers of the warm-up phases (paper: 0.01, 0.1).
        x0: initial states ``(n_chains, dim)``; default: standard normal draws.
        generator: ``torch.Generator`` through which all randomness is drawn.
        progress: show a tqdm progress bar.
        device: device of the chains (default: that of ``x0``, else CPU).
        dtype: floating dtype of the chains.

    Returns:
        :class:`MCMCResult` with the final states.

    References:
        Betancourt (2017), arXiv:1701.02434; Hertrich & Gruhlke (2025), App. E.5.
    """
    if int(n_leapfrog) < 1:
        raise ValueError(f"n_leapfrog must be >= 1, got {n_leapfrog}")
    phases = _phases(n_steps, step_size, tuple(warmup), tuple(warmup_factors))
    x = _initial_state(target, n_chains, x0, generator, device, dtype)
    step = _hmc_step(target, int(n_leapfrog), generator)
    return _run_chains(step, target, x, phases, progress, "HMC")
