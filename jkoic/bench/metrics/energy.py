"""Energy distances: exact (chunked) and sliced (the paper's Table 1), and the sampling error.

References:
    J. Hertrich, R. Gruhlke. Importance Corrected Neural JKO Sampling. ICML 2025, App. E.2.
    G. J. Szekely. E-statistics: the energy of statistical samples. 2002.
    J. Hertrich, C. Wald, F. Altekrueger, P. Hagemann. Generative sliced MMD flows with Riesz
    kernels. ICLR 2024 (slicing the negative distance kernel).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ._common import ArrayLike, MetricValue, _check_positive_int, _protocol, _sample_pair

__all__ = ["energy_distance", "sampling_error", "sliced_energy_distance", "slicing_constant"]


def _pairwise_distance_sum(a: Tensor, b: Tensor | None, chunk_size: int) -> float:
    """``sum_{i,j} |a_i - b_j|`` over all ordered pairs, in blocks, accumulated in float64.

    With ``b is None`` the sum is over all ordered pairs of ``a`` with itself (the
    diagonal contributes zeros); only blocks on and above the diagonal are computed.
    Never builds more than one ``chunk_size x chunk_size`` block at a time.
    """
    symmetric = b is None
    other = a if b is None else b
    total = torch.zeros((), dtype=torch.float64, device=a.device)
    for i in range(0, a.shape[0], chunk_size):
        rows = a[i : i + chunk_size]
        start = i if symmetric else 0
        for j in range(start, other.shape[0], chunk_size):
            block = torch.cdist(rows, other[j : j + chunk_size], compute_mode="donot_use_mm_for_euclid_dist")
            # row sums in the block's dtype (a few thousand terms, cascade summation),
            # then float64 across rows: as accurate as a float64 sum, much faster
            s = block.sum(dim=1).to(torch.float64).sum()
            total += 2.0 * s if (symmetric and j != i) else s
            del block
    return float(total)


def energy_distance(
    x: ArrayLike,
    y: ArrayLike,
    *,
    chunk_size: int = 4096,
    unbiased: bool = False,
    compute_dtype: torch.dtype = torch.float32,
) -> MetricValue:
    r"""Exact energy distance ``E|X-Y| - (E|X-X'| + E|Y-Y'|) / 2``.

    Appendix E.2 of the paper defines ``D(mu, nu) = -1/2 \iint |x-y| d(mu-nu)(x)
    d(mu-nu)(y)`` and its sample version ``sum_{i,j} |x_i - y_j| - 1/2 sum_{i,j}
    |x_i - x_j| - 1/2 sum_{i,j} |y_i - y_j|``. The value reported here is that sum
    divided by ``N^2`` (``N x M`` for the cross term), i.e. the **V-statistic**: every
    expectation is the mean over *all* ordered pairs, the ``i = j`` zeros of the
    within-sample terms included. It is ``>= 0`` and ``0`` for identical samples.
    With ``unbiased=True`` the within-sample means exclude the diagonal (divide by
    ``n (n - 1)``: the U-statistic, unbiased for ``D`` but possibly negative).

    Computation: all pairwise distances, in ``chunk_size x chunk_size`` blocks
    (``torch.cdist`` per block, direct differences, no ``|x|^2 + |y|^2 - 2 x.y``
    cancellation), block rows summed in the block's dtype and accumulated in float64;
    the within-sample sums only compute blocks on and above the diagonal. Memory stays
    bounded (one block, 64 MiB at the default size in float32) and never an ``N x N``
    matrix. Both sets are first centred by their pooled mean (the distance is translation
    invariant) and then cast to ``compute_dtype``; float32 rounding is unbiased, so the
    result agrees closely with a float64 computation (the tests hold it to 2e-6 relative
    to ``E|X-Y|``). ``compute_dtype=torch.float64`` gives full double precision at a higher
    cost. Works on CUDA tensors.

    Cost: O(N^2 d) (timings in ``benchmarks/README.md``). The paper's Table 1 used the
    sliced estimator (:func:`sliced_energy_distance`), which is what the reference code
    reports.

    Args:
        x: samples, shape ``(n, d)`` (or ``(n,)``).
        y: samples, shape ``(m, d)`` (or ``(m,)``).
        chunk_size: block size of the distance computation.
        unbiased: ``False`` (default): V-statistic (the paper's formula divided by
            ``N^2``). ``True``: U-statistic within-sample terms.
        compute_dtype: dtype of the distance blocks (float32 or float64); sums are float64.

    Returns:
        A :class:`MetricValue`; protocol keys: ``n_x``, ``n_y``, ``dim``, ``estimator``,
        ``chunk_size``, ``compute_dtype``, ``device``, ``e_xy``, ``e_xx``, ``e_yy`` (the
        three means).

    Raises:
        ValueError: on malformed samples or parameters, or ``unbiased=True`` with fewer
            than 2 samples in a set.

    References:
        Hertrich & Gruhlke, ICML 2025, Appendix E.2; Szekely (2002).
    """
    chunk_size = _check_positive_int("chunk_size", chunk_size)
    if compute_dtype not in (torch.float32, torch.float64):
        raise ValueError(f"compute_dtype must be torch.float32 or torch.float64, got {compute_dtype}")
    xt, yt = _sample_pair(x, y)
    n, m, d = xt.shape[0], yt.shape[0], xt.shape[1]
    if unbiased and (n < 2 or m < 2):
        raise ValueError(f"unbiased=True needs at least 2 samples in each set, got n={n}, m={m}")
    with torch.no_grad():
        shift = torch.cat([xt, yt]).to(torch.float64).mean(dim=0)
        xc = (xt.to(torch.float64) - shift).to(compute_dtype).contiguous()
        yc = (yt.to(torch.float64) - shift).to(compute_dtype).contiguous()
        s_xy = _pairwise_distance_sum(xc, yc, chunk_size)
        s_xx = _pairwise_distance_sum(xc, None, chunk_size)
        s_yy = _pairwise_distance_sum(yc, None, chunk_size)
    e_xy = s_xy / (n * m)
    e_xx = s_xx / (n * (n - 1) if unbiased else n * n)
    e_yy = s_yy / (m * (m - 1) if unbiased else m * m)
    value = e_xy - 0.5 * (e_xx + e_yy)
    return MetricValue(
        value,
        _protocol(
            "energy_distance",
            n_x=n,
            n_y=m,
            dim=d,
            estimator="U-statistic" if unbiased else "V-statistic",
            chunk_size=chunk_size,
            compute_dtype=str(compute_dtype),
            device=str(xt.device),
            e_xy=e_xy,
            e_xx=e_xx,
            e_yy=e_yy,
        ),
    )


# ----------------------------------------------------------------------------- sliced energy distance


def slicing_constant(d: int) -> float:
    r"""``c_d = sqrt(pi) Gamma((d+1)/2) / Gamma(d/2)``.

    For the negative distance kernel, ``E_xi |<xi, x - y>| = |x - y| / c_d`` for
    ``xi`` uniform on the unit sphere of ``R^d``, so the energy distance equals
    ``c_d`` times the mean over directions of the 1-D energy distances of the
    projections. ``c_1 = 1``, ``c_2 = pi / 2``.

    References:
        Hertrich et al., ICLR 2024 (sliced MMD with Riesz kernels); Hertrich & Gruhlke,
        ICML 2025, Appendix E.2 (reference implementation).
    """
    d = _check_positive_int("d", d)
    return math.exp(0.5 * math.log(math.pi) + math.lgamma((d + 1) / 2) - math.lgamma(d / 2))


def _rank_weights(length: int, dtype: torch.dtype = torch.float64) -> Tensor:
    """``w_k = 2k - L + 1``: ``sum_k a_(k) w_k`` is the sum over unordered pairs of ``|a_i - a_j|``."""
    return torch.arange(length, dtype=dtype) * 2.0 - (length - 1)


def _project_into(theta: np.ndarray, points_t: np.ndarray, out: np.ndarray) -> None:
    """``out[:] = theta @ points_t`` for ``theta`` (P, d), ``points_t`` (d, n).

    Elementwise for small ``d`` (no BLAS threads inside the worker threads).
    """
    d = theta.shape[1]
    if d > 8:
        out[...] = theta @ points_t
        return
    np.multiply(theta[:, :1], points_t[0], out=out)
    if d > 1:
        tmp = np.empty_like(out)
        for k in range(1, d):
            np.multiply(theta[:, k : k + 1], points_t[k], out=tmp)
            out += tmp


def _pair_sums_numpy(
    theta: np.ndarray, x_t: np.ndarray, y_t: np.ndarray, wx: np.ndarray, wy: np.ndarray, wz: np.ndarray
) -> np.ndarray:
    """Per direction: unordered within-sums ``S(x)``, ``S(y)`` and the cross sum, float64, shape (3, P).

    One buffer per batch: projections of x and y side by side, each half sorted in
    place (SIMD quicksort), then the whole row merged in place (timsort on two sorted
    runs is a linear merge). ``einsum`` casts to float64 in small chunks and
    accumulates in float64 without BLAS.
    """
    n = x_t.shape[1]
    buf = np.empty((theta.shape[0], n + y_t.shape[1]), dtype=x_t.dtype)
    bx, by = buf[:, :n], buf[:, n:]
    _project_into(theta, x_t, bx)
    _project_into(theta, y_t, by)
    bx.sort(axis=1)
    by.sort(axis=1)
    s_x = np.einsum("ij,j->i", bx, wx)
    s_y = np.einsum("ij,j->i", by, wy)
    buf.sort(axis=1, kind="stable")
    s_z = np.einsum("ij,j->i", buf, wz)
    return np.stack([s_x, s_y, s_z - s_x - s_y])


def _pair_sums_torch(xp: Tensor, yp: Tensor, wx: Tensor, wy: Tensor, wz: Tensor) -> Tensor:
    """Torch version of :func:`_pair_sums_numpy` (used on accelerators)."""
    xs = torch.sort(xp, dim=1).values
    ys = torch.sort(yp, dim=1).values
    zs = torch.sort(torch.cat([xs, ys], dim=1), dim=1).values
    s_x = xs.to(torch.float64) @ wx
    s_y = ys.to(torch.float64) @ wy
    s_z = zs.to(torch.float64) @ wz
    return torch.stack([s_x, s_y, s_z - s_x - s_y])


def _sliced_terms(
    xt: Tensor, yt: Tensor, theta: Tensor, batch: int, num_workers: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each direction: ``sum |x_i - x_j|`` (i<j), the same for y, and ``sum_{i,j} |x_i - y_j|``."""
    n, m = xt.shape[0], yt.shape[0]
    starts = list(range(0, theta.shape[0], batch))
    if xt.device.type == "cpu":
        xT = np.ascontiguousarray(xt.numpy().T)
        yT = np.ascontiguousarray(yt.numpy().T)
        th = theta.numpy().astype(xT.dtype)
        wx, wy, wz = (_rank_weights(k).numpy() for k in (n, m, n + m))

        def work(s: int) -> np.ndarray:
            return _pair_sums_numpy(th[s : s + batch], xT, yT, wx, wy, wz)

        if num_workers > 1 and len(starts) > 1:
            with ThreadPoolExecutor(max_workers=num_workers) as pool:
                parts = list(pool.map(work, starts))
        else:
            parts = [work(s) for s in starts]
        out = np.concatenate(parts, axis=1)
    else:
        th = theta.to(device=xt.device, dtype=xt.dtype)
        wx, wy, wz = (_rank_weights(k).to(xt.device) for k in (n, m, n + m))
        parts_t = [_pair_sums_torch(th[s : s + batch] @ xt.T, th[s : s + batch] @ yt.T, wx, wy, wz) for s in starts]
        out = torch.cat(parts_t, dim=1).cpu().numpy()
    return out[0], out[1], out[2]


def sliced_energy_distance(
    x: ArrayLike,
    y: ArrayLike,
    n_projections: int = 1000,
    seed: int = 0,
    *,
    unbiased: bool = False,
    batch_size: int | None = None,
    num_workers: int | None = None,
) -> MetricValue:
    r"""Sliced energy distance, the estimator behind the paper's Table 1.

    As in the authors' code: ``n_projections`` directions ``xi_k`` uniform on the unit
    sphere (normalised standard normals), the *exact* 1-D energy distance of the
    projected samples per direction, averaged, times :func:`slicing_constant` ``c_d``.
    Since ``|x - y| = c_d E_xi |<xi, x-y>|``, the estimator is unbiased for the exact
    (V-statistic) energy distance of :func:`energy_distance`; the only error is the
    Monte-Carlo error over directions, reported as ``std_error`` in the protocol. In
    1-D it is exact.

    The 1-D energy distance is computed in O(n log n) from sorted arrays: for sorted
    ``a_(1) <= ... <= a_(L)``, ``sum_{i<j} |a_i - a_j| = sum_k a_(k) (2k - L - 1)``
    (1-based), applied to the sorted ``x``, the sorted ``y`` and their merge (the cross
    sum is ``S(merge) - S(x) - S(y)``), sums in float64. Projections and sorting run
    in the input's precision (float32 input: float32). Deterministic given ``seed``
    (directions are drawn on the CPU with ``torch.Generator().manual_seed(seed)``).

    Args:
        x: samples, shape ``(n, d)`` (or ``(n,)``).
        y: samples, shape ``(m, d)`` (or ``(m,)``).
        n_projections: number of random directions (the paper: 1000).
        seed: seed of the directions.
        unbiased: ``False``: V-statistic per direction (as the reference). ``True``:
            U-statistic within-sample terms.
        batch_size: directions per batch (default: about ``2e6 / (n + m)``; small batches
            keep the working arrays in reused heap memory, which is faster than fresh pages).
        num_workers: CPU threads over batches (default ``torch.get_num_threads()``).

    Returns:
        A :class:`MetricValue`; protocol keys: ``n_x``, ``n_y``, ``dim``,
        ``n_projections``, ``seed``, ``slicing_constant``, ``estimator``, ``std_error``,
        ``device``.

    Raises:
        ValueError: on malformed samples or parameters, or ``unbiased=True`` with fewer
            than 2 samples in a set.

    References:
        Hertrich & Gruhlke, ICML 2025, Appendix E.2 and Table 1; Hertrich et al.,
        ICLR 2024 (slicing of the negative distance kernel).
    """
    n_projections = _check_positive_int("n_projections", n_projections)
    seed = int(seed)
    xt, yt = _sample_pair(x, y)
    n, m, d = xt.shape[0], yt.shape[0], xt.shape[1]
    if unbiased and (n < 2 or m < 2):
        raise ValueError(f"unbiased=True needs at least 2 samples in each set, got n={n}, m={m}")
    if batch_size is None:
        batch_size = max(1, min(n_projections, 2_000_000 // (n + m)))
    batch_size = _check_positive_int("batch_size", batch_size)
    if num_workers is None:
        num_workers = torch.get_num_threads()
    num_workers = _check_positive_int("num_workers", num_workers)

    dtype = torch.float64 if torch.float64 in (xt.dtype, yt.dtype) else torch.float32
    generator = torch.Generator().manual_seed(seed)
    theta = torch.randn(n_projections, d, generator=generator, dtype=torch.float64)
    theta = theta / theta.norm(dim=1, keepdim=True)
    with torch.no_grad():
        s_x, s_y, s_xy = _sliced_terms(
            xt.to(dtype).contiguous(), yt.to(dtype).contiguous(), theta, batch_size, num_workers
        )
    e_xy = s_xy / (n * m)
    e_xx = 2.0 * s_x / (n * (n - 1) if unbiased else n * n)
    e_yy = 2.0 * s_y / (m * (m - 1) if unbiased else m * m)
    per_direction = e_xy - 0.5 * (e_xx + e_yy)
    c_d = slicing_constant(d)
    value = c_d * float(per_direction.mean())
    std_error = c_d * float(per_direction.std(ddof=1)) / math.sqrt(n_projections) if n_projections > 1 else float("nan")
    return MetricValue(
        value,
        _protocol(
            "sliced_energy_distance",
            n_x=n,
            n_y=m,
            dim=d,
            n_projections=n_projections,
            seed=seed,
            slicing_constant=c_d,
            estimator="U-statistic" if unbiased else "V-statistic",
            std_error=std_error,
            device=str(xt.device),
        ),
    )


# ----------------------------------------------------------------------------- sampling error


def sampling_error(
    target: Any,
    n: int,
    metric: Callable[..., float] = sliced_energy_distance,
    seed: int = 0,
    **metric_kwargs: Any,
) -> MetricValue:
    """A metric between two independent ground-truth sample sets ("Sampling Error").

    Draws ``x1 = target.sample(n, generator=g)`` and then ``x2 = target.sample(n,
    generator=g)`` from one CPU generator ``g`` seeded with ``seed`` and returns
    ``metric(x1, x2, **metric_kwargs)``: the noise floor of ``metric`` at sample size
    ``n`` (the last column of the paper's Tables 1 and 3).

    Args:
        target: object with ``sample(n, generator=torch.Generator) -> Tensor (n, dim)``.
        n: size of each set (Table 1: 50000 with the sliced energy distance; Table 3:
            5000 with :func:`~jkoic.bench.metrics.w2_squared`).
        metric: any two-sample metric of :mod:`jkoic.bench.metrics` (or a callable
            ``(x, y) -> float``).
        seed: seed of the generator.
        **metric_kwargs: passed on to ``metric``.

    Returns:
        A :class:`MetricValue`; protocol: ``metric="sampling_error"``, ``base_metric``,
        ``target``, ``n``, ``seed`` and ``base_protocol`` (the protocol of the inner
        metric, without its versions).

    Raises:
        TypeError: if ``target`` has no ``sample`` method.

    References:
        Hertrich & Gruhlke, ICML 2025, Tables 1 and 3 ("Sampling Error" column).
    """
    n = _check_positive_int("n", n)
    if not hasattr(target, "sample"):
        raise TypeError(f"target must have a sample(n, generator=...) method, got {type(target).__name__}")
    seed = int(seed)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        x1 = target.sample(n, generator=generator)
        x2 = target.sample(n, generator=generator)
    inner = metric(x1, x2, **metric_kwargs)
    base_protocol = dict(getattr(inner, "protocol", {}))
    base_protocol.pop("versions", None)
    base_name = base_protocol.get("metric", getattr(metric, "__name__", repr(metric)))
    return MetricValue(
        float(inner),
        _protocol(
            "sampling_error",
            base_metric=base_name,
            target=str(getattr(target, "name", type(target).__name__)),
            n=n,
            seed=seed,
            base_protocol=base_protocol,
        ),
    )
