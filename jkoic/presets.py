"""The paper's per-target settings, and a fast CPU variant of each.

Two profiles per target:

* ``"paper"``: the authors' settings (Table 6 of the paper; the authors' reference code,
  github ``johertrich/neural_JKO_ic``, where it differs): adaptive dopri5 with the adjoint,
  5000 Adam iterations of batch 5000 per CNF step, a dataset of 50000 samples.
* ``"fast"``: the same schedule (n1, n2, tau0, base, width, rejection rate) trained with a
  fixed-step RK4 solver, direct backprop, smaller batches and fewer iterations; the CPU
  profile of the notebooks and the benchmarks use it. ``benchmarks/README.md`` has the
  measurements behind its settings.

References:
    J. Hertrich, R. Gruhlke. Importance Corrected Neural JKO Sampling. ICML 2025, Table 6, App. E.5.
"""

from __future__ import annotations

from typing import Any

from .config import Config

__all__ = ["preset", "preset_names"]

# Paper settings (Table 6; the authors' reference code where it differs).
_PAPER: dict[str, dict[str, Any]] = {
    "mustache": dict(n_flow_steps=6, n_blocks=6, tau0=0.01, tau_base=4.0, hidden=54),
    "8modes": dict(n_flow_steps=2, n_blocks=4, tau0=0.05, tau_base=4.0, hidden=54),
    "8peaky": dict(n_flow_steps=2, n_blocks=4, tau0=0.01, tau_base=4.0, hidden=54),
    "funnel": dict(
        n_flow_steps=4,
        n_blocks=6,
        tau0=5.0,
        tau_base=4.0,
        hidden=256,
        n_iters=10000,
        dataset_size=200000,
        lr_decay=0.98,
    ),
    "gmm10": dict(n_flow_steps=4, n_blocks=6, tau0=0.0025, tau_base=2.0, hidden=70),
    "gmm20": dict(n_flow_steps=4, n_blocks=6, tau0=0.0025, tau_base=2.0, hidden=90),
    "gmm50": dict(n_flow_steps=4, n_blocks=7, tau0=0.0025, tau_base=2.0, hidden=150),
    "gmm100": dict(n_flow_steps=4, n_blocks=7, tau0=0.0025, tau_base=2.0, hidden=250),
    "gmm200": dict(n_flow_steps=5, n_blocks=8, tau0=0.001, tau_base=2.0, hidden=512, batch_size=2000, lr=1e-3),
    "gmm40": dict(
        n_flow_steps=4,
        n_blocks=7,
        tau0=1.0,
        tau_base=2.0,
        hidden=256,
        latent_scale=40.0,
        gradient_flow_time=3.0,
        n_iters=2000,
        lr=1e-3,
    ),
    "lgcp": dict(
        n_flow_steps=3,
        n_blocks=6,
        tau0=5.0,
        tau_base=4.0,
        hidden=1024,
        batch_size=500,
        n_iters=10000,
        lr=5e-4,
        dataset_size=100000,
        latent_mode_steps=1000,
        latent_mode_lr=0.01,
    ),
}

# Fast CPU training: same schedule, fixed-step RK4 with direct backprop, smaller batches. The kinetic
# term keeps each step's paths nearly straight, so 2 RK4 steps suffice in training; sampling and
# densities use the exact divergence up to d = 10 (no estimator noise for the rejection steps to
# select), and each CNF step samples with the fewest RK4 steps within 1e-4 of its trained map.
#: the training settings every ``fast`` preset shares (also the base of :data:`jkoic.defaults.DEFAULTS`)
FAST_TRAINING: dict[str, Any] = dict(
    solver="rk4",
    train_steps=2,
    adjoint=False,
    n_iters=1000,
    batch_size=500,
    dataset_size=20000,
    sample_steps=2,
    exact_trace_eval_max_dim=10,
    sample_steps_tol=1e-4,
)
_FAST: dict[str, dict[str, Any]] = {
    # Funnel's velocities are large (scales e^{x1/2}): 3 RK4 steps
    "funnel": dict(train_steps=3, sample_steps=3),
    "lgcp": dict(n_iters=2000),
}


def _preset_key(name: str, dim: int | None) -> str:
    if name == "gmm":
        return f"gmm{dim or 10}"
    return name


def preset_names() -> list[str]:
    """The targets with a preset (``"gmm10"`` .. ``"gmm200"`` for GMM-d)."""
    return sorted(_PAPER)


def preset(name: str, profile: str = "paper", *, dim: int | None = None, **overrides: Any) -> Config:
    """The paper's settings for a target (``profile="paper"``) or the fast CPU variant.

    Args:
        name: target name (``"8peaky"``, ``"gmm"`` with ``dim``, ``"gmm10"``, ...).
        profile: ``"paper"`` or ``"fast"``.
        dim: dimension for ``name == "gmm"``.
        overrides: fields to change.

    Returns:
        The validated :class:`~jkoic.Config`.

    Raises:
        ValueError: for a target without a preset, an unknown profile or invalid overrides.
    """
    key = _preset_key(name, dim)
    if key not in _PAPER:
        raise ValueError(f"no preset for {name!r} (dim={dim}); presets exist for: {', '.join(preset_names())}")
    if profile not in ("paper", "fast"):
        raise ValueError(f"profile must be 'paper' or 'fast', got {profile!r}")
    settings = dict(_PAPER[key])
    if profile == "fast":
        settings.update(FAST_TRAINING)
        settings.update(_FAST.get(key, {}))
    settings.update(overrides)
    return Config(**settings)
