"""Post-training calibration of a layer: scale search, sampling step count, fresh ``E[alpha]``.

Each runs after a layer is fitted and draws its own fresh samples through a :class:`Drawer`
with a generator of its own, so the training's random stream is the same with or without it.
All three are extensions beyond the paper, switched on by ``Config.scale_search``,
``Config.sample_steps_tol`` and ``Config.alpha_samples``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from .cnf import MLPVelocity, integrate
from .rejection import log_alpha
from .seeding import new_generator, seed_for
from .stack import Drawer, Stack

__all__ = ["converged_steps", "estimate_mean_alpha", "fewest_steps", "search_scale"]


@torch.no_grad()
def search_scale(model: Stack, seed: int, field: MLPVelocity, k: int, tau: float, steps: int) -> dict[str, Any]:
    """Scale a trained field by the ``Config.scale_search`` multiple with the lowest JKO objective.

    The objective ``E[-log g(T x) - int div v] + (1/tau) E[int |v|^2]`` (the training loss, up
    to the constant ``E[log p(x)]``) is estimated on ``validation_size`` fresh samples of the
    model so far; all multiples are scored on the same samples and probes. Scaling the last
    layer scales ``v``; the multiple 0 is the identity map, the step's starting point.

    Returns:
        ``{"scale": s, "scale_objectives": [...]}``.

    Raises:
        FloatingPointError: if the objective is not finite at any multiple.
    """
    cfg = model.config
    val = Drawer(model, new_generator(seed_for(seed, k, 2), field.out.weight.device)).draw(
        len(model.layers), cfg.validation_size
    )
    grid = cfg.scale_search
    assert grid, "called only when Config.scale_search is set"
    weight, bias = field.out.weight.clone(), field.out.bias.clone()
    trace = cfg.trace_mode(model.dim, evaluation=True)
    scores: list[float] = []
    for s in grid:
        field.out.weight.copy_(weight * s)
        field.out.bias.copy_(bias * s)
        total = 0.0
        gen = new_generator(seed_for(seed, k, 3), weight.device)  # the same probes for every s
        try:
            for xc in val.x.split(cfg.chunk_size):
                z, ld, kin = integrate(
                    field, xc, n_steps=steps, trace=trace, n_probes=cfg.n_probes_eval, kinetic=True, generator=gen
                )
                assert kin is not None
                total += float((-model.log_g(z) - ld + kin / tau).sum())
        except ValueError:  # log g not finite where this multiple moves a point: not a candidate
            total = math.inf
        scores.append(total / len(val) if math.isfinite(total) else math.inf)
    if not any(math.isfinite(v) for v in scores):
        raise FloatingPointError(
            f"layer {k}: the JKO objective is not finite at any multiple in Config.scale_search = {grid}"
        )
    scale = grid[min(range(len(scores)), key=scores.__getitem__)]
    field.out.weight.copy_(weight * scale)
    field.out.bias.copy_(bias * scale)
    return {"scale": scale, "scale_objectives": scores}


def _map_error(
    field: nn.Module,
    x: Tensor,
    s: int,
    z_ref: Tensor,
    ld_ref: Tensor,
    tol: float,
    forward: tuple[Tensor, Tensor] | None = None,
) -> float:
    """The largest difference of the ``s``-step map from a reference ``(z_ref, ld_ref)`` on ``x``:
    end point and exact log-determinant forward, and (if those are within ``tol``) start point
    and log-determinant backward from ``z_ref`` (densities at given points, Alg. 6).
    ``forward``: the ``s``-step end points and log-determinants of ``x`` if already computed."""
    z, ld = forward if forward is not None else integrate(field, x, n_steps=s, trace="exact")[:2]
    err = max(float((z - z_ref).abs().max()), float((ld - ld_ref).abs().max()))
    if err > tol:
        return err
    x_back, ld_back, _ = integrate(field, z_ref, n_steps=s, reverse=True, trace="exact")
    return max(err, float((x_back - x).abs().max()), float((ld_back + ld_ref).abs().max()))


def fewest_steps(field: nn.Module, x: Tensor, steps: int, tol: float) -> tuple[int, float]:
    """The fewest RK4 steps whose map stays within ``tol`` of the ``steps``-step map on ``x``.

    The error is the largest absolute difference over ``x``, in any coordinate, of the end
    point and the exact log-determinant, both forward (sampling) and backward from the
    reference end point (densities at given points, Alg. 6). A late JKO step moves the
    samples little and is often reproduced by one RK4 step, which cuts its share of every
    later draw. (The paper, too, samples with another discretisation than it trains with.)

    Returns:
        ``(n_steps, error)``, with error 0.0 when ``steps`` itself is kept.
    """
    if steps <= 1:
        return steps, 0.0
    with torch.no_grad():
        z_ref, ld_ref, _ = integrate(field, x, n_steps=steps, trace="exact")
        # bisection (the error falls with the step count): log2(steps) trials, not steps - 1
        lo, hi, hi_err = 1, steps, 0.0
        while lo < hi:
            mid = (lo + hi) // 2
            err = _map_error(field, x, mid, z_ref, ld_ref, tol)
            if err <= tol:
                hi, hi_err = mid, err
            else:
                lo = mid + 1
    return hi, hi_err


def converged_steps(field: nn.Module, x: Tensor, max_steps: int, tol: float) -> tuple[int, float]:
    """The fewest RK4 steps ``s`` (1, 2, 4, ... up to ``max_steps``) whose map on ``x`` agrees
    with the ``2s``-step map within ``tol``: the trained field's ODE integrated to that accuracy.

    A field trained with few RK4 steps defines samples and log-determinants that agree with
    each other only as far as the discretisation is converged: the RK4-integrated divergence
    is not the log-determinant of the discrete RK4 map. For a step that contracts a broad
    latent strongly the two differ by a sizeable constant, and a model sampled at the training
    step count then claims a density off by that much. Integrating until the map no longer
    changes makes samples and densities those of one continuous flow. The error is measured
    as in :func:`fewest_steps` (end point and log-determinant, forward and backward).

    Returns:
        ``(n_steps, error)``; ``n_steps = max_steps`` if no smaller count converges (the error
        then is that of ``max_steps // 2`` against ``max_steps``).
    """
    s, err = 1, math.inf
    forward: tuple[Tensor, Tensor] | None = None
    with torch.no_grad():
        while s < max_steps:
            z_ref, ld_ref, _ = integrate(field, x, n_steps=min(2 * s, max_steps), trace="exact")
            err = _map_error(field, x, s, z_ref, ld_ref, tol, forward)
            if err <= tol:
                return s, err
            s = min(2 * s, max_steps)
            forward = (z_ref, ld_ref)  # the next candidate's forward map: this reference
    return s, err


@torch.no_grad()
def estimate_mean_alpha(model: Stack, seed: int, log_c: float, k: int) -> float:
    """``E[alpha]`` of a rejection layer with constant ``log_c``, on fresh samples (Theorem 4.2).

    Draws ``Config.alpha_samples`` fresh samples of the model below the layer, in chunks of
    ``dataset_size``. The frozen ``E[alpha]`` normalises the layer's density factor
    ``alpha + 1 - E[alpha]``: its estimation error is the error of the model's total mass.
    """
    cfg = model.config
    n = cfg.alpha_samples
    assert n is not None, "called only when Config.alpha_samples is set"
    drawer = Drawer(model, new_generator(seed_for(seed, k, 4), model.latent().mean.device))
    total, done = 0.0, 0
    while done < n:
        m = min(cfg.dataset_size, n - done)
        b = drawer.draw(len(model.layers), m)
        lg = b.log_g if b.log_g is not None else model.log_g(b.x)
        total += float(log_alpha(lg, b.log_p, log_c).double().exp().sum())
        done += m
    return total / n
