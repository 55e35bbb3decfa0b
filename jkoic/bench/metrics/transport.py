"""Exact optimal transport: the squared Wasserstein-2 distance (Table 3).

The Sinkhorn divergence (GMM40-50D, Table 5) is in :mod:`.sinkhorn`.

References:
    J. Hertrich, R. Gruhlke. Importance Corrected Neural JKO Sampling. ICML 2025, App. E.2.
    R. Flamary et al. POT: Python Optimal Transport. JMLR 2021.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from ._common import (
    ArrayLike,
    MetricValue,
    _check_positive_int,
    _protocol,
    _sample_pair,
)

__all__ = ["w2_squared"]


_POT_RESULT_CODES = {0: "infeasible", 1: "optimal", 2: "unbounded", 3: "max iterations reached"}


def w2_squared(x: ArrayLike, y: ArrayLike, *, num_iter_max: int = 10_000_000) -> MetricValue:
    """Exact squared Wasserstein-2 distance between two empirical measures.

    Uniform weights, cost ``|x_i - y_j|^2`` (``ot.dist``, squared Euclidean), exact
    network simplex (``ot.emd2``) in float64 on the CPU. The paper's Table 3 uses
    5000 vs 5000 samples: a 200 MB cost matrix (timings in ``benchmarks/README.md``).
    A ``RuntimeWarning`` is raised when POT does not report an optimal solution (e.g.
    ``num_iter_max`` reached); the returned value is then only an upper bound.

    Args:
        x: samples, shape ``(n, d)`` (or ``(n,)``).
        y: samples, shape ``(m, d)`` (or ``(m,)``).
        num_iter_max: iteration limit of the network simplex.

    Returns:
        A :class:`MetricValue`; protocol keys: ``n_x``, ``n_y``, ``dim``, ``cost``,
        ``solver``, ``num_iter_max``, ``result_code``, ``converged``.

    Raises:
        ValueError: on malformed samples or parameters.

    References:
        Hertrich & Gruhlke, ICML 2025, Appendix E.2 and Table 3; Flamary et al.,
        POT: Python Optimal Transport, JMLR 2021.
    """
    import ot  # deferred: POT is only needed here

    num_iter_max = _check_positive_int("num_iter_max", num_iter_max)
    xt, yt = _sample_pair(x, y)
    xn = xt.cpu().to(torch.float64).numpy()
    yn = yt.cpu().to(torch.float64).numpy()
    a = np.full(xn.shape[0], 1.0 / xn.shape[0])
    b = np.full(yn.shape[0], 1.0 / yn.shape[0])
    cost = ot.dist(xn, yn, metric="sqeuclidean")
    np.maximum(cost, 0.0, out=cost)  # remove tiny negatives from |x|^2 + |y|^2 - 2 x.y
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value, log = ot.emd2(a, b, cost, numItermax=num_iter_max, log=True)
    code = int(log.get("result_code", -1))
    message = log.get("warning")
    converged = code == 1 and not message
    if not converged:
        pot_messages = "; ".join(str(w.message) for w in caught) or str(message)
        warnings.warn(
            f"w2_squared: POT's exact solver did not report an optimal plan "
            f"(result_code={code}: {_POT_RESULT_CODES.get(code, 'unknown')}; {pot_messages}). "
            f"The value is not the exact W2^2; increase num_iter_max (now {num_iter_max}).",
            RuntimeWarning,
            stacklevel=2,
        )
    return MetricValue(
        float(value),
        _protocol(
            "w2_squared",
            n_x=xn.shape[0],
            n_y=yn.shape[0],
            dim=xn.shape[1],
            cost="squared euclidean",
            solver="ot.emd2",
            num_iter_max=num_iter_max,
            result_code=code,
            converged=converged,
        ),
    )


# ----------------------------------------------------------------------------- Sinkhorn divergence
