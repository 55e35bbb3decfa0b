"""jkoic: importance corrected neural JKO sampling in PyTorch.

Sample from an unnormalised density ``g``: start from a Gaussian, alternate neural JKO
steps (continuous normalizing flows trained on reverse KL plus kinetic energy, one
Wasserstein proximal step each) with importance-based rejection steps. The result draws
iid samples with their exact model density, evaluates the density anywhere, and
estimates log Z.

Public API: ``Sampler``, ``Config``, ``preset``, ``schedule``, ``CheckpointError``; the
benchmark zoo (the paper's targets, metrics, baselines and data) is ``jkoic.bench``, with
``jkoic.targets`` a shortcut to ``jkoic.bench.targets``.

Reference: J. Hertrich, R. Gruhlke. Importance Corrected Neural JKO Sampling. ICML 2025.
"""

from __future__ import annotations

from .bench import targets
from .checkpoint import CheckpointError
from .config import Config, schedule
from .presets import preset
from .sampler import Sampler

__all__ = ["CheckpointError", "Config", "Sampler", "preset", "schedule", "targets"]
__version__ = "0.1.0"
