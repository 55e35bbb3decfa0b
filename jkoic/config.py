"""Hyper-parameters of an importance corrected neural JKO model.

:class:`Config` is a frozen dataclass of plain literals (ints, floats, strings, bools,
lists), so it round-trips through YAML, JSON and ``torch.load(weights_only=True)``
checkpoints, and a model's settings cannot change under it. Change a copy with
:meth:`Config.replace`. Every field is declared with its group, its rule and one line of
documentation (:func:`describe` prints them); :meth:`Config.validate` checks the rules, then
the relations between fields, and raises ``ValueError`` naming the first bad field.

The groups follow the paper: the layer schedule (Alg. 2, App. E.5), the velocity field, the
training of each neural JKO step (Sec. 3, App. E.5), the late steps' budget, sampling and
densities (Alg. 1, 6), the initialisation (Remark E.2), and extensions beyond the paper. The
paper's per-target settings are in :mod:`jkoic.presets`.

References:
    J. Hertrich, R. Gruhlke. Importance Corrected Neural JKO Sampling. ICML 2025.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["GROUPS", "Config", "describe", "schedule"]

#: the field groups, in the order of :func:`describe`
GROUPS = ("schedule", "velocity field", "training", "late steps", "sampling", "initialisation", "extensions")

_Check = Callable[[Any], Any]


# ----------------------------------------------------------------------------- field rules


def _int(minimum: int) -> _Check:
    """An int (numpy ints accepted) of at least ``minimum``."""

    def check(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise ValueError(f"must be an int >= {minimum}")
        if int(v) < minimum:
            raise ValueError(f"must be an int >= {minimum}")
        return int(v)

    check.rule = f"int >= {minimum}"  # type: ignore[attr-defined]
    return check


def _number(low: float = 0.0, high: float | None = None, *, low_open: bool = True, high_open: bool = False) -> _Check:
    """A finite real number in the interval given (``(low, inf)`` by default)."""
    lo_b, hi_b = ("(" if low_open else "["), (")" if high_open or high is None else "]")
    rule = f"number in {lo_b}{low:g}, {'inf' if high is None else f'{high:g}'}{hi_b}"

    def check(v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(float(v)):
            raise ValueError(f"must be a finite {rule}")
        x = float(v)
        if (x <= low if low_open else x < low) or (high is not None and (x >= high if high_open else x > high)):
            raise ValueError(f"must be a {rule}")
        return x

    check.rule = rule  # type: ignore[attr-defined]
    return check


def _choice(*options: str) -> _Check:
    def check(v: Any) -> str:
        if v not in options:
            raise ValueError(f"must be one of {', '.join(map(repr, options))}")
        return v

    check.rule = " | ".join(map(repr, options))  # type: ignore[attr-defined]
    return check


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError("must be True or False")
    return v


_bool.rule = "True | False"  # type: ignore[attr-defined]


def _optional(inner: _Check) -> _Check:
    def check(v: Any) -> Any:
        if v is None:
            return None
        try:
            return inner(v)
        except ValueError as e:
            raise ValueError(f"{e} or None") from None

    check.rule = f"{inner.rule} or None"  # type: ignore[attr-defined]
    return check


def _multiples(v: Any) -> list[float]:
    ok = (
        isinstance(v, (list, tuple))
        and len(v) > 0
        and all(isinstance(s, (int, float)) and not isinstance(s, bool) and math.isfinite(s) and s >= 0 for s in v)
    )
    if not ok:
        raise ValueError("must be a non-empty list of finite numbers >= 0")
    return [float(s) for s in v]


_multiples.rule = "non-empty list of numbers >= 0"  # type: ignore[attr-defined]


def _vector(v: Any) -> list[float]:
    ok = (
        isinstance(v, (list, tuple))
        and len(v) > 0
        and all(isinstance(s, numbers.Real) and not isinstance(s, bool) and math.isfinite(s) for s in v)
    )
    if not ok:
        raise ValueError("must be a non-empty list of finite numbers")
    return [float(s) for s in v]


_vector.rule = "list of d numbers"  # type: ignore[attr-defined]


def _f(default: Any, check: _Check, group: str, doc: str) -> Any:
    """A Config field with its rule, group and documentation."""
    assert group in GROUPS
    return dataclasses.field(default=default, metadata={"check": check, "group": group, "doc": doc})


# ----------------------------------------------------------------------------- Config


@dataclass(frozen=True)
class Config:
    """Hyper-parameters of Algorithm 2 and of its neural JKO steps.

    Defaults are the paper's 8 Peaky settings with the paper's training protocol (adaptive
    dopri5 with the adjoint, 5000 Adam iterations of batch 5000 per CNF step). Each field's
    group, rule and meaning: ``jkoic.config.describe()``.

    Raises:
        ValueError: at construction, naming the first field that breaks its rule or a
            relation between fields (see :meth:`validate`).
    """

    # --- schedule (Alg. 2, App. E.5) ---
    n_flow_steps: int = _f(2, _int(0), "schedule", "n1: CNF steps before the first block (Alg. 2, Table 6)")
    n_blocks: int = _f(
        4, _int(0), "schedule", "n2: blocks of one CNF step followed by `rejections_per_block` rejection steps (Alg. 2)"
    )
    rejections_per_block: int = _f(3, _int(1), "schedule", "rejection steps per block (3 in the paper, App. E.5)")
    tau0: float = _f(0.01, _number(), "schedule", "step size of the first JKO step (Table 6)")
    tau_base: float = _f(4.0, _number(), "schedule", "tau_{k+1} = tau_base * tau_k (App. E.5)")
    rejection_rate: float = _f(
        0.2,
        _number(0.0, 1.0, high_open=True),
        "schedule",
        "r: fraction each rejection step rejects; fixes c by bisection (Remark 4.4, Alg. 5)",
    )
    adaptive: bool = _f(
        False,
        _bool,
        "schedule",
        "stop adding blocks once a block no longer improves the fresh-sample ELBO, importance-weighted log Z or "
        "ESS by more than their standard errors; n_blocks is then the most blocks (Outlook of the paper)",
    )
    adaptive_tol: float = _f(
        0.0,
        _number(0.0, low_open=False),
        "schedule",
        "with adaptive: a block counts as an improvement only if it also raises the ELBO or IW log Z by more "
        "than this many nats (each block costs more to sample than the one before: the rejection steps "
        "multiply the draws below them)",
    )
    rejection: bool = _f(
        True, _bool, "schedule", "False leaves the rejection steps out: the neural JKO ablation of Table 1"
    )
    # --- velocity field (App. E.5) ---
    hidden: int | None = _f(
        None, _optional(_int(1)), "velocity field", "hidden width of the velocity MLP; None: 2 d + 50 (Table 6)"
    )
    n_hidden_layers: int = _f(3, _int(1), "velocity field", "hidden layers of the velocity MLP (App. E.5)")
    # --- training of each CNF step (Sec. 3, App. E.5) ---
    n_iters: int = _f(5000, _int(1), "training", "Adam iterations per CNF step")
    batch_size: int = _f(5000, _int(1), "training", "points per Adam iteration, drawn from the step's dataset")
    dataset_size: int = _f(
        50000, _int(1), "training", "fresh samples of the model so far that each CNF step (and rejection step) fits on"
    )
    lr: float = _f(5e-3, _number(), "training", "Adam's initial learning rate")
    lr_decay: float = _f(0.95, _number(0.0, 1.0), "training", "learning rate factor every `lr_decay_every` iterations")
    lr_decay_every: int = _f(100, _int(1), "training", "iterations between learning rate decays")
    grad_clip: float | None = _f(
        None,
        _optional(_number()),
        "training",
        "clip the gradient's global norm to this before each Adam step (None: off)",
    )
    solver: str = _f(
        "dopri5",
        _choice("dopri5", "bosh3", "adaptive_heun", "rk4"),
        "training",
        "training ODE solver: adaptive (torchdiffeq, as the paper) or fixed-step 'rk4'",
    )
    train_steps: int = _f(4, _int(1), "training", "RK4 steps per CNF step in training when solver == 'rk4'")
    atol: float = _f(1e-3, _number(), "training", "absolute tolerance of the adaptive solver")
    rtol: float = _f(1e-3, _number(), "training", "relative tolerance of the adaptive solver")
    adjoint: bool = _f(True, _bool, "training", "adaptive solver gradients by the adjoint method (the paper's)")
    trace: str = _f(
        "auto",
        _choice("auto", "exact", "hutchinson"),
        "training",
        "divergence: exact, Hutchinson's estimator (App. F.2), or 'auto' (exact up to the max dims)",
    )
    exact_trace_max_dim: int = _f(
        5, _int(0), "training", "with trace='auto': exact divergence in training up to this d"
    )
    n_probes_train: int = _f(1, _int(1), "training", "Hutchinson probes per point in training")
    # --- late steps: another budget from tau >= late_tau ---
    late_tau: float | None = _f(
        None,
        _optional(_number()),
        "late steps",
        "CNF steps with tau >= late_tau use the late_* settings below (None: none do)",
    )
    late_n_iters: int | None = _f(
        None, _optional(_int(1)), "late steps", "Adam iterations of a late step (None: n_iters)"
    )
    late_batch_size: int | None = _f(
        None,
        _optional(_int(1)),
        "late steps",
        "batch of a late step (None: batch_size); its reverse-KL signal comes from few "
        "tail points, which a small batch misses",
    )
    late_lr: float | None = _f(
        None, _optional(_number()), "late steps", "initial learning rate of a late step (None: lr)"
    )
    # --- sampling and densities (Alg. 1, 6) ---
    sample_steps: int | None = _f(
        None,
        _optional(_int(1)),
        "sampling",
        "RK4 steps per CNF step when sampling and evaluating densities (None: train_steps "
        "for rk4, about a quarter of the adaptive solver's evaluations otherwise, App. E.5)",
    )
    exact_trace_eval_max_dim: int | None = _f(
        None,
        _optional(_int(0)),
        "sampling",
        "with trace='auto': exact divergence for sampling and densities up to "
        "this d (None: exact_trace_max_dim); the rejection steps select for "
        "estimator noise (App. F.2)",
    )
    n_probes_eval: int = _f(5, _int(1), "sampling", "Hutchinson probes per point for sampling and densities")
    chunk_size: int = _f(8192, _int(1), "sampling", "rows per CNF evaluation when sampling (bounds memory)")
    min_draw: int = _f(
        256,
        _int(1),
        "sampling",
        "fewest fresh samples drawn through the stack when a layer's buffer runs short, so that a few "
        "replacements do not recurse through the layers as tiny batches",
    )
    spare_sigmas: float = _f(
        1.0,
        _number(0.0, low_open=False),
        "sampling",
        "spare replacements drawn with a rejection step's proposals: the expected count plus "
        "this many standard deviations (a shortfall draws again through the layers below)",
    )
    # --- initialisation (Remark E.2) ---
    latent_scale: float = _f(1.0, _number(), "initialisation", "standard deviation of the Gaussian latent")
    latent_mean: list[float] | None = _f(
        None, _optional(_vector), "initialisation", "mean of the Gaussian latent, one number per dimension (None: 0)"
    )
    latent_mode_steps: int = _f(
        0, _int(0), "initialisation", "> 0: latent mean by this many gradient ascent steps on log g from 0 (LGCP)"
    )
    latent_mode_lr: float = _f(0.01, _number(), "initialisation", "step size of that gradient ascent")
    latent_mode_method: str = _f(
        "gradient",
        _choice("gradient", "lbfgs"),
        "initialisation",
        "how latent_mode_steps search the mode: 'gradient' (the paper's ascent, step latent_mode_lr) or "
        "'lbfgs' (L-BFGS with a strong Wolfe line search: reaches the mode where the ascent stalls)",
    )
    latent_covariance: str = _f(
        "identity",
        _choice("identity", "laplace"),
        "initialisation",
        "'laplace': latent covariance latent_scale^2 (-Hessian of log g at the latent mean)^-1, a Laplace "
        "approximation for near-Gaussian targets (d x d memory; log g concave at the mean)",
    )
    gradient_flow_time: float | None = _f(
        None,
        _optional(_number()),
        "initialisation",
        "first layer: the flow of v = grad log g for this time (GMM40; None: off)",
    )
    gradient_flow_steps: int = _f(20, _int(1), "initialisation", "RK4 steps of the gradient-flow layer")
    # --- extensions beyond the paper ---
    warm_start: bool = _f(
        False,
        _bool,
        "extensions",
        "start each CNF step from the previous step's trained field instead of zero (App. F.2)",
    )
    scale_search: list[float] | None = _f(
        None,
        _optional(_multiples),
        "extensions",
        "after training, keep the multiple s * v (s from this list) with the lowest "
        "JKO objective on fresh samples; s = 0 is the identity (None: off)",
    )
    validation_size: int = _f(5000, _int(1), "extensions", "fresh samples on which the scale search scores")
    sample_steps_tol: float | None = _f(
        None,
        _optional(_number()),
        "extensions",
        "sample each CNF step with the fewest RK4 steps whose map and log-det stay "
        "within this of the trained step count's (None: off)",
    )
    sample_steps_max: int | None = _f(
        None,
        _optional(_int(1)),
        "extensions",
        "with sample_steps_tol: sample each CNF step with the fewest RK4 steps s (1, 2, 4, ..., "
        "at most this) whose map and log-det agree with the 2s-step map within sample_steps_tol, "
        "i.e. the trained field's ODE solved to that accuracy rather than at its training "
        "discretisation (None: compare with the trained step count)",
    )
    alpha_samples: int | None = _f(
        None,
        _optional(_int(1)),
        "extensions",
        "estimate each rejection step's E[alpha] on this many fresh samples instead of its "
        "dataset; its error is the model's normalisation error (Theorem 4.2; None: dataset)",
    )

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check every field's rule, then the relations between fields.

        Normalises in place (numpy ints to ``int``, ``scale_search`` to a list of floats).

        Raises:
            ValueError: naming the first field that breaks its rule, or the relation broken.
        """
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            try:
                normal = f.metadata["check"](value)
            except ValueError as e:
                raise ValueError(f"Config.{f.name} {e}, got {value!r}") from None
            if normal is not value:
                object.__setattr__(self, f.name, normal)
        if self.n_flow_steps + self.n_blocks == 0 and self.gradient_flow_time is None:
            raise ValueError("Config has no layers: n_flow_steps + n_blocks must be positive")
        for name in ("batch_size", "late_batch_size"):
            v = getattr(self, name)
            if v is not None and v > self.dataset_size:
                raise ValueError(f"Config.{name} ({v}) exceeds dataset_size ({self.dataset_size})")
        if self.sample_steps_max is not None and self.sample_steps_tol is None:
            raise ValueError("Config.sample_steps_max is set but sample_steps_tol is None: set the tolerance")
        for name in ("late_n_iters", "late_batch_size", "late_lr"):
            if getattr(self, name) is not None and self.late_tau is None:
                raise ValueError(
                    f"Config.{name} is set but late_tau is None: set late_tau, the tau from "
                    "which CNF steps train with the late budget"
                )

    # ------------------------------------------------------------------ conversion
    def to_dict(self) -> dict[str, Any]:
        """The fields as a dict of plain literals (for YAML, JSON and checkpoints)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Config:
        """The Config with these fields (the others at their defaults).

        Raises:
            ValueError: for unknown field names (listed) or invalid values.
        """
        if not isinstance(d, dict):
            raise ValueError(f"a Config is read from a dict, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown Config field(s): {', '.join(unknown)}")
        return cls(**d)

    def replace(self, **changes: Any) -> Config:
        """A copy with ``changes`` applied (validated)."""
        return Config.from_dict({**self.to_dict(), **changes})

    # ------------------------------------------------------------------ derived settings
    def budget(self, tau: float) -> tuple[int, int]:
        """``(n_iters, batch_size)`` of the CNF step with step size ``tau`` (late budget from ``late_tau``)."""
        if self.late_tau is not None and tau >= self.late_tau:
            return (self.late_n_iters or self.n_iters, self.late_batch_size or self.batch_size)
        return self.n_iters, self.batch_size

    def learning_rate(self, tau: float) -> float:
        """Adam's initial learning rate for the CNF step with step size ``tau`` (``late_lr`` from ``late_tau``)."""
        if self.late_tau is not None and tau >= self.late_tau and self.late_lr is not None:
            return float(self.late_lr)
        return float(self.lr)

    def hidden_width(self, dim: int) -> int:
        """Hidden width of the velocity MLP in dimension ``dim`` (``2 d + 50`` unless ``hidden`` is set)."""
        return self.hidden if self.hidden is not None else 2 * dim + 50

    def trace_mode(self, dim: int, *, evaluation: bool = False) -> str:
        """``"exact"`` or ``"hutchinson"`` for training (default) or for sampling and densities.

        With ``trace="auto"`` the divergence is exact up to ``exact_trace_max_dim`` in training
        and up to ``exact_trace_eval_max_dim`` (if set) when sampling: an exact divergence costs
        ``d`` tangents but carries no estimator noise for the rejection steps to select (App. F.2).
        """
        if self.trace != "auto":
            return self.trace
        limit = self.exact_trace_max_dim
        if evaluation and self.exact_trace_eval_max_dim is not None:
            limit = self.exact_trace_eval_max_dim
        return "exact" if dim <= limit else "hutchinson"


def describe() -> str:
    """Every Config field by group: name, default, rule and meaning (a plain-text table)."""
    lines: list[str] = []
    fields = dataclasses.fields(Config)
    for group in GROUPS:
        lines.append(f"[{group}]")
        for f in fields:
            if f.metadata["group"] == group:
                rule = getattr(f.metadata["check"], "rule", "")
                lines.append(f"  {f.name} = {f.default!r}  ({rule})\n      {f.metadata['doc']}")
    return "\n".join(lines)


def schedule(config: Config) -> list[tuple[str, float]]:
    """The layer list of Algorithm 2 as run: ``[("cnf", tau), ("rejection", 0.0), ...]``.

    ``n1`` CNF steps, then ``n2`` blocks of one CNF step and ``rejections_per_block`` rejection
    steps; tau grows by ``tau_base`` at every CNF step. With the gradient-flow initialisation
    a ``("gradient_flow", T)`` layer comes first. Without rejection (the neural JKO ablation)
    the rejection layers are left out.
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
