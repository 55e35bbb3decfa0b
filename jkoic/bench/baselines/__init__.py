"""Baselines of the paper: MALA, HMC (App. E.5), neural JKO without rejection (Sec. 5), and
reverse-KL flows (Table 7): a CNF with the JKO architecture and a coupling flow.

The coupling flow needs the optional dependency ``zuko`` (``pip install
'jkoic[baselines]'``); it is imported lazily so that the MCMC samplers work
without it.
"""

from __future__ import annotations

from typing import Any

from .jko import neural_jko, reverse_kl_cnf, reverse_kl_cnf_config
from .mcmc import LogDensity, MCMCResult, hmc, mala

__all__ = [
    "CouplingFlow",
    "LogDensity",
    "MCMCResult",
    "hmc",
    "mala",
    "neural_jko",
    "reverse_kl_cnf",
    "reverse_kl_cnf_config",
    "train_reverse_kl",
]

_LAZY = {"CouplingFlow", "train_reverse_kl"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import coupling

        return getattr(coupling, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
