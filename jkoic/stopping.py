"""When a fit stops early, and the per-layer report of a fit.

:class:`StopRule` decides before each layer whether to fit it: at ``max_layers``, after
``max_time``, or (``Config.adaptive``) at the first block whose rejection steps, with the CNF
step before them, improved the model by no more than the estimates' standard errors (the
Outlook of the paper: the model density and log Z estimates after every layer give an error
monitor and a stopping criterion). :func:`summary` formats the training log.
"""

from __future__ import annotations

import time
from typing import Any

from . import training

__all__ = ["StopRule", "layer_line", "summary"]


def summary(log: list[dict[str, Any]], stop_reason: str | None, n_layers: int, seconds: bool = True) -> str:
    """One line per layer of a training log.

    Columns: index, kind, tau, the ELBO and importance-weighted log Z of the model after the
    layer (on fresh samples, with standard errors), ESS fraction, rejection rate of a
    rejection layer, and (``seconds=True``) the seconds the layer took (dataset and training).
    """
    head = f"{'layer':>5} {'kind':<13} {'tau':>9} {'ELBO':>19} {'IW log Z':>19} {'ESS':>6} {'rej':>5}"
    head += f" {'sec':>7}" if seconds else ""
    lines = [head, "-" * len(head)]
    for e in log:

        def est(key: str, e: dict[str, Any] = e) -> str:
            if key not in e:
                return f"{'-':>19}"
            return f"{e[key]:>9.4g} +- {e.get(key + '_se', float('nan')):<7.2g}"

        rej = f"{1 - e['mean_alpha']:>5.2f}" if "mean_alpha" in e else f"{'':>5}"
        ess = f"{e['ess_fraction']:>6.3f}" if "ess_fraction" in e else f"{'-':>6}"
        tau = f"{e['tau']:>9.4g}" if e["kind"] != "rejection" else f"{'':>9}"
        line = f"{e['layer']:>5} {e['kind']:<13} {tau} {est('log_z_elbo')} {est('log_z_importance')} {ess} {rej}"
        if seconds:
            line += f" {e.get('train_seconds', 0.0) + e.get('dataset_seconds', 0.0):>7.1f}"
        lines.append(line)
    if stop_reason is not None:
        lines.append(f"stopped after {n_layers} layers: {stop_reason}")
    return "\n".join(lines)


def layer_line(entry: dict[str, Any], target: str, n_layers: int) -> str:
    """The log line of a fitted layer: ``<target>: layer k/n <kind> [tau] in s; ELBO before it``."""
    tau = f" tau={entry['tau']:.4g}" if entry["kind"] != "rejection" else ""
    rej = f" rejects {1 - entry['mean_alpha']:.2f}" if "mean_alpha" in entry else ""
    sec = entry.get("train_seconds", 0.0) + entry.get("dataset_seconds", 0.0)
    elbo = entry.get("log_z_elbo_before", float("nan"))
    return (
        f"{target}: layer {entry['layer'] + 1}/{n_layers} {entry['kind']}{tau}{rej} "
        f"in {sec:.1f} s (ELBO of the model below it {elbo:.4g})"
    )


class StopRule:
    """When a fit stops early: at ``max_layers``, after ``max_time``, or (``Config.adaptive``) at
    the first block whose rejection steps, with the CNF step before them, improved the model
    by no more than the estimates' standard errors."""

    def __init__(self, model: Any, max_layers: int | None, max_time: float | None, t0: float) -> None:
        self.model = model
        self.max_layers = max_layers
        self.max_time = max_time
        self.t0 = t0
        self.reason: str | None = None
        self.boundary: dict[str, float] | None = None
        for k in range(1, model.n_layers):  # the last block boundary a resumed fit has passed
            if self._is_boundary(k) and "log_z_elbo_se" in model.log[k - 1]:
                self.boundary = model.log[k - 1]

    def _is_boundary(self, k: int) -> bool:
        """Whether layer ``k`` is a CNF step that follows a block's rejection steps."""
        plan = self.model.plan
        return 0 < k < len(plan) and plan[k][0] != "rejection" and plan[k - 1][0] == "rejection"

    def keep(self, k: int, stats: dict[str, float]) -> bool:
        """Whether to fit layer ``k``, given the estimates of the model below it (sets ``reason`` if not)."""
        if self.max_layers is not None and k >= self.max_layers:
            self.reason = f"max_layers={self.max_layers}"
            return False
        if self.model.plan[k][0] == "rejection":
            return True  # rejection steps take seconds: a block is always completed
        if self.max_time is not None and time.perf_counter() - self.t0 >= self.max_time:
            self.reason = f"max_time={self.max_time:g} s"
            return False
        if self.model.config.adaptive and self._is_boundary(k):
            tol = self.model.config.adaptive_tol
            if self.boundary is not None and not training.improved(self.boundary, stats, tol):
                self.reason = (
                    "converged: the last block improved neither ELBO nor IW log Z by more than their std. error"
                )
                if tol > 0:
                    self.reason += f" and {tol:g}"
                return False
            self.boundary = stats
        return True
