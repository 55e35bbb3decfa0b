"""Configuration of an importance corrected neural JKO model, with the paper's presets.

``Config`` holds plain literals only (ints, floats, strings, bools, lists), so it round-
trips through YAML, JSON and ``torch.load(weights_only=True)`` checkpoints.

Two profiles per target:

* ``"paper"``: the authors' settings (Table 6 of the paper; the reference code where it
  differs, see ``REFERENCE_NOTES.md``): adaptive dopri5 with the adjoint, 5000 Adam
  iterations of batch 5000 per CNF step, a dataset of 50000 samples.
* ``"fast"``: the same schedule (n1, n2, tau0, base, width, rejection rate) trained with
  a fixed-step RK4 solver, direct backprop, smaller batches and fewer iterations; this is
  what the CPU profile of the notebooks and the benchmarks use.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Config", "preset", "preset_names", "schedule"]


@dataclass
class Config:
    """Hyper-parameters of Algorithm 2 and of the neural JKO steps.

    Attributes mirror the paper's Table 6 and App. E.5; defaults are the paper's 8 Peaky
    settings with the paper's training protocol.
    """

    # --- schedule (Sec. 4 end, App. E.5) ---
    n_flow_steps: int = 2  # n1: CNF steps before the blocks
    n_blocks: int = 4  # n2: blocks of (1 CNF step, `rejections_per_block` rejection steps)
    rejections_per_block: int = 3
    tau0: float = 0.01  # first JKO step size
    tau_base: float = 4.0  # tau_{k+1} = base * tau_k
    rejection_rate: float = 0.2  # r of Remark 4.4
    # --- velocity field ---
    hidden: int | None = None  # hidden width; None -> 2 d + 50
    n_hidden_layers: int = 3
    # --- training of each CNF step ---
    n_iters: int = 5000
    batch_size: int = 5000
    dataset_size: int = 50000
    lr: float = 5e-3
    lr_decay: float = 0.95
    lr_decay_every: int = 100
    grad_clip: float | None = None
    # larger budgets for the late CNF steps (tau >= late_tau): their reverse-KL signal comes from
    # few tail points and a small batch leaves them on a plateau (benchmarks/README.md, session 8)
    late_tau: float | None = None
    late_batch_size: int | None = None  # None -> batch_size
    late_n_iters: int | None = None  # None -> n_iters
    # Adam's learning rate for those steps (None -> lr); with warm_start they start from a trained
    # field, which lr 5e-3 kicks away from its optimum (Mustache, benchmarks/README.md, session 12)
    late_lr: float | None = None
    # start each CNF step's velocity field from the previous CNF step's trained field instead of
    # the zero (identity) initialisation of App. F.2 (same objective, other starting point)
    warm_start: bool = False
    # after training a CNF step, keep the multiple s * v of its velocity field, s from this list,
    # with the lowest JKO objective on `validation_size` fresh samples of the model so far (None:
    # off). s = 0 is the identity map, whose objective is the step's starting point: a late step
    # whose trained field is mostly optimiser noise then cannot make the model worse.
    scale_search: list[float] | None = None
    validation_size: int = 5000
    early_stop_patience: int | None = None  # iterations without improvement (None: off)
    early_stop_window: int = 100  # moving average window of the loss for early stopping
    solver: str = "dopri5"  # training solver: "dopri5" (adaptive, torchdiffeq) or "rk4"
    train_steps: int = 4  # RK4 steps in training when solver == "rk4"
    atol: float = 1e-3
    rtol: float = 1e-3
    adjoint: bool = True
    # --- sampling / density ---
    sample_steps: int | None = None  # RK4 steps for sampling; None -> derived (see model)
    # after training a CNF step, sample it with the fewest RK4 steps whose map (point and exact
    # log-det) stays within this of the trained step count's on its training data (None: off)
    sample_steps_tol: float | None = None
    trace: str = "auto"  # "auto" (exact for dim <= exact_trace_max_dim), "exact", "hutchinson"
    exact_trace_max_dim: int = 5
    # "auto" trace for sampling and densities: exact for dim <= this (None: exact_trace_max_dim)
    exact_trace_eval_max_dim: int | None = None
    n_probes_train: int = 1
    n_probes_eval: int = 5
    chunk_size: int = 8192  # rows per CNF evaluation when sampling (cache-friendly on CPU)
    # --- latent and initialisation (Remark E.2) ---
    latent_scale: float = 1.0
    latent_mode_steps: int = 0  # >0: latent mean by gradient ascent on log g (LGCP)
    latent_mode_lr: float = 0.01
    gradient_flow_time: float | None = None  # fixed first layer v = grad log g for this time
    gradient_flow_steps: int = 20
    # --- rejection steps ---
    # estimate each rejection layer's E[alpha] (frozen with c; Theorem 4.2's normaliser) on this
    # many fresh samples of the model so far instead of on the training dataset (None: the
    # dataset, as the paper). The estimate's error is a normalisation error of the model's
    # density: it shifts the ELBO log Z by about its sum over the layers (benchmarks/README.md)
    alpha_samples: int | None = None
    # --- ablation switch (neural JKO without importance correction) ---
    rejection: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first invalid field."""
        positive_ints = ["rejections_per_block", "n_hidden_layers", "n_iters", "batch_size",
                         "dataset_size", "lr_decay_every", "train_steps", "n_probes_train", "n_probes_eval",
                         "chunk_size", "gradient_flow_steps", "early_stop_window", "validation_size"]
        for name in positive_ints:
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"Config.{name} must be a positive int, got {v!r}")
        for name in ("n_flow_steps", "n_blocks"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"Config.{name} must be a non-negative int, got {v!r}")
        if self.n_flow_steps + self.n_blocks == 0 and self.gradient_flow_time is None:
            raise ValueError("Config has no layers: n_flow_steps + n_blocks must be positive")
        for name in ["tau0", "tau_base", "lr", "latent_scale", "atol", "rtol"]:
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not v > 0:
                raise ValueError(f"Config.{name} must be a positive number, got {v!r}")
        if not 0.0 < self.rejection_rate < 1.0:
            raise ValueError(f"Config.rejection_rate must lie in (0, 1), got {self.rejection_rate!r}")
        if not 0.0 < self.lr_decay <= 1.0:
            raise ValueError(f"Config.lr_decay must lie in (0, 1], got {self.lr_decay!r}")
        if self.solver not in ("dopri5", "rk4", "bosh3", "adaptive_heun"):
            raise ValueError(f"Config.solver must be 'dopri5', 'bosh3', 'adaptive_heun' or 'rk4', got {self.solver!r}")
        if self.trace not in ("auto", "exact", "hutchinson"):
            raise ValueError(f"Config.trace must be 'auto', 'exact' or 'hutchinson', got {self.trace!r}")
        if self.hidden is not None and (not isinstance(self.hidden, int) or self.hidden < 1):
            raise ValueError(f"Config.hidden must be a positive int or None, got {self.hidden!r}")
        if isinstance(self.exact_trace_max_dim, bool) or not isinstance(self.exact_trace_max_dim, int) \
                or self.exact_trace_max_dim < 0:
            raise ValueError(f"Config.exact_trace_max_dim must be a non-negative int, got {self.exact_trace_max_dim!r}")
        if self.exact_trace_eval_max_dim is not None and (
                not isinstance(self.exact_trace_eval_max_dim, int) or self.exact_trace_eval_max_dim < 0):
            raise ValueError("Config.exact_trace_eval_max_dim must be a non-negative int or None, "
                             f"got {self.exact_trace_eval_max_dim!r}")
        if self.sample_steps is not None and (not isinstance(self.sample_steps, int) or self.sample_steps < 1):
            raise ValueError(f"Config.sample_steps must be a positive int or None, got {self.sample_steps!r}")
        if self.sample_steps_tol is not None and (
                isinstance(self.sample_steps_tol, bool) or not isinstance(self.sample_steps_tol, (int, float))
                or not self.sample_steps_tol > 0):
            raise ValueError(f"Config.sample_steps_tol must be a positive number or None, got {self.sample_steps_tol!r}")
        if self.batch_size > self.dataset_size:
            raise ValueError(f"Config.batch_size ({self.batch_size}) exceeds dataset_size ({self.dataset_size})")
        if self.scale_search is not None:
            ok = isinstance(self.scale_search, (list, tuple)) and len(self.scale_search) > 0 and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
                for v in self.scale_search)
            if not ok:
                raise ValueError("Config.scale_search must be None or a non-empty list of finite numbers >= 0, "
                                 f"got {self.scale_search!r}")
            self.scale_search = [float(v) for v in self.scale_search]
        for name in ("warm_start", "adjoint", "rejection"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"Config.{name} must be True or False, got {getattr(self, name)!r}")
        if self.late_lr is not None:
            if isinstance(self.late_lr, bool) or not isinstance(self.late_lr, (int, float)) or not self.late_lr > 0:
                raise ValueError(f"Config.late_lr must be a positive number or None, got {self.late_lr!r}")
            if self.late_tau is None:
                raise ValueError("Config.late_lr is set but late_tau is None: set late_tau, the tau from "
                                 "which CNF steps train with the late budget")
        if self.late_tau is not None and (isinstance(self.late_tau, bool) or not isinstance(self.late_tau, (int, float))
                                          or not self.late_tau > 0):
            raise ValueError(f"Config.late_tau must be a positive number or None, got {self.late_tau!r}")
        if self.alpha_samples is not None and (not isinstance(self.alpha_samples, int)
                                               or isinstance(self.alpha_samples, bool) or self.alpha_samples < 1):
            raise ValueError(f"Config.alpha_samples must be a positive int or None, got {self.alpha_samples!r}")
        for name in ("late_batch_size", "late_n_iters"):
            v = getattr(self, name)
            if v is None:
                continue
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"Config.{name} must be a positive int or None, got {v!r}")
            if self.late_tau is None:
                raise ValueError(f"Config.{name} is set but late_tau is None: set late_tau, the tau from "
                                 "which CNF steps train with the late budget")
        if self.late_batch_size is not None and self.late_batch_size > self.dataset_size:
            raise ValueError(f"Config.late_batch_size ({self.late_batch_size}) exceeds dataset_size "
                             f"({self.dataset_size})")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Config":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown Config field(s): {', '.join(unknown)}")
        return cls(**d)

    def replace(self, **changes: Any) -> "Config":
        """A copy with fields changed (validated)."""
        return Config.from_dict({**self.to_dict(), **changes})

    def budget(self, tau: float) -> tuple[int, int]:
        """``(n_iters, batch_size)`` of the CNF step with step size ``tau``.

        Steps with ``tau >= late_tau`` use ``late_n_iters`` / ``late_batch_size`` where set.
        """
        if self.late_tau is not None and tau >= self.late_tau:
            return (self.late_n_iters or self.n_iters, self.late_batch_size or self.batch_size)
        return self.n_iters, self.batch_size

    def learning_rate(self, tau: float) -> float:
        """Adam's initial learning rate for the CNF step with step size ``tau`` (``late_lr`` from ``late_tau``)."""
        if self.late_tau is not None and tau >= self.late_tau and self.late_lr is not None:
            return float(self.late_lr)
        return float(self.lr)

    def hidden_width(self, dim: int) -> int:
        return self.hidden if self.hidden is not None else 2 * dim + 50

    def trace_mode(self, dim: int, *, evaluation: bool = False) -> str:
        """``"exact"`` or ``"hutchinson"`` for training (default) or sampling/densities.

        With ``trace="auto"`` the exact trace is used up to ``exact_trace_max_dim`` in
        training and up to ``exact_trace_eval_max_dim`` (if set) when sampling: an exact
        divergence costs ``d`` tangents but carries no estimator noise, which the
        rejection steps would otherwise select for (App. F.2).
        """
        if self.trace != "auto":
            return self.trace
        limit = self.exact_trace_max_dim
        if evaluation and self.exact_trace_eval_max_dim is not None:
            limit = self.exact_trace_eval_max_dim
        return "exact" if dim <= limit else "hutchinson"


def schedule(config: Config) -> list[tuple[str, float]]:
    """The layer list of Algorithm 2 as run: ``[("cnf", tau), ("rejection", 0.0), ...]``.

    ``n1`` CNF steps, then ``n2`` blocks of one CNF step and ``rejections_per_block``
    rejection steps; tau grows by ``tau_base`` at every CNF step. With the gradient-flow
    initialisation a ``("gradient_flow", T)`` layer comes first. Without rejection
    (the neural JKO ablation) the rejection layers are left out.
    """
    layers: list[tuple[str, float]] = []
    if config.gradient_flow_time is not None:
        layers.append(("gradient_flow", float(config.gradient_flow_time)))
    tau = float(config.tau0)
    for _ in range(config.n_flow_steps):
        layers.append(("cnf", tau))
        tau *= config.tau_base
    for _ in range(config.n_blocks):
        layers.append(("cnf", tau))
        tau *= config.tau_base
        if config.rejection:
            layers.extend(("rejection", 0.0) for _ in range(config.rejections_per_block))
    return layers


# Paper settings (Table 6; reference code where it differs, see REFERENCE_NOTES.md).
_PAPER: dict[str, dict[str, Any]] = {
    "mustache": dict(n_flow_steps=6, n_blocks=6, tau0=0.01, tau_base=4.0, hidden=54),
    "8modes": dict(n_flow_steps=2, n_blocks=4, tau0=0.05, tau_base=4.0, hidden=54),
    "8peaky": dict(n_flow_steps=2, n_blocks=4, tau0=0.01, tau_base=4.0, hidden=54),
    "funnel": dict(n_flow_steps=4, n_blocks=6, tau0=5.0, tau_base=4.0, hidden=256, n_iters=10000,
                   dataset_size=200000, lr_decay=0.98),
    "gmm10": dict(n_flow_steps=4, n_blocks=6, tau0=0.0025, tau_base=2.0, hidden=70),
    "gmm20": dict(n_flow_steps=4, n_blocks=6, tau0=0.0025, tau_base=2.0, hidden=90),
    "gmm50": dict(n_flow_steps=4, n_blocks=7, tau0=0.0025, tau_base=2.0, hidden=150),
    "gmm100": dict(n_flow_steps=4, n_blocks=7, tau0=0.0025, tau_base=2.0, hidden=250),
    "gmm200": dict(n_flow_steps=5, n_blocks=8, tau0=0.001, tau_base=2.0, hidden=512, batch_size=2000, lr=1e-3),
    "gmm40": dict(n_flow_steps=4, n_blocks=7, tau0=1.0, tau_base=2.0, hidden=256, latent_scale=40.0,
                  gradient_flow_time=3.0, n_iters=2000, lr=1e-3),
    "lgcp": dict(n_flow_steps=3, n_blocks=6, tau0=5.0, tau_base=4.0, hidden=1024, batch_size=500,
                 n_iters=10000, lr=5e-4, dataset_size=100000, latent_mode_steps=1000, latent_mode_lr=0.01),
}

# Fast CPU training: same schedule, fixed-step RK4 with direct backprop, smaller batches. The
# kinetic term keeps each step's paths nearly straight, so 2 RK4 steps (8 velocity evaluations)
# suffice: on 8 Peaky (seeds 0, 1, 2; 1000 iterations of batch 500, dataset 20000) 2 steps gave
# sliced energy distance 2.2e-5 / 9.2e-6 / 3.8e-5 and mode MSE 1.9e-5 / 7.9e-6 / 7.0e-5 at half the
# cost of 4 steps, while 1 step fell to 4.4e-5 / 3.5e-5 (seed 0); see benchmarks/README.md.
# Sampling and densities use the exact trace up to d = 10 (GMM-10, Funnel): d tangents at 2 RK4
# steps cost about what 5 Hutchinson probes at 4 steps did, without the estimator noise that the
# rejection steps select for. GMM-10, seed 0, 500 iterations, 50000 samples: Hutchinson (5 probes)
# at 2 steps gave log Z +0.087 (truth 0), energy 3.0e-5, mode MSE 3.0e-5; exact gave log Z +0.009,
# energy 5.7e-5, mode MSE 1.8e-5 (paper: 3.5e-3, 5.3e-5, 2.1e-5).
# Each CNF step then samples with the fewest RK4 steps within 1e-4 of its trained map, forward and
# backward (`sample_steps_tol`): the late steps of 8 Peaky move the samples by 0.002-0.005 and one
# RK4 step reproduces two to 2.2e-5 there, while the first three keep 2 (one step errs by 1e-2).
_FAST_COMMON: dict[str, Any] = dict(solver="rk4", train_steps=2, adjoint=False, n_iters=1000, batch_size=500,
                                    dataset_size=20000, sample_steps=2, exact_trace_eval_max_dim=10,
                                    sample_steps_tol=1e-4)
_FAST: dict[str, dict[str, Any]] = {
    # Funnel's velocities are large (scales e^{x1/2}); 3 steps matched 6 (seed 0, 500 iterations,
    # width 64: sliced energy 0.20 vs 0.18, log Z -0.12 vs -0.16) at half the training time.
    "funnel": dict(train_steps=3, sample_steps=3),
    "lgcp": dict(n_iters=2000),
}


def _preset_key(name: str, dim: int | None) -> str:
    if name == "gmm":
        return f"gmm{dim or 10}"
    return name


def preset_names() -> list[str]:
    return sorted(_PAPER)


def preset(name: str, profile: str = "paper", *, dim: int | None = None, **overrides: Any) -> Config:
    """The paper's settings for a target (``profile="paper"``) or the fast CPU variant.

    Args:
        name: target name (``"8peaky"``, ``"gmm"`` with ``dim``, ``"gmm10"``, ...).
        profile: ``"paper"`` or ``"fast"``.
        dim: dimension for ``name == "gmm"``.
        overrides: fields to change.
    """
    key = _preset_key(name, dim)
    if key not in _PAPER:
        raise ValueError(f"no preset for {name!r} (dim={dim}); presets exist for: {', '.join(preset_names())}")
    if profile not in ("paper", "fast"):
        raise ValueError(f"profile must be 'paper' or 'fast', got {profile!r}")
    settings = dict(_PAPER[key])
    if profile == "fast":
        settings.update(_FAST_COMMON)
        settings.update(_FAST.get(key, {}))
    settings.update(overrides)
    return Config(**settings)
