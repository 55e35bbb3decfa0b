"""Seeded outputs of a small trained model equal the committed reference bit for bit.

Guards behaviour through refactorings: see ``regression_case.py`` for the case and how the
reference was written.
"""

from __future__ import annotations

import numpy as np
import pytest
from regression_case import REFERENCE, outputs


@pytest.fixture(scope="module")
def current() -> dict[str, np.ndarray]:
    return outputs()


@pytest.mark.parametrize("key", ["x", "log_p", "log_g", "log_prob", "log_z", "latent_mean", "sample_steps"])
def test_matches_reference_bit_for_bit(current, key):
    ref = np.load(REFERENCE)
    assert current[key].dtype == ref[key].dtype and current[key].shape == ref[key].shape
    assert np.array_equal(current[key], ref[key]), (
        f"{key}: largest difference {np.max(np.abs(current[key] - ref[key]))}"
    )
