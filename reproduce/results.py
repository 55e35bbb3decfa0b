"""Results files: one JSON per target (:class:`Study`) with its arrays, written atomically.

Every file goes through :func:`jkoic._io.atomic_write`, so an interrupted notebook never
leaves a half-written file; JSON holds plain types only, NaN and infinities as ``null``.
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from jkoic._io import atomic_write, to_plain

from . import values as PV
from .environment import machine_info, source_commit
from .methods import MethodRun
from .paths import resolve_path

__all__ = [
    "RESULTS_FORMAT",
    "Study",
    "fmt",
    "fmt_pm",
    "load_results",
    "mean_std",
    "save_npz",
    "write_json",
    "write_text",
]

#: the ``format`` field of a results JSON
RESULTS_FORMAT = "jkoic-paper-results"


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically.

    Args:
        path: the file; its directory is created if missing.
        obj: plain values, numpy / torch scalars and arrays, in dicts, lists and tuples.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        TypeError: ``obj`` holds a value with no plain equivalent (see :func:`jkoic._io.to_plain`).
    """
    text = json.dumps(to_plain(obj, nonfinite_to_none=True), indent=1) + "\n"
    return atomic_write(path, text.encode())


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8), atomically.

    Args:
        path: the file; its directory is created if missing.
        text: the content.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    return atomic_write(path, text.encode())


def save_npz(path: str | os.PathLike[str], **arrays: Any) -> Path:
    """``np.savez_compressed`` of ``arrays``, atomically.

    Args:
        path: the file; its directory is created if missing.
        **arrays: the arrays by name (anything :func:`numpy.asarray` takes).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    return atomic_write(path, buf.getvalue())


def load_results(
    results_dir: str | os.PathLike[str], base: str | os.PathLike[str] | None = None
) -> dict[str, dict[str, Any]]:
    """Read the results of every target.

    Args:
        results_dir: the folder (relative to the repository root or absolute).
        base: another profile's folder whose targets fill in those ``results_dir`` lacks (the
            ``full`` profile's tables take the targets it does not run from ``results/cpu``).

    Returns:
        The ``<results_dir>/*.json`` files written by :class:`Study` (then those of ``base``
        for the other targets), keyed by target key; other JSON files are skipped. Each result
        gains ``"loaded_from"``: the folder it was read from, where its arrays lie.

    Raises:
        ValueError: a JSON file in ``results_dir`` or ``base`` does not parse.
    """
    out: dict[str, dict[str, Any]] = {}
    for folder in [results_dir] + ([] if base is None else [base]):
        for p in sorted(resolve_path(folder).glob("*.json")):
            try:
                data = json.loads(p.read_text())
            except json.JSONDecodeError as e:
                raise ValueError(f"{p} is not valid JSON: {e}") from None
            if isinstance(data, dict) and data.get("format") == RESULTS_FORMAT:
                out.setdefault(str(data["target"]), {**data, "loaded_from": str(folder)})
    return out


def mean_std(values: Sequence[float | None]) -> tuple[float | None, float | None, int]:
    """Mean and standard deviation (ddof 0, as the authors) of the finite values.

    Args:
        values: the values; None and non-finite ones are left out.

    Returns:
        ``(mean, std, count)``; ``(None, None, 0)`` when nothing is left.
    """
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not vals:
        return None, None, 0
    arr = np.asarray(vals)
    return float(arr.mean()), float(arr.std()), len(vals)


def fmt(x: float | None, digits: int = 2) -> str:
    """Format a number as the paper does.

    Args:
        x: the value.
        digits: significant digits.

    Returns:
        Scientific notation with ``digits`` significant digits (``"1.2e-03"``); one decimal
        for magnitudes >= 100 (LGCP log Z, Sinkhorn distances: ``"508.2"``); ``"0"`` for zero,
        ``"-"`` for None / NaN / infinities.
    """
    if x is None or not math.isfinite(float(x)):
        return "-"
    x = float(x)
    if x == 0.0:
        return "0"
    if abs(x) >= 100.0:
        return f"{x:.1f}"
    return f"{x:.{max(digits - 1, 0)}e}"


def fmt_pm(mean: float | None, std: float | None, n: int = 2, digits: int = 2) -> str:
    """Format ``mean ± std`` (:func:`fmt` for each).

    Args:
        mean: the mean (None: ``"-"``).
        std: the standard deviation.
        n: the number of values; below 2 (or without ``std``) only the mean is shown.
        digits: significant digits.

    Returns:
        The cell text.
    """
    if mean is None:
        return "-"
    if std is None or n < 2:
        return fmt(mean, digits)
    return f"{fmt(mean, digits)} ± {fmt(std, digits)}"


class Study:
    """The results of one target: per-run metrics per method, references, timings, arrays.

    :meth:`save` writes ``<results_dir>/<key>.json`` (format :data:`RESULTS_FORMAT`) and the
    arrays (``<key>_samples.npz``, ``<key>_path.npz``, ...) next to it.

    Args:
        key: the target key (:func:`reproduce.methods.target_key`).
        results_dir: where to write (relative to the repository root or absolute).
        profile: the profile name, recorded.
        notebook: the notebook that ran, recorded.
        settings: the notebook's settings, recorded.
        machine: :func:`reproduce.environment.machine_info` (default: of this machine, CPU).
        log_z_true: the exact log Z (None where unknown).
        smoke_test: whether this is a smoke (CI) run, recorded.
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
            "format": RESULTS_FORMAT,
            "target": key,
            "label": PV.TARGETS.get(key, key),
            "profile": profile,
            "notebook": notebook,
            "smoke_test": bool(smoke_test),
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "commit": source_commit(),
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
        """Record one run of a method.

        Args:
            run: the run; its config is kept once per method.
            metrics: its metrics (:func:`reproduce.evaluation.evaluate`).

        Returns:
            The stored entry (seed, metrics, timings, sample count, info).
        """
        entry = {
            "seed": run.seed,
            "metrics": dict(metrics),
            "train_seconds": run.train_seconds,
            "sample_seconds": run.sample_seconds,
            "n_samples": run.n_samples,
            "info": dict(run.info),
        }
        self.data["runs"].setdefault(run.method, []).append(entry)
        if run.config is not None:
            self.data["configs"].setdefault(run.method, run.config)
        return entry

    def add_reference(self, seed: int, refs: dict[str, float]) -> None:
        """Record the sampling errors of run ``seed`` (one value per metric and run).

        Args:
            seed: the run index.
            refs: metric -> value (:func:`reproduce.evaluation.reference_errors`).
        """
        for metric, v in refs.items():
            self.data["reference"].setdefault(metric, []).append(float(v))

    def add_layer_curve(self, method: str, curve: list[dict[str, Any]]) -> None:
        """Record a method's metrics after every layer.

        Args:
            method: the method.
            curve: :func:`reproduce.evaluation.layer_curve`.
        """
        self.data["layer_curves"][method] = curve

    def keep_samples(self, name: str, x: Tensor | np.ndarray, n: int, dims: int = 2) -> None:
        """Keep samples for the sample figures.

        Args:
            name: the method (or ``"truth"``).
            x: the samples.
            n: how many to keep (the first ``n``).
            dims: how many coordinates to keep (the first ``dims``).
        """
        arr = x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)
        self._arrays.setdefault("samples", {})[name] = arr[: int(n), :dims].astype(np.float32)

    def keep_arrays(self, group: str, **arrays: Any) -> None:
        """Keep arrays for :meth:`save`, in ``<key>_<group>.npz``.

        Args:
            group: the file's group name (e.g. ``"path"``: :func:`reproduce.evaluation.path_data`).
            **arrays: the arrays by name.
        """
        self._arrays.setdefault(group, {}).update({k: np.asarray(v) for k, v in arrays.items()})

    # -- views -------------------------------------------------------------------------
    def values(self, method: str, metric: str) -> list[float]:
        """One metric of every run of a method.

        Args:
            method: the method.
            metric: the metric.

        Returns:
            The values, in run order (runs without the metric are skipped).
        """
        return [r["metrics"][metric] for r in self.data["runs"].get(method, []) if metric in r["metrics"]]

    def mean(self, method: str, metric: str) -> float | None:
        """The mean of a metric over the runs of a method.

        Args:
            method: the method.
            metric: the metric.

        Returns:
            The mean of the finite values (None without one).
        """
        return mean_std(self.values(method, metric))[0]

    def summary(self, digits: int = 2, metrics: Sequence[str] | None = None) -> str:
        """A plain-text table of mean ± std per method and metric (stable for nbval).

        Args:
            digits: significant digits.
            metrics: the metrics to show, if present (default: energy, log Z, W2, mode MSE,
                Sinkhorn).

        Returns:
            One line per method plus the sampling error, columns aligned.
        """
        metrics = list(metrics or ["energy", "log_z", "w2", "mode_mse", "sinkhorn"])
        present = [m for m in metrics if any(self.values(meth, m) for meth in self.data["runs"])]
        rows = [["method", *present]]
        for meth in self.data["runs"]:
            rows.append([meth] + [fmt_pm(*mean_std(self.values(meth, m)), digits=digits) for m in present])
        refs = self.data["reference"]
        if refs:
            rows.append(["sampling_error"] + [fmt_pm(*mean_std(refs.get(m, [])), digits=digits) for m in present])
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)).rstrip() for r in rows)

    # -- writing -----------------------------------------------------------------------
    def save(self) -> Path:
        """Write the kept arrays and then the JSON (which names them).

        Returns:
            The path of the JSON file.
        """
        self.results_dir.mkdir(parents=True, exist_ok=True)
        for group, arrays in self._arrays.items():
            name = f"{self.key}_{group}.npz"
            save_npz(self.results_dir / name, **arrays)
            self.data["arrays"][group] = name
        return write_json(self.results_dir / f"{self.key}.json", self.data)
