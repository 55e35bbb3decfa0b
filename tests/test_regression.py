"""Seeded outputs of a small trained model equal the committed reference to float32 round-off.

Guards behaviour through refactorings: see ``regression_case.py`` for the case and how the
reference was written. On the CPU that wrote it the outputs are equal bit for bit; another CPU's
BLAS kernels round differently, and training carries that into the model: on a second Intel
Xeon the samples moved by 2.4e-7 and the density at one high-density grid point by 2.8e-5
relative. The test allows that (:data:`RTOL`), and the last test shows that a change of
behaviour as small as one Adam iteration fewer lies far outside it.
"""

from __future__ import annotations

import numpy as np
import pytest
from regression_case import REFERENCE, outputs

#: relative tolerance (plus RTOL / 10 absolute): float32 round-off carried through training
RTOL = 1e-4
KEYS = ["x", "log_p", "log_g", "log_prob", "log_z", "latent_mean", "sample_steps"]


@pytest.fixture(scope="module")
def current() -> dict[str, np.ndarray]:
    return outputs()


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and np.allclose(a, b, rtol=RTOL, atol=RTOL / 10)


@pytest.mark.parametrize("key", KEYS)
def test_matches_reference_to_round_off(current, key):
    ref = np.load(REFERENCE)
    assert current[key].dtype == ref[key].dtype and current[key].shape == ref[key].shape
    assert _close(current[key], ref[key]), f"{key}: largest difference {np.max(np.abs(current[key] - ref[key]))}"


def test_one_adam_iteration_fewer_is_outside_the_tolerance():
    ref = np.load(REFERENCE)
    changed = outputs(n_iters=14)
    far = [k for k in ("x", "log_p", "log_prob", "log_z") if not _close(changed[k], ref[k])]
    assert far == ["x", "log_p", "log_prob", "log_z"]
