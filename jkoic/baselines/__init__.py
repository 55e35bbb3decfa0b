"""Baselines of the paper: MALA, HMC (App. E.5) and a reverse-KL coupling flow (Table 7).

The coupling flow needs the optional dependency ``zuko`` (``pip install
'jkoic[baselines]'``); it is imported lazily so that the MCMC samplers work
without it.
"""

from __future__ import annotations

from typing import Any

from .mcmc import MCMCResult, Target, hmc, mala

__all__ = ["CouplingFlow", "MCMCResult", "Target", "hmc", "mala", "train_reverse_kl"]

_LAZY = {"CouplingFlow", "train_reverse_kl"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import coupling

        return getattr(coupling, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
