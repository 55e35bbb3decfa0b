"""What every metric shares: :class:`MetricValue`, the protocol record, input validation.

Samples are torch tensors or numpy arrays of shape ``(n, d)``; a 1-D array of shape ``(n,)``
is read as ``d = 1``. Samples with NaN or inf entries and mismatched dimensions are rejected
with a ``ValueError``.
"""

from __future__ import annotations

import importlib.metadata
import math
import sys
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..._io import to_plain

__all__ = ["ArrayLike", "MetricValue"]

ArrayLike = Any  # torch.Tensor | np.ndarray (anything np.asarray accepts)


class MetricValue(float):
    """A ``float`` carrying the protocol that produced it.

    Arithmetic gives plain floats; ``float(v)`` drops the protocol. ``json.dumps(v)``
    writes the number, ``v.to_dict()`` the number with its protocol.

    Args:
        value: the number.
        protocol: how it was computed; numpy / torch values in it are converted to plain
            Python types (:func:`jkoic._io.to_plain`).

    Attributes:
        protocol: JSON-serialisable dict: ``metric`` (name), the sample sizes, seed and
            method parameters, and ``versions`` (jkoic, torch, POT).

    Raises:
        TypeError: if the protocol holds a value with no plain JSON form (e.g. an arbitrary
            object); convert it (``str(obj)``, ``float(obj)``) before recording it.
    """

    __slots__ = ("protocol",)

    def __new__(cls, value: float, protocol: dict[str, Any] | None = None) -> MetricValue:
        obj = super().__new__(cls, float(value))
        try:
            obj.protocol = to_plain(dict(protocol or {}))
        except TypeError as err:
            raise TypeError(f"MetricValue protocol must hold plain JSON-able values: {err}") from None
        return obj

    def __reduce__(self) -> tuple[Any, ...]:
        return (MetricValue, (float(self), self.protocol))

    def __copy__(self) -> MetricValue:
        return MetricValue(float(self), self.protocol)

    def __deepcopy__(self, memo: dict[int, Any]) -> MetricValue:
        return MetricValue(float(self), self.protocol)

    def __repr__(self) -> str:
        name = self.protocol.get("metric", "?")
        return f"MetricValue({float(self)!r}, metric={name!r})"

    @property
    def value(self) -> float:
        """The plain float."""
        return float(self)

    def to_dict(self) -> dict[str, Any]:
        """``{"value": float, "protocol": dict}``, ready for ``json.dumps``."""
        return {"value": float(self), "protocol": dict(self.protocol)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MetricValue:
        """Inverse of :meth:`to_dict`."""
        return cls(float(data["value"]), data.get("protocol", {}))


def _package_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _versions() -> dict[str, str]:
    jkoic_version = _package_version("jkoic")
    if jkoic_version is None:
        jkoic_version = str(getattr(sys.modules.get("jkoic"), "__version__", "unknown"))
    pot_version = _package_version("pot") or _package_version("POT")
    if pot_version is None:
        pot_version = str(getattr(sys.modules.get("ot"), "__version__", "unknown"))
    return {"jkoic": jkoic_version, "torch": torch.__version__, "pot": pot_version}


def _protocol(metric: str, **params: Any) -> dict[str, Any]:
    """The protocol record of ``metric``: its name, ``params`` and the package versions."""
    return {"metric": metric, **params, "versions": _versions()}


# ----------------------------------------------------------------------------- input validation


def _as_samples(x: ArrayLike, name: str, device: torch.device | None = None) -> Tensor:
    """``x`` as a detached floating tensor of shape ``(n, d)`` with finite entries."""
    if isinstance(x, Tensor):
        t = x.detach()
    else:
        try:
            t = torch.as_tensor(np.asarray(x))
        except (TypeError, ValueError) as err:
            raise TypeError(
                f"{name} must be a torch.Tensor or numpy array of shape (n, d), got {type(x).__name__}"
            ) from err
    if t.ndim == 1:
        t = t[:, None]
    if t.ndim != 2:
        raise ValueError(f"{name} must have shape (n, d) or (n,), got shape {tuple(t.shape)}")
    if t.is_complex() or t.dtype == torch.bool:
        raise ValueError(f"{name} must hold real numbers, got dtype {t.dtype}")
    if not t.is_floating_point():
        t = t.to(torch.float64)
    if t.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {tuple(t.shape)}); at least one sample is needed")
    if t.shape[1] == 0:
        raise ValueError(f"{name} has dimension d = 0 (shape {tuple(t.shape)})")
    if device is not None:
        t = t.to(device)
    _check_finite(t, name)
    return t


def _check_finite(t: Tensor, name: str) -> None:
    finite = torch.isfinite(t)
    if bool(finite.all()):
        return
    rows = int((~finite.reshape(t.shape[0], -1).all(dim=1)).sum())
    n_nan = int(torch.isnan(t).sum())
    n_inf = int(torch.isinf(t).sum())
    raise ValueError(
        f"{name} has {rows} of {t.shape[0]} samples with non-finite entries ({n_nan} NaN and {n_inf} inf values)"
    )


def _sample_pair(x: ArrayLike, y: ArrayLike, names: tuple[str, str] = ("x", "y")) -> tuple[Tensor, Tensor]:
    """Validate two sample sets and put them on a common device."""
    device = None
    for v in (x, y):
        if isinstance(v, Tensor) and v.device.type != "cpu":
            device = v.device
            break
    xt = _as_samples(x, names[0], device)
    yt = _as_samples(y, names[1], device)
    if xt.shape[1] != yt.shape[1]:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same dimension, "
            f"got d={xt.shape[1]} ({names[0]}: shape {tuple(xt.shape)}) and "
            f"d={yt.shape[1]} ({names[1]}: shape {tuple(yt.shape)})"
        )
    return xt, yt


def _check_positive_int(what: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def _check_positive_float(what: str, value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{what} must be a positive number, got {value!r}") from err
    if not (v > 0.0 and math.isfinite(v)):
        raise ValueError(f"{what} must be a positive finite number, got {value!r}")
    return v


def _as_vector(v: ArrayLike, name: str) -> Tensor:
    """``v`` as a float64 tensor of shape ``(n,)`` (an ``(n, 1)`` column is flattened)."""
    t = v.detach() if isinstance(v, Tensor) else torch.as_tensor(np.asarray(v))
    if t.ndim == 2 and t.shape[1] == 1:
        t = t[:, 0]
    if t.ndim != 1:
        raise ValueError(f"{name} must have shape (n,), got shape {tuple(t.shape)}")
    if t.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    if t.is_complex() or t.dtype == torch.bool:
        raise ValueError(f"{name} must hold real numbers, got dtype {t.dtype}")
    return t.to(torch.float64)
