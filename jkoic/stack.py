"""The layer stack: iid sampling through it (Alg. 1, 4) and its density at any point (Alg. 6).

A model is a Gaussian latent followed by layers, each a flow layer (a neural JKO step, or the
fixed gradient-flow initialisation) or an importance-based rejection layer with frozen
``log c`` and ``E[alpha]``. :class:`Drawer` draws iid samples of the model after any number
of layers together with their exact log density (Theorem 4.2), keeping unused iid draws of
each layer in a buffer for later replacements (Remark 4.5); :func:`log_prob` evaluates the
density at given points.

References:
    J. Hertrich, R. Gruhlke. Importance Corrected Neural JKO Sampling. ICML 2025.
    Alg. 1, 4, 6, Theorem 4.2, Remark 4.5.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from .cnf import MLPVelocity, integrate
from .config import Config
from .rejection import RejectionParams, log_alpha, log_density_factor

__all__ = [
    "KIND_LETTERS",
    "Batch",
    "Drawer",
    "FlowLayer",
    "Latent",
    "RejectionLayer",
    "log_prob",
    "push",
    "sample_path",
]

#: one letter per layer kind, for compact schedules (``"GCCRRR"``)
KIND_LETTERS = {"gradient_flow": "G", "cnf": "C", "rejection": "R"}


@dataclass
class Batch:
    """Samples of one layer with their model log density and (if known) log g."""

    x: Tensor
    log_p: Tensor
    log_g: Tensor | None = None

    def __len__(self) -> int:
        return self.x.shape[0]

    def take(self, idx: slice | Tensor) -> Batch:
        return Batch(self.x[idx], self.log_p[idx], None if self.log_g is None else self.log_g[idx])

    @staticmethod
    def cat(parts: list[Batch]) -> Batch:
        parts = [p for p in parts if len(p) > 0] or parts[:1]
        lg = None if any(p.log_g is None for p in parts) else torch.cat([p.log_g for p in parts])  # type: ignore[misc]
        return Batch(torch.cat([p.x for p in parts]), torch.cat([p.log_p for p in parts]), lg)


class FlowLayer(nn.Module):
    """A neural JKO step (``kind="cnf"``) or the fixed gradient-flow initialisation."""

    def __init__(self, field: nn.Module, kind: str, tau: float, sample_steps: int) -> None:
        super().__init__()
        self.field = field
        self.kind = kind
        self.tau = float(tau)
        self.sample_steps = int(sample_steps)


class RejectionLayer(nn.Module):
    """An importance-based rejection step with frozen ``log c`` and ``E[alpha]`` (Theorem 4.2)."""

    kind = "rejection"

    def __init__(self, params: RejectionParams) -> None:
        super().__init__()
        self.params = params


class Latent:
    """The Gaussian latent ``N(mean, scale^2 I)``, or ``N(mean, scale^2 (L L^T)^{-1})`` with the
    lower Cholesky factor ``L`` of a precision matrix (the Laplace latent)."""

    def __init__(self, mean: Tensor, scale: float, precision_factor: Tensor | None = None) -> None:
        self.mean = mean
        self.scale = float(scale)
        self.factor = precision_factor
        # log det of the precision factor, once per latent (it enters every log density)
        self._log_det = 0.0 if precision_factor is None else torch.log(torch.diagonal(precision_factor)).sum()

    def _log_norm(self, dim: int) -> float | Tensor:
        return dim * (0.5 * math.log(2 * math.pi) + math.log(self.scale)) - self._log_det

    def sample(self, n: int, gen: torch.Generator) -> Batch:
        eps = torch.randn(n, self.mean.shape[0], generator=gen, device=self.mean.device, dtype=self.mean.dtype)
        step = eps
        if self.factor is not None:  # x - mean = scale L^{-T} eps
            step = torch.linalg.solve_triangular(self.factor.T, eps.T, upper=True).T
        x = self.mean + self.scale * step
        return Batch(x, -0.5 * eps.square().sum(-1) - self._log_norm(self.mean.shape[0]))

    def log_prob(self, x: Tensor) -> Tensor:
        eps = (x - self.mean) / self.scale
        if self.factor is not None:
            eps = eps @ self.factor  # L^T (x - mean) / scale, row-wise
        return -0.5 * eps.square().sum(-1) - self._log_norm(x.shape[-1])


class Stack(Protocol):
    """What the sampling functions read of a model (a :class:`jkoic.Sampler`)."""

    layers: nn.ModuleList
    config: Config
    dim: int
    target: Any
    plan: list[tuple[str, float]]
    log: list[dict[str, Any]]

    def latent(self) -> Latent: ...

    def log_g(self, x: Tensor) -> Tensor: ...


def is_zero_field(field: nn.Module) -> bool:
    """Whether ``field`` is an ``MLPVelocity`` with a zero last layer, i.e. ``v = 0`` everywhere."""
    return isinstance(field, MLPVelocity) and not bool(field.out.weight.any()) and not bool(field.out.bias.any())


def push(
    model: Stack, layer: FlowLayer, x: Tensor, gen: torch.Generator, reverse: bool = False
) -> tuple[Tensor, Tensor]:
    """Apply a flow layer in chunks; returns ``(x_out, int div)`` in the integration direction.

    A velocity field whose last layer is zero (a step the scale search left out) is the
    identity map exactly: it is applied without integrating.
    """
    if is_zero_field(layer.field):
        return x.clone(), torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    cfg = model.config
    trace = cfg.trace_mode(model.dim, evaluation=True)
    outs, lds = [], []
    for xc in x.split(cfg.chunk_size):
        z, ld, _ = integrate(
            layer.field,
            xc,
            n_steps=layer.sample_steps,
            reverse=reverse,
            trace=trace,
            n_probes=cfg.n_probes_eval,
            generator=gen,
        )
        outs.append(z)
        lds.append(ld)
    return torch.cat(outs), torch.cat(lds)


class Drawer:
    """iid draws of the model after ``k`` layers, for any ``k``, with one buffer per layer.

    Drawing ``m`` samples of layer ``k`` takes them from the layer's buffer first and draws
    the rest through the layers below. A rejection layer replaces each rejected proposal once
    by a fresh iid draw of the layer below (Alg. 1); draws left unused go back to that
    layer's buffer (Remark 4.5). A drawer lives for one call (a sampling call, a training
    unit, a side estimate): side draws use a drawer of their own, so they leave the random
    stream of the main draws unchanged.
    """

    def __init__(self, model: Stack, gen: torch.Generator) -> None:
        self.model = model
        self.gen = gen
        self.buffers: dict[int, Batch] = {}

    def draw(self, k: int, m: int) -> Batch:
        """``m`` iid samples of the model after ``k`` layers."""
        buf = self.buffers.pop(k, None)
        have = 0 if buf is None else len(buf)
        if have < m:
            new = self._generate(k, max(m - have, self.model.config.min_draw))
            buf = new if buf is None else Batch.cat([buf, new])
        assert buf is not None
        if len(buf) > m:
            self.buffers[k] = buf.take(slice(m, None))
        return buf.take(slice(0, m))

    def put_back(self, k: int, b: Batch) -> None:
        """Return unused iid samples of layer ``k`` to its buffer (Remark 4.5)."""
        if len(b) == 0:
            return
        old = self.buffers.pop(k, None)
        self.buffers[k] = b if old is None else Batch.cat([b, old])

    def _generate(self, k: int, m: int) -> Batch:
        if k == 0:
            return self.model.latent().sample(m, self.gen)
        layer = self.model.layers[k - 1]
        if isinstance(layer, FlowLayer):
            b = self.draw(k - 1, m)
            x, ld = push(self.model, layer, b.x, self.gen)
            return Batch(x, b.log_p - ld)
        assert isinstance(layer, RejectionLayer)
        # spare replacements drawn with the proposals, so that a shortfall (a further draw
        # through every layer below) is rare; unused spares go to the buffer
        rate = 1.0 - layer.params.mean_alpha
        spare = int(math.ceil(m * rate + self.model.config.spare_sigmas * math.sqrt(m * rate + 1.0) + 16))
        pool = self.draw(k - 1, m + spare)
        return self.reject(layer.params, pool.take(slice(0, m)), k - 1, pool.take(slice(m, None)))

    def reject(self, p: RejectionParams, prop: Batch, below: int, repl: Batch | None = None) -> Batch:
        """One importance-based rejection step (Alg. 1) on proposals ``prop`` of layer ``below``.

        Rejected points are replaced once by fresh iid draws of the same layer, taken first
        from ``repl`` and then from the layer's buffer; unused draws go back to the buffer.

        Returns:
            The new points with their Theorem 4.2 log density (and log g).
        """
        m = len(prop)
        log_g = self.model.log_g
        dev, dt = prop.x.device, prop.x.dtype
        lg = prop.log_g if prop.log_g is not None else log_g(prop.x)
        la = log_alpha(lg, prop.log_p, p.log_c)
        u = torch.rand(m, generator=self.gen, device=dev, dtype=dt)
        rejected = torch.log(u) > la
        n_rej = int(rejected.sum())
        have = 0 if repl is None else len(repl)
        if n_rej > have:
            extra = self.draw(below, n_rej - have)
            repl = extra if repl is None else Batch.cat([repl, extra])
        assert repl is not None
        used, rest = repl.take(slice(0, n_rej)), repl.take(slice(n_rej, None))
        self.put_back(below, rest)
        x, log_p_prev = prop.x.clone(), prop.log_p.clone()
        lg = lg.clone()
        x[rejected] = used.x
        log_p_prev[rejected] = used.log_p
        lg[rejected] = used.log_g if used.log_g is not None else log_g(used.x)
        la_new = log_alpha(lg, log_p_prev, p.log_c)
        return Batch(x, log_p_prev + log_density_factor(la_new, p.mean_alpha), lg)

    @torch.no_grad()
    def dataset(self, n: int) -> Batch:
        """``n`` fresh samples of the whole model so far, with log p and log g."""
        data = self.draw(len(self.model.layers), n)
        if data.log_g is None:
            data = Batch(data.x, data.log_p, self.model.log_g(data.x))
        return data


def sample_path(model: Stack, n: int, gen: torch.Generator) -> list[dict[str, Any]]:
    """Follow ``n`` samples through every layer (Figures 1, 3 and 4 of the paper).

    Returns:
        One dict per stage (the latent first, then one per layer) with ``x``, ``log_p``,
        ``kind`` and, for a rejection layer, ``rejected`` (which incoming points were
        rejected, a mask over the previous stage's points) and ``resampled`` (which outgoing
        points are fresh draws from the model below).
    """
    drawer = Drawer(model, gen)
    b = model.latent().sample(n, gen)
    stages: list[dict[str, Any]] = [{"kind": "latent", "x": b.x, "log_p": b.log_p}]
    for k, layer in enumerate(model.layers):
        if isinstance(layer, FlowLayer):
            x, ld = push(model, layer, b.x, gen)
            b = Batch(x, b.log_p - ld)
            stages.append({"kind": layer.kind, "x": b.x, "log_p": b.log_p})
            continue
        p = layer.params
        lg = b.log_g if b.log_g is not None else model.log_g(b.x)
        la = log_alpha(lg, b.log_p, p.log_c)
        rejected = torch.log(torch.rand(n, generator=gen, device=b.x.device, dtype=b.x.dtype)) > la
        used = drawer.draw(k, int(rejected.sum()))  # fresh iid draws of the model below
        x, lp, lg = b.x.clone(), b.log_p.clone(), lg.clone()
        x[rejected], lp[rejected] = used.x, used.log_p
        lg[rejected] = used.log_g if used.log_g is not None else model.log_g(used.x)
        b = Batch(x, lp + log_density_factor(log_alpha(lg, lp, p.log_c), p.mean_alpha), lg)
        stages[-1]["rejected"] = rejected
        stages.append({"kind": "rejection", "x": b.x, "log_p": b.log_p, "resampled": rejected.clone()})
    return stages


def log_prob(model: Stack, x: Tensor, k_top: int, gen: torch.Generator) -> Tensor:
    """Log density of the model after ``k_top`` layers at the points ``x`` (Alg. 6), in chunks.

    Runs the flow layers backwards to the latent, then forward through the layers adding each
    flow's divergence integral and each rejection layer's Theorem 4.2 factor.
    """
    out = [_log_prob_chunk(model, xc, k_top, gen) for xc in x.split(model.config.chunk_size)]
    return torch.cat(out) if out else torch.empty(0, device=x.device, dtype=x.dtype)


def _log_prob_chunk(model: Stack, x: Tensor, k_top: int, gen: torch.Generator) -> Tensor:
    points: list[Tensor] = [x]  # points[j]: the point seen by layer index k_top-1-j
    divs: list[Tensor | None] = []
    for k in range(k_top - 1, -1, -1):
        layer = model.layers[k]
        if isinstance(layer, FlowLayer):
            z, ld_rev = push(model, layer, points[-1], gen, reverse=True)
            points.append(z)
            divs.append(-ld_rev)  # forward int div along the path from z to the point
        else:
            points.append(points[-1])
            divs.append(None)
    log_p = model.latent().log_prob(points[-1])
    log_g: Tensor | None = None
    for j in range(k_top - 1, -1, -1):  # forward again, layer index k_top-1-j
        layer = model.layers[k_top - 1 - j]
        if isinstance(layer, FlowLayer):
            log_p = log_p - divs[j]  # type: ignore[operator]
            log_g = None
        else:
            if log_g is None:
                log_g = model.log_g(points[j])
            la = log_alpha(log_g, log_p, layer.params.log_c)
            log_p = log_p + log_density_factor(la, layer.params.mean_alpha)
    return log_p
