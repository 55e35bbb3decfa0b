"""Example F.1 of the paper (App. F.1, Figure 12): mode collapse as a local minimum.

Target ``nu = 1/2 N(-1/2, s^2) + 1/2 N(1/2, s^2)`` with ``s = 0.05`` on the real line,
latent ``mu_0 = N(0, 1)``. ``T_0`` is the optimal transport (monotone) map from ``mu_0`` to
``nu``, ``T_1`` the one from ``mu_0`` to ``N(1/2, s^2)`` (``T_1(z) = 1/2 + s z``). Along the
Wasserstein geodesic ``T_theta = (1 - theta) T_0 + theta T_1`` the reverse KL
``L(theta) = KL(T_theta # mu_0, nu)`` has local minima at ``theta = 0`` (``L = 0``, exact)
and ``theta = 1`` (mode collapse, ``L(1) = log 2`` up to the overlap of the modes).

Everything is computed by numerical quadrature in float64 (no sampling):

* ``T_0(z) = F_nu^{-1}(Phi(z))`` by vectorised bisection on the mixture CDF;
* ``T_0'(z) = phi(z) / q(T_0(z))``, ``T_theta' = (1 - theta) T_0' + theta s``;
* ``L(theta) = int phi(z) [log phi(z) - log T_theta'(z) - log q(T_theta(z))] dz``
  (change of variables ``x = T_theta(z)``), trapezoidal rule on ``z in [-z_max, z_max]``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = [
    "MODE_SD",
    "geodesic_density",
    "geodesic_kl",
    "latent_grid",
    "mixture_cdf",
    "mixture_log_pdf",
    "normal_cdf",
    "ot_map_collapsed",
    "ot_map_mixture",
]

MODE_SD = 0.05
_MEANS = (-0.5, 0.5)
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_SQRT_HALF = math.sqrt(0.5)
#: the trapezoidal rule (``np.trapz`` before numpy 2.0)
_trapezoid = getattr(np, "trapezoid", None) or np.trapz


def normal_cdf(x: np.ndarray) -> np.ndarray:
    """The standard normal CDF ``Phi(x) = erfc(-x / sqrt 2) / 2`` in float64.

    ``erfc`` keeps full relative precision in the left tail (``Phi(-8) ~ 6e-16``), where
    ``(1 + erf(x / sqrt 2)) / 2`` cancels to zero; the bisection of :func:`ot_map_mixture`
    needs those small probabilities.

    Args:
        x: the points.

    Returns:
        ``Phi(x)``, float64, the shape of ``x``.
    """
    t = torch.from_numpy(np.array(x, dtype=np.float64))  # a C-ordered copy
    return (0.5 * torch.special.erfc(-t * _SQRT_HALF)).numpy()


def mixture_log_pdf(x: np.ndarray, sd: float = MODE_SD) -> np.ndarray:
    """The log density of the two-mode target.

    Args:
        x: the points.
        sd: the standard deviation of each mode.

    Returns:
        ``log q(x)`` of ``1/2 N(-1/2, sd^2) + 1/2 N(1/2, sd^2)``, float64.
    """
    x = np.asarray(x, dtype=np.float64)
    comps = [-0.5 * ((x - m) / sd) ** 2 - _LOG_SQRT_2PI - math.log(sd) for m in _MEANS]
    return np.logaddexp(*comps) - math.log(2.0)


def mixture_cdf(x: np.ndarray, sd: float = MODE_SD) -> np.ndarray:
    """The CDF of the two-mode target.

    Args:
        x: the points.
        sd: the standard deviation of each mode.

    Returns:
        ``F_nu(x)``, float64.
    """
    x = np.asarray(x, dtype=np.float64)
    return 0.5 * (normal_cdf((x - _MEANS[0]) / sd) + normal_cdf((x - _MEANS[1]) / sd))


def ot_map_mixture(z: np.ndarray, sd: float = MODE_SD, iters: int = 200) -> np.ndarray:
    """``T_0(z) = F_nu^{-1}(Phi(z))``: the monotone (optimal) map from N(0, 1) to the mixture.

    Vectorised bisection; for ``z < 0`` it solves ``F_nu(x) = Phi(z)`` and for ``z > 0`` the
    mirrored problem (the target is symmetric), so both tails keep full relative precision.

    Args:
        z: latent points.
        sd: the standard deviation of each mode.
        iters: the most bisection steps (it stops once the bracket is a few ulps wide).

    Returns:
        ``T_0(z)``, float64.
    """
    z = np.asarray(z, dtype=np.float64)
    a = -np.abs(z)
    p = normal_cdf(a)  # small probabilities in the left tail are accurate
    lo = np.full_like(a, -1.0 - 40.0 * sd)
    hi = np.zeros_like(a)
    lo = np.minimum(lo, _MEANS[0] + sd * (a - 1.0))
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        left = mixture_cdf(mid, sd) < p
        lo = np.where(left, mid, lo)
        hi = np.where(left, hi, mid)
        if np.all(hi - lo <= 4 * np.finfo(np.float64).eps * np.maximum(1.0, np.abs(lo))):
            break
    x = 0.5 * (lo + hi)
    x = np.where(z > 0, -x, x)
    return np.where(z == 0, 0.0, x)  # the median; the CDF is flat to float64 precision in the gap


def ot_map_collapsed(z: np.ndarray, sd: float = MODE_SD) -> np.ndarray:
    """The optimal map from N(0, 1) to the right mode N(1/2, sd^2).

    Args:
        z: latent points.
        sd: the standard deviation of the mode.

    Returns:
        ``T_1(z) = 1/2 + sd z``, float64.
    """
    return _MEANS[1] + sd * np.asarray(z, dtype=np.float64)


def latent_grid(n: int = 20001, z_max: float = 8.0, refine: float = 0.05) -> np.ndarray:
    """Quadrature nodes on ``[-z_max, z_max]``: ``n`` uniform nodes plus ``n`` more on ``[-refine, refine]``.

    ``T_0`` crosses the low-density gap between the modes for ``|z|`` of a few 1e-3, where it
    is very steep; the refined nodes resolve that region.

    Args:
        n: nodes of each of the two uniform grids.
        z_max: the half-width of the latent interval.
        refine: the half-width of the refined interval (0: none).

    Returns:
        The sorted, distinct nodes.

    Raises:
        ValueError: ``n < 3``.
    """
    if n < 3:
        raise ValueError(f"n must be at least 3, got {n}")
    nodes = [np.linspace(-z_max, z_max, int(n))]
    if refine > 0:
        nodes.append(np.linspace(-refine, refine, int(n)))
    return np.unique(np.concatenate(nodes))


def _geodesic(theta: float, z: np.ndarray, t0: np.ndarray, sd: float) -> tuple[np.ndarray, np.ndarray]:
    """Points ``T_theta(z)`` and ``log T_theta'(z)``, given ``t0 = T_0(z)``."""
    log_phi = -0.5 * z**2 - _LOG_SQRT_2PI
    log_d0 = log_phi - mixture_log_pdf(t0, sd)  # log T_0'
    x = (1.0 - theta) * t0 + theta * ot_map_collapsed(z, sd)
    if theta <= 0.0:
        log_d = log_d0
    elif theta >= 1.0:
        log_d = np.full_like(z, math.log(sd))
    else:
        log_d = np.logaddexp(math.log1p(-theta) + log_d0, math.log(theta) + math.log(sd))
    return x, log_d


def geodesic_kl(thetas: np.ndarray, n: int = 20001, z_max: float = 8.0, sd: float = MODE_SD) -> np.ndarray:
    """The reverse KL along the geodesic, by quadrature.

    Args:
        thetas: points in ``[0, 1]``.
        n: nodes of the latent grid (:func:`latent_grid`).
        z_max: the half-width of the latent interval.
        sd: the standard deviation of each mode.

    Returns:
        ``L(theta) = KL(T_theta # N(0,1), nu)`` for each ``theta``.

    Raises:
        ValueError: a ``theta`` outside ``[0, 1]`` (``T_theta`` is not invertible there).
    """
    thetas = np.atleast_1d(np.asarray(thetas, dtype=np.float64))
    if np.any((thetas < 0) | (thetas > 1)):
        raise ValueError("theta must lie in [0, 1] (T_theta is not invertible outside)")
    z = latent_grid(n, z_max)
    log_phi = -0.5 * z**2 - _LOG_SQRT_2PI
    phi = np.exp(log_phi)
    t0 = ot_map_mixture(z, sd)
    out = np.empty_like(thetas)
    for i, th in enumerate(thetas):
        x, log_d = _geodesic(float(th), z, t0, sd)
        integrand = phi * (log_phi - log_d - mixture_log_pdf(x, sd))
        out[i] = _trapezoid(integrand, z)
    return out


def geodesic_density(
    theta: float, n: int = 4001, z_max: float = 6.0, sd: float = MODE_SD
) -> tuple[np.ndarray, np.ndarray]:
    """The density of ``T_theta # N(0, 1)`` as a curve.

    Args:
        theta: the point of the geodesic, in ``[0, 1]``.
        n: nodes of the latent grid (:func:`latent_grid`).
        z_max: the half-width of the latent interval.
        sd: the standard deviation of each mode.

    Returns:
        ``(x, p(x))`` with ``x`` increasing.

    Raises:
        ValueError: ``theta`` outside ``[0, 1]``.
    """
    if not 0.0 <= theta <= 1.0:
        raise ValueError(f"theta must lie in [0, 1], got {theta}")
    z = latent_grid(n, z_max)
    log_phi = -0.5 * z**2 - _LOG_SQRT_2PI
    x, log_d = _geodesic(float(theta), z, ot_map_mixture(z, sd), sd)
    return x, np.exp(log_phi - log_d)
