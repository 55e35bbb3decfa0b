"""Benchmark target distributions of the paper, with exact samplers and a registry by name.

Every target exposes its (log) density through :meth:`Target.log_prob`, and, where
one exists, an exact sampler through :meth:`Target.sample` (used for the ground
truth of the metrics).  The definitions follow Appendix E.1 of

    J. Hertrich and R. Gruhlke, *Importance Corrected Neural JKO Sampling*, ICML 2025,

and agree with the authors' reference code (github ``johertrich/neural_JKO_ic``):

==========  =====  ================================================================
name        dim    definition
==========  =====  ================================================================
mustache    2      ``log N(T(x); 0, S)``, ``S = [[1, .9], [.9, 1]]``,
                   ``T(x1, x2) = (x1, x2 - (x1^2 - 1)^2)``; normalised
8modes      2      8 equally weighted Gaussians, means on the circle of radius 1
                   around ``(-1, 0)``, covariance ``0.01 I``; normalised
8peaky      2      as ``8modes`` with covariance ``0.005 I``; normalised
funnel      10     Neal's funnel (Neal, 2003): ``x1 ~ N(0, 9)``,
                   ``x_{2:d} | x1 ~ N(0, exp(x1) I)``; normalised
gmm         10..   GMM-d: 10 equally weighted Gaussians, covariance ``0.01 I``,
                   means uniform on ``[-1, 1]^d``; normalised
gmm40       50     GMM40-50D (Midgley et al., 2023; Chen et al., 2025): 40 equally
                   weighted Gaussians, identity covariance, means in ``[-40, 40]^50``
lgcp        1600   log-Gaussian Cox process on the pines data (Møller et al., 1998;
                   Arbel et al., 2021; Matthews et al., 2022); unnormalised
==========  =====  ================================================================

Use :func:`get` to build a target by name. The interface they implement, :class:`Target`,
and :func:`as_target` (wrap a user callable) and :func:`check_log_prob` (evaluate a
density with clear errors on malformed output) live in :mod:`jkoic.target` and are
re-exported here.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..target import CallableTarget, Target, _check_int, as_target, check_log_prob
from . import data as _data

__all__ = [
    "LGCP",
    "CallableTarget",
    "Funnel",
    "GaussianMixture",
    "Mustache",
    "Target",
    "as_target",
    "check_log_prob",
    "get",
    "names",
]

_LOG_2PI = math.log(2.0 * math.pi)


# ----------------------------------------------------------------------------- concrete targets


class GaussianMixture(Target):
    """Mixture of isotropic Gaussians ``sum_k w_k N(m_k, variance I)``.

    Used for ``8modes`` / ``8peaky`` (shifted 8 modes / 8 peaky), ``gmm`` (GMM-d)
    and ``gmm40`` (GMM40-50D), Hertrich & Gruhlke (2025), Appendix E.1.

    Args:
        name: registry name.
        means: component means, shape ``(K, dim)``.
        variance: common per-coordinate variance of the components.
        weights: mixture weights ``(K,)`` summing to one; default equal weights.
        **info: descriptive keyword values shown in the ``repr`` (e.g. ``means_id``).

    Raises:
        ValueError: if ``means`` is not ``(K, dim)``, ``variance`` is not positive or
            ``weights`` is not a probability vector of shape ``(K,)``.
    """

    def __init__(
        self,
        name: str,
        means: Tensor | np.ndarray,
        variance: float,
        weights: Tensor | np.ndarray | None = None,
        **info: Any,
    ) -> None:
        m = torch.as_tensor(means, dtype=torch.float64)
        if m.ndim != 2 or m.shape[0] < 1:
            raise ValueError(f"means must have shape (K, dim), got {tuple(m.shape)}")
        if not variance > 0:
            raise ValueError(f"variance must be positive, got {variance}")
        K, d = m.shape
        super().__init__(name, d, log_z=0.0)
        w = (
            torch.full((K,), 1.0 / K, dtype=torch.float64)
            if weights is None
            else torch.as_tensor(weights, dtype=torch.float64)
        )
        if w.shape != (K,) or bool((w < 0).any()) or abs(float(w.sum()) - 1.0) > 1e-9:
            raise ValueError(f"weights must be a probability vector of shape ({K},)")
        self.variance = float(variance)
        self.info = dict(info)
        self._set_buffer("means", m)
        self._set_buffer("weights", w)
        self._set_buffer("log_weights", torch.log(w))
        self._log_norm = -0.5 * d * (_LOG_2PI + math.log(self.variance))

    @property
    def means(self) -> Tensor:
        return self._buffers["means"]

    @property
    def weights(self) -> Tensor:
        return self._buffers["weights"]

    @property
    def num_components(self) -> int:
        """Number of mixture components ``K``."""
        return int(self._buffers["means"].shape[0])

    def _log_prob(self, x: Tensor) -> Tensor:
        means = self._buffer("means", x)
        logw = self._buffer("log_weights", x)
        K, d = means.shape
        # Direct differences (not the |x|^2 - 2 x.m + |m|^2 expansion, which loses
        # precision in float32 for the far-apart GMM40 means); chunked over n.
        chunk = max(1, (1 << 24) // max(1, K * d))
        parts = []
        for start in range(0, x.shape[0], chunk):
            xc = x[start : start + chunk]
            sq = ((xc[:, None, :] - means[None, :, :]) ** 2).sum(-1)
            parts.append(torch.logsumexp(logw - sq / (2.0 * self.variance), dim=-1))
        if not parts:
            return x.new_zeros((0,))
        return torch.cat(parts) + self._log_norm

    def score_and_laplacian(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Closed-form ``grad log g`` and its Laplacian (float64 inside, ``x``'s dtype out).

        With responsibilities ``r_k(x)`` and ``m(x) = sum_k r_k m_k``: the score is
        ``(m(x) - x) / s`` and the Laplacian ``(sum_k r_k |m_k|^2 - |m(x)|^2) / s^2 - d / s``
        (``s`` the variance). Everything is a matmul over the components (no (n, K, d)
        tensors); float64 keeps the expansions' cancellation at ~1e-11 for GMM40's scales.
        """
        self._check_input(x)
        means = self._buffer("means", x.new_empty(0, dtype=torch.float64))
        logw = self._buffer("log_weights", x.new_empty(0, dtype=torch.float64))
        msq = means.square().sum(-1)
        d = means.shape[1]
        s = self.variance
        x64 = x.detach().to(torch.float64)
        sq = (x64.square().sum(-1, keepdim=True) - 2.0 * x64 @ means.t() + msq).clamp_(min=0.0)
        r = torch.softmax(logw - sq / (2.0 * s), dim=-1)
        m = r @ means
        spread = (r @ msq - m.square().sum(-1)).clamp_(min=0.0)
        return ((m - x64) / s).to(x.dtype), (spread / s**2 - d / s).to(x.dtype)

    def _sample(self, n: int, generator: torch.Generator | None) -> Tensor:
        if n == 0:
            return torch.zeros((0, self.dim), dtype=torch.float64)
        comp = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        noise = torch.randn((n, self.dim), generator=generator, dtype=torch.float64)
        return self.means[comp] + math.sqrt(self.variance) * noise

    def _repr_extra(self) -> str:
        extra = "".join(f", {k}={v!r}" for k, v in self.info.items())
        return f"K={self.num_components}, variance={self.variance}{extra}"


class Mustache(Target):
    """The mustache ("Schnauzbart") distribution, Hertrich & Gruhlke (2025), App. E.1.

    ``log g(x) = log N(T(x); 0, S)`` with ``S = [[1, rho], [rho, 1]]``, ``rho = 0.9``,
    and ``T(x1, x2) = (x1, x2 - (x1^2 - 1)^2)``.  Since ``det grad T = 1`` the
    density is normalised.  Exact sampler: ``x = T^{-1}(z)``, ``z ~ N(0, S)``.

    Args:
        rho: correlation of the latent Gaussian, in ``(-1, 1)``.
    """

    def __init__(self, rho: float = 0.9) -> None:
        super().__init__("mustache", 2, log_z=0.0)
        if not -1.0 < rho < 1.0:
            raise ValueError(f"rho must lie in (-1, 1), got {rho}")
        self.rho = float(rho)
        self._set_buffer("covariance", torch.tensor([[1.0, rho], [rho, 1.0]]))
        self._log_norm = -_LOG_2PI - 0.5 * math.log(1.0 - rho**2)

    @property
    def covariance(self) -> Tensor:
        """The covariance ``S`` of the latent Gaussian, shape ``(2, 2)``."""
        return self._buffers["covariance"]

    @staticmethod
    def transform(x: Tensor) -> Tensor:
        """``T(x1, x2) = (x1, x2 - (x1^2 - 1)^2)`` (maps the target to ``N(0, S)``)."""
        x1, x2 = x[..., 0], x[..., 1]
        return torch.stack([x1, x2 - (x1**2 - 1.0) ** 2], dim=-1)

    @staticmethod
    def inverse_transform(z: Tensor) -> Tensor:
        """``T^{-1}(z1, z2) = (z1, z2 + (z1^2 - 1)^2)``."""
        z1, z2 = z[..., 0], z[..., 1]
        return torch.stack([z1, z2 + (z1**2 - 1.0) ** 2], dim=-1)

    def _log_prob(self, x: Tensor) -> Tensor:
        z = self.transform(x)
        z1, z2 = z[:, 0], z[:, 1]
        quad = (z1**2 - 2.0 * self.rho * z1 * z2 + z2**2) / (1.0 - self.rho**2)
        return -0.5 * quad + self._log_norm

    def _sample(self, n: int, generator: torch.Generator | None) -> Tensor:
        chol = torch.linalg.cholesky(self.covariance)
        z = torch.randn((n, 2), generator=generator, dtype=torch.float64) @ chol.T
        return self.inverse_transform(z)

    def _repr_extra(self) -> str:
        return f"rho={self.rho}"


class Funnel(Target):
    """Neal's funnel (Neal, 2003, *Slice sampling*), Hertrich & Gruhlke (2025), App. E.1.

    ``x1 ~ N(0, sigma_f^2)`` with ``sigma_f^2 = 9`` and ``x_{2:d} | x1 ~ N(0, exp(x1) I)``.
    Normalised.

    Args:
        dim: dimension ``d``.
        variance: ``sigma_f^2``, the variance of ``x1``.
    """

    def __init__(self, dim: int = 10, variance: float = 9.0) -> None:
        super().__init__("funnel", dim, log_z=0.0)
        self.variance = float(variance)

    def _log_prob(self, x: Tensor) -> Tensor:
        v = x[:, 0]
        rest = x[:, 1:]
        m = self.dim - 1
        lp_v = -0.5 * v**2 / self.variance - 0.5 * (_LOG_2PI + math.log(self.variance))
        lp_rest = -0.5 * torch.exp(-v) * (rest**2).sum(-1) - 0.5 * m * v - 0.5 * m * _LOG_2PI
        return lp_v + lp_rest

    def _sample(self, n: int, generator: torch.Generator | None) -> Tensor:
        v = math.sqrt(self.variance) * torch.randn((n, 1), generator=generator, dtype=torch.float64)
        rest = torch.exp(0.5 * v) * torch.randn((n, self.dim - 1), generator=generator, dtype=torch.float64)
        return torch.cat([v, rest], dim=1)


@functools.lru_cache(maxsize=2)
def _lgcp_prior_factor(grid: int, signal_variance: float, beta: float) -> tuple[Tensor, Tensor, float]:
    """Gram matrix factor of the LGCP prior (float64): ``(K, L^{-1}, log det K)``."""
    idx = torch.arange(grid * grid, dtype=torch.float64)
    coords = torch.stack([torch.div(idx, grid, rounding_mode="floor"), torch.remainder(idx, grid)], dim=1)
    dist = torch.cdist(coords, coords, compute_mode="donot_use_mm_for_euclid_dist")
    gram = signal_variance * torch.exp(-dist / (grid * beta))
    chol = torch.linalg.cholesky(gram)
    eye = torch.eye(grid * grid, dtype=torch.float64)
    inv_factor = torch.linalg.solve_triangular(chol, eye, upper=False)
    logdet = 2.0 * float(torch.log(torch.diagonal(chol)).sum())
    return gram, inv_factor, logdet


def bin_counts(points: np.ndarray, grid: int) -> np.ndarray:
    """Counts of ``points`` (``(n, 2)`` in ``[0, 1]^2``) on a ``grid x grid`` grid, flattened.

    The cell of a point ``p`` is ``floor(grid * p)`` clamped to ``grid - 1``; the
    first coordinate gives the row, and cells are flattened row-major (the
    convention of Matthews et al., 2022, and of the authors' code).
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"points must have shape (n, 2), got {pts.shape}")
    if (pts < 0).any() or (pts > 1).any():
        raise ValueError("points must lie in [0, 1]^2")
    cells = np.minimum(np.floor(pts * grid).astype(np.int64), grid - 1)
    flat = cells[:, 0] * grid + cells[:, 1]
    return np.bincount(flat, minlength=grid * grid).astype(np.float64)


class LGCP(Target):
    """Log-Gaussian Cox process on the Finnish pines data (dimension 1600).

    Møller, Syversveen & Waagepetersen (1998), *Log Gaussian Cox processes*; the
    sampling benchmark of Arbel et al. (2021) / Matthews et al. (2022), used in
    Hertrich & Gruhlke (2025), Appendix E.1.  Unnormalised density::

        log g(x) = log N(x; mu, K) + sum_i (x_i y_i - a exp(x_i))

    with bin counts ``y`` of the pines points on a 40 x 40 grid (see
    :func:`bin_counts`), ``a = 1/1600``, ``mu = log(126) - 1.91/2`` (every entry),
    ``K_ij = 1.91 exp(-|g_i - g_j| / (40 beta))``, ``beta = 1/33``, ``g_i`` the
    integer grid index pair of cell ``i``.  The Gaussian term carries its full
    normaliser and the Poisson term no factorials, the convention behind the
    paper's ``log Z = 508.2``.  ``log_z`` is ``None`` (unknown); there is no exact
    sampler.

    The Cholesky factor of ``K`` is computed in float64 on first use (and shared
    between instances); evaluation is one matrix product with the inverse factor.

    Args:
        points: the point pattern, shape ``(n, 2)`` in ``[0, 1]^2``; default the pines
            data (``pines.csv`` of the data directory, :mod:`jkoic.bench.data`).
    """

    grid = 40
    signal_variance = 1.91
    beta = 1.0 / 33.0

    def __init__(self, points: np.ndarray | None = None) -> None:
        super().__init__("lgcp", self.grid * self.grid, log_z=None)
        pts = _data.load_csv("pines.csv") if points is None else np.asarray(points, dtype=np.float64)
        self.num_points = int(pts.shape[0])
        self.a = 1.0 / (self.grid * self.grid)
        self.mu = math.log(126.0) - 0.5 * self.signal_variance
        self._set_buffer("counts", bin_counts(pts, self.grid))
        self._factor_ready = False
        self._log_norm = 0.0

    @property
    def counts(self) -> Tensor:
        """Flattened bin counts ``y``, shape ``(1600,)`` (float64, CPU)."""
        return self._buffers["counts"]

    @property
    def mean(self) -> Tensor:
        """Prior mean vector ``mu``, shape ``(1600,)`` (float64, CPU)."""
        return torch.full((self.dim,), self.mu, dtype=torch.float64)

    @property
    def covariance(self) -> Tensor:
        """Prior covariance ``K``, shape ``(1600, 1600)`` (float64, CPU)."""
        return _lgcp_prior_factor(self.grid, self.signal_variance, self.beta)[0]

    def _ensure_factor(self) -> None:
        if self._factor_ready:
            return
        _, inv_factor, logdet = _lgcp_prior_factor(self.grid, self.signal_variance, self.beta)
        self._set_buffer("inv_factor_t", inv_factor.T)
        self._log_norm = -0.5 * self.dim * _LOG_2PI - 0.5 * logdet
        self._factor_ready = True

    def _log_prob(self, x: Tensor) -> Tensor:
        self._ensure_factor()
        white = (x - self.mu) @ self._buffer("inv_factor_t", x)
        prior = -0.5 * (white**2).sum(-1) + self._log_norm
        y = self._buffer("counts", x)
        likelihood = (x * y - self.a * torch.exp(x)).sum(-1)
        return prior + likelihood

    def _repr_extra(self) -> str:
        return f"grid={self.grid}, points={self.num_points}"


def _check_fixed_dim(name: str, dim: Any, fixed: int) -> None:
    _check_int("dim", dim)
    if dim != fixed:
        raise ValueError(f"target {name!r} is only defined for dim={fixed}, got dim={dim}")


# ----------------------------------------------------------------------------- registry


def _eight_modes_means() -> Tensor:
    k = torch.arange(8, dtype=torch.float64)
    angle = 2.0 * math.pi * k / 8.0
    return torch.stack([torch.cos(angle) - 1.0, torch.sin(angle)], dim=1)


def _make_mustache(*, dim: int = 2) -> Target:
    """Mustache distribution (dim 2)."""
    _check_fixed_dim("mustache", dim, 2)
    return Mustache()


def _make_8modes(*, dim: int = 2) -> Target:
    """Shifted 8 modes (dim 2)."""
    _check_fixed_dim("8modes", dim, 2)
    return GaussianMixture("8modes", _eight_modes_means(), variance=0.01)


def _make_8peaky(*, dim: int = 2) -> Target:
    """Shifted 8 peaky (dim 2)."""
    _check_fixed_dim("8peaky", dim, 2)
    return GaussianMixture("8peaky", _eight_modes_means(), variance=0.005)


def _make_funnel(*, dim: int = 10) -> Target:
    """Neal's funnel (default dim 10)."""
    return Funnel(_check_int("dim", dim, 2))


def _make_gmm(*, dim: int = 10, means_id: int | None = None, seed: int | None = None) -> Target:
    """GMM-d: the paper's mean sets (``means_id`` 1..5) or fresh U[-1, 1]^d means (``seed``)."""
    dim = _check_int("dim", dim, 1)
    if means_id is not None and seed is not None:
        raise ValueError("target 'gmm': give exactly one of means_id and seed, not both")
    if seed is None:
        means_id = 1 if means_id is None else _check_int("means_id", means_id)
        if means_id not in _data.GMM_MEANS_IDS:
            raise ValueError(f"target 'gmm': means_id must be one of {list(_data.GMM_MEANS_IDS)}, got {means_id}")
        if dim not in _data.GMM_DIMS:
            raise ValueError(
                f"target 'gmm': the paper's mean sets exist for dim in {list(_data.GMM_DIMS)}, got dim={dim}; "
                f"pass seed=<int> to draw new means for another dimension"
            )
        means = _data.load_csv(_data.gmm_means_name(means_id, dim), shape=(10, dim))
        return GaussianMixture("gmm", means, variance=0.01, means_id=means_id)
    seed = _check_int("seed", seed)
    gen = torch.Generator().manual_seed(seed)
    means = (2.0 * torch.rand((10, dim), generator=gen) - 1.0).to(torch.float64)
    return GaussianMixture("gmm", means, variance=0.01, seed=seed)


def _make_gmm40(*, dim: int = 50) -> Target:
    """GMM40-50D with the benchmark means."""
    _check_fixed_dim("gmm40", dim, 50)
    means = _data.load_csv("gmm40_50d_means.csv", shape=(40, 50))
    return GaussianMixture("gmm40", means, variance=1.0)


def _make_lgcp(*, dim: int = 1600) -> Target:
    """LGCP on the pines data (dim 1600)."""
    _check_fixed_dim("lgcp", dim, 1600)
    return LGCP()


_FACTORIES: dict[str, Callable[..., Target]] = {
    "mustache": _make_mustache,
    "8modes": _make_8modes,
    "8peaky": _make_8peaky,
    "funnel": _make_funnel,
    "gmm": _make_gmm,
    "gmm40": _make_gmm40,
    "lgcp": _make_lgcp,
}

# Names used in the authors' code.
_ALIASES: dict[str, str] = {"schnauzbart": "mustache", "8mixtures": "8modes", "mixtures": "gmm"}


def names() -> list[str]:
    """The names accepted by :func:`get`."""
    return list(_FACTORIES)


def _resolve(name: Any) -> str:
    if not isinstance(name, str):
        raise TypeError(f"target name must be a str, got {type(name).__name__}")
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key in _FACTORIES:
        return key
    close = difflib.get_close_matches(key, list(_FACTORIES) + list(_ALIASES), n=1)
    hint = f" Did you mean {_ALIASES.get(close[0], close[0])!r}?" if close else ""
    raise ValueError(f"unknown target {name!r}; valid names: {', '.join(_FACTORIES)}.{hint}")


def get(name: str, **kwargs: Any) -> Target:
    """Build the benchmark target ``name``.

    Args:
        name: one of :func:`names` (case-insensitive; the authors' names ``schnauzbart``,
            ``8mixtures``, ``mixtures`` are accepted too): ``mustache``, ``8modes``,
            ``8peaky``, ``funnel``, ``gmm``, ``gmm40``, ``lgcp``.
        **kwargs: ``dim`` for every target (fixed for all but ``funnel`` (default 10) and
            ``gmm`` (default 10)); for ``gmm`` also ``means_id`` (1..5, the paper's mean
            sets, for dim in 10/20/50/100/200; default 1) or ``seed`` (draw new means
            uniformly on ``[-1, 1]^dim``), not both.

    Returns:
        The target, with ``kwargs`` holding every keyword argument (defaults filled in).

    Raises:
        ValueError: unknown name (the message lists the valid names) or invalid values.
        TypeError: unknown keyword arguments or arguments of the wrong type.
        FileNotFoundError: if a needed data file is missing (see :mod:`jkoic.bench.data`).
    """
    key = _resolve(name)
    factory = _FACTORIES[key]
    sig = inspect.signature(factory)
    unknown = [k for k in kwargs if k not in sig.parameters]
    if unknown:
        raise TypeError(
            f"target {key!r} got unexpected keyword argument(s) {', '.join(map(repr, unknown))}; "
            f"it accepts: {', '.join(sig.parameters)}"
        )
    bound = sig.bind(**kwargs)
    bound.apply_defaults()
    target = factory(**kwargs)
    target.kwargs = dict(bound.arguments)
    return target
