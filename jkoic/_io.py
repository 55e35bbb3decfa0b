"""File writing and plain-type conversion shared by the library, the zoo and the reproduction.

Every file the package writes goes through :func:`atomic_write` (a temporary file in the
same directory, flushed to disk, then ``os.replace``), so a crash or an interrupt never leaves
a half-written file behind. :func:`to_plain` turns numpy / torch values and containers into
plain Python types for JSON, YAML and checkpoints.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

__all__ = ["atomic_write", "to_plain"]


def atomic_write(path: str | os.PathLike[str], data: bytes | Callable[[IO[bytes]], None]) -> Path:
    """Write ``path`` atomically: all of it or (on any error) nothing, the old file intact.

    Args:
        path: the file to write; its directory is created if missing.
        data: the bytes to write, or a function that writes into the binary file object
            it is given (e.g. ``lambda f: torch.save(state, f)``).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            if isinstance(data, (bytes, bytearray, memoryview)):
                fh.write(data)
            else:
                data(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def to_plain(obj: Any, *, nonfinite_to_none: bool = False) -> Any:
    """Recursively convert ``obj`` to plain Python types (dict, list, str, int, float, bool, None).

    Dict keys become strings, tuples lists, numpy and torch scalars Python numbers, arrays
    and tensors nested lists, ``torch.dtype`` / ``torch.device`` their names.

    Args:
        obj: the value to convert.
        nonfinite_to_none: turn NaN and +-inf floats into ``None`` (strict JSON).

    Raises:
        TypeError: for any other type (an object a file could not round-trip).
    """
    if isinstance(obj, dict):
        return {str(k): to_plain(v, nonfinite_to_none=nonfinite_to_none) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v, nonfinite_to_none=nonfinite_to_none) for v in obj]
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return None if nonfinite_to_none and not math.isfinite(v) else v
    if isinstance(obj, (np.ndarray, torch.Tensor)):
        arr = obj.detach().cpu().numpy() if isinstance(obj, torch.Tensor) else obj
        return to_plain(arr.tolist(), nonfinite_to_none=nonfinite_to_none)
    if isinstance(obj, (torch.dtype, torch.device)):
        return str(obj)
    raise TypeError(f"cannot convert {type(obj).__name__} to a plain type")
