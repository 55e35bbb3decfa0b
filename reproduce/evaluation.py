"""Evaluation of a method's run against the target: the paper's metrics, the sampling-error
references, the per-layer curves and the sample paths of the figures."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .methods import METRIC_SEED, MODE_REF_SEED, REF_SEED, SAMPLE_SEED, TRUTH_SEED, MethodRun, to_cpu


def ground_truth(target: Any, n: int, seed: int) -> Tensor:
    """Exact samples of ``target`` for run ``seed``.

    Args:
        target: a target with a ``sample(n, generator=...)`` method.
        n: the number of samples.
        seed: the run index (offset into a stream of its own).

    Returns:
        ``(n, d)`` float32 samples on the CPU.
    """
    return target.sample(int(n), generator=torch.Generator().manual_seed(TRUTH_SEED + int(seed)))


def _finite(run: MethodRun) -> tuple[Tensor, Tensor | None, Tensor | None, int]:
    """The samples of ``run`` with finite coordinates and densities, and how many were dropped.

    Returns:
        ``(x, log_p, log_g, n_dropped)``; ``log_g`` may be ``-inf`` (a sample outside the
        target's support), not NaN or ``+inf``.
    """
    ok = torch.isfinite(run.x).all(dim=1)
    if run.log_p is not None:
        ok &= torch.isfinite(run.log_p)
    if run.log_g is not None:
        ok &= ~torch.isnan(run.log_g) & ~torch.isposinf(run.log_g)
    bad = int((~ok).sum())
    if not bad:
        return run.x, run.log_p, run.log_g, 0
    return run.x[ok], None if run.log_p is None else run.log_p[ok], None if run.log_g is None else run.log_g[ok], bad


def evaluate(
    target: Any,
    run: MethodRun,
    truth: Tensor | None = None,
    *,
    n_w2: int = 5000,
    n_projections: int = 1000,
    seed: int = 0,
) -> dict[str, float]:
    """The paper's metrics of one run (App. E.2).

    Non-finite samples are dropped and counted in ``n_nonfinite``.

    Args:
        target: the target; its ``means`` (if any) give the mode MSE.
        run: the method's run.
        truth: ground-truth samples (:func:`ground_truth`); None skips the energy distance
            and W2.
        n_w2: samples of each set for the exact W2^2 (0 skips it).
        n_projections: directions of the sliced energy distance.
        seed: the run index (seeds the projections).

    Returns:
        ``n``, ``n_nonfinite``; ``energy`` (sliced energy distance to ``truth``, Table 1) and
        ``w2`` (exact W2^2 of the first ``n_w2`` samples of each, Table 3) with ``truth``;
        ``log_z`` / ``log_z_se`` (its standard error at this N, Table 2's sampling-error
        column) / ``log_z_importance`` / ``ess_fraction`` when the method has a density
        (Table 2); ``log_z_recomputed``, the ELBO on the samples' densities recomputed by
        ``log_prob``, where the sampling paths' densities are Hutchinson estimates that rejection
        layers selected; ``mode_mse`` for mixtures (Table 4).
    """
    from jkoic.bench import metrics as M

    x, lp, lg, bad = _finite(run)
    out: dict[str, float] = {"n": int(x.shape[0]), "n_nonfinite": bad}
    if truth is not None:
        out["energy"] = float(M.sliced_energy_distance(x, truth, n_projections, seed=METRIC_SEED + seed))
        if n_w2:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                out["w2"] = float(M.w2_squared(x[:n_w2], truth[:n_w2]))
    if lp is not None and lg is not None:
        elbo = M.log_z_elbo(lg, lp)
        out["log_z"] = float(elbo)
        out["log_z_se"] = float(elbo.protocol["std_error"])
        out["log_z_importance"] = float(M.log_z_importance(lg, lp))
        out["ess_fraction"] = float(M.effective_sample_size(lg, lp, fraction=True))
        model = run.model
        if model is not None and hasattr(model, "selects_density_noise") and model.selects_density_noise():
            # the rejection layers selected the paths' Hutchinson noise (docs/tuning.md, "Density noise")
            lp_fresh = model.log_prob(x, seed=METRIC_SEED + seed).detach().to("cpu", lg.dtype)
            out["log_z_recomputed"] = float(M.log_z_elbo(lg, lp_fresh))
    means = getattr(target, "means", None)
    if means is not None:
        out["mode_mse"] = float(M.mode_mse(x, means))
    return out


def reference_errors(
    target: Any, *, n_eval: int, n_w2: int = 5000, n_projections: int = 1000, seed: int = 0
) -> dict[str, float]:
    """Sampling errors: the metrics of exact samples at the sizes the methods are scored at.

    The energy distance and W2^2 between two independent ground-truth sets (Tables 1, 3) and,
    for a mixture, the mode MSE of one ground-truth set of ``n_eval`` samples (Table 4): the
    multinomial noise of the empirical mode weights, ``sum_k w_k (1 - w_k) / n`` in expectation.

    Args:
        target: the target.
        n_eval: samples per set for the energy distance.
        n_w2: samples per set for W2^2 (0 skips it).
        n_projections: directions of the sliced energy distance.
        seed: the run index.

    Returns:
        ``energy``, (with ``n_w2``) ``w2`` and (for a target with ``means``) ``mode_mse``.
    """
    from jkoic.bench import metrics as M

    out = {
        "energy": float(
            M.sampling_error(
                target, n_eval, M.sliced_energy_distance, seed=REF_SEED + seed, n_projections=n_projections
            )
        )
    }
    if n_w2:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            out["w2"] = float(M.sampling_error(target, n_w2, M.w2_squared, seed=REF_SEED + seed))
    means = getattr(target, "means", None)
    if means is not None:
        x = target.sample(int(n_eval), generator=torch.Generator().manual_seed(MODE_REF_SEED + int(seed)))
        out["mode_mse"] = float(M.mode_mse(x, means))
    return out


def layer_curve(
    model: Any, truth: Tensor | None, *, n: int, n_projections: int = 200, seed: int = 0
) -> list[dict[str, Any]]:
    """Energy distance and log Z estimate after every layer (Figure 11).

    One pass of ``model.sample_path(n)``: its stage ``k`` holds ``n`` iid draws of the model
    made of the first ``k`` layers (a rejection stage replaces its rejected points by fresh
    draws of the model below, as ``sample`` does), so one draw through the whole stack
    serves every layer. Calling ``model.sample(n, upto=k)`` for each ``k`` costs the sum of
    all prefixes instead, several times more where rejection layers multiply the cost.

    Args:
        model: a trained :class:`jkoic.Sampler`.
        truth: ground-truth samples (at least ``n``); None skips the energy distance.
        n: samples per layer.
        n_projections: directions of the sliced energy distance.
        seed: the run index.

    Returns:
        One entry per stage: ``layer``, ``kind``, ``log_z`` (ELBO) and, with ``truth``,
        ``energy``.
    """
    from jkoic.bench import metrics as M
    from jkoic.target import check_log_prob

    stages = model.sample_path(n, seed=SAMPLE_SEED + 7919 + seed)
    curve = []
    for k, stage in enumerate(stages):
        x, lp = to_cpu(stage["x"]), to_cpu(stage["log_p"])
        lg = to_cpu(check_log_prob(model.target, stage["x"]))
        entry: dict[str, Any] = {"layer": k, "kind": stage["kind"], "log_z": float(M.log_z_elbo(lg, lp))}
        if truth is not None:
            entry["energy"] = float(M.sliced_energy_distance(x, truth[:n], n_projections, seed=METRIC_SEED + seed))
        curve.append(entry)
    return curve


def path_data(model: Any, n: int, *, seed: int = 0, means: Tensor | None = None) -> dict[str, np.ndarray]:
    """Follow ``n`` samples through every layer (Figures 1, 3, 4).

    Args:
        model: a trained :class:`jkoic.Sampler`.
        n: the number of points followed.
        seed: the seed of ``model.sample_path``.
        means: the target's mode means; given, the mode weights of every stage are added.

    Returns:
        ``x`` (stages, n, 2), ``rejected`` / ``resampled`` (stages, n) booleans (a point is
        *rejected* in the next layer; *resampled* points are fresh draws), ``kind`` (stage
        kinds as strings) and, with ``means``, ``mode_weights`` (stages, K).
    """
    from jkoic.bench import metrics as M

    stages = model.sample_path(n, seed=seed)
    xs, rej, res, kinds, weights = [], [], [], [], []
    for s in stages:
        x = s["x"].detach().cpu().float()
        xs.append(x[:, :2].numpy())
        rej.append(s.get("rejected", torch.zeros(n, dtype=torch.bool)).cpu().numpy())
        res.append(s.get("resampled", torch.zeros(n, dtype=torch.bool)).cpu().numpy())
        kinds.append(s["kind"])
        if means is not None:
            weights.append(M.mode_weights(x, means).cpu().numpy())
    out = {
        "x": np.stack(xs).astype(np.float32),
        "rejected": np.stack(rej),
        "resampled": np.stack(res),
        "kind": np.array(kinds),
    }
    if means is not None:
        out["mode_weights"] = np.stack(weights)
    return out
