"""Seeds and generators: every random draw of a run comes from a generator seeded by the run
seed and the indices of what it draws for, so a resumed run equals an uninterrupted one and a
side estimate leaves the main stream unchanged."""

from __future__ import annotations

import numbers
from typing import Any

import torch

__all__ = ["check_seed", "new_generator", "seed_for"]


def check_seed(seed: Any, what: str = "seed") -> int:
    """``seed`` as an int in ``[0, 2**63)`` (numpy ints accepted).

    Raises:
        ValueError: for ``None``, bools, floats, strings or ints out of range.
    """
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= int(seed) < 2**63:
        raise ValueError(f"{what} must be an int in [0, 2**63), got {seed!r}")
    return int(seed)


def seed_for(seed: int, *parts: int) -> int:
    """A deterministic 63-bit seed from the run seed and indices."""
    h = seed & 0xFFFFFFFFFFFF
    for p in parts:
        h = (h * 1_000_003 + p + 0x9E3779B9) % (1 << 63)
    return h


def new_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with ``seed``."""
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g
