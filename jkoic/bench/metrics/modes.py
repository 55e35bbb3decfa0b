"""Mass per mixture mode (the paper's Table 4 and Fig. 4).

References:
    J. Hertrich, R. Gruhlke. Importance Corrected Neural JKO Sampling. ICML 2025, App. E.2.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._common import (
    ArrayLike,
    MetricValue,
    _as_samples,
    _as_vector,
    _check_positive_int,
    _protocol,
    _sample_pair,
)

__all__ = ["mode_mse", "mode_weights"]


def mode_weights(x: ArrayLike, means: ArrayLike, *, chunk_size: int = 65536) -> Tensor:
    """Fraction of samples whose nearest mixture mean is mean ``k``, ``k = 0..K-1``.

    Nearest in Euclidean distance (ties go to the lower index, like ``argmin``),
    computed in float64 in chunks of ``chunk_size`` samples.

    Args:
        x: samples, shape ``(n, d)`` (or ``(n,)``).
        means: the mixture means, shape ``(K, d)``.
        chunk_size: samples per distance block.

    Returns:
        Shape ``(K,)``, float64, on the device of ``x``; sums to 1.

    Raises:
        ValueError: on malformed samples or means, or a dimension mismatch.

    References:
        Hertrich & Gruhlke, ICML 2025, Appendix E.2 (mode weights) and Fig. 4.
    """
    chunk_size = _check_positive_int("chunk_size", chunk_size)
    xt, mu = _sample_pair(x, means, names=("x", "means"))
    xt = xt.to(torch.float64)
    mu = mu.to(torch.float64)
    counts = torch.zeros(mu.shape[0], dtype=torch.int64, device=xt.device)
    with torch.no_grad():
        for i in range(0, xt.shape[0], chunk_size):
            dist = torch.cdist(xt[i : i + chunk_size], mu, compute_mode="donot_use_mm_for_euclid_dist")
            counts += torch.bincount(dist.argmin(dim=1), minlength=mu.shape[0])
    return counts.to(torch.float64) / xt.shape[0]


def mode_mse(
    x: ArrayLike,
    means: ArrayLike,
    weights: ArrayLike | None = None,
    *,
    reduction: str = "sum",
    chunk_size: int = 65536,
) -> MetricValue:
    """Mode MSE: squared error between the empirical mode weights and the true ones.

    ``sum_k (w_k - w*_k)^2`` with ``w`` from :func:`mode_weights` and ``w*`` the
    mixture weights (default ``1/K``). The paper calls it a mean squared error, but
    the reference code (and so Table 4) **sums** over the ``K`` modes
    (``|w - 1/K|_2^2``); that is the default ``reduction="sum"``. ``reduction="mean"``
    divides by ``K``.

    Args:
        x: samples, shape ``(n, d)`` (or ``(n,)``).
        means: the mixture means, shape ``(K, d)``.
        weights: the mixture weights ``w*``, shape ``(K,)``; default ``1/K`` each.
        reduction: ``"sum"`` (default, as Table 4) or ``"mean"`` over the modes.
        chunk_size: samples per distance block.

    Returns:
        A :class:`MetricValue`; protocol keys: ``n``, ``n_modes``, ``reduction``,
        ``mode_weights``, ``target_weights``.

    Raises:
        ValueError: on malformed input, ``weights`` not one finite non-negative entry per
            mean, or an unknown ``reduction``.

    References:
        Hertrich & Gruhlke, ICML 2025, Appendix E.2 and Table 4.
    """
    if reduction not in ("sum", "mean"):
        raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
    n = _as_samples(x, "x").shape[0]
    w = mode_weights(x, means, chunk_size=chunk_size)
    k = w.shape[0]
    if weights is None:
        target = torch.full((k,), 1.0 / k, dtype=torch.float64, device=w.device)
    else:
        target = _as_vector(weights, "weights").to(w.device)
        if target.shape[0] != k:
            raise ValueError(f"weights must have one entry per mean (K={k}), got shape {tuple(target.shape)}")
        if not bool(torch.isfinite(target).all()) or bool((target < 0).any()):
            raise ValueError("weights must be finite and non-negative")
    sq = (w - target) ** 2
    value = float(sq.sum() if reduction == "sum" else sq.mean())
    return MetricValue(
        value,
        _protocol(
            "mode_mse",
            n=n,
            n_modes=k,
            reduction=reduction,
            mode_weights=w.cpu().tolist(),
            target_weights=target.cpu().tolist(),
        ),
    )
