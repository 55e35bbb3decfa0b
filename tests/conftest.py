"""Shared pytest fixtures: device and dtype, and deterministic seeding."""

from __future__ import annotations

import os

import pytest
import torch

# The suite's tensors are small: one thread is fastest and avoids oversubscription.
torch.set_num_threads(int(os.environ.get("JKOIC_TEST_THREADS", "1")))

_DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=_DEVICES)
def device(request) -> torch.device:
    """Every device available here: cpu always, cuda where present."""
    return torch.device(request.param)


@pytest.fixture(params=[torch.float32, torch.float64], ids=["f32", "f64"])
def dtype(request) -> torch.dtype:
    return request.param


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
