"""The experiments of the notebooks: targets, method settings, training runs and the paper's metrics.

The notebooks call these helpers and hold no algorithm code: :func:`make_target`,
:func:`method_config`, :func:`run_method` (returns a :class:`MethodRun`), :func:`ground_truth`,
:func:`evaluate`, :func:`reference_errors`, :func:`layer_curve` and :func:`path_data`.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from jkoic import Config, preset
from jkoic.stack import KIND_LETTERS

from .joblog import layer_lines

__all__ = [
    "DEFAULT_COUPLING",
    "DEFAULT_MCMC",
    "HMC_STEP",
    "MALA_STEP",
    "METHODS",
    "METRIC_SEED",
    "MethodRun",
    "REF_SEED",
    "SAMPLE_SEED",
    "TRUTH_SEED",
    "to_cpu",
    "make_target",
    "method_config",
    "run_method",
    "target_key",
]

#: the methods a notebook can run (DDS, CRAFT, ... are quoted from the paper)
METHODS = ("jkoic", "neural_jko", "mala", "hmc", "cnf_kl", "coupling_kl")

#: HMC step sizes of the paper (App. E.5); 8 Peaky and GMM-d are not stated there (our choice)
HMC_STEP = {"mustache": 0.01, "8modes": 0.1, "8peaky": 0.1, "funnel": 0.1, "gmm": 0.01}
MALA_STEP = 1e-3

DEFAULT_MCMC: dict[str, Any] = {
    "n_steps": 50000,
    "warmup": [1000, 1000],
    "warmup_factors": [0.01, 0.1],
    "mala_step": MALA_STEP,
    "hmc_step": None,
    "n_leapfrog": 5,
    "n_chains": None,
}
DEFAULT_COUPLING: dict[str, Any] = {"n_iters": 5000, "batch_size": 5000, "lr": 1e-3, "n_blocks": 5, "hidden": None}

# seed offsets: the model, the ground truth and the metrics of run ``s`` use disjoint streams
SAMPLE_SEED = 1_000
TRUTH_SEED = 2_000
METRIC_SEED = 3_000
REF_SEED = 4_000
MODE_REF_SEED = 5_000

#: the methods trained as a :class:`jkoic.Sampler` with a :class:`~jkoic.Config`
_CONFIG_METHODS = ("jkoic", "neural_jko", "cnf_kl")


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


def to_cpu(t: Tensor | None) -> Tensor | None:
    """``t`` detached, as float32 on the CPU (None stays None)."""
    return None if t is None else t.detach().to("cpu", torch.float32)


def _run_sampler(
    method: str,
    target: Any,
    cfg: Config,
    *,
    seed: int,
    n_samples: int,
    device: str,
    model_path: str | os.PathLike[str] | None,
) -> MethodRun:
    """Train a :class:`jkoic.Sampler` with ``cfg`` and draw ``n_samples`` from it."""
    from jkoic import Sampler

    model = Sampler(target, cfg, device=device)
    t0 = time.perf_counter()
    with layer_lines(f"{method} seed {seed}"):
        model.fit(seed=seed, progress=False, final_stats=False)  # the evaluation samples measure it
    train = time.perf_counter() - t0
    t0 = time.perf_counter()
    x, lp, lg = model.sample(n_samples, seed=SAMPLE_SEED + seed, return_log_g=True)
    sample = time.perf_counter() - t0
    if model_path is not None:
        Path(model_path).parent.mkdir(parents=True, exist_ok=True)
        model.save(model_path)
    info = {"layers": "".join(KIND_LETTERS[k] for k in model.layer_kinds())}
    return MethodRun(method, seed, to_cpu(x), to_cpu(lp), to_cpu(lg), train, sample, model, info, cfg.to_dict())


def _run_mcmc(
    method: str, target: Any, *, seed: int, n_samples: int, preset_name: str, mcmc: dict[str, Any] | None, device: str
) -> MethodRun:
    """Run MALA or HMC chains, one per sample unless ``mcmc["n_chains"]`` is set."""
    from jkoic.bench.baselines import hmc, mala

    m = {**DEFAULT_MCMC, **(mcmc or {})}
    n_chains = int(m["n_chains"] or n_samples)
    gen = torch.Generator(device=device).manual_seed(seed)
    common = dict(
        warmup=tuple(m["warmup"]),
        warmup_factors=tuple(m["warmup_factors"]),
        generator=gen,
        progress=False,
        device=device,
    )
    if method == "mala":
        res = mala(target, n_chains, int(m["n_steps"]), float(m["mala_step"]), **common)
    else:
        step = m["hmc_step"]
        if step is None:
            step = HMC_STEP.get(preset_name if preset_name in HMC_STEP else "gmm", 0.01)
        res = hmc(target, n_chains, int(m["n_steps"]), float(step), int(m["n_leapfrog"]), **common)
    info = {
        "acceptance_rate": float(res.acceptance_rate),
        "n_steps": int(res.n_steps),
        "step_size": float(res.step_size),
        "n_chains": n_chains,
        "n_nonfinite": int(res.n_nonfinite),
    }
    settings = {k: (list(v) if isinstance(v, tuple) else v) for k, v in m.items()}
    return MethodRun(method, seed, to_cpu(res.samples), None, None, float(res.seconds), 0.0, None, info, settings)


def _run_coupling(
    target: Any, *, seed: int, n_samples: int, width: int, coupling: dict[str, Any] | None, device: str
) -> MethodRun:
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
    losses = train_reverse_kl(
        flow, target, int(c["n_iters"]), int(c["batch_size"]), lr=float(c["lr"]), generator=gen, progress=False
    )
    train = time.perf_counter() - t0
    t0 = time.perf_counter()
    gen = torch.Generator(device=device).manual_seed(SAMPLE_SEED + seed)
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
    return MethodRun(
        "coupling_kl", seed, to_cpu(x), to_cpu(lp), to_cpu(lg), train, sample, flow, info, {**c, "hidden": hidden}
    )


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
        cfg = method_config(
            method,
            preset_name,
            dim=dim,
            preset_profile=preset_profile,
            overrides=overrides,
            iters_scale=iters_scale,
            kl_overrides=kl_overrides,
            njko_iters_scale=njko_iters_scale,
        )
        return _run_sampler(method, target, cfg, seed=seed, n_samples=n_samples, device=device, model_path=model_path)
    if method in ("mala", "hmc"):
        return _run_mcmc(
            method, target, seed=seed, n_samples=n_samples, preset_name=preset_name, mcmc=mcmc, device=device
        )
    if method == "coupling_kl":
        # 3x the width of the JKO-IC network as run (overrides included, e.g. the cpu profile's Funnel)
        width = preset(preset_name, preset_profile, dim=dim, **(overrides or {})).hidden_width(int(target.dim))
        return _run_coupling(target, seed=seed, n_samples=n_samples, width=width, coupling=coupling, device=device)
    raise ValueError(f"unknown method {method!r}; methods: {', '.join(METHODS)}")
