"""Regenerate the paper's tables and figures: notebook runner, experiment helpers, tables.

Command line::

    python -m reproduce run --profile cpu [--jobs N] [--only NAMES] [--no-assemble]
    python -m reproduce smoke            # regenerate notebooks/smoke/*.ipynb (nbval copies)
    python -m reproduce list --profile cpu   # the notebook runs of a profile (for make)

A *profile* is ``notebooks/profiles/<name>.yaml``: a ``defaults`` mapping of parameters
given to every notebook that declares them, then one mapping per notebook run (the key is
the run name; ``notebook:`` selects the source notebook when it differs from the key).
``run`` executes each notebook with papermill into ``<results_dir>/notebooks/<run>.ipynb``
and then the ``assemble`` run, which turns the per-target results JSON into the tables
(Markdown, LaTeX, CSV) and figures (PNG, PDF).

The notebooks call the helpers below; they hold no algorithm code:

* experiment: :func:`setup`, :func:`make_target`, :func:`method_config`, :func:`run_method`,
  :func:`ground_truth`, :func:`evaluate`, :func:`reference_errors`, :func:`layer_curve`,
  :func:`path_data`, :class:`Study` (collects one target's results, writes its JSON);
* reporting: :func:`load_results`, :func:`build_table`, :func:`build_table6`,
  :func:`write_table`, :func:`write_all_tables` (figures: :mod:`jkoic.paper_figures`).
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import io
import json
import math
import os
import platform
import random
import sys
import tempfile
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from . import values as PV
from jkoic.config import Config, preset

__all__ = [
    "METHODS",
    "MethodRun",
    "Study",
    "Table",
    "build_table",
    "build_table6",
    "evaluate",
    "ground_truth",
    "layer_curve",
    "load_profile",
    "load_results",
    "machine_info",
    "make_target",
    "method_config",
    "path_data",
    "reference_errors",
    "repo_root",
    "resolve_path",
    "run_method",
    "run_profile",
    "setup",
    "target_key",
    "write_all_tables",
    "write_json",
    "write_table",
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

# ============================================================================ paths


def repo_root(start: str | os.PathLike[str] | None = None) -> Path:
    """The repository root: the first parent (of ``start``, the cwd, then this package)
    holding ``pyproject.toml`` and ``notebooks/``; nbval runs notebooks in their own folder,
    so notebooks find the root from wherever they run."""
    candidates = [Path(start).resolve()] if start is not None else []
    candidates += [Path.cwd().resolve(), Path(__file__).resolve().parent]
    for c in candidates:
        for p in [c, *c.parents]:
            if (p / "pyproject.toml").is_file() and (p / "notebooks").is_dir() and (p / "jkoic").is_dir():
                return p
    raise FileNotFoundError("cannot find the jkoic repository root (a folder with pyproject.toml, jkoic/, notebooks/)")


def resolve_path(path: str | os.PathLike[str]) -> Path:
    """``path`` if absolute, else relative to :func:`repo_root`."""
    p = Path(path)
    return p if p.is_absolute() else repo_root() / p


# ============================================================================ environment


def machine_info(device: str = "cpu") -> dict[str, Any]:
    """Platform, CPU model (``/proc/cpuinfo``), cores, torch version, device (Table 6)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    dev = str(device)
    if dev.startswith("cuda") and torch.cuda.is_available():
        dev = f"{dev} ({torch.cuda.get_device_name(torch.device(dev))})"
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "device": dev,
    }


def setup(threads: int = 0, device: str = "cpu", seed: int = 0) -> dict[str, Any]:
    """Prepare a notebook kernel: torch threads, the Agg backend, quiet warnings.

    ``threads <= 0``: ``$JKOIC_THREADS`` if set, else all cores. Returns :func:`machine_info`.
    """
    if threads <= 0:
        threads = int(os.environ.get("JKOIC_THREADS", "0") or 0) or (os.cpu_count() or 1)
    torch.set_num_threads(int(threads))
    torch.manual_seed(seed)
    import matplotlib

    matplotlib.use("Agg")
    warnings.filterwarnings("ignore", category=UserWarning, module="torch")
    warnings.filterwarnings("ignore", message=".*TqdmWarning.*")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device={device!r} but CUDA is not available; use the cpu or smoke profile")
    return machine_info(device)


# ============================================================================ targets and methods


def target_key(name: str, dim: int | None = None) -> str:
    """Results key of a target: ``gmm`` + 10 -> ``gmm10``; others: the name."""
    return f"gmm{dim or 10}" if name == "gmm" else name


def make_target(name: str, *, dim: int | None = None, run: int = 0):
    """The benchmark target; for ``gmm`` run ``r`` uses the paper's mean set ``r % 5 + 1``."""
    from jkoic.bench import targets

    if name == "gmm":
        return targets.get("gmm", dim=int(dim or 10), means_id=run % 5 + 1)
    return targets.get(name) if dim is None else targets.get(name, dim=int(dim))


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

    ``jkoic``: ``preset(preset_name, preset_profile, **overrides)`` with ``n_iters`` scaled
    by ``iters_scale``; ``neural_jko``: the same without rejection steps
    (:func:`jkoic.bench.baselines.neural_jko`), ``n_iters`` further scaled by ``njko_iters_scale``;
    ``cnf_kl``: one CNF with the same network trained on the reverse KL alone
    (:func:`jkoic.bench.baselines.reverse_kl_cnf_config`: no kinetic term, no gradient-flow layer, by
    default the iteration budget of all CNF steps together;
    ``kl_overrides["n_iters"]`` sets it), then the other ``kl_overrides``.
    """
    from jkoic.bench.baselines import reverse_kl_cnf_config

    def scaled(n_iters: int, scale: float) -> int:
        return max(1, int(round(n_iters * float(scale))))

    cfg = preset(preset_name, preset_profile, dim=dim, **(overrides or {}))
    def scale_iters(c: Config, scale: float) -> Config:
        late = c.late_n_iters
        return c.replace(n_iters=scaled(c.n_iters, scale),
                         late_n_iters=None if late is None else scaled(late, scale))

    if iters_scale != 1.0:
        cfg = scale_iters(cfg, iters_scale)
    if method == "jkoic":
        return cfg
    if method == "neural_jko":
        return scale_iters(cfg, njko_iters_scale).replace(rejection=False)
    if method == "cnf_kl":
        kl = dict(kl_overrides or {})
        n_iters = kl.pop("n_iters", None)
        kl_cfg = reverse_kl_cnf_config(cfg, n_iters=int(n_iters) if n_iters is not None else None)
        return kl_cfg.replace(**kl) if kl else kl_cfg
    raise ValueError(f"method {method!r} has no Config; Config methods: jkoic, neural_jko, cnf_kl")


@dataclass
class MethodRun:
    """One trained / run method: samples (CPU), model log density, target log density, timings."""

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
        return int(self.x.shape[0])


def _to_cpu(t: Tensor | None) -> Tensor | None:
    return None if t is None else t.detach().to("cpu", torch.float32)


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
      (``mcmc["n_chains"]`` chains if set), settings ``DEFAULT_MCMC`` updated by ``mcmc``.
    * ``coupling_kl``: :class:`jkoic.bench.baselines.CouplingFlow` (5 Glow blocks, conditioner
      width 3x the JKO hidden width, ``overrides`` included) trained by ``train_reverse_kl``;
      ``DEFAULT_COUPLING`` updated by ``coupling``.
    """
    from jkoic import Sampler

    if method in ("jkoic", "neural_jko", "cnf_kl"):
        cfg = method_config(method, preset_name, dim=dim, preset_profile=preset_profile, overrides=overrides,
                            iters_scale=iters_scale, kl_overrides=kl_overrides,
                            njko_iters_scale=njko_iters_scale)
        model = Sampler(target, cfg, device=device)
        t0 = time.perf_counter()
        model.fit(seed=seed, progress=False, final_stats=False)  # the evaluation samples below measure it
        train = time.perf_counter() - t0
        t0 = time.perf_counter()
        x, lp, lg = model.sample(n_samples, seed=_SAMPLE_SEED + seed, return_log_g=True)
        sample = time.perf_counter() - t0
        if model_path is not None:
            Path(model_path).parent.mkdir(parents=True, exist_ok=True)
            model.save(model_path)
        info = {"layers": "".join({"cnf": "C", "rejection": "R", "gradient_flow": "G"}[k] for k in model.layer_kinds())}
        return MethodRun(method, seed, _to_cpu(x), _to_cpu(lp), _to_cpu(lg), train, sample, model, info,
                         cfg.to_dict())
    if method in ("mala", "hmc"):
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
        return MethodRun(method, seed, _to_cpu(res.samples), None, None, float(res.seconds), 0.0, None, info,
                         {k: (list(v) if isinstance(v, tuple) else v) for k, v in m.items()})
    if method == "coupling_kl":
        from jkoic.bench.baselines import CouplingFlow, train_reverse_kl

        c = {**DEFAULT_COUPLING, **(coupling or {})}
        d = int(target.dim)
        # 3x the width of the JKO-IC network as run (overrides included, e.g. the cpu profile's Funnel)
        width = preset(preset_name, preset_profile, dim=dim, **(overrides or {})).hidden_width(d)
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
        return MethodRun(method, seed, _to_cpu(x), _to_cpu(lp), _to_cpu(lg), train, sample, flow, info,
                         {**c, "hidden": hidden})
    raise ValueError(f"unknown method {method!r}; methods: {', '.join(METHODS)}")


# ============================================================================ evaluation


def ground_truth(target: Any, n: int, seed: int) -> Tensor:
    """``n`` exact samples of ``target`` for run ``seed`` (float32, CPU)."""
    return target.sample(int(n), generator=torch.Generator().manual_seed(_TRUTH_SEED + int(seed)))


def _finite(run: MethodRun) -> tuple[Tensor, Tensor | None, Tensor | None, int]:
    ok = torch.isfinite(run.x).all(dim=1)
    if run.log_p is not None:
        ok &= torch.isfinite(run.log_p)
    if run.log_g is not None:
        ok &= ~torch.isnan(run.log_g) & ~torch.isposinf(run.log_g)
    bad = int((~ok).sum())
    pick = (lambda t: None if t is None else t[ok]) if bad else (lambda t: t)
    return pick(run.x), pick(run.log_p), pick(run.log_g), bad


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

    ``energy``: sliced energy distance to ``truth`` (as the authors, Table 1);
    ``w2``: exact W2^2 of the first ``n_w2`` samples against the first ``n_w2`` of ``truth``
    (Table 3; ``n_w2 = 0`` skips it); ``log_z`` / ``log_z_importance`` / ``ess_fraction``
    when the method has a density (Table 2); ``mode_mse`` for mixtures (Table 4).
    Non-finite samples are dropped and counted in ``n_nonfinite``.
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
    """Sampling errors: the metrics between two independent ground-truth sets (Tables 1, 3)."""
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

    Arrays: ``x`` (stages, n, 2), ``rejected`` / ``resampled`` (stages, n) booleans (a
    point is *rejected* in the next layer; *resampled* points are fresh draws), ``kind``
    (stage kinds as strings) and, with ``means``, ``mode_weights`` (stages, K).
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


# ============================================================================ results files


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, np.ndarray):
        return _plain(obj.tolist())
    if isinstance(obj, Tensor):
        return _plain(obj.detach().cpu().tolist())
    return obj


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as JSON atomically (temp file + ``os.replace``); NaN/inf become null."""
    path = Path(path)
    _atomic_write_bytes(path, (json.dumps(_plain(obj), indent=1) + "\n").encode())
    return path


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    path = Path(path)
    _atomic_write_bytes(path, text.encode())
    return path


def save_npz(path: str | os.PathLike[str], **arrays: Any) -> Path:
    """``np.savez_compressed`` atomically."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    path = Path(path)
    _atomic_write_bytes(path, buf.getvalue())
    return path


def load_results(results_dir: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """All ``<results_dir>/*.json`` written by :class:`Study`, keyed by target key."""
    out: dict[str, dict[str, Any]] = {}
    d = resolve_path(results_dir)
    for p in sorted(d.glob("*.json")):
        try:
            data = json.loads(p.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{p} is not valid JSON: {e}") from None
        if isinstance(data, dict) and data.get("format") == "jkoic-paper-results":
            out[str(data["target"])] = data
    return out


# ============================================================================ Study


def _mean_std(values: Sequence[float]) -> tuple[float | None, float | None, int]:
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not vals:
        return None, None, 0
    arr = np.asarray(vals)
    return float(arr.mean()), float(arr.std()), len(vals)  # std with ddof=0 (np.std, as the authors)


def fmt(x: float | None, digits: int = 2) -> str:
    """``digits`` significant digits in scientific notation (``"1.2e-03"``), as the paper; values
    of magnitude >= 100 (LGCP log Z, Sinkhorn distances) with one decimal (``"508.2"``);
    ``"0"`` for zero, ``"-"`` for None / NaN."""
    if x is None or not math.isfinite(float(x)):
        return "-"
    x = float(x)
    if x == 0.0:
        return "0"
    if abs(x) >= 100.0:
        return f"{x:.1f}"
    return f"{x:.{max(digits - 1, 0)}e}"


def fmt_pm(mean: float | None, std: float | None, n: int = 2, digits: int = 2) -> str:
    if mean is None:
        return "-"
    if std is None or n < 2:
        return fmt(mean, digits)
    return f"{fmt(mean, digits)} ± {fmt(std, digits)}"


class Study:
    """The results of one target: per-run metrics per method, references, timings, arrays.

    ``save()`` writes ``<results_dir>/<key>.json`` (format ``jkoic-paper-results``) and the
    arrays (``<key>_samples.npz``, ``<key>_path.npz``, ...) next to it.
    """

    def __init__(
        self,
        key: str,
        *,
        results_dir: str | os.PathLike[str],
        profile: str,
        notebook: str,
        settings: dict[str, Any] | None = None,
        machine: dict[str, Any] | None = None,
        log_z_true: float | None = 0.0,
        smoke_test: bool = False,
    ) -> None:
        self.key = key
        self.results_dir = resolve_path(results_dir)
        self.data: dict[str, Any] = {
            "format": "jkoic-paper-results",
            "target": key,
            "label": PV.TARGETS.get(key, key),
            "profile": profile,
            "notebook": notebook,
            "smoke_test": bool(smoke_test),
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "machine": machine or machine_info(),
            "settings": dict(settings or {}),
            "configs": {},
            "log_z_true": log_z_true,
            "runs": {},
            "reference": {},
            "layer_curves": {},
            "extra": {},
            "arrays": {},
        }
        self._arrays: dict[str, dict[str, np.ndarray]] = {}

    # -- collecting ------------------------------------------------------------------
    def add(self, run: MethodRun, metrics: dict[str, Any]) -> dict[str, Any]:
        entry = {"seed": run.seed, "metrics": dict(metrics), "train_seconds": run.train_seconds,
                 "sample_seconds": run.sample_seconds, "n_samples": run.n_samples, "info": dict(run.info)}
        self.data["runs"].setdefault(run.method, []).append(entry)
        if run.config is not None:
            self.data["configs"].setdefault(run.method, run.config)
        return entry

    def add_reference(self, seed: int, refs: dict[str, float]) -> None:
        """Sampling errors of run ``seed`` (one value per metric and run)."""
        for metric, v in refs.items():
            self.data["reference"].setdefault(metric, []).append(float(v))

    def add_layer_curve(self, method: str, curve: list[dict[str, Any]]) -> None:
        self.data["layer_curves"][method] = curve

    def keep_samples(self, name: str, x: Tensor | np.ndarray, n: int, dims: int = 2) -> None:
        """Keep the first ``n`` samples (first ``dims`` coordinates) for the sample figures."""
        arr = x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)
        self._arrays.setdefault("samples", {})[name] = arr[: int(n), :dims].astype(np.float32)

    def keep_arrays(self, group: str, **arrays: Any) -> None:
        self._arrays.setdefault(group, {}).update({k: np.asarray(v) for k, v in arrays.items()})

    # -- views -------------------------------------------------------------------------
    def values(self, method: str, metric: str) -> list[float]:
        return [r["metrics"][metric] for r in self.data["runs"].get(method, []) if metric in r["metrics"]]

    def mean(self, method: str, metric: str) -> float | None:
        return _mean_std(self.values(method, metric))[0]

    def summary(self, digits: int = 2, metrics: Sequence[str] | None = None) -> str:
        """Mean ± std per method and metric, ``digits`` significant digits (stable for nbval)."""
        metrics = list(metrics or ["energy", "log_z", "w2", "mode_mse", "sinkhorn"])
        present = [m for m in metrics if any(self.values(meth, m) for meth in self.data["runs"])]
        rows = [["method", *present]]
        for meth in self.data["runs"]:
            rows.append([meth] + [fmt_pm(*_mean_std(self.values(meth, m)), digits=digits) for m in present])
        refs = self.data["reference"]
        if refs:
            rows.append(["sampling_error"] + [fmt_pm(*_mean_std(refs.get(m, [])), digits=digits) for m in present])
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)

    # -- writing -----------------------------------------------------------------------
    def save(self) -> Path:
        self.results_dir.mkdir(parents=True, exist_ok=True)
        for group, arrays in self._arrays.items():
            name = f"{self.key}_{group}.npz"
            save_npz(self.results_dir / name, **arrays)
            self.data["arrays"][group] = name
        return write_json(self.results_dir / f"{self.key}.json", self.data)


# ============================================================================ tables


@dataclass
class Table:
    """A rendered table: grouped header, rows of display strings, and CSV records."""

    name: str
    title: str
    caption: str
    groups: list[tuple[str, int]]  # (label, span) over the data columns
    subheader: list[str]  # one label per data column
    row_labels: list[str]
    rows: list[list[str]]
    records: list[dict[str, Any]]
    footer: list[str] = field(default_factory=list)
    stub: str = "Distribution"


def collect(results: dict[str, dict[str, Any]]) -> dict[tuple[str, str, str], list[float]]:
    """``(target, method, metric) -> values``; ``<metric>_values`` lists (Sinkhorn
    evaluations) are flattened; references become method ``sampling_error`` and the true
    log Z method ``ground_truth``."""
    out: dict[tuple[str, str, str], list[float]] = {}
    for key, res in results.items():
        for method, runs in res.get("runs", {}).items():
            for r in runs:
                m = r.get("metrics", {})
                for metric, v in m.items():
                    if metric.endswith("_values"):
                        continue
                    vals = m.get(f"{metric}_values")
                    out.setdefault((key, method, metric), []).extend(vals if vals else [v])
        for metric, vals in res.get("reference", {}).items():
            out.setdefault((key, "sampling_error", metric), []).extend(vals)
        if res.get("log_z_true") is not None:
            out[(key, "ground_truth", "log_z")] = [float(res["log_z_true"])]
    return out


def build_table(number: int, results: dict[str, dict[str, Any]], digits: int = 2) -> Table:
    """Table ``number`` (1-5, 7): our mean ± std over runs beside the paper's value.

    Columns: per method (and metric, Table 7) an ``ours`` and a ``paper`` column; quoted
    methods (DDS, CRAFT, ...) have only the paper's column. ``-``: not run / not reported.
    """
    pt = PV.table(number)
    ours = collect(results)
    groups: list[tuple[str, int]] = []
    sub: list[str] = []
    cols: list[tuple[str, str, bool]] = []
    for metric in pt.metrics:
        for method in pt.columns:
            quoted = method in PV.QUOTED
            label = PV.METHODS[method] + (" (quoted)" if quoted else "")
            if len(pt.metrics) > 1:
                label = f"{PV.METRICS[metric]}: {label}"
            if quoted:
                groups.append((label, 1))
                sub.append("paper")
            else:
                groups.append((label, 2))
                sub.extend(["ours", "paper"])
            cols.append((method, metric, quoted))
    rows, labels, records = [], [], []
    for target in pt.rows:
        labels.append(PV.TARGETS[target])
        row: list[str] = []
        for method, metric, quoted in cols:
            pv = pt.get(target, method, metric)
            mean, std, n = _mean_std(ours.get((target, method, metric), []))
            paper_txt = fmt_pm(pv.mean, pv.std, 2, digits) if pv.reported else "n/a"
            if pv.note and pv.reported:
                paper_txt += "*"
            if not quoted:
                row.append(fmt_pm(mean, std, n, digits))
            row.append(paper_txt)
            records.append({"table": number, "target": target, "method": method, "metric": metric,
                            "ours_mean": mean, "ours_std": std, "ours_runs": n,
                            "paper_mean": pv.mean, "paper_std": pv.std, "quoted": quoted, "note": pv.note})
        rows.append(row)
    notes = sorted({f"{PV.TARGETS[t]}, {PV.METHODS[m]}: {pv.note}" for (t, m, _), pv in pt.cells.items()
                    if pv.note and pv.reported and not pv.note.startswith("no std")})
    footer = [f"* {n}" for n in notes]
    # runs per cell; metrics with per-evaluation lists (Sinkhorn) pool every evaluation of every run
    methods = {c[0] for c in cols}
    runs = sorted({len(v) for key, res in results.items() if key in pt.rows
                   for m, v in res.get("runs", {}).items() if m in methods and v})
    pooled = sorted({r["ours_runs"] for r in records if r["ours_runs"] and any(
        f"{r['metric']}_values" in run.get("metrics", {})
        for run in results.get(r["target"], {}).get("runs", {}).get(r["method"], []))})
    over = f"{'/'.join(map(str, runs)) or 'no'} run(s)"
    if pooled:
        over += f" ({'/'.join(map(str, pooled))} evaluations pooled)"
    caption = (f"{pt.caption} Ours: mean ± std over {over} "
               f"(profile {_profiles(results)}); paper: the published value.")
    return Table(f"table{number}", f"Table {number}: {pt.title}", caption, groups, sub, labels, rows, records, footer)


def _profiles(results: dict[str, dict[str, Any]]) -> str:
    return ", ".join(sorted({str(r.get("profile")) for r in results.values()})) or "-"


def _num(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e6:
        return str(int(v))
    return f"{v:g}"


def _late(cfg: dict[str, Any], field_name: str, text: str) -> str:
    """``text``, followed by the late CNF steps' value of ``field_name`` where one is set."""
    late = cfg.get(f"late_{field_name}") if field_name in ("batch_size", "n_iters") else None
    if late is None or cfg.get("late_tau") is None:
        return text
    return f"{text} ({_num(late)} from tau {_num(cfg['late_tau'])})"


def _protocol_notes(results: dict[str, dict[str, Any]]) -> list[str]:
    """Footer lines for the training choices of ours that Table 6 has no column for.

    The dataset size (paper: 50000, Funnel 200000), the warm start of each CNF step from the
    previous one, and the search over multiples of each trained field (``Config.scale_search``).
    """
    notes = []
    for target in PV.TABLE6:
        cfg = results.get(target, {}).get("configs", {}).get("jkoic")
        if not cfg:
            continue
        parts = []
        paper_data = preset(target, "paper").dataset_size
        if cfg.get("dataset_size") is not None and cfg["dataset_size"] != paper_data:
            parts.append(f"dataset of {_num(cfg['dataset_size'])} samples per CNF step (paper {_num(paper_data)})")
        if cfg.get("warm_start"):
            parts.append("each CNF step starts from the previous step's trained field (paper: from zero)")
        if cfg.get("scale_search"):
            grid = "/".join(_num(float(v)) for v in cfg["scale_search"])
            parts.append(f"each trained field scaled by the multiple in {grid} with the lowest JKO objective "
                         f"on {_num(cfg.get('validation_size'))} fresh samples")
        if parts:
            notes.append(f"Ours, {PV.TARGETS[target]}: " + "; ".join(parts) + ".")
    return notes


def build_table6(results: dict[str, dict[str, Any]]) -> Table:
    """Table 6: our settings, training and sampling times beside the paper's (and the machine)."""
    params = [("n1", "n_flow_steps"), ("n2", "n_blocks"), ("tau0", "tau0"), ("latent_scale", "latent_scale"),
              ("gradient_flow_time", "gradient_flow_time"), ("hidden", "hidden"), ("batch_size", "batch_size")]
    groups = [("Dimension", 1)] + [(PV.TABLE6_ROWS[p], 2) for p, _ in params] + [
        ("Iterations per CNF step", 2), ("Training time (min)", 2), ("Sampling time (s)", 2)]
    sub = ["d"] + ["ours", "paper"] * (len(params) + 3)
    rows, labels, records = [], [], []
    machines: set[str] = set()
    for target, paper in PV.TABLE6.items():
        res = results.get(target, {})
        cfg = res.get("configs", {}).get("jkoic")
        runs = res.get("runs", {}).get("jkoic", [])
        labels.append(PV.TARGETS[target])
        row = [_num(paper["dim"])]
        for p, field_name in params:
            ours = None
            if cfg is not None:
                ours = cfg.get(field_name)
                if p == "hidden" and ours is None:
                    ours = 2 * paper["dim"] + 50
            row += [_late(cfg, field_name, _num(ours)) if cfg is not None else "-", _num(paper[p])]
            records.append({"table": 6, "target": target, "row": p, "ours": ours, "paper": paper[p]})
        paper_iters = preset(target, "paper").n_iters
        ours_iters = cfg.get("n_iters") if cfg else None
        row += [_late(cfg, "n_iters", _num(ours_iters)) if cfg else "-", _num(paper_iters)]
        records.append({"table": 6, "target": target, "row": "n_iters", "ours": ours_iters, "paper": paper_iters})
        tr, _, _ = _mean_std([r["train_seconds"] / 60.0 for r in runs])
        sm, _, _ = _mean_std([r["sample_seconds"] for r in runs])
        n_s = sorted({int(r["n_samples"]) for r in runs})
        row += [f"{tr:.3g}" if tr is not None else "-", _num(paper["train_minutes"])]
        row += [f"{sm:.3g} (N={'/'.join(map(str, n_s))})" if sm is not None else "-",
                f"{_num(paper['sample_seconds'])} (N=50000)"]
        records.append({"table": 6, "target": target, "row": "train_minutes", "ours": tr,
                        "paper": paper["train_minutes"]})
        records.append({"table": 6, "target": target, "row": "sample_seconds", "ours": sm,
                        "paper": paper["sample_seconds"], "ours_n_samples": n_s[0] if n_s else None})
        rows.append(row)
        if runs:
            m = res.get("machine", {})
            machines.add(f"{m.get('device', '?')} on {m.get('cpu', '?')} ({m.get('cores', '?')} cores, "
                         f"{m.get('torch_threads', '?')} torch threads; {m.get('platform', '?')}; "
                         f"torch {m.get('torch', '?')})")
    footer = [f"Ours measured on: {m}" for m in sorted(machines)] or ["Ours: no JKO-IC runs found."]
    footer += _protocol_notes(results)
    footer.append(f"Paper measured on {PV.TABLE6_MACHINE}; GPU memory (paper): "
                  + ", ".join(f"{PV.TARGETS[t]} {v['gpu_memory_gb']} GB" for t, v in PV.TABLE6.items()) + ".")
    footer += [f"* {PV.TARGETS[t]}, {PV.TABLE6_ROWS[r]}: {n}" for (t, r), n in PV.TABLE6_NOTES.items()]
    caption = ("Parameters, training and sampling times of neural JKO IC. Ours: the settings used by this run "
               f"(profile {_profiles(results)}) and the mean time over runs; paper: Table 6.")
    return Table("table6", "Table 6: Parameters, training and sampling times", caption, groups, sub, labels, rows,
                 records, footer, stub="Target")


def _header_cells(table: Table) -> list[str]:
    out, i = [], 0
    for label, span in table.groups:
        for k in range(span):
            sublabel = table.subheader[i + k]
            if span > 1:
                out.append(f"{label}: {sublabel}")
            elif sublabel == "paper":
                out.append(label.replace(" (quoted)", "") + (" (paper, quoted)" if "(quoted)" in label else " (paper)"))
            else:
                out.append(label)
        i += span
    return out


def to_markdown(table: Table) -> str:
    head = [table.stub] + _header_cells(table)
    lines = [f"### {table.title}", "", table.caption, "",
             "| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
    for label, row in zip(table.row_labels, table.rows):
        lines.append("| " + " | ".join([label] + [c.replace("|", "\\|") for c in row]) + " |")
    if table.footer:
        lines += [""] + [f"{f}  " for f in table.footer]
    return "\n".join(lines) + "\n"


def _tex(s: str) -> str:
    rep = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
           "~": r"\textasciitilde{}", "^": r"\^{}", "$": r"\$", "±": r"$\pm$"}
    return "".join(rep.get(ch, ch) for ch in s)


def to_latex(table: Table) -> str:
    ncol = len(table.subheader)
    lines = [r"\begin{table}[t]", r"\centering", r"\scriptsize",
             rf"\caption{{{_tex(table.title)}. {_tex(table.caption)}}}",
             r"\begin{tabular}{l" + "c" * ncol + "}", r"\toprule"]
    lines.append(_tex(table.stub) + " & " + " & ".join(
        rf"\multicolumn{{{span}}}{{c}}{{{_tex(label)}}}" for label, span in table.groups) + r" \\")
    lines.append(" & " + " & ".join(_tex(s) for s in table.subheader) + r" \\")
    lines.append(r"\midrule")
    for label, row in zip(table.row_labels, table.rows):
        lines.append(_tex(label) + " & " + " & ".join(_tex(c) for c in row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if table.footer:
        lines.append(r"\par\smallskip\raggedright " + r"\\ ".join(_tex(f) for f in table.footer))
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def to_csv(table: Table) -> str:
    keys: list[str] = []
    for r in table.records:
        keys += [k for k in r if k not in keys]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    w.writeheader()
    for r in table.records:
        w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in keys})
    return buf.getvalue()


def write_table(table: Table, out_dir: str | os.PathLike[str]) -> list[Path]:
    """``<out_dir>/<name>.md``, ``.tex`` and ``.csv``, each written atomically."""
    d = resolve_path(out_dir)
    return [write_text(d / f"{table.name}.md", to_markdown(table)),
            write_text(d / f"{table.name}.tex", to_latex(table)),
            write_text(d / f"{table.name}.csv", to_csv(table))]


def write_all_tables(results: dict[str, dict[str, Any]], out_dir: str | os.PathLike[str]) -> dict[str, Table]:
    """Tables 1-7 from ``results`` into ``out_dir`` (plus ``tables.md`` with all of them)."""
    tables: dict[str, Table] = {}
    for n in (1, 2, 3, 4, 5):
        tables[f"table{n}"] = build_table(n, results)
    tables["table6"] = build_table6(results)
    tables["table7"] = build_table(7, results)
    for t in tables.values():
        write_table(t, out_dir)
    write_text(resolve_path(out_dir) / "tables.md", "\n".join(to_markdown(t) for t in tables.values()))
    return tables


# ============================================================================ notebook runner


def profiles_dir() -> Path:
    return repo_root() / "notebooks" / "profiles"


def load_profile(name: str) -> dict[str, Any]:
    """Parse ``notebooks/profiles/<name>.yaml`` (or a path to a YAML file)."""
    import yaml

    p = Path(name)
    if not p.suffix:
        p = profiles_dir() / f"{name}.yaml"
    if not p.is_file():
        avail = ", ".join(sorted(q.stem for q in profiles_dir().glob("*.yaml")))
        raise ValueError(f"no profile {name!r} ({p}); profiles: {avail}")
    data = yaml.safe_load(p.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{p}: a profile must be a mapping")
    return data


def plan(profile: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """``[(run name, source notebook stem, parameters)]`` in profile order, ``assemble`` last."""
    defaults = dict(profile.get("defaults") or {})
    runs = []
    for name, spec in profile.items():
        if name == "defaults":
            continue
        spec = dict(spec or {})
        nb = str(spec.pop("notebook", name))
        runs.append((str(name), nb, {**defaults, **spec}))
    runs.sort(key=lambda r: r[1] == "assemble")
    return runs


def _declared_parameters(path: Path) -> set[str]:
    import papermill

    return set(papermill.inspect_notebook(str(path)).keys())


def _clean_executed(path: Path) -> None:
    """Drop volatile metadata (timings) from an executed notebook, keep the outputs."""
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    nb.metadata.pop("papermill", None)
    for key in ("widgets",):
        nb.metadata.pop(key, None)
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        if "injected-parameters" in cell.metadata.get("tags", []):
            cell.id = "injected-parameters"  # papermill gives it a random id on every run
    buf = nbformat.writes(nb)
    write_text(path, buf if buf.endswith("\n") else buf + "\n")


#: tries to start a notebook's kernel (see ``_kernel_start_failed``)
_KERNEL_START_ATTEMPTS = 3


def _kernel_start_failed(error: BaseException) -> bool:
    """True if ``error`` is a kernel that died while starting, before any cell ran.

    Two notebooks started at the same moment (``make paper -j2``) can be handed the same free
    TCP port by jupyter_client; the second kernel then fails to bind it ("Address already in
    use") and nbclient reports "Kernel died before replying to kernel_info". Nothing was
    executed, so starting the notebook again is safe.
    """
    return isinstance(error, RuntimeError) and "before replying to kernel_info" in str(error)


def execute(src: Path, out: Path, parameters: dict[str, Any], *, clean: bool = False) -> float:
    """Execute ``src`` with papermill into ``out`` (cwd: repo root); returns the seconds taken."""
    import papermill

    declared = _declared_parameters(src)
    params = {k: v for k, v in parameters.items() if k in declared}
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    for attempt in range(_KERNEL_START_ATTEMPTS):
        try:
            papermill.execute_notebook(str(src), str(out), parameters=params, cwd=str(repo_root()),
                                       kernel_name="python3", progress_bar=False)
            break
        except Exception as e:
            if not _kernel_start_failed(e) or attempt + 1 == _KERNEL_START_ATTEMPTS:
                raise
            # no cell ran yet: start a fresh kernel after a random pause (new ports)
            delay = random.uniform(1.0, 4.0)
            print(f"[jkoic.paper] {src.stem}: kernel did not start ({e}); retrying in {delay:.1f} s",
                  file=sys.stderr, flush=True)
            time.sleep(delay)
    if clean:
        _clean_executed(out)
    return time.perf_counter() - t0


def _execute_job(args: tuple[str, str, dict[str, Any], str, bool]) -> tuple[str, float, str | None]:
    name, nb, params, out, clean = args
    src = repo_root() / "notebooks" / f"{nb}.ipynb"
    try:
        return name, execute(src, Path(out), params, clean=clean), None
    except Exception as e:  # report and go on with the other notebooks
        return name, float("nan"), f"{type(e).__name__}: {str(e)[:2000]}"


def run_profile(
    profile: str,
    *,
    jobs: int = 1,
    only: Iterable[str] | None = None,
    assemble: bool = True,
    out_dir: str | os.PathLike[str] | None = None,
    numbered: bool = False,
    clean: bool = False,
) -> dict[str, float]:
    """Execute the notebooks of ``profile``; ``assemble`` runs last. Returns seconds per run.

    Executed copies go to ``out_dir`` (default ``<results_dir>/notebooks``), named
    ``<run>.ipynb`` (``NN_<run>.ipynb`` with ``numbered=True``, the nbval order).
    Raises ``RuntimeError`` listing the notebooks that failed.
    """
    prof = load_profile(profile)
    runs = plan(prof)
    names = [r[0] for r in runs]
    if only is not None:
        wanted = [o for o in only if o]
        unknown = sorted(set(wanted) - set(names))
        if unknown:
            raise ValueError(f"profile {profile!r} has no run(s) {', '.join(unknown)}; runs: {', '.join(names)}")
        runs = [r for r in runs if r[0] in wanted]
    if not assemble:
        runs = [r for r in runs if r[1] != "assemble"]
    results_dir = (prof.get("defaults") or {}).get("results_dir", f"results/{profile}")
    dest = resolve_path(out_dir) if out_dir is not None else resolve_path(results_dir) / "notebooks"
    width = max(2, len(str(len(names))))
    jobs_args = []
    for name, nb, params in runs:
        fname = f"{names.index(name) + 1:0{width}d}_{name}.ipynb" if numbered else f"{name}.ipynb"
        jobs_args.append((name, nb, params, str(dest / fname), clean))
    body = [j for j in jobs_args if j[1] != "assemble"]
    tail = [j for j in jobs_args if j[1] == "assemble"]
    times: dict[str, float] = {}
    errors: dict[str, str] = {}

    def record(res: tuple[str, float, str | None]) -> None:
        name, secs, err = res
        times[name] = secs
        status = f"FAILED ({err.splitlines()[0] if err else ''})" if err else f"{secs:.1f} s"
        print(f"[jkoic.paper] {name}: {status}", flush=True)
        if err:
            errors[name] = err

    if jobs > 1 and len(body) > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=jobs) as pool:
            for res in pool.map(_execute_job, body):
                record(res)
    else:
        for j in body:
            record(_execute_job(j))
    if tail and errors:
        print("[jkoic.paper] assembling anyway (tables show '-' for the failed notebooks)", flush=True)
    for j in tail:
        record(_execute_job(j))
    if errors:
        raise RuntimeError("notebook(s) failed: " + "; ".join(f"{k}: {v}" for k, v in errors.items()))
    return times


def smoke(jobs: int = 1) -> dict[str, float]:
    """Regenerate ``notebooks/smoke/NN_<run>.ipynb``: the smoke profile with outputs (for nbval)."""
    dest = repo_root() / "notebooks" / "smoke"
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob("*.ipynb"):
        old.unlink()
    return run_profile("smoke", jobs=jobs, out_dir=dest, numbered=True, clean=True)


def headline(tables_dir: str | os.PathLike[str], method: str = "jkoic") -> str:
    """A Markdown table of ``method``'s cells of Tables 1-4, ours beside the paper's.

    Reads ``table{1..4}.csv`` written by :func:`write_all_tables`; one row per target with
    energy distance, log Z, W2^2 and mode MSE (ours / paper), and our sampling error of the
    energy distance for scale. Targets without any result of ours are left out.
    """
    import csv

    from .values import TARGETS

    def num(text: str) -> float | None:  # an empty CSV cell is a missing value
        return float(text) if text else None

    metrics = ("energy", "log_z", "w2", "mode_mse")
    cells: dict[str, dict[str, tuple[str, str]]] = {}
    ref: dict[str, str] = {}
    for number, metric in enumerate(metrics, start=1):
        path = Path(tables_dir) / f"table{number}.csv"
        if not path.is_file():
            raise ValueError(f"{path} not found: run the assemble notebook first")
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                if row["method"] == "sampling_error" and number == 1:
                    ref[row["target"]] = fmt(num(row["ours_mean"]))
                if row["method"] == method:
                    ours = fmt_pm(num(row["ours_mean"]), num(row["ours_std"]), int(row["ours_runs"] or 0))
                    paper_ = fmt_pm(num(row["paper_mean"]), num(row["paper_std"]))
                    cells.setdefault(row["target"], {})[metric] = (ours, paper_)
    head = ("| target | energy: ours | energy: paper | (our sampling error) | log Z: ours | log Z: paper "
            "| W2²: ours | W2²: paper | mode MSE: ours | mode MSE: paper |")
    lines = [head, "|" + "---|" * 10]
    for target, c in cells.items():
        if all(ours == "-" for ours, _ in c.values()):
            continue
        (e_ours, e_paper), *rest = (c.get(m, ("-", "-")) for m in metrics)
        row_cells = [TARGETS.get(target, target), e_ours, e_paper, ref.get(target, "-"), *(v for p in rest for v in p)]
        lines.append("| " + " | ".join(row_cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m reproduce", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="execute the notebooks of a profile, then assemble tables and figures")
    r.add_argument("--profile", default="cpu", help="smoke | cpu | paper (notebooks/profiles/<name>.yaml)")
    r.add_argument("--jobs", type=int, default=1, help="notebooks executed in parallel")
    r.add_argument("--only", default=None, help="comma-separated run names (see `list`)")
    r.add_argument("--no-assemble", action="store_true", help="skip the assemble notebook")
    s = sub.add_parser("smoke", help="regenerate notebooks/smoke/*.ipynb (the nbval copies)")
    s.add_argument("--jobs", type=int, default=1)
    l_ = sub.add_parser("list", help="print the run names of a profile (assemble excluded)")
    l_.add_argument("--profile", default="cpu")
    h = sub.add_parser("headline", help="print JKO-IC's cells of Tables 1-4, ours beside the paper's (Markdown)")
    h.add_argument("--tables", default="figures/tables", help="directory with table1.csv .. table4.csv")
    a = ap.parse_args(argv)
    try:
        if a.cmd == "headline":
            print(headline(resolve_path(a.tables)), end="")
            return 0
        if a.cmd == "list":
            print(" ".join(name for name, nb, _ in plan(load_profile(a.profile)) if nb != "assemble"))
            return 0
        t0 = time.perf_counter()
        if a.cmd == "smoke":
            times = smoke(jobs=a.jobs)
        else:
            only = a.only.split(",") if a.only else None
            times = run_profile(a.profile, jobs=a.jobs, only=only, assemble=not a.no_assemble)
        print(f"[jkoic.paper] done: {len(times)} notebook(s) in {time.perf_counter() - t0:.1f} s", flush=True)
        return 0
    except (ValueError, RuntimeError) as e:
        print(f"jkoic.paper: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
