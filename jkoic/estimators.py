"""Estimators of log Z and of the importance weights' quality from model samples.

With ``x_i ~ p`` (the model) and ``w_i = g(x_i) / p(x_i)``:

* ``elbo``: ``mean_i log w_i = log Z - KL(p, q)`` in expectation, a lower bound on log Z,
  tight iff ``p = q`` (the paper's Table 2 estimate);
* ``importance``: ``log mean_i w_i``, whose exponential is unbiased for Z;
* ``ess``: Kish's effective sample size ``(sum w)^2 / sum w^2``: ``n`` for equal weights,
  1 when one weight dominates.

All in float64 from log values. The core uses them for its per-layer log and
:meth:`jkoic.Sampler.log_z`; :mod:`jkoic.bench.metrics` wraps them with input validation and
protocol records.

References:
    J. Hertrich, R. Gruhlke. Importance Corrected Neural JKO Sampling. ICML 2025, App. E.2.
    L. Kish. Survey Sampling. Wiley, 1965.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "effective_sample_size",
    "ess_of_log_weights",
    "log_weights",
    "log_z_elbo",
    "log_z_importance",
    "log_z_stats",
]


def log_weights(log_g: Tensor, log_p: Tensor) -> Tensor:
    """``log g - log p`` in float64, shape ``(n,)``.

    Raises:
        ValueError: if the shapes differ or are not one-dimensional and non-empty.
    """
    if log_g.shape != log_p.shape or log_g.ndim != 1 or log_g.numel() == 0:
        raise ValueError(
            f"log_g and log_p must be equal non-empty 1-D shapes, got {tuple(log_g.shape)} and {tuple(log_p.shape)}"
        )
    return log_g.detach().to(torch.float64) - log_p.detach().to(device=log_g.device, dtype=torch.float64)


def log_z_elbo(log_g: Tensor, log_p: Tensor) -> float:
    """``mean_i (log g - log p)``: the ELBO estimate of log Z (App. E.2, Table 2)."""
    return float(log_weights(log_g, log_p).mean())


def log_z_importance(log_g: Tensor, log_p: Tensor) -> float:
    """``log mean_i exp(log g - log p)``: the importance-weighted estimate of log Z."""
    lw = log_weights(log_g, log_p)
    return float(torch.logsumexp(lw, dim=0)) - math.log(lw.shape[0])


def ess_of_log_weights(lw: Tensor) -> float:
    """Kish's effective sample size of the weights ``exp(lw)``.

    Raises:
        ValueError: if every weight is zero.
    """
    top = torch.logsumexp(lw, dim=0)
    if not bool(torch.isfinite(top)):
        raise ValueError("all importance weights are zero (log g = -inf at every sample)")
    return float(torch.exp(2.0 * top - torch.logsumexp(2.0 * lw, dim=0)))


def effective_sample_size(log_g: Tensor, log_p: Tensor) -> float:
    """Kish's effective sample size ``(sum w)^2 / sum w^2`` of ``w = g / p``."""
    return ess_of_log_weights(log_weights(log_g, log_p))


def log_z_stats(log_g: Tensor, log_p: Tensor) -> dict[str, float]:
    """All estimates at once, with standard errors.

    Returns:
        ``elbo`` and ``elbo_std_error`` (the standard error of a mean), ``importance`` and
        ``importance_std_error`` (delta method: ``sqrt(1/ess - 1/n)``), ``ess``,
        ``ess_fraction`` and ``n``.
    """
    lw = log_weights(log_g, log_p)
    n = lw.shape[0]
    elbo = float(lw.mean())
    se = float(lw.std(unbiased=True)) / math.sqrt(n) if n > 1 and math.isfinite(elbo) else math.nan
    ess = ess_of_log_weights(lw)
    return {
        "elbo": elbo,
        "elbo_std_error": se,
        "importance": float(torch.logsumexp(lw, dim=0)) - math.log(n),
        "importance_std_error": math.sqrt(max(1.0 / ess - 1.0 / n, 0.0)),
        "ess": ess,
        "ess_fraction": ess / n,
        "n": n,
    }
