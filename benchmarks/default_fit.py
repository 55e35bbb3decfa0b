"""The default configuration on densities that are not the paper's: quality, time and where it stops.

Each target has an exact sampler and log Z = 0. For each, ``jkoic.Sampler(target)`` (no
config: :func:`jkoic.defaults.auto_config`) is fitted with seed 0 and measured:

* ``seconds``: the whole fit, including the probe;
* ``energy``: the energy distance of 5000 model samples to 5000 exact ones, beside
  ``energy_ref``: the largest of three exact-vs-exact energy distances at the same N (the
  goal is ``energy <= 2 energy_ref``);
* ``mode_err``: the largest error of a mixture weight (nearest-mean assignment);
* ``log_z_err`` and ``log_z_err_iw``: the ELBO (the paper's log Z estimate, Table 2) and the
  importance-weighted log Z of 20000 model samples (truth 0), with ``ess_fraction``; a target with
  heavier tails than any Gaussian flow (the Student t) has unbounded weights g / p there, so its
  importance estimate has no finite variance and one draw can land far off;
* ``layers``, ``cnf_steps`` and ``stop``: how many layers (CNF steps) the adaptive schedule
  kept and why it stopped.

Two of the paper's 2-D targets join them: ``8peaky`` (eight narrow modes), and ``mustache``,
which the default keeps improving on for longer than it should spend, fitted with a time
budget, ``fit(max_time=...)``, to show the budget stopping a fit that has not converged. The
results go to ``default_fit.json`` and the table of ``benchmarks/README.md`` (``report.py``).

Usage: ``python benchmarks/default_fit.py [--targets a,b] [--out benchmarks/default_fit.json]``.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path
from typing import Any

import report
import torch

import jkoic
from jkoic._io import atomic_write
from jkoic.bench.metrics import energy_distance, mode_weights
from jkoic.bench.targets import GaussianMixture
from jkoic.target import CallableTarget

HERE = Path(__file__).resolve().parent


def _banana() -> CallableTarget:
    """``x1 ~ N(0, 1)``, ``x2 | x1 ~ N(x1^2, 0.5^2)``: a curved ridge."""

    def log_prob(x: torch.Tensor) -> torch.Tensor:
        lp1 = -0.5 * x[:, 0] ** 2 - 0.5 * math.log(2 * math.pi)
        lp2 = -0.5 * ((x[:, 1] - x[:, 0] ** 2) / 0.5) ** 2 - math.log(0.5) - 0.5 * math.log(2 * math.pi)
        return lp1 + lp2

    def sample(n: int, gen: torch.Generator | None) -> torch.Tensor:
        z = torch.randn(n, 2, generator=gen, dtype=torch.float64)
        return torch.stack([z[:, 0], z[:, 0] ** 2 + 0.5 * z[:, 1]], -1)

    return CallableTarget(log_prob, 2, name="banana", log_z=0.0, sampler=sample)


def _student_t(dim: int = 5, nu: float = 5.0) -> CallableTarget:
    """A standard multivariate Student t with ``nu`` degrees of freedom: heavy tails."""
    log_norm = math.lgamma((nu + dim) / 2) - math.lgamma(nu / 2) - 0.5 * dim * math.log(nu * math.pi)

    def log_prob(x: torch.Tensor) -> torch.Tensor:
        return log_norm - 0.5 * (nu + dim) * torch.log1p(x.square().sum(-1) / nu)

    def sample(n: int, gen: torch.Generator | None) -> torch.Tensor:
        z = torch.randn(n, dim, generator=gen, dtype=torch.float64)
        chi2 = torch.randn(n, int(nu), generator=gen, dtype=torch.float64).square().sum(-1)
        return z / torch.sqrt(chi2 / nu)[:, None]

    return CallableTarget(log_prob, dim, name=f"student_t{dim}", log_z=0.0, sampler=sample)


def _funnel(dim: int = 5, sigma: float = 1.5) -> CallableTarget:
    """``x1 ~ N(0, sigma^2)``, ``x_{2:d} | x1 ~ N(0, exp(x1) I)``: a scale that changes along x1."""

    def log_prob(x: torch.Tensor) -> torch.Tensor:
        v, rest = x[:, 0], x[:, 1:]
        lp_v = -0.5 * (v / sigma) ** 2 - math.log(sigma) - 0.5 * math.log(2 * math.pi)
        m = dim - 1
        return lp_v - 0.5 * torch.exp(-v) * rest.square().sum(-1) - 0.5 * m * v - 0.5 * m * math.log(2 * math.pi)

    def sample(n: int, gen: torch.Generator | None) -> torch.Tensor:
        v = sigma * torch.randn(n, 1, generator=gen, dtype=torch.float64)
        return torch.cat([v, torch.exp(v / 2) * torch.randn(n, dim - 1, generator=gen, dtype=torch.float64)], -1)

    return CallableTarget(log_prob, dim, name=f"funnel{dim}", log_z=0.0, sampler=sample)


def targets() -> dict[str, Any]:
    """The benchmark's targets by name."""
    gen = torch.Generator().manual_seed(6)
    means6 = torch.rand(4, 6, generator=gen, dtype=torch.float64) * 6 - 3
    return {
        "unequal_mixture": GaussianMixture(
            "unequal_mixture",
            torch.tensor([[-2.0, 0.0], [2.0, 1.0], [0.0, -3.0]]),
            0.25,
            torch.tensor([0.6, 0.3, 0.1], dtype=torch.float64),
        ),
        "far_modes": GaussianMixture(
            "far_modes", torch.tensor([[-5.0, 0.0], [5.0, 0.0]]), 0.25, torch.tensor([0.7, 0.3], dtype=torch.float64)
        ),
        "banana": _banana(),
        "student_t5": _student_t(),
        "funnel5": _funnel(),
        "mixture6d": GaussianMixture(
            "mixture6d", means6, 0.25, torch.tensor([0.4, 0.3, 0.2, 0.1], dtype=torch.float64)
        ),
        "8peaky": jkoic.targets.get("8peaky"),
        "mustache": jkoic.targets.get("mustache"),
    }


#: the fit budgets of targets fitted with one (``fit`` keyword arguments)
BUDGETS: dict[str, dict[str, Any]] = {"mustache": {"max_time": 60.0}}


def run(name: str, target: Any, n: int = 5000) -> dict[str, Any]:
    """Fit the default on ``target`` and measure it (see the module docstring)."""
    budget = BUDGETS.get(name, {})
    t0 = time.perf_counter()
    model = jkoic.Sampler(target)
    model.fit(seed=0, progress=False, **budget)
    seconds = time.perf_counter() - t0
    x, _ = model.sample(n, seed=1)
    est = model.log_z(20000, seed=2)
    truth = [target.sample(n, generator=torch.Generator().manual_seed(s)).float() for s in (11, 12, 13, 14)]
    energy = float(energy_distance(x, truth[0]))
    ref = max(float(energy_distance(truth[0], t)) for t in truth[1:])
    row: dict[str, Any] = {
        "target": name,
        "dim": int(target.dim),
        "seconds": seconds,
        "energy": energy,
        "energy_ref": ref,
        "log_z_err": est["elbo"] - 0.0,
        "log_z_err_iw": est["importance"] - 0.0,
        "ess_fraction": est["ess_fraction"],
        "layers": model.n_layers,
        "cnf_steps": sum(kind == "cnf" for kind in model.layer_kinds()),
        "stop": model.stop_reason,
        "budget": ", ".join(f"{k}={v:g} s" if k == "max_time" else f"{k}={v}" for k, v in budget.items()),
        "latent_scale": model.config.latent_scale,
    }
    means = getattr(target, "means", None)
    if means is not None and getattr(target, "weights", None) is not None:
        w = mode_weights(x.double(), means.double())
        row["mode_err"] = float((w - target.weights.double()).abs().max())
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--targets", default="", help="comma-separated subset (default: all)")
    p.add_argument("--out", default=str(HERE / "default_fit.json"))
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    all_targets = targets()
    names = [t for t in args.targets.split(",") if t] or list(all_targets)
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.exists() else {}
    results["machine"] = f"{platform.processor() or platform.machine()}, {args.threads} torch thread(s)"
    rows = results.setdefault("rows", {})
    for name in names:
        row = run(name, all_targets[name])
        rows[name] = row
        print(json.dumps(row), flush=True)
        atomic_write(out, (json.dumps(results, indent=1) + "\n").encode())
    if out.resolve() == report.DEFAULT_FIT:
        report.write_readme()


if __name__ == "__main__":
    main()
