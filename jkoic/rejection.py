"""Importance-based rejection steps (Sec. 4 of the paper).

Given a proposal ``X ~ p`` (the model so far) and the unnormalised target ``g``, a sample
is kept with probability ``alpha(X) = min(1, g(X) / (c p(X)))`` and otherwise replaced
once by an independent fresh draw ``X' ~ p``. By Theorem 4.2 the result has the density

    p_new(x) = p(x) (alpha(x) + 1 - E[alpha(X)]),

and ``KL(p_new, q) <= KL(p, q)``. The constant ``c`` is chosen by bisection so that a
fraction ``r`` of the samples is rejected (Remark 4.4, Alg. 5); ``E[alpha]`` is estimated
on the same samples and then frozen with ``c``. Everything is in log space.

References:
    J. Hertrich, R. Gruhlke. Importance Corrected Neural JKO Sampling. ICML 2025.
    Theorem 4.2, Remark 4.4, Alg. 1, 5, 6.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["fit_rejection", "log_alpha", "log_density_factor", "RejectionParams"]


@dataclass(frozen=True)
class RejectionParams:
    """Frozen parameters of one rejection layer: ``log c`` and ``E[alpha]``."""

    log_c: float
    mean_alpha: float

    def __post_init__(self) -> None:
        if not math.isfinite(self.log_c):
            raise ValueError(f"log_c must be finite, got {self.log_c}")
        if not 0.0 < self.mean_alpha <= 1.0:
            raise ValueError(f"mean_alpha must lie in (0, 1], got {self.mean_alpha}")


def log_alpha(log_g: Tensor, log_p: Tensor, log_c: float) -> Tensor:
    """``log alpha = min(0, log g - log c - log p)``, the log acceptance probability."""
    return torch.clamp(log_g - log_c - log_p, max=0.0)


def log_density_factor(log_alpha_x: Tensor, mean_alpha: float) -> Tensor:
    """``log(alpha(x) + 1 - E[alpha])``: the Theorem 4.2 density factor in log space."""
    rest = 1.0 - mean_alpha
    if rest <= 0.0:
        return log_alpha_x
    return torch.logaddexp(log_alpha_x, torch.full_like(log_alpha_x, math.log(rest)))


def _mean_alpha(log_w: Tensor, log_c: float) -> float:
    return float(torch.exp(torch.clamp(log_w - log_c, max=0.0)).mean())


def fit_rejection(
    log_g: Tensor, log_p: Tensor, rate: float = 0.2, *, tol: float = 1e-10, max_iter: int = 200
) -> RejectionParams:
    """Choose ``c`` by bisection so that the mean acceptance is ``1 - rate`` (Alg. 5).

    Args:
        log_g: unnormalised target log density at samples of the current model, (N,).
        log_p: the model's log density at the same samples, (N,).
        rate: the desired rejection rate r in (0, 1) (0.2 in the paper).
    Returns:
        ``RejectionParams(log_c, mean_alpha)`` with ``mean_alpha`` the empirical mean
        acceptance at the fitted ``c`` (the frozen estimate of ``E[alpha]``).
    """
    if not 0.0 < rate < 1.0:
        raise ValueError(f"rejection rate must lie in (0, 1), got {rate}")
    if log_g.shape != log_p.shape or log_g.ndim != 1 or log_g.numel() == 0:
        raise ValueError(
            f"log_g and log_p must be equal non-empty 1-D shapes, got {tuple(log_g.shape)} and {tuple(log_p.shape)}"
        )
    log_w = (log_g.double() - log_p.double()).detach().cpu()
    if not torch.isfinite(log_w).all():
        raise ValueError(f"log g - log p has {int((~torch.isfinite(log_w)).sum())} non-finite values")
    target = 1.0 - rate
    lo = float(log_w.min()) - 1.0  # mean alpha == 1 here
    hi = float(log_w.max()) + 1.0
    while _mean_alpha(log_w, hi) > target:  # push hi until the mean is below the target
        hi += 2.0 * (hi - lo) + 1.0
    for _ in range(max_iter):
        mid = 0.5 * (lo + hi)
        if _mean_alpha(log_w, mid) > target:
            lo = mid
        else:
            hi = mid
        if hi - lo < tol:
            break
    log_c = 0.5 * (lo + hi)
    return RejectionParams(log_c=log_c, mean_alpha=_mean_alpha(log_w, log_c))
