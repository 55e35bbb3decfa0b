"""Training of the layer stack (Algorithm 2), one unit after the other.

A training unit is a run of rejection layers ending with the next flow layer. Each unit starts
from one fresh dataset of the model so far; its rejection layers are fitted one after the
other on that dataset (Alg. 5), each applied to it (rejected points replaced by fresh draws),
and the flow layer that ends the unit trains on the result: a neural JKO step minimises the
reverse KL plus ``1/tau`` times the kinetic energy with Adam (Sec. 3). Every unit draws from a
generator seeded by ``(seed, first layer index)``, so a run resumed between units equals an
uninterrupted one.

References:
    J. Hertrich, R. Gruhlke. Importance Corrected Neural JKO Sampling. ICML 2025.
    Sec. 3, Alg. 2, 5, Remark E.2, App. E.5.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from . import calibration
from .cnf import GradientFlowVelocity, MLPVelocity, integrate, integrate_adaptive, steps_from_nfe
from .estimators import log_z_stats
from .rejection import RejectionParams, fit_rejection
from .seeding import new_generator, seed_for
from .stack import Drawer, FlowLayer, RejectionLayer, Stack

__all__ = [
    "final_stats",
    "improved",
    "fit_latent_mean",
    "fit_unit",
    "hessian_log_g",
    "laplace_precision_factor",
    "gradient_flow_layer",
    "stats_entry",
    "train_cnf",
    "units",
]

#: training points on which ``Config.sample_steps_tol`` compares step counts
CALIBRATION_POINTS = 2000


def units(plan: list[tuple[str, float]]) -> list[list[int]]:
    """The layer indices of each training unit: rejection layers up to and with the next flow layer."""
    out: list[list[int]] = []
    current: list[int] = []
    for k, (kind, _) in enumerate(plan):
        current.append(k)
        if kind != "rejection":
            out.append(current)
            current = []
    if current:
        out.append(current)
    return out


def stats_entry(log_g: Tensor, log_p: Tensor) -> dict[str, float]:
    """The per-layer log's estimates on a dataset: ELBO and importance-weighted log Z with their
    standard errors, and the ESS fraction."""
    s = log_z_stats(log_g, log_p)
    return {
        "log_z_elbo": s["elbo"],
        "log_z_elbo_se": s["elbo_std_error"],
        "log_z_importance": s["importance"],
        "log_z_importance_se": s["importance_std_error"],
        "ess_fraction": s["ess_fraction"],
        "n_eval": s["n"],
    }


def improved(before: dict[str, float], after: dict[str, float], tol: float = 0.0) -> bool:
    """Whether the model improved from ``before`` to ``after`` (two :func:`stats_entry` records of
    fresh samples) by more than the estimates' standard errors and by more than ``tol`` nats.

    True when the ELBO or the importance-weighted log Z rose by more than the standard error
    of their difference (the two samples are independent) and by more than ``tol``. Both are
    maximal, at log Z, for the exact model (the ELBO in expectation, the importance estimate in
    the limit).
    """
    for key in ("log_z_elbo", "log_z_importance"):
        se = math.hypot(before[f"{key}_se"], after[f"{key}_se"])
        if after[key] - before[key] > max(se, tol):
            return True
    return False


def gradient_flow_layer(model: Stack, time: float, steps: int) -> FlowLayer:
    """The fixed first layer ``v = grad log g`` for ``time`` (Remark E.2), with the target's
    closed-form score and Laplacian where it has them."""
    target = model.target
    closed = getattr(target, "score_and_laplacian", None)
    probe = None
    if callable(closed):
        probe = closed(torch.zeros(1, model.dim, device=model.latent().mean.device, dtype=model.latent().mean.dtype))
    if probe is None:
        return FlowLayer(GradientFlowVelocity(model.log_g, time), "gradient_flow", time, steps)

    def score_laplacian(x: Tensor) -> tuple[Tensor, Tensor]:
        out = closed(x)
        if not (torch.isfinite(out[0]).all() and torch.isfinite(out[1]).all()):
            raise ValueError(f"target {target.name!r}: score_and_laplacian gave NaN or inf")
        return out

    return FlowLayer(GradientFlowVelocity(model.log_g, time, score_laplacian), "gradient_flow", time, steps)


def fit_latent_mean(model: Stack) -> Tensor:
    """Latent mean by ``latent_mode_steps`` steps on log g from 0: the paper's gradient ascent
    (LGCP, Remark E.2) or L-BFGS (``latent_mode_method``)."""
    cfg = model.config
    mean = model.latent().mean
    x = torch.zeros(1, model.dim, device=mean.device, dtype=mean.dtype, requires_grad=True)
    if cfg.latent_mode_method == "lbfgs":
        opt = torch.optim.LBFGS(
            [x],
            lr=1.0,
            max_iter=cfg.latent_mode_steps,
            tolerance_grad=0.0,
            tolerance_change=torch.finfo(x.dtype).eps,
            line_search_fn="strong_wolfe",
        )

        def closure() -> Tensor:
            opt.zero_grad()
            loss = -model.log_g(x).sum()
            loss.backward()
            return loss

        opt.step(closure)
        return x.detach()[0]
    for _ in range(cfg.latent_mode_steps):
        (grad,) = torch.autograd.grad(model.log_g(x).sum(), x)
        with torch.no_grad():
            x += cfg.latent_mode_lr * grad
    return x.detach()[0]


def hessian_log_g(model: Stack, x: Tensor, chunk: int = 256) -> Tensor:
    """The Hessian of log g at the point ``x`` (shape ``(dim,)``), ``(dim, dim)`` in float64.

    Row blocks by double backprop on copies of ``x``: row ``i`` of a block is the gradient of
    ``grad log g(x_i) . e_i`` with respect to the copy ``x_i``, so any target that autograd
    differentiates twice works (no ``vmap``). The result is symmetrised.
    """
    d = x.shape[0]
    rows = []
    for start in range(0, d, chunk):
        k = min(chunk, d - start)
        xs = x.detach().expand(k, d).clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(model.log_g(xs).sum(), xs, create_graph=True)
        pick = torch.zeros_like(grad)
        pick[torch.arange(k), torch.arange(start, start + k)] = 1.0
        (block,) = torch.autograd.grad((grad * pick).sum(), xs)
        rows.append(block.detach().to(torch.float64))
    h = torch.cat(rows)
    return 0.5 * (h + h.T)


def laplace_precision_factor(model: Stack) -> Tensor:
    """The lower Cholesky factor of ``-Hessian log g`` at the latent mean (the Laplace latent).

    Raises:
        ValueError: when minus the Hessian is not positive definite there (log g is not
            strictly concave at the latent mean, e.g. the mean is not a mode).
    """
    mean = model.latent().mean
    precision = -hessian_log_g(model, mean)
    if not torch.isfinite(precision).all():
        raise ValueError("latent_covariance='laplace': the Hessian of log g at the latent mean is not finite")
    factor, info = torch.linalg.cholesky_ex(precision)
    if int(info) != 0:
        raise ValueError(
            "latent_covariance='laplace': minus the Hessian of log g at the latent mean is not positive "
            "definite (log g is not concave there); put the latent mean at a mode (latent_mode_steps with "
            "latent_mode_method='lbfgs', or latent_mean) or use latent_covariance='identity'"
        )
    return factor.to(device=mean.device, dtype=mean.dtype)


def fit_unit(
    model: Stack,
    seed: int,
    unit: list[int],
    progress: bool,
    keep: Callable[[int, dict[str, float]], bool] | None = None,
) -> list[dict[str, Any]]:
    """Fit the layers of one unit, appending them to ``model.layers`` and their entries to ``model.log``.

    Args:
        model: the model so far.
        seed: the run seed.
        unit: the unit's layer indices (see :func:`units`).
        progress: show tqdm bars.
        keep: called before each layer ``k`` as ``keep(k, estimates)`` with the estimates of
            the model so far on the unit's (fresh, or freshly rejected) dataset; ``False``
            stops the unit there (the adaptive schedule's stopping rule). ``None``: fit all.
    """
    device = model.latent().mean.device
    gen = new_generator(seed_for(seed, unit[0]), device)
    drawer = Drawer(model, gen)
    t0 = time.perf_counter()
    data = drawer.dataset(model.config.dataset_size)
    t_data = time.perf_counter() - t0
    entries: list[dict[str, Any]] = []
    log = model.log
    for k in unit:
        kind, tau = model.plan[k]
        assert data.log_g is not None
        stats = stats_entry(data.log_g, data.log_p)
        if log:  # the dataset is a sample of the model so far: log its quality
            log[-1].update(stats)
        if keep is not None and not keep(k, stats):
            break
        entry: dict[str, Any] = {
            "layer": k,
            "kind": kind,
            "tau": float(tau),
            "dataset_seconds": t_data,
            "log_z_elbo_before": stats["log_z_elbo"],
        }
        t1 = time.perf_counter()
        if kind == "rejection":
            params = fit_rejection(data.log_g, data.log_p, model.config.rejection_rate)
            if model.config.alpha_samples is not None:
                entry["mean_alpha_dataset"] = params.mean_alpha
                params = RejectionParams(params.log_c, calibration.estimate_mean_alpha(model, seed, params.log_c, k))
            model.layers.append(RejectionLayer(params))
            entry.update(log_c=params.log_c, mean_alpha=params.mean_alpha)
            with torch.no_grad():
                data = drawer.reject(params, data, k)
        elif kind == "gradient_flow":
            model.layers.append(gradient_flow_layer(model, tau, model.config.gradient_flow_steps))
        else:
            layer, info = train_cnf(model, seed, k, tau, data.x, gen, progress)
            model.layers.append(layer)
            entry.update(info)
        t_data = 0.0
        entry["train_seconds"] = time.perf_counter() - t1
        log.append(entry)
        entries.append(entry)
    return entries


def final_stats(model: Stack, seed: int, n_layers: int) -> dict[str, float]:
    """The estimates of the finished model on one more fresh dataset."""
    gen = new_generator(seed_for(seed, n_layers, 7), model.latent().mean.device)
    b = Drawer(model, gen).dataset(model.config.dataset_size)
    assert b.log_g is not None
    return stats_entry(b.log_g, b.log_p)


def _previous_cnf_field(model: Stack) -> MLPVelocity | None:
    """The velocity field of the last trained CNF layer (``None`` before the first)."""
    for layer in reversed(model.layers):
        if isinstance(layer, FlowLayer) and layer.kind == "cnf" and isinstance(layer.field, MLPVelocity):
            return layer.field
    return None


def train_cnf(
    model: Stack, seed: int, k: int, tau: float, data: Tensor, gen: torch.Generator, progress: bool
) -> tuple[FlowLayer, dict[str, Any]]:
    """Train the neural JKO step ``k`` with step size ``tau`` on ``data`` (Sec. 3, App. E.5).

    Minimises ``E[-log g(T x) - int div v] + (1/tau) E[int |v|^2]`` with Adam over random
    batches of ``data``, then calibrates the step (scale search, sampling step count).

    Returns:
        The trained layer and its log entry (iterations, final loss, calibration results).

    Raises:
        FloatingPointError: if the loss stops being finite.
    """
    from tqdm import tqdm

    cfg = model.config
    device, dtype = model.latent().mean.device, model.latent().mean.dtype
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed_for(seed, k, 1))
        field = MLPVelocity(model.dim, cfg.hidden_width(model.dim), cfg.n_hidden_layers)
    field.to(device=device, dtype=dtype)
    previous = _previous_cnf_field(model)
    if cfg.warm_start and previous is not None:
        field.load_state_dict(previous.state_dict())
    opt = torch.optim.Adam(field.parameters(), lr=cfg.learning_rate(tau))
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.lr_decay_every, gamma=cfg.lr_decay)
    trace = cfg.trace_mode(model.dim)
    n_data = data.shape[0]
    losses: list[float] = []
    nfes: list[int] = []
    it = 0
    n_iters, batch_size = cfg.budget(tau)
    bar = tqdm(range(n_iters), desc=f"layer {k} (cnf, tau={tau:.3g})", leave=False, disable=not progress, unit="it")
    for it in bar:
        idx = torch.randint(0, n_data, (batch_size,), generator=gen, device=device)
        x = data[idx]
        if cfg.solver == "rk4":
            z1, ld, kin = integrate(
                field, x, n_steps=cfg.train_steps, trace=trace, n_probes=cfg.n_probes_train, kinetic=True, generator=gen
            )
        else:
            z1, ld, kin, nfe = integrate_adaptive(
                field,
                x,
                trace=trace,
                n_probes=cfg.n_probes_train,
                atol=cfg.atol,
                rtol=cfg.rtol,
                method=cfg.solver,
                adjoint=cfg.adjoint,
                generator=gen,
            )
            nfes.append(nfe)
        assert kin is not None
        loss = (-model.log_g(z1) - ld + kin / tau).mean()
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"training loss became {loss.item()} at iteration {it} of layer {k}; try a smaller lr or tau0"
            )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip is not None:
            nn.utils.clip_grad_norm_(field.parameters(), cfg.grad_clip)
        opt.step()
        sched.step()
        lv = float(loss.detach())
        losses.append(lv)
        if it % 50 == 0:
            bar.set_postfix(loss=f"{lv:.4g}")
    bar.close()
    if cfg.sample_steps is not None:
        steps = cfg.sample_steps
    elif cfg.solver == "rk4":
        steps = cfg.train_steps
    else:
        tail = nfes[-max(1, len(nfes) // 10) :]
        steps = steps_from_nfe(int(sum(tail) / len(tail)), cfg.solver)
    field.eval()
    for p in field.parameters():
        p.requires_grad_(False)
    tail_losses = losses[-min(len(losses), 100) :]
    info: dict[str, Any] = {"iterations": it + 1, "final_loss": sum(tail_losses) / len(tail_losses)}
    if cfg.scale_search:
        info.update(calibration.search_scale(model, seed, field, k, tau, steps))
    if cfg.sample_steps_tol is not None and cfg.trace_mode(model.dim, evaluation=True) == "exact":
        if cfg.sample_steps_max is not None:
            steps, info["sample_steps_error"] = calibration.converged_steps(
                field, data[:CALIBRATION_POINTS], cfg.sample_steps_max, cfg.sample_steps_tol
            )
        else:
            steps, info["sample_steps_error"] = calibration.fewest_steps(
                field, data[:CALIBRATION_POINTS], steps, cfg.sample_steps_tol
            )
    info["sample_steps"] = steps
    if nfes:
        info["mean_nfe"] = sum(nfes) / len(nfes)
    return FlowLayer(field, "cnf", tau, steps), info
