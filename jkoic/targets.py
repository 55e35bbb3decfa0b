"""Benchmark target distributions of the paper, and the ``Target`` interface.

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

Use :func:`get` to build a target by name, :func:`as_target` to wrap a user
callable, and :func:`check_log_prob` to evaluate a density with clear errors on
malformed output.

Buffers (means, Cholesky factors, ...) are stored as float64 CPU tensors and cast
lazily to the device and dtype of the input of :meth:`Target.log_prob` (with a
small cache), so a target works unchanged on CPU and GPU, in float32 and float64.
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

from jkoic import data as _data

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
_CACHE_LIMIT = 16


# ----------------------------------------------------------------------------- base class


class Target:
    """A target distribution on ``R^dim`` given by a log density.

    Attributes
    ----------
    name:
        Registry name (``get(target.name)`` rebuilds a default instance).
    dim:
        Dimension of the sample space.
    log_z:
        Log normalising constant of ``exp(log_prob)``: ``0.0`` for the normalised
        benchmark targets, ``None`` where it is unknown (LGCP, user callables).
    kwargs:
        For targets built by :func:`get`: all keyword arguments (defaults filled
        in), so ``get(t.name, **t.kwargs)`` rebuilds the same target (e.g. for
        saving a model); ``{}`` otherwise.
    """

    name: str
    dim: int
    log_z: float | None

    def __init__(self, name: str, dim: int, log_z: float | None = 0.0) -> None:
        self.name = name
        self.dim = int(dim)
        self.log_z = log_z
        self.kwargs: dict[str, Any] = {}
        self._buffers: dict[str, Tensor] = {}
        self._cast_cache: dict[tuple[str, torch.device, torch.dtype], Tensor] = {}

    # -- buffers ---------------------------------------------------------------------

    def _set_buffer(self, key: str, value: Tensor | np.ndarray) -> None:
        """Store ``value`` as a float64 CPU buffer (dropping stale cast copies)."""
        self._buffers[key] = torch.as_tensor(value, dtype=torch.float64).detach().cpu().contiguous()
        self._cast_cache = {k: v for k, v in self._cast_cache.items() if k[0] != key}

    def _buffer(self, key: str, like: Tensor) -> Tensor:
        """Buffer ``key`` on the device and in the dtype of ``like`` (cached)."""
        ck = (key, like.device, like.dtype)
        cached = self._cast_cache.get(ck)
        if cached is None:
            if len(self._cast_cache) >= _CACHE_LIMIT:
                self._cast_cache.clear()
            cached = self._buffers[key].to(device=like.device, dtype=like.dtype)
            self._cast_cache[ck] = cached
        return cached

    # -- public interface ------------------------------------------------------------

    @property
    def means(self) -> Tensor | None:
        """Mixture means, shape ``(K, dim)`` (float64, CPU); ``None`` for non-mixtures."""
        return None

    @property
    def weights(self) -> Tensor | None:
        """Mixture weights, shape ``(K,)`` (float64, CPU); ``None`` for non-mixtures."""
        return None

    def log_prob(self, x: Tensor) -> Tensor:
        """Log density at the rows of ``x``.

        Parameters
        ----------
        x:
            Floating point tensor of shape ``(n, dim)`` on any device.

        Returns
        -------
        Tensor
            Shape ``(n,)``, same device and dtype as ``x``; differentiable.

        Raises
        ------
        TypeError
            If ``x`` is not a floating point tensor.
        ValueError
            If ``x`` does not have shape ``(n, dim)``.
        """
        self._check_input(x)
        return self._log_prob(x)

    def __call__(self, x: Tensor) -> Tensor:
        return self.log_prob(x)

    def score_and_laplacian(self, x: Tensor) -> tuple[Tensor, Tensor] | None:
        """``(grad log g(x), Laplacian of log g(x))`` in closed form, or ``None``.

        The gradient-flow layer (Remark E.2) integrates ``v = grad log g`` with divergence
        ``Laplacian log g``; it uses this closed form where a target provides one (the
        Gaussian mixtures) and autograd otherwise. ``None``: not available.
        """
        return None

    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        """Exact samples of the target.

        Draws are made in float64 on the CPU (with ``generator`` if given, which
        must be a CPU generator) and then moved to ``device`` / cast to ``dtype``.

        Parameters
        ----------
        n:
            Number of samples (``>= 0``).
        generator:
            Optional CPU ``torch.Generator`` for reproducibility.
        device, dtype:
            Device (default CPU) and dtype (default float32) of the result.

        Returns
        -------
        Tensor
            Shape ``(n, dim)``.

        Raises
        ------
        NotImplementedError
            If the target has no exact sampler.
        """
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        if generator is not None and generator.device.type != "cpu":
            raise ValueError(
                f"generator must be a CPU torch.Generator (samples are drawn on the CPU), "
                f"got one on {generator.device}"
            )
        x = self._sample(int(n), generator)
        return x.to(device=torch.device(device) if device is not None else "cpu", dtype=dtype)

    def __repr__(self) -> str:
        extra = self._repr_extra()
        extra = f", {extra}" if extra else ""
        return f"{type(self).__name__}(name={self.name!r}, dim={self.dim}{extra}, log_z={self.log_z!r})"

    # -- hooks for subclasses --------------------------------------------------------

    def _log_prob(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def _sample(self, n: int, generator: torch.Generator | None) -> Tensor:
        raise NotImplementedError(
            f"target {self.name!r} has no exact sampler; ground-truth samples are not available for it"
        )

    def _repr_extra(self) -> str:
        return ""

    def _check_input(self, x: Any) -> None:
        if not isinstance(x, Tensor):
            raise TypeError(
                f"target {self.name!r}: log_prob expects a torch.Tensor of shape (n, {self.dim}), "
                f"got {type(x).__name__}"
            )
        if x.ndim != 2 or x.shape[-1] != self.dim:
            raise ValueError(
                f"target {self.name!r}: log_prob expects x of shape (n, {self.dim}), "
                f"got shape {tuple(x.shape)}"
            )
        if not x.is_floating_point():
            raise TypeError(
                f"target {self.name!r}: log_prob expects a floating point tensor, got dtype {x.dtype}"
            )


# ----------------------------------------------------------------------------- concrete targets


class GaussianMixture(Target):
    """Mixture of isotropic Gaussians ``sum_k w_k N(m_k, variance I)``.

    Used for ``8modes`` / ``8peaky`` (shifted 8 modes / 8 peaky), ``gmm`` (GMM-d)
    and ``gmm40`` (GMM40-50D), Hertrich & Gruhlke (2025), Appendix E.1.

    Parameters
    ----------
    name:
        Registry name.
    means:
        Component means, shape ``(K, dim)``.
    variance:
        Common per-coordinate variance of the components.
    weights:
        Mixture weights ``(K,)`` summing to one; default equal weights.
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
        w = torch.full((K,), 1.0 / K, dtype=torch.float64) if weights is None else torch.as_tensor(
            weights, dtype=torch.float64
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


class CallableTarget(Target):
    """A target given by a user function ``log_prob_fn(x: (n, dim)) -> (n,)``.

    Parameters
    ----------
    log_prob_fn:
        Callable returning the (possibly unnormalised) log density per row.
    dim:
        Dimension of the sample space.
    name:
        Name used in messages.
    log_z:
        Log normaliser if known, else ``None``.
    sampler:
        Optional exact sampler ``sampler(n, generator) -> (n, dim)`` tensor; without
        it :meth:`sample` raises ``NotImplementedError``.
    """

    def __init__(
        self,
        log_prob_fn: Callable[[Tensor], Tensor],
        dim: int,
        name: str = "custom",
        log_z: float | None = None,
        sampler: Callable[[int, torch.Generator | None], Tensor] | None = None,
    ) -> None:
        if not callable(log_prob_fn):
            raise TypeError(f"log_prob_fn must be callable, got {type(log_prob_fn).__name__}")
        if sampler is not None and not callable(sampler):
            raise TypeError(f"sampler must be callable, got {type(sampler).__name__}")
        _check_int("dim", dim, 1)
        super().__init__(name, dim, log_z=log_z)
        self.log_prob_fn = log_prob_fn
        self.sampler = sampler

    def _log_prob(self, x: Tensor) -> Tensor:
        return self.log_prob_fn(x)

    def _sample(self, n: int, generator: torch.Generator | None) -> Tensor:
        if self.sampler is None:
            raise NotImplementedError(
                f"target {self.name!r} is a user-given log density (CallableTarget) without a sampler: "
                f"it has no exact sampler, so ground-truth samples are not available"
            )
        x = torch.as_tensor(self.sampler(n, generator))
        if tuple(x.shape) != (n, self.dim):
            raise ValueError(
                f"sampler of target {self.name!r} returned shape {tuple(x.shape)}, expected ({n}, {self.dim})"
            )
        return x.detach().to(device="cpu", dtype=torch.float64)


# ----------------------------------------------------------------------------- validation helpers


def _check_int(what: str, value: Any, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{what} must be an int, got {type(value).__name__} {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{what} must be >= {minimum}, got {value}")
    return int(value)


def _check_fixed_dim(name: str, dim: Any, fixed: int) -> None:
    _check_int("dim", dim)
    if dim != fixed:
        raise ValueError(f"target {name!r} is only defined for dim={fixed}, got dim={dim}")


def _format_point(row: Tensor, max_items: int = 6) -> str:
    vals = [f"{float(v):.4g}" for v in row[:max_items].tolist()]
    more = f", ... ({row.numel()} entries)" if row.numel() > max_items else ""
    return "[" + ", ".join(vals) + more + "]"


def check_log_prob(target: Target | Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """Evaluate ``target.log_prob(x)`` and check the result.

    Parameters
    ----------
    target:
        A :class:`Target` (or anything :func:`as_target` accepts).
    x:
        Points, shape ``(n, dim)``.

    Returns
    -------
    Tensor
        The log densities, shape ``(n,)``.

    Raises
    ------
    ValueError
        If the output is not a tensor of shape ``(n,)``, or contains NaN, +inf or
        -inf (the message counts the bad values and shows one offending point).
    """
    if not isinstance(target, Target):
        dim = x.shape[-1] if isinstance(x, Tensor) and x.ndim == 2 else None
        target = as_target(target, dim=dim)
    out = target.log_prob(x)
    n = x.shape[0]
    if not isinstance(out, Tensor):
        raise ValueError(
            f"log_prob of target {target.name!r} must return a torch.Tensor of shape ({n},), "
            f"got {type(out).__name__}"
        )
    if tuple(out.shape) != (n,):
        raise ValueError(
            f"log_prob of target {target.name!r} returned shape {tuple(out.shape)}, expected ({n},) "
            f"(one value per row of x, which has shape {tuple(x.shape)})"
        )
    if not out.is_floating_point():
        raise ValueError(
            f"log_prob of target {target.name!r} returned dtype {out.dtype}, expected a floating point tensor"
        )
    finite = torch.isfinite(out)
    if not bool(finite.all()):
        with torch.no_grad():
            n_nan = int(torch.isnan(out).sum())
            n_pinf = int((out == math.inf).sum())
            n_ninf = int((out == -math.inf).sum())
            i = int(torch.nonzero(~finite)[0, 0])
            val = float(out[i])
            point = _format_point(x[i].detach().cpu())
        raise ValueError(
            f"log_prob of target {target.name!r} returned non-finite values at "
            f"{n_nan + n_pinf + n_ninf} of {n} points ({n_nan} NaN, {n_pinf} +inf, {n_ninf} -inf); "
            f"e.g. log_prob(x[{i}]) = {val} at x[{i}] = {point}"
        )
    return out


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

    Parameters
    ----------
    name:
        One of :func:`names` (case-insensitive): ``mustache``, ``8modes``,
        ``8peaky``, ``funnel``, ``gmm``, ``gmm40``, ``lgcp``.
    **kwargs:
        ``dim`` for every target (fixed for all but ``funnel`` (default 10) and
        ``gmm`` (default 10)); for ``gmm`` also ``means_id`` (1..5, the paper's
        mean sets, for dim in 10/20/50/100/200; default 1) or ``seed`` (draw new
        means uniformly on ``[-1, 1]^dim``), not both.

    Raises
    ------
    ValueError
        Unknown name (the message lists the valid names) or invalid values.
    TypeError
        Unknown keyword arguments or arguments of the wrong type.
    FileNotFoundError
        If a needed data file is missing (see :mod:`jkoic.data`).
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


def as_target(obj: Any, dim: int | None = None) -> Target:
    """Turn ``obj`` into a :class:`Target`.

    * a :class:`Target` is returned as is (``dim``, if given, must match);
    * a string is looked up with :func:`get`;
    * an object with a ``log_prob`` method (duck-typed target) becomes a
      :class:`CallableTarget` around that method, keeping its ``name``, ``log_z``
      and ``sample(n, generator)`` if present;
    * a callable becomes a :class:`CallableTarget`.

    The dimension is ``dim`` if given, else the object's attribute ``dim``.

    Raises
    ------
    TypeError
        If ``obj`` is none of these, or a callable without a known dimension.
    ValueError
        If ``dim`` contradicts the dimension of a given target.
    """
    if isinstance(obj, Target):
        if dim is not None and int(dim) != obj.dim:
            raise ValueError(f"target {obj.name!r} has dim={obj.dim}, but dim={dim} was requested")
        return obj
    if isinstance(obj, str):
        return get(obj) if dim is None else get(obj, dim=dim)
    duck = callable(getattr(obj, "log_prob", None))
    if duck or callable(obj):
        d = dim if dim is not None else getattr(obj, "dim", None)
        if d is None:
            raise TypeError(
                "a log density callable needs a dimension: pass dim=... or give the callable "
                "an attribute `dim`"
            )
        d = _check_int("dim", d, 1)
        own_dim = getattr(obj, "dim", None)
        if dim is not None and isinstance(own_dim, int) and own_dim != d:
            raise ValueError(f"the given target has dim={own_dim}, but dim={dim} was requested")
        default = type(obj).__name__ if duck else getattr(obj, "__name__", None)
        name = getattr(obj, "name", None) or default or "custom"
        if not isinstance(name, str) or name == "<lambda>":
            name = "custom"
        log_z = getattr(obj, "log_z", None)
        log_z = float(log_z) if isinstance(log_z, (int, float)) else None
        fn = obj.log_prob if duck else obj
        sampler = getattr(obj, "sample", None) if duck else None
        return CallableTarget(fn, d, name=name, log_z=log_z, sampler=sampler if callable(sampler) else None)
    raise TypeError(
        f"cannot make a target from {type(obj).__name__}: expected a Target, a target name or a "
        f"callable log density"
    )
