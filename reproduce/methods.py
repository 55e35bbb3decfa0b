"""The experiments of the notebooks: targets, method settings, training runs and the paper's metrics.

The notebooks call these helpers and hold no algorithm code: :func:`make_target`,
:func:`method_config`, :func:`run_method` (returns a :class:`MethodRun`), :func:`ground_truth`,
:func:`evaluate`, :func:`reference_errors`, :func:`layer_curve` and :func:`path_data`.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from jkoic import Config, preset

__all__ = [
    "DEFAULT_COUPLING",
    "DEFAULT_MCMC",
    "HMC_STEP",
    "MALA_STEP",
    "METHODS",
    "MethodRun",
    "evaluate",
    "ground_truth",
    "layer_curve",
    "make_target",
    "method_config",
    "path_data",
    "reference_errors",
    "run_method",
    "target_key",
]

#: the methods a notebook can run (DDS, CRAFT, ... are quoted from the paper)
METHODS = ("jkoic", "neural_jko", "mala", "hmc", "cnf_kl", "coupling_kl")

#: HMC step sizes of the paper (App. E.5); 8 Peaky and GMM-d are not stated there (our choice)
HMC_STEP = {"mustache": 0.01, "8modes": 0.1, "8peaky": 0.1, "funnel": 0.1, "gmm": 0.01}
MALA_STEP = 1e-3

DEFAULT_MCMC: dict[str, Any] = {"n_steps": 50000, "warmup": [1000, 1000], "warmup_factors": [0.01, 0.1],
                                "mala_step": MALA_STEP, "hmc_step": None, "n_leapfrog": 5, "n_chains": None}
DEFAULT_COUPLING: dict[str, Any] = {"n_iters": 5000, "batch_size": 5000, "lr": 1e-3, "n_blocks": 5, "hidden": None}

# seed offsets: the model, the ground truth and the metrics of run ``s`` use disjoint streams
_SAMPLE_SEED = 1_000
_TRUTH_SEED = 2_000
_METRIC_SEED = 3_000
_REF_SEED = 4_000

#: the methods trained as a :class:`jkoic.Sampler` with a :class:`~jkoic.Config`
_CONFIG_METHODS = ("jkoic", "neural_jko", "cnf_kl")
_LAYER_LETTERS = {"cnf": "C", "rejection": "R", "gradient_flow": "G"}


def target_key(name: str, dim: int | None = None) -> str:
    """The results key of a target.

    Args:
        name: the target name (``"gmm"``, ``"8peaky"``, ...).
        dim: the dimension of a ``gmm`` target (default 10).

    Returns:
        ``gmm<dim>`` for ``gmm``, else ``name``.
    """
    return f"gmm{dim or 10}" if name == "gmm" else name


def make_target(name: str, *, dim: int | None = None, run: int = 0) -> Any:
    """The benchmark target ``name`` of :mod:`jkoic.bench.targets`.

    Args:
        name: the target name.
        dim: its dimension, where the target takes one (``gmm``: default 10).
        run: the run index; run ``r`` of ``gmm`` uses the paper's mean set ``r % 5 + 1``.

    Returns:
        The target object.
    """
    from jkoic.bench import targets

    if name == "gmm":
        return targets.get("gmm", dim=int(dim or 10), means_id=run % 5 + 1)
    return targets.get(name) if dim is None else targets.get(name, dim=int(dim))


def _scaled(n_iters: int, scale: float) -> int:
    """``n_iters * scale`` rounded, at least 1."""
    return max(1, int(round(n_iters * float(scale))))


def _scale_iters(cfg: Config, scale: float) -> Config:
    """``cfg`` with its Adam iterations per CNF step (early and late) multiplied by ``scale``."""
    late = cfg.late_n_iters
    return cfg.replace(n_iters=_scaled(cfg.n_iters, scale), late_n_iters=None if late is None else _scaled(late, scale))


def method_config(
    method: str,
    preset_name: str,
    *,
    dim: int | None = None,
    preset_profile: str = "fast",
    overrides: dict[str, Any] | None = None,
    iters_scale: float = 1.0,
    kl_overrides: dict[str, Any] | None = None,
    njko_iters_scale: float = 1.0,
) -> Config:
    """The :class:`~jkoic.Config` of a sampler method.

    ``jkoic``: ``preset(preset_name, preset_profile, **overrides)`` with its iterations scaled
    by ``iters_scale``; ``neural_jko``: the same without rejection steps
    (:func:`jkoic.bench.baselines.neural_jko`), iterations further scaled by ``njko_iters_scale``;
    ``cnf_kl``: one CNF with the same network trained on the reverse KL alone
    (:func:`jkoic.bench.baselines.reverse_kl_cnf_config`: no kinetic term, no gradient-flow
    layer, by default the iteration budget of all CNF steps together).

    Args:
        method: ``"jkoic"``, ``"neural_jko"`` or ``"cnf_kl"``.
        preset_name: the preset (target) name.
        dim: the dimension, for presets that take one.
        preset_profile: ``"fast"`` or ``"paper"``.
        overrides: Config fields overriding the preset.
        iters_scale: multiplies the Adam iterations per CNF step.
        kl_overrides: ``cnf_kl`` only: ``n_iters`` sets its iteration budget, the other keys
            override Config fields.
        njko_iters_scale: ``neural_jko`` only: further multiplies its iterations.

    Returns:
        The Config.

    Raises:
        ValueError: ``method`` is not trained with a Config.
    """
    from jkoic.bench.baselines import reverse_kl_cnf_config

    cfg = preset(preset_name, preset_profile, dim=dim, **(overrides or {}))
    if iters_scale != 1.0:
        cfg = _scale_iters(cfg, iters_scale)
    if method == "jkoic":
        return cfg
    if method == "neural_jko":
        return _scale_iters(cfg, njko_iters_scale).replace(rejection=False)
    if method == "cnf_kl":
        kl = dict(kl_overrides or {})
        n_iters = kl.pop("n_iters", None)
        kl_cfg = reverse_kl_cnf_config(cfg, n_iters=int(n_iters) if n_iters is not None else None)
        return kl_cfg.replace(**kl) if kl else kl_cfg
    raise ValueError(f"method {method!r} has no Config; Config methods: {', '.join(_CONFIG_METHODS)}")


@dataclass
class MethodRun:
    """One trained (or run) method: its samples on the CPU, densities, timings and settings.

    Attributes:
        method: the method name.
        seed: the run's seed.
        x: the samples, ``(n, d)`` float32.
        log_p: the model's log density at ``x`` (None for MCMC).
        log_g: the target's unnormalised log density at ``x`` (None for MCMC).
        train_seconds: training (MCMC: sampling) time.
        sample_seconds: time to draw ``x`` from the trained model.
        model: the trained model (None for MCMC).
        info: method-specific numbers (layer kinds, acceptance rate, final loss, ...).
        config: the settings the method ran with, as plain types.
    """

    method: str
    seed: int
    x: Tensor
    log_p: Tensor | None
    log_g: Tensor | None
    train_seconds: float
    sample_seconds: float
    model: Any = None
    info: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] | None = None

    @property
    def n_samples(self) -> int:
        """The number of samples."""
        return int(self.x.shape[0])


def _to_cpu(t: Tensor | None) -> Tensor | None:
    """``t`` detached, as float32 on the CPU (None stays None)."""
    return None if t is None else t.detach().to("cpu", torch.float32)


def _run_sampler(method: str, target: Any, cfg: Config, *, seed: int, n_samples: int, device: str,
                 model_path: str | os.PathLike[str] | None) -> MethodRun:
    """Train a :class:`jkoic.Sampler` with ``cfg`` and draw ``n_samples`` from it."""
    from jkoic import Sampler

    model = Sampler(target, cfg, device=device)
    t0 = time.perf_counter()
    model.fit(seed=seed, progress=False, final_stats=False)  # the evaluation samples measure it
    train = time.perf_counter() - t0
    t0 = time.perf_counter()
    x, lp, lg = model.sample(n_samples, seed=_SAMPLE_SEED + seed, return_log_g=True)
    sample = time.perf_counter() - t0
    if model_path is not None:
        Path(model_path).parent.mkdir(parents=True, exist_ok=True)
        model.save(model_path)
    info = {"layers": "".join(_LAYER_LETTERS[k] for k in model.layer_kinds())}
    return MethodRun(method, seed, _to_cpu(x), _to_cpu(lp), _to_cpu(lg), train, sample, model, info, cfg.to_dict())


def _run_mcmc(method: str, target: Any, *, seed: int, n_samples: int, preset_name: str,
              mcmc: dict[str, Any] | None, device: str) -> MethodRun:
    """Run MALA or HMC chains, one per sample unless ``mcmc["n_chains"]`` is set."""
    from jkoic.bench.baselines import hmc, mala

    m = {**DEFAULT_MCMC, **(mcmc or {})}
    n_chains = int(m["n_chains"] or n_samples)
    gen = torch.Generator(device=device).manual_seed(seed)
    common = dict(warmup=tuple(m["warmup"]), warmup_factors=tuple(m["warmup_factors"]), generator=gen,
                  progress=False, device=device)
    if method == "mala":
        res = mala(target, n_chains, int(m["n_steps"]), float(m["mala_step"]), **common)
    else:
        step = m["hmc_step"]
        if step is None:
            step = HMC_STEP.get(preset_name if preset_name in HMC_STEP else "gmm", 0.01)
        res = hmc(target, n_chains, int(m["n_steps"]), float(step), int(m["n_leapfrog"]), **common)
    info = {"acceptance_rate": float(res.acceptance_rate), "n_steps": int(res.n_steps),
            "step_size": float(res.step_size), "n_chains": n_chains, "n_nonfinite": int(res.n_nonfinite)}
    settings = {k: (list(v) if isinstance(v, tuple) else v) for k, v in m.items()}
    return MethodRun(method, seed, _to_cpu(res.samples), None, None, float(res.seconds), 0.0, None, info, settings)


def _run_coupling(target: Any, *, seed: int, n_samples: int, width: int, coupling: dict[str, Any] | None,
                  device: str) -> MethodRun:
    """Train the Glow-style coupling flow on the reverse KL and draw ``n_samples`` in chunks."""
    from jkoic.bench.baselines import CouplingFlow, train_reverse_kl

    c = {**DEFAULT_COUPLING, **(coupling or {})}
    d = int(target.dim)
    hidden = int(c["hidden"] or 3 * width)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        flow = CouplingFlow(d, hidden, n_blocks=int(c["n_blocks"])).to(device)
    gen = torch.Generator(device=device).manual_seed(seed)
    t0 = time.perf_counter()
    losses = train_reverse_kl(flow, target, int(c["n_iters"]), int(c["batch_size"]), lr=float(c["lr"]),
                              generator=gen, progress=False)
    train = time.perf_counter() - t0
    t0 = time.perf_counter()
    gen = torch.Generator(device=device).manual_seed(_SAMPLE_SEED + seed)
    xs, lps = [], []
    with torch.no_grad():
        for start in range(0, n_samples, 10000):
            xb, lpb = flow.sample_and_log_prob(min(10000, n_samples - start), gen)
            xs.append(xb)
            lps.append(lpb)
        x, lp = torch.cat(xs), torch.cat(lps)
        lg = target.log_prob(x)
    sample = time.perf_counter() - t0
    info = {"hidden": hidden, "final_loss": float(np.mean(losses[-50:]))}
    return MethodRun("coupling_kl", seed, _to_cpu(x), _to_cpu(lp), _to_cpu(lg), train, sample, flow, info,
                     {**c, "hidden": hidden})


def run_method(
    method: str,
    target: Any,
    *,
    seed: int,
    preset_name: str,
    n_samples: int,
    dim: int | None = None,
    preset_profile: str = "fast",
    overrides: dict[str, Any] | None = None,
    iters_scale: float = 1.0,
    kl_overrides: dict[str, Any] | None = None,
    njko_iters_scale: float = 1.0,
    coupling: dict[str, Any] | None = None,
    mcmc: dict[str, Any] | None = None,
    device: str = "cpu",
    model_path: str | os.PathLike[str] | None = None,
) -> MethodRun:
    """Train (or run) ``method`` on ``target`` with seed ``seed`` and draw ``n_samples``.

    * ``jkoic`` / ``neural_jko`` / ``cnf_kl``: :class:`jkoic.Sampler` with
      :func:`method_config`; ``fit(seed=seed)``, then ``sample(n_samples)``.
    * ``mala`` / ``hmc``: :func:`jkoic.bench.baselines.mala` / ``hmc``, one chain per sample
      (``mcmc["n_chains"]`` chains if set), settings :data:`DEFAULT_MCMC` updated by ``mcmc``.
    * ``coupling_kl``: :class:`jkoic.bench.baselines.CouplingFlow` (5 Glow blocks, conditioner
      width 3x the JKO hidden width, ``overrides`` included) trained by ``train_reverse_kl``;
      :data:`DEFAULT_COUPLING` updated by ``coupling``.

    Args:
        method: one of :data:`METHODS`.
        target: the target (:func:`make_target`).
        seed: the run's seed.
        preset_name: the preset of the JKO methods (and the HMC step size's key).
        n_samples: samples to draw (MCMC: chains, unless ``mcmc["n_chains"]`` is set).
        dim: the preset's dimension, where it takes one.
        preset_profile: ``"fast"`` or ``"paper"``.
        overrides: Config fields overriding the preset.
        iters_scale: multiplies the Adam iterations per CNF step.
        kl_overrides: settings of ``cnf_kl`` (see :func:`method_config`).
        njko_iters_scale: further multiplies the iterations of ``neural_jko``.
        coupling: settings of ``coupling_kl``.
        mcmc: settings of ``mala`` / ``hmc``.
        device: the torch device.
        model_path: where to save the trained :class:`jkoic.Sampler` (None: not saved).

    Returns:
        The :class:`MethodRun`.

    Raises:
        ValueError: ``method`` is not one of :data:`METHODS`.
    """
    if method in _CONFIG_METHODS:
        cfg = method_config(method, preset_name, dim=dim, preset_profile=preset_profile, overrides=overrides,
                            iters_scale=iters_scale, kl_overrides=kl_overrides, njko_iters_scale=njko_iters_scale)
        return _run_sampler(method, target, cfg, seed=seed, n_samples=n_samples, device=device,
                            model_path=model_path)
    if method in ("mala", "hmc"):
        return _run_mcmc(method, target, seed=seed, n_samples=n_samples, preset_name=preset_name, mcmc=mcmc,
                         device=device)
    if method == "coupling_kl":
        # 3x the width of the JKO-IC network as run (overrides included, e.g. the cpu profile's Funnel)
        width = preset(preset_name, preset_profile, dim=dim, **(overrides or {})).hidden_width(int(target.dim))
        return _run_coupling(target, seed=seed, n_samples=n_samples, width=width, coupling=coupling, device=device)
    raise ValueError(f"unknown method {method!r}; methods: {', '.join(METHODS)}")


def ground_truth(target: Any, n: int, seed: int) -> Tensor:
    """Exact samples of ``target`` for run ``seed``.

    Args:
        target: a target with a ``sample(n, generator=...)`` method.
        n: the number of samples.
        seed: the run index (offset into a stream of its own).

    Returns:
        ``(n, d)`` float32 samples on the CPU.
    """
    return target.sample(int(n), generator=torch.Generator().manual_seed(_TRUTH_SEED + int(seed)))


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
        ``log_z`` / ``log_z_importance`` / ``ess_fraction`` when the method has a density
        (Table 2); ``mode_mse`` for mixtures (Table 4).
    """
    from jkoic.bench import metrics as M

    x, lp, lg, bad = _finite(run)
    out: dict[str, float] = {"n": int(x.shape[0]), "n_nonfinite": bad}
    if truth is not None:
        out["energy"] = float(M.sliced_energy_distance(x, truth, n_projections, seed=_METRIC_SEED + seed))
        if n_w2:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                out["w2"] = float(M.w2_squared(x[:n_w2], truth[:n_w2]))
    if lp is not None and lg is not None:
        out["log_z"] = float(M.log_z_elbo(lg, lp))
        out["log_z_importance"] = float(M.log_z_importance(lg, lp))
        out["ess_fraction"] = float(M.effective_sample_size(lg, lp, fraction=True))
    means = getattr(target, "means", None)
    if means is not None:
        out["mode_mse"] = float(M.mode_mse(x, means))
    return out


def reference_errors(
    target: Any, *, n_eval: int, n_w2: int = 5000, n_projections: int = 1000, seed: int = 0
) -> dict[str, float]:
    """Sampling errors: the metrics between two independent ground-truth sets (Tables 1, 3).

    Args:
        target: the target.
        n_eval: samples per set for the energy distance.
        n_w2: samples per set for W2^2 (0 skips it).
        n_projections: directions of the sliced energy distance.
        seed: the run index.

    Returns:
        ``energy`` and (with ``n_w2``) ``w2``.
    """
    from jkoic.bench import metrics as M

    out = {"energy": float(M.sampling_error(target, n_eval, M.sliced_energy_distance, seed=_REF_SEED + seed,
                                            n_projections=n_projections))}
    if n_w2:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            out["w2"] = float(M.sampling_error(target, n_w2, M.w2_squared, seed=_REF_SEED + seed))
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

    stages = model.sample_path(n, seed=_SAMPLE_SEED + 7919 + seed)
    curve = []
    for k, stage in enumerate(stages):
        x, lp = _to_cpu(stage["x"]), _to_cpu(stage["log_p"])
        lg = _to_cpu(check_log_prob(model.target, stage["x"]))
        entry: dict[str, Any] = {"layer": k, "kind": stage["kind"], "log_z": float(M.log_z_elbo(lg, lp))}
        if truth is not None:
            entry["energy"] = float(M.sliced_energy_distance(x, truth[:n], n_projections, seed=_METRIC_SEED + seed))
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
    out = {"x": np.stack(xs).astype(np.float32), "rejected": np.stack(rej), "resampled": np.stack(res),
           "kind": np.array(kinds)}
    if means is not None:
        out["mode_weights"] = np.stack(weights)
    return out
