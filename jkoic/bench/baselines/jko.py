"""Baselines built from the core model: neural JKO without rejection, reverse-KL CNF.

References:
    J. Hertrich, R. Gruhlke. Importance Corrected Neural JKO Sampling. ICML 2025.
    Sec. 5 ("Neural JKO", the ablation without importance correction) and App. F.3
    (Table 7: a CNF with the JKO architecture trained on the reverse KL alone).
"""

from __future__ import annotations

from typing import Any

from ...config import Config, schedule
from ...sampler import Sampler

__all__ = ["neural_jko", "reverse_kl_cnf", "reverse_kl_cnf_config"]

# A kinetic weight 1/tau of 1e-12 is zero at float32 precision: the loss is the reverse KL.
_NO_KINETIC_TAU = 1e12
# Without the kinetic term the paths are not straight, and with few fixed RK4 steps the optimiser
# exploits the discretisation error of the log-determinant (the ELBO then exceeds log Z). Train with
# at least this many steps and sample / evaluate densities with a much finer grid, so the reported
# density is that of the sampled map.
_KL_MIN_TRAIN_STEPS = 8
_KL_MIN_SAMPLE_STEPS = 32


def neural_jko(target: Any, config: Config, **kw: Any) -> Sampler:
    """The same CNF schedule with the rejection steps switched off (an untrained model)."""
    return Sampler(target, config.replace(rejection=False), **kw)


def reverse_kl_cnf_config(config: Config, n_iters: int | None = None) -> Config:
    """One CNF with the JKO architecture, trained on the reverse KL alone (no kinetic term).

    Takes the width, solver and optimiser settings of ``config``; the training budget is
    that of all its CNF steps together unless ``n_iters`` is given. With the fixed-step
    solver, training uses at least 8 RK4 steps and sampling / densities at least 32: the
    curved paths of a KL-only CNF make a 4-step log-determinant too inaccurate (the
    optimiser exploits it and the ELBO exceeds log Z).
    """
    cnf_iters = sum(config.budget(tau)[0] for kind, tau in schedule(config) if kind == "cnf")
    steps: dict[str, Any] = {}
    if config.solver == "rk4":
        steps = dict(
            train_steps=max(config.train_steps, _KL_MIN_TRAIN_STEPS),
            sample_steps=max(config.sample_steps or 0, _KL_MIN_SAMPLE_STEPS),
        )
    return config.replace(
        n_flow_steps=1,
        n_blocks=0,
        tau0=_NO_KINETIC_TAU,
        rejection=False,
        gradient_flow_time=None,
        n_iters=n_iters or cnf_iters,
        late_tau=None,
        late_batch_size=None,
        late_n_iters=None,
        late_lr=None,
        **steps,
    )


def reverse_kl_cnf(target: Any, config: Config, n_iters: int | None = None, **kw: Any) -> Sampler:
    """An untrained reverse-KL CNF (Table 7, "continuous NF"); call ``.fit(seed=...)``."""
    return Sampler(target, reverse_kl_cnf_config(config, n_iters), **kw)
