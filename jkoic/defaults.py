"""The default configuration for a new density: CPU-friendly training, settings read off the target.

``Sampler(log_g, dim=d)`` without a config uses :func:`auto_config`. It trains as the ``fast``
presets do (fixed-step RK4 with direct backprop, batches of 500, exact divergences for
sampling up to d = 10), 500 Adam iterations for the first three CNF steps and 150 warm-started
ones at learning rate 2e-3 after them (a late step refines a model that is close already);
it samples each CNF step with the RK4 steps its ODE needs (``Config.sample_steps_max``: samples
and densities of one flow), and adds blocks while they still improve the model on fresh
samples by more than the standard error and by more than 0.01 nats (``Config.adaptive``,
``Config.adaptive_tol``). What depends on the target's location and scale comes from a probe
of ``log g``:

* the latent's mean and scale: the isotropic Gaussian ``N(m, s^2 I)`` whose importance-
  weighted estimate of log Z, less twice its standard error, is largest over a grid of scales (a
  Gaussian that misses part of the target's mass underestimates log Z by the log of the
  fraction it covers, so this choice covers the mass it can see), with ``m`` the
  importance-weighted mean of the target, and ``s`` at least twice the target's RMS spread
  per coordinate (a broad start is cheap to correct, a narrow one is not);
* the first JKO step size ``tau0 = 0.01 s^2``: the JKO objective weighs the KL (in nats)
  against ``W2^2 / (2 tau)`` (a squared length), so tau scales with the square of the
  target's length scale; 0.01 at unit scale is what the paper uses for its 2-D targets.

The paper's per-target settings stay available as :func:`jkoic.preset` for reproduction.

References:
    J. Hertrich, R. Gruhlke. Importance Corrected Neural JKO Sampling. ICML 2025, Sec. 4, App. E.5.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .config import Config
from .presets import FAST_TRAINING
from .target import check_log_prob

__all__ = ["DEFAULTS", "MIN_ESS", "PROBE_SCALES", "SPREAD_FACTOR", "auto_config", "probe_latent"]

#: the training settings of the default (everything that does not depend on the target)
DEFAULTS: dict[str, Any] = {
    **FAST_TRAINING,
    "n_flow_steps": 2,
    "n_blocks": 8,
    "adaptive": True,
    "adaptive_tol": 0.01,
    "rejections_per_block": 3,
    "tau_base": 4.0,
    "n_iters": 500,
    "scale_search": [0.0, 0.5, 1.0],
    "validation_size": 2000,
    "sample_steps_tol": 1e-3,
    "sample_steps_max": 16,
    "warm_start": True,
    "late_n_iters": 150,
    "late_lr": 2e-3,
}

#: the CNF steps from ``tau >= LATE_FROM * tau0`` (the second block's on) train with the late
#: budget: warm-started from the previous field, they refine a model that is close already
LATE_FROM = 64.0

#: the latent's scale is at least this many times the target's RMS spread per coordinate (a 5-D
#: funnel from the best-covering scale 1.6: energy distance 4x that of exact samples; from 3.0 or
#: 5.0: within 1.1x, with fewer layers)
SPREAD_FACTOR = 2.0

#: the least effective sample size of a scale the probe trusts
MIN_ESS = 50.0

#: the latent scales the probe compares (a log grid from 0.05 to 100)
PROBE_SCALES = tuple(float(v) for v in torch.logspace(math.log10(0.05), 2.0, 23))


def probe_latent(
    target: Any,
    dim: int,
    *,
    n: int = 4096,
    rounds: int = 3,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> tuple[list[float], float, dict[str, Any]]:
    """The latent ``N(m, s^2 I)`` that covers the target best, probed at ``n`` points per scale and round.

    Each round estimates log Z by importance sampling from ``N(m, s^2 I)`` for every scale of
    :data:`PROBE_SCALES` (the same standard normal draws for every scale). Scales whose
    weights have an effective sample size below :data:`MIN_ESS` are left out (a few lucky
    weights of a far too broad Gaussian can overestimate log Z by nats); of the rest it keeps
    the one with the largest estimate less twice its standard error, and moves ``m`` to the
    importance-weighted mean of the target under it. The scale returned is the larger of that
    scale and :data:`SPREAD_FACTOR` times the target's root-mean-square spread about ``m``
    per coordinate (importance-weighted, last round): a latent broader than the target is
    cheap to correct (a contracting CNF step, and rejection steps that only remove excess
    mass), one that misses its tails is not (only CNF steps can move mass outwards).

    Returns:
        ``(m, s, info)`` with ``info`` holding each round's scale, estimate and ESS, and the
        spread.
    """
    gen = torch.Generator(device=device).manual_seed(0)
    eps = torch.randn(n, dim, generator=gen, device=device, dtype=torch.float64)
    log_eps = -0.5 * eps.square().sum(-1) - 0.5 * dim * math.log(2 * math.pi)
    mean = torch.zeros(dim, device=device, dtype=torch.float64)
    info: dict[str, Any] = {"rounds": []}
    best_s = 1.0
    for _ in range(rounds):
        scored = []  # (scale, estimate, its standard error, ess, log weights, points)
        for s in PROBE_SCALES:
            x = mean + s * eps
            with torch.no_grad():
                log_g = check_log_prob(target, x.to(dtype), allow_neg_inf=True).double()
            lw = log_g - (log_eps - dim * math.log(s))
            top = torch.logsumexp(lw, 0)
            if not bool(torch.isfinite(top)):
                continue
            ess = float(torch.exp(2 * top - torch.logsumexp(2 * lw, 0)))
            scored.append((s, float(top) - math.log(n), math.sqrt(max(1.0 / ess - 1.0 / n, 0.0)), ess, lw, x))
        if not scored:
            raise ValueError("the target has no mass at any probe point: log g = -inf everywhere probed")
        floor = min(MIN_ESS, max(c[3] for c in scored))
        eligible = [c for c in scored if c[3] >= floor]
        chosen = max(eligible, key=lambda c: c[1] - 2.0 * c[2])  # the best lower confidence bound
        best_s, est, _, ess, lw, x = chosen
        info["rounds"].append({"scale": best_s, "log_z": est, "ess": ess, "mean_norm": float(mean.norm())})
        if ess < MIN_ESS:  # too few effective points to locate the mass better
            break
        w = torch.softmax(lw, 0)
        mean = (w[:, None] * x).sum(0)
        info["spread"] = float((w * (x - mean).square().sum(-1)).sum() / dim) ** 0.5
    scale = max(best_s, SPREAD_FACTOR * info.get("spread", 0.0))
    return [float(v) for v in mean], scale, info


def auto_config(
    target: Any, dim: int, *, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32, **overrides: Any
) -> Config:
    """The default :class:`Config` for ``target``: :data:`DEFAULTS` plus the probed latent and ``tau0``.

    Args:
        target: an object with ``log_prob(x)`` for ``x`` of shape ``(n, dim)``.
        dim: the dimension.
        device, dtype: where and in what precision to probe.
        overrides: Config fields to set instead.

    Raises:
        ValueError: if the target returns NaN or ``+inf``, or has no mass at any probe point.
    """
    mean, scale, _ = probe_latent(target, dim, device=device, dtype=dtype)
    tau0 = 0.01 * scale**2
    settings: dict[str, Any] = {
        **DEFAULTS,
        "latent_mean": mean,
        "latent_scale": scale,
        "tau0": tau0,
        "late_tau": LATE_FROM * tau0,
    }
    settings.update(overrides)
    return Config(**settings)
