"""Figures 1, 3-13 of the paper from the results written by the target notebooks.

Each function reads what :class:`reproduce.results.Study` saved (``<key>.json`` and the
``<key>_samples.npz`` / ``<key>_path.npz`` arrays) and returns a matplotlib figure;
:func:`savefig` writes it as PNG and PDF atomically. DDS and CRAFT panels of the paper are
not reproduced (those methods are not re-implemented); the titles say so.
:func:`target_figures` draws one target's own figures and :func:`show` puts a figure inline
in a notebook, so that a target notebook shows what it reproduced without the assemble step.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from jkoic._io import atomic_write

from . import values as PV
from .paths import resolve_path

__all__ = [
    "figure_layer_curves",
    "figure_mode_collapse",
    "figure_mode_weights",
    "figure_path",
    "figure_sample_grid",
    "figure_samples",
    "figure_training_log",
    "load_arrays",
    "savefig",
    "show",
    "target_figures",
]

ORANGE = "#ff7f0e"
BLUE = "#1f77b4"
GREY = "#7f7f7f"
METHOD_LABELS = {"truth": "ground truth", **{k: v for k, v in PV.METHODS.items()}}


def _scatter(ax: Any, x: np.ndarray, name: str, point_size: float) -> None:
    """The samples of one method (grey for the ground truth) on a 2-D axis."""
    ax.scatter(
        x[:, 0],
        x[:, 1],
        s=point_size,
        alpha=0.5,
        color=GREY if name == "truth" else BLUE,
        rasterized=True,
        linewidths=0,
    )


def savefig(
    fig: Any, figures_dir: str | os.PathLike[str], name: str, formats: Sequence[str] = ("png", "pdf"), dpi: int = 150
) -> list[Path]:
    """Save ``fig`` once per format, each file atomically, then close it.

    Args:
        fig: the matplotlib figure.
        figures_dir: the folder (relative to the repository root or absolute).
        name: the file stem.
        formats: the file formats (``"png"``, ``"pdf"``, ...).
        dpi: the resolution of raster formats.

    Returns:
        The paths written, ``<figures_dir>/<name>.<format>``.
    """
    import matplotlib.pyplot as plt

    d = resolve_path(figures_dir)
    out = []
    for f in formats:

        def write(fh: IO[bytes], fmt: str = f) -> None:
            """Render the figure into ``fh`` as ``fmt``."""
            fig.savefig(fh, format=fmt, dpi=dpi, bbox_inches="tight", metadata=_metadata(fmt))

        out.append(atomic_write(d / f"{name}.{f}", write))
    plt.close(fig)
    return out


def _metadata(fmt: str) -> dict[str, Any]:
    """File metadata without creation dates: regenerated figures differ only when their content does."""
    if fmt == "pdf":
        return {"CreationDate": None, "Creator": "jkoic"}
    if fmt == "png":
        return {"Software": "jkoic"}
    return {}


def load_arrays(results: dict[str, Any], results_dir: str | os.PathLike[str], group: str) -> dict[str, np.ndarray]:
    """The arrays saved with a target's results.

    Args:
        results: the target's results (:func:`reproduce.results.load_results`).
        results_dir: the folder they were loaded from (``results["loaded_from"]`` wins: a
            target taken from another profile's folder keeps its arrays there).
        group: ``"samples"``, ``"path"``, ...

    Returns:
        The arrays by name; empty if the group was not saved or its file is missing.
    """
    name = results.get("arrays", {}).get(group)
    if not name:
        return {}
    path = resolve_path(results.get("loaded_from") or results_dir) / name
    if not path.is_file():
        return {}
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _limits(truth: np.ndarray, pad: float = 0.15) -> tuple[tuple[float, float], tuple[float, float]]:
    """Axis limits of the first two coordinates: the 0.2 %-99.8 % quantiles widened by ``pad``."""
    lo = np.quantile(truth[:, :2], 0.002, axis=0)
    hi = np.quantile(truth[:, :2], 0.998, axis=0)
    span = np.maximum(hi - lo, 1e-6)
    lo, hi = lo - pad * span, hi + pad * span
    return (float(lo[0]), float(hi[0])), (float(lo[1]), float(hi[1]))


def figure_samples(
    samples: dict[str, np.ndarray],
    methods: Sequence[str],
    title: str,
    *,
    means: np.ndarray | None = None,
    xlabel: str = "$x_1$",
    ylabel: str = "$x_2$",
    point_size: float = 0.5,
) -> Any:
    """Ground truth and one panel per method, first two coordinates (Figures 5-10).

    Args:
        samples: arrays by method, ``"truth"`` included.
        methods: the methods to show, in order (those without samples are skipped).
        title: the figure title.
        means: mode means to mark.
        xlabel: the x-axis label.
        ylabel: the y-axis label of the first panel.
        point_size: the marker size.

    Returns:
        The figure.
    """
    import matplotlib.pyplot as plt

    names = ["truth"] + [m for m in methods if m in samples]
    fig, axes = plt.subplots(1, len(names), figsize=(2.6 * len(names), 2.8), squeeze=False)
    truth = samples.get("truth")
    lims = _limits(truth) if truth is not None and len(truth) else None
    for ax, name in zip(axes[0], names, strict=False):
        if name not in samples:
            ax.set_axis_off()
            continue
        _scatter(ax, samples[name], name, point_size)
        if means is not None:
            ax.scatter(means[:, 0], means[:, 1], s=6, marker="x", color="k", linewidths=0.6)
        if lims is not None:
            ax.set_xlim(*lims[0])
            ax.set_ylim(*lims[1])
        ax.set_title(METHOD_LABELS.get(name, name), fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0][0].set_ylabel(ylabel, fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def _stage_label(kind: str, k: int) -> str:
    """A panel title for a layer kind (``k > 0`` appends its index)."""
    return {"latent": "latent", "cnf": "JKO step", "rejection": "rejection", "gradient_flow": "gradient flow"}.get(
        kind, kind
    ) + ("" if k == 0 else f" ({k})")


def figure_path(
    path: dict[str, np.ndarray],
    stages: Sequence[int] | None = None,
    title: str = "",
    point_size: float = 0.6,
    ncols: int | None = None,
) -> Any:
    """Samples after each layer (Figures 1 and 3); orange: rejected in the next layer, blue: resampled.

    Args:
        path: :func:`reproduce.evaluation.path_data`.
        stages: the stages to show (default: all).
        title: the figure title.
        point_size: the marker size.
        ncols: panels per row (default: up to 6).

    Returns:
        The figure.
    """
    import matplotlib.pyplot as plt

    x, rej, res, kinds = path["x"], path["rejected"], path["resampled"], [str(k) for k in path["kind"]]
    stages = list(range(len(x))) if stages is None else [s for s in stages if 0 <= s < len(x)]
    ncols = ncols or min(len(stages), 6)
    nrows = int(np.ceil(len(stages) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.3 * ncols, 2.3 * nrows), squeeze=False)
    allx = x.reshape(-1, x.shape[-1])
    lims = _limits(x[-1])
    lo = np.minimum([lims[0][0], lims[1][0]], np.quantile(allx, 0.01, axis=0))
    hi = np.maximum([lims[0][1], lims[1][1]], np.quantile(allx, 0.99, axis=0))
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, s in zip(axes.flat, stages, strict=False):
        ax.set_axis_on()
        pts = x[s]
        plain = ~(rej[s] | res[s])
        ax.scatter(pts[plain, 0], pts[plain, 1], s=point_size, color=GREY, alpha=0.6, linewidths=0, rasterized=True)
        ax.scatter(pts[res[s], 0], pts[res[s], 1], s=point_size, color=BLUE, alpha=0.9, linewidths=0, rasterized=True)
        ax.scatter(pts[rej[s], 0], pts[rej[s], 1], s=point_size, color=ORANGE, alpha=0.9, linewidths=0, rasterized=True)
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(lo[1], hi[1])
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"{s}: {_stage_label(kinds[s], 0)}", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def figure_mode_weights(path: dict[str, np.ndarray], title: str = "") -> Any:
    """The weight of every mode after each layer, the true weight dashed (Figure 4).

    Args:
        path: :func:`reproduce.evaluation.path_data` with ``mode_weights``.
        title: the axes title.

    Returns:
        The figure.
    """
    import matplotlib.pyplot as plt

    w = path["mode_weights"]
    kinds = [str(k) for k in path["kind"]]
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    steps = np.arange(len(w))
    for j in range(w.shape[1]):
        ax.plot(steps, w[:, j], marker=".", lw=1, label=f"mode {j + 1}")
    ax.axhline(1.0 / w.shape[1], color="k", ls="--", lw=0.8, label="true weight")
    for s, k in enumerate(kinds):
        if k == "rejection":
            ax.axvspan(s - 0.5, s + 0.5, color=ORANGE, alpha=0.08, lw=0)
    ax.set_xticks(steps)
    ax.set_xticklabels(
        [
            "L" if k == "latent" else ("R" if k == "rejection" else ("G" if k == "gradient_flow" else "C"))
            for k in kinds
        ],
        fontsize=7,
    )
    ax.set_xlabel("layer (C: neural JKO step, R: rejection step; shaded: rejection)")
    ax.set_ylabel("mode weight")
    ax.legend(fontsize=6, ncol=3)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def figure_layer_curves(results: dict[str, dict[str, Any]], targets: Sequence[str] | None = None) -> Any:
    """Energy distance (left) and log Z estimate (right) over the layers (Figure 11).

    Args:
        results: :func:`reproduce.results.load_results`.
        targets: the targets to draw, in order (default: all with a JKO-IC layer curve).

    Returns:
        The figure.
    """
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    keys = [t for t in (targets or results) if t in results and results[t].get("layer_curves", {}).get("jkoic")]
    for key in keys:
        curve = results[key]["layer_curves"]["jkoic"]
        label = PV.TARGETS.get(key, key)
        ks = [c["layer"] for c in curve]
        if any("energy" in c for c in curve):
            ax1.semilogy(ks, [c.get("energy", np.nan) for c in curve], marker=".", lw=1, label=label)
        truth = results[key].get("log_z_true")
        vals = np.array([c["log_z"] for c in curve])
        if truth is not None:
            ax2.plot(ks, vals - truth, marker=".", lw=1, label=label)
        elif key == "lgcp":  # no exact log Z: relative to the paper's estimate (Table 2)
            ref = PV.value(2, "lgcp", "jkoic").mean
            ax2.plot(ks, vals - ref, marker=".", lw=1, ls=":", label=f"{label} (minus the paper's {ref})")
    ax1.set_xlabel("layer")
    ax1.set_ylabel("energy distance")
    ax1.set_title("energy distance over the layers", fontsize=10)
    ax2.set_xlabel("layer")
    ax2.set_ylabel("log(Z) estimate - log(Z)")
    ax2.set_yscale("symlog", linthresh=1e-3)
    ax2.set_title("log(Z) estimate over the layers", fontsize=10)
    for ax in (ax1, ax2):
        if ax.get_legend_handles_labels()[0]:  # LGCP has no energy curve
            ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def figure_training_log(log: Sequence[dict[str, Any]], log_z_true: float | None = None) -> Any:
    """A model's training log over the layers: ELBO and importance-weighted log Z with two
    standard errors (left), ESS fraction (right); CNF layers marked (``Sampler.summary`` as a plot).

    Args:
        log: ``model.log``.
        log_z_true: drawn as a line where known.

    Returns:
        The figure.
    """
    import matplotlib.pyplot as plt

    rows = [e for e in log if "log_z_elbo" in e]
    ks = np.array([e["layer"] for e in rows])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.4))
    for key, label, color in (("log_z_elbo", "ELBO", BLUE), ("log_z_importance", "IW log Z", ORANGE)):
        v = np.array([e[key] for e in rows])
        se = np.array([e.get(key + "_se", np.nan) for e in rows])
        ax1.plot(ks, v, marker=".", lw=1, color=color, label=label)
        ax1.fill_between(ks, v - 2 * se, v + 2 * se, color=color, alpha=0.2, lw=0)
    if log_z_true is not None:
        ax1.axhline(log_z_true, color=GREY, ls="--", lw=1, label="log Z")
    ax2.plot(ks, [e["ess_fraction"] for e in rows], marker=".", lw=1, color=BLUE)
    for ax in (ax1, ax2):
        for e in rows:
            if e["kind"] != "rejection":
                ax.axvline(e["layer"], color=GREY, lw=0.5, alpha=0.4)
        ax.set_xlabel("layer (grey: CNF steps)")
    ax1.set_ylabel("estimate after the layer")
    ax1.set_title("log Z estimates on fresh samples", fontsize=10)
    ax1.legend(fontsize=7)
    ax2.set_ylabel("ESS / n")
    ax2.set_ylim(0, 1.02)
    ax2.set_title("effective sample size fraction", fontsize=10)
    fig.tight_layout()
    return fig


def figure_mode_collapse(data: dict[str, np.ndarray]) -> Any:
    """``L(theta) = KL(T_theta # mu_0, nu)`` and the densities along the geodesic (Figure 12).

    Args:
        data: the arrays of the mode-collapse notebook (``theta``, ``kl``, ``density_theta``,
            ``density_x``, ``density_p``, ``target_x``, ``target_p``).

    Returns:
        The figure.
    """
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax1.plot(data["theta"], data["kl"], color=BLUE)
    ax1.set_xlabel(r"$\theta$")
    ax1.set_ylabel(r"$\mathcal{L}(\theta)$")
    ax1.set_title(r"Non-convex loss $\mathcal{L}(\theta)=\mathrm{KL}(\mathcal{T}_\theta\#\mu_0,\nu)$", fontsize=10)
    thetas = data["density_theta"]
    for i, th in enumerate(thetas):
        ax2.plot(data["density_x"][i], data["density_p"][i], lw=1, label=rf"$\theta={th:.2f}$")
    ax2.plot(data["target_x"], data["target_p"], "k--", lw=0.8, label=r"target $\nu$")
    ax2.set_xlim(-1.0, 1.0)
    ax2.set_xlabel("$x$")
    ax2.set_title(r"Density of $\mathcal{T}_\theta\#\mu_0$ for different $\theta$", fontsize=10)
    ax2.legend(fontsize=7)
    fig.tight_layout()
    return fig


def figure_sample_grid(
    rows: Sequence[tuple[str, dict[str, np.ndarray]]], methods: Sequence[str], title: str, point_size: float = 0.5
) -> Any:
    """One row per target, ground truth and ``methods``, first two coordinates (Figure 13).

    Args:
        rows: ``(row label, samples by method)`` per target.
        methods: the method columns.
        title: the figure title.
        point_size: the marker size.

    Returns:
        The figure.
    """
    import matplotlib.pyplot as plt

    cols = ["truth", *methods]
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(2.4 * len(cols), 2.3 * len(rows)), squeeze=False)
    for i, (label, samples) in enumerate(rows):
        truth = samples.get("truth")
        lims = _limits(truth) if truth is not None and len(truth) else None
        for j, name in enumerate(cols):
            ax = axes[i][j]
            if name not in samples:
                ax.text(0.5, 0.5, "not run", ha="center", va="center", transform=ax.transAxes, fontsize=8)
                ax.set_xticks([])
                ax.set_yticks([])
                continue
            _scatter(ax, samples[name], name, point_size)
            if lims is not None:
                ax.set_xlim(*lims[0])
                ax.set_ylim(*lims[1])
            ax.tick_params(labelsize=6)
            if i == 0:
                ax.set_title(METHOD_LABELS.get(name, name), fontsize=9)
        axes[i][0].set_ylabel(label, fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def target_figures(results: dict[str, Any], results_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """One target's own figures, from its results and arrays.

    Args:
        results: the target's results (:attr:`reproduce.results.Study.data`, or one entry of
            :func:`reproduce.results.load_results`), saved to ``results_dir``.
        results_dir: where its arrays lie.

    Returns:
        By name, those the results allow: ``"samples"`` (ground truth and every method,
        Figures 5-10), ``"layers"`` and ``"mode weights"`` (the followed points, Figures 1,
        3, 4), ``"layer curves"`` (Figure 11), ``"mode collapse"`` (Figure 12).
    """
    label = results.get("label", results.get("target", ""))
    out: dict[str, Any] = {}
    samples = load_arrays(results, results_dir, "samples")
    if samples.get("truth") is not None and len(samples) > 1:
        methods = [m for m in samples if m != "truth"]
        means = load_arrays(results, results_dir, "means").get("means")
        out["samples"] = figure_samples(samples, methods, f"{label}: ground truth and samples", means=means)
    path = load_arrays(results, results_dir, "path")
    if path:
        out["layers"] = figure_path(path, None, f"{label}: every layer; orange: rejected next, blue: resampled")
        if "mode_weights" in path:
            out["mode weights"] = figure_mode_weights(path, f"{label}: mode weights over the layers")
    if results.get("layer_curves", {}).get("jkoic"):
        key = str(results.get("target", label))
        out["layer curves"] = figure_layer_curves({key: results}, [key])
    curves = load_arrays(results, results_dir, "curves")
    if curves:
        out["mode collapse"] = figure_mode_collapse(curves)
    return out


def show(fig: Any, display: bool = True, dpi: int = 80) -> None:
    """Show a figure inline in a notebook as a PNG, then close it.

    Args:
        fig: the matplotlib figure.
        display: show it (False: only close it, e.g. in smoke runs whose stored copies stay
            free of images).
        dpi: the resolution.
    """
    import matplotlib.pyplot as plt

    if display:
        from IPython.display import Image
        from IPython.display import display as ipython_display

        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", metadata=_metadata("png"))
        ipython_display(Image(data=buf.getvalue()))
    plt.close(fig)
