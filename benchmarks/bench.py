"""Speed and memory benchmark of jkoic on this machine.

Prints, for each goal, the measured time / memory, the quality reached and the goal, as a
table, writes the numbers to ``benchmarks/results.json`` and the tables of
``benchmarks/README.md`` from it (:mod:`report`). Each case runs in a fresh process so its
peak resident memory is its own.

Cases (``--cases``, default: all but ``suite``):

- ``train8peaky``: 8 Peaky with the ``fast`` preset (the notebooks' cpu profile), training +
  drawing 50000 evaluation samples; sliced energy distance (authors' protocol) and mode MSE,
  of that draw and averaged over ``--draws`` further untimed draws of 50000 (both metrics are
  as noisy as their goals at this N). Repeated ``--repeats`` times with different seeds;
  medians reported. Saves the model.
- ``sample50k``: 50000 samples with densities from the trained 8 Peaky model (6 CNF + 12
  rejection layers); ``--repeats`` fresh processes, median reported.
- ``sample1m``: 1,000,000 samples with densities from that model: seconds and peak RSS.
- ``energy``: exact energy distance 50000 vs 50000 in 2-D (seconds, peak RSS).
- ``sliced``: sliced energy distance 50000 vs 50000 in 2-D.
- ``scaling``: the cost of one CNF step over the dimension, GMM-d for d in ``--scaling-dims``
  (default 10, 20, 50, 100, 200 and LGCP's 1600), ``fast`` preset at the widths of Table 6:
  seconds per Adam iteration, seconds per 10000 samples with densities through that step
  (exact divergence up to ``exact_trace_eval_max_dim``, else Hutchinson with
  ``n_probes_eval`` probes, and both where the exact one is affordable), peak memory.
- ``suite``: Mustache, 8 Modes, Funnel and GMM-10 with the settings of the notebooks' ``cpu``
  profile (the ``fast`` preset and each run's ``config_overrides`` / ``iters_scale``) against the
  paper's JKO-IC numbers of Tables 1, 2, 4 (long: up to half an hour each).

Usage::

    python benchmarks/bench.py                      # all quick cases
    python benchmarks/bench.py --cases suite        # the long per-target suite
    python benchmarks/bench.py --repeats 3 --threads 1
    python benchmarks/bench.py --write-readme       # README.md's tables from results.json only
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import report

HERE = Path(__file__).resolve().parent
MODEL_PATH = HERE / ".cache" / "8peaky_fast_seed0.pt"


def _peak_mib() -> float:
    """Peak resident memory of this process in MiB (``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _setup(threads: int) -> Any:
    """Fix the OpenMP and torch thread count of this process; returns the torch module."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)
    return torch


def _profile_config(run: str, name: str, dim: int | None) -> Any:
    """The JKO-IC ``Config`` that the ``cpu`` profile's run ``run`` trains (its overrides and
    iteration scale on top of the ``fast`` preset)."""
    from reproduce import paper

    params = {key: prm for key, _, prm in paper.plan(paper.load_profile("cpu"))}[run]
    per_dim = (params.get("per_dim") or {}).get(str(dim), {})
    return paper.method_config(
        "jkoic",
        name,
        dim=dim,
        preset_profile=params["preset_profile"],
        overrides=params.get("config_overrides"),
        iters_scale=per_dim.get("iters_scale", params.get("iters_scale", 1.0)),
    )


def _train(
    name: str,
    seed: int,
    threads: int,
    save: str | None = None,
    profile_run: str | None = None,
    draws: int = 0,
    **kw: Any,
) -> dict[str, Any]:
    """Train one target (the ``fast`` preset, or the ``cpu`` profile run ``profile_run``) and score it.

    Returns:
        Timings, the ELBO, the settings trained with, the energy distance (and mode MSE) of the
        timed 50000-sample draw and of ``draws`` further draws, and the peak memory.
    """
    torch = _setup(threads)
    import jkoic
    from jkoic.bench import metrics

    target = jkoic.targets.get(name, **kw)
    if profile_run is None:
        config = jkoic.preset(name, "fast", dim=kw.get("dim"))
    else:
        config = _profile_config(profile_run, name, kw.get("dim"))
    model = jkoic.Sampler(target, config)
    t0 = time.perf_counter()
    model.fit(seed=seed, progress=False, final_stats=False)  # the 50000 samples below measure the same
    t_train = time.perf_counter() - t0
    t0 = time.perf_counter()
    x, log_p, log_g = model.sample(50000, seed=seed + 1000, return_log_g=True)
    t_sample = time.perf_counter() - t0
    out: dict[str, Any] = {
        "target": name,
        "seed": seed,
        "train_s": t_train,
        "sample_s": t_sample,
        "total_s": t_train + t_sample,
        "log_z": float(metrics.log_z_elbo(log_g, log_p)),
        # RK4 steps per CNF layer after Config.sample_steps_tol
        "sample_steps": [la.sample_steps for la in model.layers if getattr(la, "kind", "") == "cnf"],
        "budget": {
            k: getattr(config, k)
            for k in (
                "n_iters",
                "batch_size",
                "hidden",
                "late_tau",
                "late_batch_size",
                "late_n_iters",
                "late_lr",
                "lr",
                "dataset_size",
                "warm_start",
                "scale_search",
                "alpha_samples",
                "sample_steps",
            )
        },
    }
    truth = target.sample(50000, generator=torch.Generator().manual_seed(seed + 2000))
    out["energy"] = float(metrics.sliced_energy_distance(x, truth, seed=seed))
    if target.means is not None:
        out["mode_mse"] = float(metrics.mode_mse(x, target.means))
    # at N = 50000 one draw of either metric is as noisy as its goal (benchmarks/README.md): the mean
    # over `draws` further untimed draws estimates the expected metric rather than one draw of it
    energies, mses = [], []
    for j in range(draws):
        xj, _ = model.sample(50000, seed=seed + 10000 + j)
        tj = target.sample(50000, generator=torch.Generator().manual_seed(seed + 20000 + j))
        energies.append(float(metrics.sliced_energy_distance(xj, tj, seed=seed + j)))
        if target.means is not None:
            mses.append(float(metrics.mode_mse(xj, target.means)))
    if draws:
        out["energy_draws"] = energies
        out["energy_draws_mean"] = statistics.mean(energies)
        if mses:
            out["mode_mse_draws"] = mses
            out["mode_mse_draws_mean"] = statistics.mean(mses)
    if save:
        Path(save).parent.mkdir(parents=True, exist_ok=True)
        model.save(save)
    out["peak_mib"] = _peak_mib()
    return out


def _cached_model_loads() -> bool:
    """Whether the cached 8 Peaky model exists and loads (a checkpoint of another format does not)."""
    if not MODEL_PATH.exists():
        return False
    import jkoic

    try:
        jkoic.Sampler.load(MODEL_PATH)
    except jkoic.CheckpointError:
        return False
    return True


def _sample(n: int, threads: int) -> dict[str, Any]:
    """Time ``n`` samples with densities from the cached 8 Peaky model; peak memory and its layers."""
    _setup(threads)
    import jkoic
    from jkoic.stack import KIND_LETTERS

    model = jkoic.Sampler.load(MODEL_PATH)
    base = _peak_mib()
    t0 = time.perf_counter()
    x, log_p = model.sample(n, seed=7)
    sec = time.perf_counter() - t0
    return {
        "n": n,
        "seconds": sec,
        "peak_mib": _peak_mib(),
        "baseline_mib": base,
        "layers": "".join(KIND_LETTERS[k] for k in model.layer_kinds()),
    }


def _energy(kind: str, threads: int) -> dict[str, Any]:
    """Time the exact or sliced energy distance of two 50000-point sets in 2-D."""
    torch = _setup(threads)
    from jkoic.bench import metrics

    g = torch.Generator().manual_seed(0)
    x = torch.randn(50000, 2, generator=g)
    y = torch.randn(50000, 2, generator=g) + torch.tensor([0.05, 0.0])
    base = _peak_mib()
    t0 = time.perf_counter()
    fn = metrics.energy_distance if kind == "exact" else metrics.sliced_energy_distance
    v = float(fn(x, y))
    return {"seconds": time.perf_counter() - t0, "value": v, "peak_mib": _peak_mib(), "baseline_mib": base}


def _scaling(dim: int, threads: int, iters: tuple[int, int] = (10, 30)) -> dict[str, Any]:
    """One CNF step of GMM-``dim`` (LGCP for 1600) at the ``fast`` preset: seconds per Adam iteration
    (the difference of two first-step fits of ``iters`` iterations, so the fixed costs cancel),
    seconds per 10000 samples with densities through the trained step with each divergence, and
    the peak memory of the process."""
    _setup(threads)
    import jkoic

    name, kw = ("lgcp", {}) if dim == 1600 else ("gmm", {"dim": dim})
    target = jkoic.targets.get(name, **kw)
    fits = []
    for n_iters in (2, *iters):  # the first fit pays the one-time costs (allocations, lazy inits)
        cfg = jkoic.preset(name, "fast", n_iters=n_iters, sample_steps_tol=None, **kw)
        model = jkoic.Sampler(target, cfg)
        t0 = time.perf_counter()
        model.fit(seed=0, progress=False, max_layers=1, final_stats=False)
        fits.append(time.perf_counter() - t0)
    out: dict[str, Any] = {
        "dim": dim,
        "target": target.name,
        "hidden": cfg.hidden_width(dim),
        "batch_size": cfg.batch_size,
        "train_steps": cfg.train_steps,
        "adam_iter_s": (fits[2] - fits[1]) / (iters[1] - iters[0]),
    }
    layer = model.layers[0]
    modes = {"hutchinson": {"trace": "hutchinson"}}
    if dim <= 100:  # d tangents per RK4 stage: at d = 200 10000 points take minutes per layer
        modes["exact"] = {"trace": "exact"}
    for mode, over in modes.items():
        model.config = cfg.replace(**over)
        t0 = time.perf_counter()
        model.sample(10000, seed=1)
        out[f"sample10k_{mode}_s"] = time.perf_counter() - t0
    out.update(
        sample_steps=layer.sample_steps,
        n_probes_eval=cfg.n_probes_eval,
        default_trace=cfg.trace_mode(dim, evaluation=True),
        peak_mib=_peak_mib(),
    )
    return out


def _fresh(fn: Any, *args: Any, **kw: Any) -> Any:
    """``fn(*args, **kw)`` in a fresh process, so that its peak memory is its own."""
    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, args, kw)


def _machine() -> str:
    """The CPU model, core count, torch version and OS, for the results."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, {platform.system()}"


def main(argv: list[str] | None = None) -> int:
    """The command line (see the module docstring); returns the exit status."""
    p = argparse.ArgumentParser(description="jkoic speed/memory benchmark")
    p.add_argument("--cases", default="train8peaky,sample50k,sample1m,energy,sliced,scaling")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--draws",
        type=int,
        default=10,
        help="further 50000-sample draws per trained model whose mean metrics are also reported",
    )
    p.add_argument(
        "--suite-targets",
        default="mustache,8modes,funnel,gmm10",
        help="targets of the `suite` case (each keeps its earlier entry in results.json if left out)",
    )
    p.add_argument(
        "--scaling-dims", default="10,20,50,100,200,1600", help="dimensions of the `scaling` case (1600: LGCP)"
    )
    p.add_argument(
        "--write-readme", action="store_true", help="only rewrite README.md's results tables from results.json"
    )
    args = p.parse_args(argv)
    if args.write_readme:
        print("README.md", "rewritten" if report.write_readme() else "unchanged")
        return 0
    cases = args.cases.split(",")
    suite_all = {
        "mustache": ("mustache", {}),
        "8modes": ("8modes", {}),
        "funnel": ("funnel", {}),
        "gmm10": ("gmm", {"dim": 10}),
    }
    suite_targets = args.suite_targets.split(",")
    unknown = sorted(set(suite_targets) - set(suite_all))
    if unknown:
        p.error(f"unknown --suite-targets {', '.join(unknown)}; choose from {', '.join(suite_all)}")
    results: dict[str, Any] = {"machine": _machine(), "threads": args.threads}
    print(f"# jkoic benchmark on {results['machine']}, threads={args.threads}", flush=True)
    if "train8peaky" in cases or ({"sample50k", "sample1m"} & set(cases) and not _cached_model_loads()):
        runs = []
        for r in range(max(1, args.repeats)):
            runs.append(
                _fresh(_train, "8peaky", r, args.threads, save=str(MODEL_PATH) if r == 0 else None, draws=args.draws)
            )
            print(
                f"  8peaky run {r}: "
                f"{json.dumps({k: round(v, 6) if isinstance(v, float) else v for k, v in runs[-1].items()})}",
                flush=True,
            )
        keys = ["total_s", "train_s", "energy", "mode_mse"]
        keys += ["energy_draws_mean", "mode_mse_draws_mean"] if args.draws else []
        med = {k: statistics.median(run[k] for run in runs) for k in keys}
        results["train8peaky"] = {"runs": runs, "median": med, "draws": args.draws, "threads": args.threads}
    if "sample50k" in cases:
        reps = [_fresh(_sample, 50000, args.threads) for _ in range(max(1, args.repeats))]
        results["sample50k"] = dict(
            reps[0],
            seconds=statistics.median(x["seconds"] for x in reps),
            runs=[x["seconds"] for x in reps],
            threads=args.threads,
        )
    if "sample1m" in cases:
        results["sample1m"] = dict(_fresh(_sample, 1_000_000, args.threads), threads=args.threads)
    if "energy" in cases:
        results["energy"] = dict(_fresh(_energy, "exact", args.threads), threads=args.threads)
    if "sliced" in cases:
        results["sliced"] = dict(_fresh(_energy, "sliced", args.threads), threads=args.threads)
    if "scaling" in cases:
        scaling = {}
        for dim in (int(v) for v in args.scaling_dims.split(",")):
            scaling[str(dim)] = dict(_fresh(_scaling, dim, args.threads), threads=args.threads)
            print(f"  scaling d={dim}: {json.dumps(scaling[str(dim)])}", flush=True)
        results["scaling"] = scaling
    if "suite" in cases:
        suite = {}
        for key in suite_targets:
            name, kw = suite_all[key]
            r = _fresh(_train, name, 0, args.threads, profile_run=name, draws=args.draws, **kw)
            suite[name] = dict(r, threads=args.threads)
            print(f"  {name}: {json.dumps(r)}", flush=True)
        results["suite"] = suite
    print(report.results_block(results))
    out = HERE / "results.json"
    old = json.loads(out.read_text()) if out.exists() else {}
    for key in ("suite", "scaling"):  # a subset of the targets / dimensions replaces only their entries
        if key in results:
            results[key] = {**old.get(key, {}), **results[key]}
    old.update(results)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(old, indent=1))
    os.replace(tmp, out)
    report.write_readme()
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent))  # the reproduction package (profiles, the paper's values) of this checkout
    sys.exit(main())
