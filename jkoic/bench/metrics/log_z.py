"""Estimates of log Z and of the importance weights' quality (the paper's Table 2).

Input validation and protocol records around the float64 estimators of
:mod:`jkoic.estimators`, which compute the values. Inputs are the log densities at samples
``x_i ~ p``: ``log_g`` (unnormalised target) and ``log_p`` (normalised model), each of shape
``(n,)`` (or ``(n, 1)``), real. NaN and +inf are rejected in both, -inf in ``log_p`` (a
sample of ``p`` has positive density); ``log_g = -inf`` is a zero weight.

References:
    J. Hertrich, R. Gruhlke. Importance Corrected Neural JKO Sampling. ICML 2025, App. E.2.
    L. Kish. Survey Sampling. Wiley, 1965 (effective sample size).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ... import estimators
from ._common import ArrayLike, MetricValue, _as_vector, _protocol

__all__ = ["effective_sample_size", "log_z_elbo", "log_z_importance"]


def _validated(log_g: ArrayLike, log_p: ArrayLike) -> tuple[Tensor, Tensor]:
    """``log g`` and ``log p`` as float64 tensors of shape ``(n,)`` on ``log g``'s device.

    Raises:
        ValueError: on a shape mismatch, NaN or +inf in either, or -inf in ``log_p`` (a
            sample drawn from ``p`` has positive density); ``log_g = -inf`` is allowed.
    """
    lg = _as_vector(log_g, "log_g")
    lp = _as_vector(log_p, "log_p")
    if lg.shape != lp.shape:
        raise ValueError(f"log_g and log_p must have the same shape, got {tuple(lg.shape)} and {tuple(lp.shape)}")
    lp = lp.to(lg.device)
    for name, t in (("log_g", lg), ("log_p", lp)):
        n_nan = int(torch.isnan(t).sum())
        if n_nan:
            raise ValueError(f"{name} has {n_nan} NaN values of {t.shape[0]}")
        n_pinf = int(torch.isposinf(t).sum())
        if n_pinf:
            raise ValueError(f"{name} has {n_pinf} +inf values of {t.shape[0]}")
    n_ninf = int(torch.isneginf(lp).sum())
    if n_ninf:
        raise ValueError(
            f"log_p has {n_ninf} -inf values of {lp.shape[0]}: samples drawn from p must have positive density"
        )
    return lg, lp


def log_z_elbo(log_g: ArrayLike, log_p: ArrayLike) -> MetricValue:
    """The paper's log Z estimate ``mean_i (log g(x_i) - log p(x_i))``, ``x_i ~ p``.

    ``E_p[log g - log p] = log Z_g - KL(p, q)``: a lower bound (ELBO) on the true
    ``log Z_g``, tight iff ``p = q``. Higher is better (Table 2, 50000 samples).
    Computed by :func:`jkoic.estimators.log_z_elbo` (float64).

    Args:
        log_g: unnormalised target log density at the samples, shape ``(n,)``.
        log_p: normalised model log density at the same samples, shape ``(n,)``.

    Returns:
        A :class:`MetricValue`; protocol keys: ``n``, ``estimator``, ``std_error``
        (standard error of the mean, NaN for ``n = 1`` or an infinite estimate).

    Raises:
        ValueError: on malformed input (see the module docstring).

    References:
        Hertrich & Gruhlke, ICML 2025, Appendix E.2 and Table 2.
    """
    lg, lp = _validated(log_g, log_p)
    value = estimators.log_z_elbo(lg, lp)
    # finite: every weight is positive, so the statistics (which include the ESS) exist
    std_error = estimators.log_z_stats(lg, lp)["elbo_std_error"] if math.isfinite(value) else math.nan
    return MetricValue(
        value, _protocol("log_z_elbo", n=lg.shape[0], estimator="mean(log g - log p)", std_error=std_error)
    )


def log_z_importance(log_g: ArrayLike, log_p: ArrayLike) -> MetricValue:
    """Importance sampling estimate ``log mean_i exp(log g(x_i) - log p(x_i))``, ``x_i ~ p``.

    Consistent for ``log Z_g`` (the mean of the weights is unbiased for ``Z_g``; its
    log is slightly biased low by Jensen). Computed with ``logsumexp`` in float64 by
    :mod:`jkoic.estimators`. The protocol records the Kish effective sample size of the
    weights.

    Args:
        log_g: unnormalised target log density at the samples, shape ``(n,)``.
        log_p: normalised model log density at the same samples, shape ``(n,)``.

    Returns:
        A :class:`MetricValue`; protocol keys: ``n``, ``estimator``, ``ess``,
        ``ess_fraction``.

    Raises:
        ValueError: on malformed input, or if every weight is zero (``log g = -inf`` at
            every sample).

    References:
        Hertrich & Gruhlke, ICML 2025, Appendix E.2 (log Z); Kish (1965) (ESS).
    """
    lg, lp = _validated(log_g, log_p)
    stats = estimators.log_z_stats(lg, lp)
    return MetricValue(
        stats["importance"],
        _protocol(
            "log_z_importance",
            n=stats["n"],
            estimator="log mean exp(log g - log p)",
            ess=stats["ess"],
            ess_fraction=stats["ess_fraction"],
        ),
    )


def effective_sample_size(log_g: ArrayLike, log_p: ArrayLike, *, fraction: bool = False) -> MetricValue:
    """Kish effective sample size ``(sum w)^2 / sum w^2`` of ``w = g / p``.

    ``n`` for equal weights, ``1`` when one weight dominates. Computed by
    :func:`jkoic.estimators.effective_sample_size` (float64, from log values).

    Args:
        log_g: unnormalised target log density at the samples, shape ``(n,)``.
        log_p: normalised model log density at the same samples, shape ``(n,)``.
        fraction: return ``ESS / n`` in ``(0, 1]`` instead of the ESS; the protocol holds
            both.

    Returns:
        A :class:`MetricValue`; protocol keys: ``n``, ``ess``, ``ess_fraction``,
        ``fraction``.

    Raises:
        ValueError: on malformed input, or if every weight is zero.

    References:
        L. Kish, Survey Sampling (1965).
    """
    lg, lp = _validated(log_g, log_p)
    n = lg.shape[0]
    ess = estimators.effective_sample_size(lg, lp)
    return MetricValue(
        ess / n if fraction else ess,
        _protocol("effective_sample_size", n=n, ess=ess, ess_fraction=ess / n, fraction=bool(fraction)),
    )
