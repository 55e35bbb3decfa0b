"""Benchmark of the evaluation metrics at the paper's sample sizes (App. E.2).

Prints a table with wall time and peak resident memory of

- the exact energy distance, N = 50000 vs 50000 in 2-D (Table 1 size),
- the sliced energy distance with 1000 directions at the same size,
- the exact squared W2 distance (POT ``emd2``), 5000 vs 5000 in 2-D (Table 3 size).

Each case runs in a fresh process, so its peak RSS (``resource.getrusage``) is its own;
the "baseline" column is the RSS right after importing torch / POT / jkoic in that
process. "cpu s" is the process CPU time (all threads): on a shared machine, wall time
depends on the load, CPU time much less.

Usage::

    python benchmarks/bench_metrics.py                 # full sizes, 2 threads
    python benchmarks/bench_metrics.py --threads 1 --n 20000
    python benchmarks/bench_metrics.py --quick         # small sizes, a smoke test

References:
    J. Hertrich, R. Gruhlke. Importance Corrected Neural JKO Sampling. ICML 2025, App. E.2.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import resource
import sys
import time
from typing import Any


def _rss_mib() -> float:
    """Peak RSS of this process in MiB (``ru_maxrss`` is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


def _run_case(case: str, n: int, threads: int, device: str) -> dict[str, Any]:
    """Time one metric on two ``n``-point sets in 2-D; wall and CPU seconds, value, memory."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)
    import ot  # noqa: F401  (imported before timing: POT's import takes seconds)

    from jkoic.bench import metrics

    baseline = _rss_mib()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 2, generator=g).to(device)
    y = (torch.randn(n, 2, generator=g) + torch.tensor([0.05, 0.0])).to(device)
    start = time.perf_counter()
    cpu_start = time.process_time()
    if case == "energy_distance":
        value = metrics.energy_distance(x, y)
    elif case == "sliced_energy_distance":
        value = metrics.sliced_energy_distance(x, y, n_projections=1000, seed=0)
    elif case == "w2_squared":
        value = metrics.w2_squared(x, y)
    else:  # pragma: no cover - guarded by the caller
        raise ValueError(case)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu_start
    return {
        "case": case,
        "n": n,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "value": float(value),
        "baseline_mib": baseline,
        "peak_mib": _rss_mib(),
    }


def _in_fresh_process(case: str, n: int, threads: int, device: str) -> dict[str, Any]:
    """:func:`_run_case` in a fresh process, so that its peak memory is its own."""
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(_run_case, (case, n, threads, device))


def main(argv: list[str] | None = None) -> int:
    """The command line (see the module docstring); returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=50_000, help="samples per set for the energy distances")
    parser.add_argument("--n-w2", type=int, default=5_000, help="samples per set for W2")
    parser.add_argument("--threads", type=int, default=2, help="torch / OpenMP threads")
    parser.add_argument("--device", default="cpu", help="torch device for the energy distances")
    parser.add_argument("--skip-exact", action="store_true", help="skip the O(N^2) exact energy distance")
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    args = parser.parse_args(argv)
    n, n_w2 = (2_000, 500) if args.quick else (args.n, args.n_w2)

    cases = [("energy_distance", n), ("sliced_energy_distance", n), ("w2_squared", n_w2)]
    if args.skip_exact:
        cases = cases[1:]
    print(
        f"# jkoic metrics benchmark: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cpus visible, threads={args.threads}, device={args.device}"
    )
    header = (
        f"{'metric':<24} {'N vs N':>15} {'seconds':>9} {'cpu s':>8} {'peak RSS MiB':>13} "
        f"{'baseline MiB':>13} {'value':>12}"
    )
    print(header)
    print("-" * len(header))
    for case, size in cases:
        device = "cpu" if case == "w2_squared" else args.device
        r = _in_fresh_process(case, size, args.threads, device)
        print(
            f"{r['case']:<24} {f'{size} vs {size}':>15} {r['seconds']:>9.2f} {r['cpu_seconds']:>8.2f} "
            f"{r['peak_mib']:>13.0f} "
            f"{r['baseline_mib']:>13.0f} {r['value']:>12.4g}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
