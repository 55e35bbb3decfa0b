"""The target interface of the sampler: a log density on ``R^dim``.

:class:`Target` is what :class:`jkoic.Sampler` samples from; :func:`as_target` wraps a user
callable (or an object with ``log_prob``) into one, and :func:`check_log_prob` evaluates a
density with clear errors on malformed output (wrong shape, dtype, NaN or inf), before any
compute is spent on it. The paper's benchmark targets live in :mod:`jkoic.bench.targets`.

Buffers (means, Cholesky factors, ...) are stored as float64 CPU tensors and cast lazily to
the device and dtype of the input of :meth:`Target.log_prob` (with a small cache), so a
target works unchanged on CPU and GPU, in float32 and float64.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["CallableTarget", "Target", "as_target", "check_log_prob"]

_CACHE_LIMIT = 16


class Target:
    """A target distribution on ``R^dim`` given by a log density.

    Args:
        name: name of the target (for the benchmark targets, their registry name).
        dim: dimension of the sample space.
        log_z: log normalising constant of ``exp(log_prob)`` if known, else ``None``.

    Attributes:
        name: registry name (``jkoic.bench.targets.get(target.name)`` rebuilds a default
            instance of a benchmark target).
        dim: dimension of the sample space.
        log_z: log normalising constant of ``exp(log_prob)``: ``0.0`` for the normalised
            benchmark targets, ``None`` where it is unknown (LGCP, user callables).
        kwargs: for targets built by :func:`jkoic.bench.targets.get`: all keyword
            arguments (defaults filled in), so ``get(t.name, **t.kwargs)`` rebuilds the
            same target (e.g. for saving a model); ``{}`` otherwise.
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

        Args:
            x: floating point tensor of shape ``(n, dim)`` on any device.

        Returns:
            Shape ``(n,)``, same device and dtype as ``x``; differentiable.

        Raises:
            TypeError: if ``x`` is not a floating point tensor.
            ValueError: if ``x`` does not have shape ``(n, dim)``.
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

        Args:
            n: number of samples (``>= 0``).
            generator: optional CPU ``torch.Generator`` for reproducibility.
            device: device of the result (default CPU).
            dtype: dtype of the result (default float32).

        Returns:
            Shape ``(n, dim)``.

        Raises:
            ValueError: if ``n`` is not a non-negative integer or ``generator`` is not
                on the CPU.
            NotImplementedError: if the target has no exact sampler.
        """
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        if generator is not None and generator.device.type != "cpu":
            raise ValueError(
                f"generator must be a CPU torch.Generator (samples are drawn on the CPU), got one on {generator.device}"
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
                f"target {self.name!r}: log_prob expects x of shape (n, {self.dim}), got shape {tuple(x.shape)}"
            )
        if not x.is_floating_point():
            raise TypeError(f"target {self.name!r}: log_prob expects a floating point tensor, got dtype {x.dtype}")


class CallableTarget(Target):
    """A target given by a user function ``log_prob_fn(x: (n, dim)) -> (n,)``.

    Args:
        log_prob_fn: callable returning the (possibly unnormalised) log density per row.
        dim: dimension of the sample space.
        name: name used in messages.
        log_z: log normaliser if known, else ``None``.
        sampler: optional exact sampler ``sampler(n, generator) -> (n, dim)`` tensor;
            without it :meth:`sample` raises ``NotImplementedError``.

    Raises:
        TypeError: if ``log_prob_fn`` or ``sampler`` is not callable, or ``dim`` is not
            an int.
        ValueError: if ``dim < 1``.
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


def _format_point(row: Tensor, max_items: int = 6) -> str:
    vals = [f"{float(v):.4g}" for v in row[:max_items].tolist()]
    more = f", ... ({row.numel()} entries)" if row.numel() > max_items else ""
    return "[" + ", ".join(vals) + more + "]"


def check_log_prob(target: Target | Callable[[Tensor], Tensor], x: Tensor, *, allow_neg_inf: bool = False) -> Tensor:
    """Evaluate ``target.log_prob(x)`` and check the result.

    Args:
        target: a :class:`Target` (or anything :func:`as_target` accepts).
        x: points, shape ``(n, dim)``.
        allow_neg_inf: accept ``-inf`` (a density that vanishes at a point).

    Returns:
        The log densities, shape ``(n,)``.

    Raises:
        ValueError: if the output is not a floating point tensor of shape ``(n,)``, or
            contains NaN, +inf or (unless allowed) -inf (the message counts the bad values and
            shows one offending point).
    """
    if not isinstance(target, Target):
        dim = x.shape[-1] if isinstance(x, Tensor) and x.ndim == 2 else None
        target = as_target(target, dim=dim)
    out = target.log_prob(x)
    n = x.shape[0]
    if not isinstance(out, Tensor):
        raise ValueError(
            f"log_prob of target {target.name!r} must return a torch.Tensor of shape ({n},), got {type(out).__name__}"
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
    finite = torch.isfinite(out) | (torch.isneginf(out) if allow_neg_inf else False)
    if not bool(finite.all()):
        with torch.no_grad():
            n_nan = int(torch.isnan(out).sum())
            n_pinf = int((out == math.inf).sum())
            n_ninf = 0 if allow_neg_inf else int((out == -math.inf).sum())
            i = int(torch.nonzero(~finite)[0, 0])
            val = float(out[i])
            point = _format_point(x[i].detach().cpu())
        raise ValueError(
            f"log_prob of target {target.name!r} returned non-finite values at "
            f"{n_nan + n_pinf + n_ninf} of {n} points ({n_nan} NaN, {n_pinf} +inf, {n_ninf} -inf); "
            f"e.g. log_prob(x[{i}]) = {val} at x[{i}] = {point}"
        )
    return out


def as_target(obj: Any, dim: int | None = None) -> Target:
    """Turn ``obj`` into a :class:`Target`.

    * a :class:`Target` is returned as is (``dim``, if given, must match);
    * a string is looked up with :func:`jkoic.bench.targets.get`;
    * an object with a ``log_prob`` method (duck-typed target) becomes a
      :class:`CallableTarget` around that method, keeping its ``name``, ``log_z``
      and ``sample(n, generator)`` if present;
    * a callable becomes a :class:`CallableTarget`.

    The dimension is ``dim`` if given, else the object's attribute ``dim``.

    Args:
        obj: the target, target name, object with ``log_prob``, or callable.
        dim: the dimension, required for a callable without a ``dim`` attribute.

    Returns:
        A :class:`Target`.

    Raises:
        TypeError: if ``obj`` is none of these, or a callable without a known dimension.
        ValueError: if ``dim`` contradicts the dimension of a given target.
    """
    if isinstance(obj, Target):
        if dim is not None and int(dim) != obj.dim:
            raise ValueError(f"target {obj.name!r} has dim={obj.dim}, but dim={dim} was requested")
        return obj
    if isinstance(obj, str):
        from .bench.targets import get  # the benchmark targets' names, looked up on demand

        return get(obj) if dim is None else get(obj, dim=dim)
    duck = callable(getattr(obj, "log_prob", None))
    if duck or callable(obj):
        d = dim if dim is not None else getattr(obj, "dim", None)
        if d is None:
            raise TypeError(
                "a log density callable needs a dimension: pass dim=... or give the callable an attribute `dim`"
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
        f"cannot make a target from {type(obj).__name__}: expected a Target, a target name or a callable log density"
    )
