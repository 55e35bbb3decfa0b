"""Reading pickled numpy (and JAX) arrays without running code from the pickle.

The authors distribute the GMM means as pickles. :func:`load_array_pickle` resolves only
the globals a pickle of numpy arrays needs (and JAX's array reconstructor, rebuilt as a
numpy array), so a malicious file cannot execute anything.
"""

from __future__ import annotations

import importlib
import io
import pickle
from typing import Any

import numpy as np

__all__ = ["load_array_pickle"]

# Globals a benign pickle of numpy arrays (or of JAX arrays) may reference.
_NUMPY_GLOBALS: dict[tuple[str, str], tuple[str, str]] = {
    ("numpy", "ndarray"): ("numpy", "ndarray"),
    ("numpy", "dtype"): ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"): ("numpy", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"): ("numpy", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"): ("numpy", "scalar"),
    ("numpy._core.multiarray", "scalar"): ("numpy", "scalar"),
    ("numpy.core.numeric", "_frombuffer"): ("numpy", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"): ("numpy", "_frombuffer"),
}


def _numpy_internal(name: str) -> Any:
    for mod in ("numpy._core.multiarray", "numpy._core.numeric", "numpy.core.multiarray", "numpy.core.numeric"):
        try:
            module = importlib.import_module(mod)
        except ImportError:
            continue
        if hasattr(module, name):
            return getattr(module, name)
    raise pickle.UnpicklingError(f"numpy has no {name}")


def _reconstruct_jax_array(fun: Any, args: Any, arr_state: Any, aval_state: Any) -> np.ndarray:
    """Stand-in for ``jax._src.array._reconstruct_array``: rebuild the numpy value only."""
    value = fun(*args)
    value.__setstate__(arr_state)
    return np.asarray(value)


def _latin1_encode(obj: str, encoding: str = "latin1") -> bytes:
    """Restricted ``_codecs.encode`` (protocol-2 pickles store bytes through it)."""
    if not isinstance(obj, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("unexpected _codecs.encode call in a data pickle")
    return obj.encode("latin1")


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler that only resolves numpy array globals (no arbitrary code)."""

    def find_class(self, module: str, name: str) -> Any:
        key = (module, name)
        if key in _NUMPY_GLOBALS:
            _, attr = _NUMPY_GLOBALS[key]
            if attr in ("ndarray", "dtype"):
                return getattr(np, attr)
            return _numpy_internal(attr)
        if key == ("_codecs", "encode"):  # bytes in protocol-2 pickles
            return _latin1_encode
        if key == ("builtins", "bytearray"):
            return bytearray
        if key == ("jax._src.array", "_reconstruct_array"):
            return _reconstruct_jax_array
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name} from a data pickle")


def load_array_pickle(data: bytes) -> Any:
    """Unpickle ``data``, allowing only numpy arrays, dtypes, scalars and containers of them.

    Raises:
        pickle.UnpicklingError: if the pickle references any other global.
    """
    return _ArrayUnpickler(io.BytesIO(data)).load()
