"""The importance corrected neural JKO model (Algorithm 2 of the paper).

``Sampler`` stacks neural JKO steps (CNFs) and importance-based rejection steps on a
Gaussian latent, trains them one after the other, and then draws iid samples together
with their exact model log density (Theorem 4.2, Alg. 1, 4), evaluates the density at
arbitrary points (Alg. 6) and estimates log Z.

References:
    J. Hertrich, R. Gruhlke. Importance Corrected Neural JKO Sampling. ICML 2025.
    Alg. 1-6, Theorem 4.2, Remark 4.4, 4.5, E.2, App. E.5.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import Tensor, nn

from .cnf import GradientFlowVelocity, MLPVelocity, integrate, integrate_adaptive, steps_from_nfe
from .config import Config, schedule
from .rejection import RejectionParams, fit_rejection, log_alpha, log_density_factor
from .target import Target, as_target, check_log_prob

__all__ = ["Sampler", "CheckpointError"]

_FORMAT = "jkoic.Sampler"
_FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A file is not a valid jkoic checkpoint (corrupt, truncated, or another format)."""


@dataclass
class _Batch:
    """Samples of one layer with their model log density and (if known) log g."""

    x: Tensor
    log_p: Tensor
    log_g: Tensor | None = None

    def __len__(self) -> int:
        return self.x.shape[0]

    def take(self, idx: slice | Tensor) -> "_Batch":
        return _Batch(self.x[idx], self.log_p[idx], None if self.log_g is None else self.log_g[idx])

    @staticmethod
    def cat(parts: list["_Batch"]) -> "_Batch":
        parts = [p for p in parts if len(p) > 0] or parts[:1]
        lg = None if any(p.log_g is None for p in parts) else torch.cat([p.log_g for p in parts])  # type: ignore[misc]
        return _Batch(torch.cat([p.x for p in parts]), torch.cat([p.log_p for p in parts]), lg)


class _FlowLayer(nn.Module):
    """A neural JKO step (or the fixed gradient-flow initialisation)."""

    def __init__(self, field: nn.Module, kind: str, tau: float, sample_steps: int) -> None:
        super().__init__()
        self.field = field
        self.kind = kind
        self.tau = float(tau)
        self.sample_steps = int(sample_steps)


class _RejectionLayer(nn.Module):
    """An importance-based rejection step with frozen ``log c`` and ``E[alpha]``."""

    kind = "rejection"

    def __init__(self, params: RejectionParams) -> None:
        super().__init__()
        self.params = params


def _atomic_save(obj: Any, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _seed_for(seed: int, *parts: int) -> int:
    """A deterministic 63-bit seed from the run seed and indices."""
    h = seed & 0xFFFFFFFFFFFF
    for p in parts:
        h = (h * 1_000_003 + p + 0x9E3779B9) % (1 << 63)
    return h


#: training points on which ``Config.sample_steps_tol`` compares step counts
_CALIBRATION_POINTS = 2000


def _is_zero_field(field: nn.Module) -> bool:
    """Whether ``field`` is an ``MLPVelocity`` with a zero last layer, i.e. ``v = 0`` everywhere."""
    return (isinstance(field, MLPVelocity) and not bool(field.out.weight.any())
            and not bool(field.out.bias.any()))


def _fewest_steps(field: nn.Module, x: Tensor, steps: int, tol: float) -> tuple[int, float]:
    """The fewest RK4 steps whose map stays within ``tol`` of the ``steps``-step map on ``x``.

    The error is the largest absolute difference over ``x``, in any coordinate, of the end
    point and the exact log-determinant, both forward (sampling) and backward from the
    reference end point (densities at given points, Alg. 6). Late JKO steps often move the
    samples by a few thousandths, where one RK4 step reproduces two to about 2e-5
    (``benchmarks/README.md``), which halves their share of every later draw. The paper,
    too, samples with another discretisation than it trains with (RK4 at about a quarter
    of dopri5's evaluations).

    Returns:
        ``(n_steps, error)``, with error 0.0 when ``steps`` itself is kept.
    """
    if steps <= 1:
        return steps, 0.0
    with torch.no_grad():
        z_ref, ld_ref, _ = integrate(field, x, n_steps=steps, trace="exact")

        def error(s: int) -> float:
            z, ld, _ = integrate(field, x, n_steps=s, trace="exact")
            err = max(float((z - z_ref).abs().max()), float((ld - ld_ref).abs().max()))
            if err > tol:
                return err
            x_back, ld_back, _ = integrate(field, z_ref, n_steps=s, reverse=True, trace="exact")
            return max(err, float((x_back - x).abs().max()), float((ld_back + ld_ref).abs().max()))

        # bisection (the error falls with the step count): log2(steps) trials, not steps - 1
        lo, hi, hi_err = 1, steps, 0.0
        while lo < hi:
            mid = (lo + hi) // 2
            err = error(mid)
            if err <= tol:
                hi, hi_err = mid, err
            else:
                lo = mid + 1
    return hi, hi_err


class Sampler(nn.Module):
    """Importance corrected neural JKO sampler for an unnormalised density.

    Args:
        target: a ``jkoic.targets`` target, or any callable ``log g(x)`` with ``dim``
            (``x`` of shape ``(n, dim)`` to ``(n,)``), or a callable plus ``dim=``.
        config: hyper-parameters (default: ``Config()``); see ``jkoic.preset``.
        dim: the dimension when ``target`` is a plain callable without ``dim``.
        device: ``"cpu"`` or ``"cuda"`` (the target must accept tensors there).
        dtype: floating point type of the model (float32 as the paper).

    Example:
        >>> import torch, jkoic
        >>> def log_g(x):  # a 2-D banana
        ...     return -0.5 * (x[:, 0] ** 2 + 4 * (x[:, 1] - x[:, 0] ** 2) ** 2)
        >>> model = jkoic.Sampler(log_g, jkoic.preset("8peaky", "fast"), dim=2)
        >>> model.fit(seed=0)                       # doctest: +SKIP
        >>> x, log_p = model.sample(10_000, seed=1)  # doctest: +SKIP
    """

    def __init__(
        self,
        target: Target | Callable[[Tensor], Tensor],
        config: Config | None = None,
        *,
        dim: int | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        self.target = as_target(target, dim=dim)
        self.dim = int(self.target.dim)
        self.config = config if config is not None else Config()
        if not isinstance(self.config, Config):
            raise TypeError(f"config must be a jkoic.Config, got {type(self.config).__name__}")
        self.config.validate()
        self.plan = schedule(self.config)
        self.layers = nn.ModuleList()
        self.register_buffer("latent_mean", torch.zeros(self.dim, dtype=dtype))
        self.latent_scale = float(self.config.latent_scale)
        self.seed: int | None = None
        self.log: list[dict[str, Any]] = []
        self._dtype = dtype
        self._buffers_by_layer: dict[int, _Batch] = {}
        self._gen: torch.Generator | None = None
        self.to(device)

    # ------------------------------------------------------------------ basics
    @property
    def device(self) -> torch.device:
        return self.latent_mean.device

    @property
    def dtype(self) -> torch.dtype:
        return self.latent_mean.dtype

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    @property
    def is_trained(self) -> bool:
        return len(self.layers) == len(self.plan)

    def set_sample_steps(self, n_steps: int) -> "Sampler":
        """Use ``n_steps`` RK4 steps in every trained CNF layer (accuracy vs speed)."""
        if not isinstance(n_steps, int) or n_steps < 1:
            raise ValueError(f"n_steps must be a positive int, got {n_steps!r}")
        for layer in self.layers:
            if isinstance(layer, _FlowLayer) and layer.kind == "cnf":
                layer.sample_steps = n_steps
        return self

    def layer_kinds(self) -> list[str]:
        return [layer.kind for layer in self.layers]

    def extra_repr(self) -> str:
        kinds = "".join({"cnf": "C", "rejection": "R", "gradient_flow": "G"}[k] for k, _ in self.plan)
        return f"target={self.target.name!r}, dim={self.dim}, plan={kinds}, trained_layers={self.n_layers}/{len(self.plan)}"

    def _log_g(self, x: Tensor) -> Tensor:
        return check_log_prob(self.target, x)

    def _gradient_flow_field(self, time: float) -> GradientFlowVelocity:
        """The gradient-flow layer's field, with the target's closed-form score and Laplacian if any."""
        closed = getattr(self.target, "score_and_laplacian", None)
        probe = None
        if callable(closed):
            x0 = torch.zeros(1, self.dim, device=self.device, dtype=self.dtype)
            probe = closed(x0)
        if probe is None:
            return GradientFlowVelocity(self._log_g, time)

        def score_laplacian(x: Tensor) -> tuple[Tensor, Tensor]:
            out = closed(x)
            if not (torch.isfinite(out[0]).all() and torch.isfinite(out[1]).all()):
                raise ValueError(f"target {self.target.name!r}: score_and_laplacian gave NaN or inf")
            return out

        return GradientFlowVelocity(self._log_g, time, score_laplacian)

    def _new_generator(self, seed: int) -> torch.Generator:
        g = torch.Generator(device=self.device)
        g.manual_seed(seed)
        return g

    # ------------------------------------------------------------------ sampling
    def _latent(self, n: int, gen: torch.Generator) -> _Batch:
        eps = torch.randn(n, self.dim, generator=gen, device=self.device, dtype=self.dtype)
        x = self.latent_mean + self.latent_scale * eps
        log_p = -0.5 * eps.square().sum(-1) - self.dim * (0.5 * math.log(2 * math.pi) + math.log(self.latent_scale))
        return _Batch(x, log_p)

    def _latent_log_prob(self, x: Tensor) -> Tensor:
        eps = (x - self.latent_mean) / self.latent_scale
        return -0.5 * eps.square().sum(-1) - self.dim * (0.5 * math.log(2 * math.pi) + math.log(self.latent_scale))

    def _trace_eval(self) -> str:
        return self.config.trace_mode(self.dim, evaluation=True)

    def _push(self, layer: _FlowLayer, x: Tensor, gen: torch.Generator, reverse: bool = False) -> tuple[Tensor, Tensor]:
        """Apply a flow layer in chunks; returns (x_out, int div) in the integration direction.

        A velocity field whose last layer is zero (a step the scale search left out) is the
        identity map exactly: it is applied without integrating.
        """
        if _is_zero_field(layer.field):
            return x.clone(), torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        outs, lds = [], []
        for xc in x.split(self.config.chunk_size):
            z, ld, _ = integrate(layer.field, xc, n_steps=layer.sample_steps, reverse=reverse,
                                 trace=self._trace_eval(), n_probes=self.config.n_probes_eval, generator=gen)
            outs.append(z)
            lds.append(ld)
        return torch.cat(outs), torch.cat(lds)

    def _draw(self, k: int, m: int, gen: torch.Generator) -> _Batch:
        """``m`` iid samples of the model after ``k`` layers, using the layer's buffer."""
        buf = self._buffers_by_layer.pop(k, None)
        have = 0 if buf is None else len(buf)
        if have < m:
            # a floor on fresh draws, so that a few extra replacements do not recurse through
            # the stack as tiny batches; kept small, since what is left over is dropped with the
            # buffers at the end of the call (4096 made a 400-point replacement draw of a
            # 2000-point training dataset cost 10x what it needed)
            min_batch = int(self.config.extra.get("min_batch", 256))
            new = self._generate(k, max(m - have, min_batch), gen)
            buf = new if buf is None else _Batch.cat([buf, new])
        assert buf is not None
        if len(buf) > m:
            self._buffers_by_layer[k] = buf.take(slice(m, None))
        return buf.take(slice(0, m))

    def _put_back(self, k: int, b: _Batch) -> None:
        """Return unused iid samples of layer ``k`` to its buffer (Remark 4.5)."""
        if len(b) == 0:
            return
        old = self._buffers_by_layer.pop(k, None)
        self._buffers_by_layer[k] = b if old is None else _Batch.cat([b, old])

    def _generate(self, k: int, m: int, gen: torch.Generator) -> _Batch:
        if k == 0:
            return self._latent(m, gen)
        layer = self.layers[k - 1]
        if isinstance(layer, _FlowLayer):
            b = self._draw(k - 1, m, gen)
            x, ld = self._push(layer, b.x, gen)
            return _Batch(x, b.log_p - ld)
        assert isinstance(layer, _RejectionLayer)
        rate = 1.0 - layer.params.mean_alpha
        # replacements drawn with the proposals, so that a shortfall (a further draw through
        # every layer below) is rare; unused spares are dropped at the end of the call. On
        # the 8 Peaky model (50000 samples, 4 seeds) a margin of 4 sigma pushed 14.39 M
        # point-evaluations through the CNFs, 1 sigma 13.89 M (+1.75 shortfall draws per
        # call), the expected count 13.7 M
        margin = float(self.config.extra.get("spare_sigmas", 1.0))
        spare = int(math.ceil(m * rate + margin * math.sqrt(m * rate + 1.0) + 16))
        pool = self._draw(k - 1, m + spare, gen)
        return self._reject(layer.params, pool.take(slice(0, m)), k - 1, gen, pool.take(slice(m, None)))

    def _reject(self, p: RejectionParams, prop: _Batch, below: int, gen: torch.Generator,
                repl: _Batch | None = None) -> _Batch:
        """One importance-based rejection step (Alg. 1) on proposals ``prop`` of layer ``below``.

        Rejected points are replaced once by fresh iid draws of the same layer, taken first
        from ``repl`` and then from the layer's buffer; unused draws go back to the buffer.
        Returns the new points with their Theorem 4.2 log density (and log g).
        """
        m = len(prop)
        lg = prop.log_g if prop.log_g is not None else self._log_g(prop.x)
        la = log_alpha(lg, prop.log_p, p.log_c)
        u = torch.rand(m, generator=gen, device=self.device, dtype=self.dtype)
        rejected = torch.log(u) > la
        n_rej = int(rejected.sum())
        have = 0 if repl is None else len(repl)
        if n_rej > have:
            extra = self._draw(below, n_rej - have, gen)
            repl = extra if repl is None else _Batch.cat([repl, extra])
        assert repl is not None
        used, rest = repl.take(slice(0, n_rej)), repl.take(slice(n_rej, None))
        self._put_back(below, rest)
        x, log_p_prev = prop.x.clone(), prop.log_p.clone()
        lg = lg.clone()
        x[rejected] = used.x
        log_p_prev[rejected] = used.log_p
        lg[rejected] = used.log_g if used.log_g is not None else self._log_g(used.x)
        la_new = log_alpha(lg, log_p_prev, p.log_c)
        return _Batch(x, log_p_prev + log_density_factor(la_new, p.mean_alpha), lg)

    def _sample_batch(self, n: int, gen: torch.Generator, upto: int | None = None) -> _Batch:
        k = self.n_layers if upto is None else upto
        return self._draw(k, n, gen)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        seed: int | None = None,
        chunk_size: int | None = None,
        progress: bool = False,
        return_log_g: bool = False,
        upto: int | None = None,
    ) -> tuple[Tensor, Tensor] | tuple[Tensor, Tensor, Tensor]:
        """Draw ``n`` iid samples and their model log density ``log p``.

        Args:
            n: number of samples.
            seed: seed of this draw (reproducible on CPU); ``None`` derives one from the
                global torch RNG (so ``torch.manual_seed`` controls it).
            chunk_size: samples per chunk (bounds memory for any ``n``); default 50000.
            progress: show a tqdm bar over the chunks.
            return_log_g: also return the target's ``log g`` at the samples.
            upto: sample the model made of the first ``upto`` layers only (0: the latent).
        Returns:
            ``(x, log_p)`` or ``(x, log_p, log_g)`` with shapes (n, d), (n,), (n,).
        """
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise ValueError(f"n must be a non-negative int, got {n!r}")
        if upto is not None and not 0 <= upto <= self.n_layers:
            raise ValueError(f"upto must lie in [0, {self.n_layers}], got {upto}")
        if seed is None:
            seed = int(torch.randint(0, 2**62, ()).item())
        gen = self._new_generator(seed)
        self._buffers_by_layer.clear()
        chunk = int(chunk_size or 50000)
        from tqdm import tqdm

        xs, lps, lgs = [], [], []
        with tqdm(total=n, desc="sampling", disable=not progress, unit="pt") as bar:
            done = 0
            while done < n:
                m = min(chunk, n - done)
                b = self._sample_batch(m, gen, upto)
                xs.append(b.x)
                lps.append(b.log_p)
                if return_log_g:
                    lgs.append(b.log_g if b.log_g is not None else self._log_g(b.x))
                done += m
                bar.update(m)
        self._buffers_by_layer.clear()
        x = torch.cat(xs) if xs else torch.empty(0, self.dim, device=self.device, dtype=self.dtype)
        lp = torch.cat(lps) if lps else torch.empty(0, device=self.device, dtype=self.dtype)
        if return_log_g:
            lg = torch.cat(lgs) if lgs else torch.empty(0, device=self.device, dtype=self.dtype)
            return x, lp, lg
        return x, lp

    @torch.no_grad()
    def sample_path(self, n: int, *, seed: int | None = None) -> list[dict[str, Any]]:
        """Follow ``n`` samples through every layer (for Figures 1, 3 and 4 of the paper).

        Returns one dict per stage (the latent first, then one per layer) with ``x``,
        ``log_p``, ``kind`` and, for a rejection layer, ``rejected`` (which incoming points
        were rejected, a mask over the previous stage's points) and ``resampled`` (which
        outgoing points are fresh draws from the model below).
        """
        if seed is None:
            seed = int(torch.randint(0, 2**62, ()).item())
        gen = self._new_generator(seed)
        self._buffers_by_layer.clear()
        b = self._latent(n, gen)
        stages: list[dict[str, Any]] = [{"kind": "latent", "x": b.x, "log_p": b.log_p}]
        for k, layer in enumerate(self.layers):
            if isinstance(layer, _FlowLayer):
                x, ld = self._push(layer, b.x, gen)
                b = _Batch(x, b.log_p - ld)
                stages.append({"kind": layer.kind, "x": b.x, "log_p": b.log_p})
                continue
            p = layer.params
            lg = b.log_g if b.log_g is not None else self._log_g(b.x)
            la = log_alpha(lg, b.log_p, p.log_c)
            rejected = torch.log(torch.rand(n, generator=gen, device=self.device, dtype=self.dtype)) > la
            used = self._draw(k, int(rejected.sum()), gen)  # fresh iid draws of the model below
            x, lp, lg = b.x.clone(), b.log_p.clone(), lg.clone()
            x[rejected], lp[rejected] = used.x, used.log_p
            lg[rejected] = used.log_g if used.log_g is not None else self._log_g(used.x)
            b = _Batch(x, lp + log_density_factor(log_alpha(lg, lp, p.log_c), p.mean_alpha), lg)
            stages[-1]["rejected"] = rejected
            stages.append({"kind": "rejection", "x": b.x, "log_p": b.log_p, "resampled": rejected.clone()})
        self._buffers_by_layer.clear()
        return stages

    # ------------------------------------------------------------------ density
    @torch.no_grad()
    def log_prob(self, x: Tensor, *, seed: int = 0, upto: int | None = None) -> Tensor:
        """Model log density at arbitrary points (Alg. 6).

        Runs the CNFs backwards to the latent, then forward through the layers adding each
        CNF's divergence integral and each rejection layer's Theorem 4.2 factor. Exact up
        to the ODE solver and (where ``Config.trace_mode(dim, evaluation=True)`` is
        ``"hutchinson"``) the Hutchinson estimator,
        whose probes are drawn from ``seed``.
        """
        if not isinstance(x, Tensor):
            x = torch.as_tensor(x)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (n, {self.dim}), got {tuple(x.shape)}")
        if not torch.isfinite(x).all():
            raise ValueError(f"x has {int((~torch.isfinite(x)).any(-1).sum())} rows with NaN or inf")
        x = x.to(device=self.device, dtype=self.dtype)
        gen = self._new_generator(seed)
        k_top = self.n_layers if upto is None else upto
        out = []
        for xc in x.split(self.config.chunk_size):
            out.append(self._log_prob_chunk(xc, k_top, gen))
        return torch.cat(out) if out else torch.empty(0, device=self.device, dtype=self.dtype)

    def _log_prob_chunk(self, x: Tensor, k_top: int, gen: torch.Generator) -> Tensor:
        points: list[Tensor] = [x]  # points[j]: the point seen by layer index k_top-1-j
        divs: list[Tensor | None] = []
        for k in range(k_top - 1, -1, -1):
            layer = self.layers[k]
            if isinstance(layer, _FlowLayer):
                z, ld_rev = self._push(layer, points[-1], gen, reverse=True)
                points.append(z)
                divs.append(-ld_rev)  # forward int div along the path from z to the point
            else:
                points.append(points[-1])
                divs.append(None)
        log_p = self._latent_log_prob(points[-1])
        log_g: Tensor | None = None
        for j in range(k_top - 1, -1, -1):  # forward again, layer index k_top-1-j
            layer = self.layers[k_top - 1 - j]
            if isinstance(layer, _FlowLayer):
                log_p = log_p - divs[j]  # type: ignore[operator]
                log_g = None
            else:
                if log_g is None:
                    log_g = self._log_g(points[j])
                la = log_alpha(log_g, log_p, layer.params.log_c)
                log_p = log_p + log_density_factor(la, layer.params.mean_alpha)
        return log_p

    @torch.no_grad()
    def log_z(self, n: int = 50000, *, seed: int | None = None) -> dict[str, float]:
        """log Z estimates from ``n`` model samples (App. E.2).

        Returns ``elbo`` = mean(log g - log p) (the paper's Table 2 estimate, a lower bound
        in expectation), ``importance`` = log mean exp(log g - log p) (unbiased for Z), and
        the Kish effective sample size ``ess`` and ``ess_fraction`` of the weights.
        """
        x, lp, lg = self.sample(n, seed=seed, return_log_g=True)
        return _log_z_stats(lg, lp)

    # ------------------------------------------------------------------ training
    def fit(
        self,
        *,
        seed: int = 0,
        progress: bool = True,
        checkpoint: str | os.PathLike[str] | None = None,
        resume: bool = True,
        callback: Callable[["Sampler", dict[str, Any]], None] | None = None,
        final_stats: bool = True,
    ) -> "Sampler":
        """Train the layers of Algorithm 2 one after the other.

        Args:
            seed: run seed; every training unit (see ``_units``) draws its randomness from a
                generator seeded by ``(seed, first layer index)``, so a resumed run equals an
                uninterrupted one.
            progress: tqdm bars over layers and Adam iterations.
            checkpoint: file written atomically after every completed unit; with
                ``resume=True`` an existing checkpoint is loaded and training continues
                from its last completed layer.
            callback: called as ``callback(model, log_entry)`` after every layer.
            final_stats: log the ELBO, importance log Z and ESS of the finished model (every
                earlier layer gets them from the next unit's dataset); this draws one more
                dataset of ``dataset_size`` samples through the whole stack, so pass
                ``False`` when you draw your own evaluation samples right after.
        Returns:
            ``self``.
        """
        from tqdm import tqdm

        if checkpoint is not None and resume and Path(checkpoint).exists():
            self._load_state(_read_checkpoint(Path(checkpoint)), strict_config=True)
            if self.seed is not None and self.seed != seed:
                raise ValueError(f"checkpoint {checkpoint} was trained with seed {self.seed}, not {seed}; "
                                 "pass resume=False to start over")
        self.seed = seed
        if self.n_layers == 0 and self.config.latent_mode_steps > 0:
            self._fit_latent_mean()
        units = self._units()
        done = self.n_layers
        if not any(u[-1] == done - 1 for u in units) and done > 0:  # a partial unit: redo it
            start = max(u[0] for u in units if u[0] <= done - 1)
            del self.layers[start:]
            self.log = self.log[:start]
        bar = tqdm(total=len(self.plan), initial=self.n_layers, desc=f"jkoic[{self.target.name}]",
                   disable=not progress, unit="layer")
        try:
            for unit in units:
                if unit[0] < self.n_layers:
                    continue
                entries = self._fit_unit(unit, progress)
                if checkpoint is not None:
                    self.save(checkpoint)
                for entry in entries:
                    if callback is not None:
                        callback(self, entry)
                    bar.set_postfix_str(f"{entry['kind']} elbo={entry.get('log_z_elbo_before', float('nan')):.3g}")
                    bar.update(1)
        finally:
            bar.close()
        if final_stats and self.log and "log_z_elbo" not in self.log[-1]:
            b = self._fresh_dataset(self._new_generator(_seed_for(seed, len(self.plan), 7)))
            self._buffers_by_layer.clear()
            assert b.log_g is not None
            self.log[-1].update(_stats_entry(b.log_g, b.log_p))
            if checkpoint is not None:
                self.save(checkpoint)
        return self

    def _units(self) -> list[list[int]]:
        """Training units: a run of rejection layers ending with the next flow layer.

        Each unit starts from one fresh dataset of the model so far; its rejection layers
        are fitted one after the other on that dataset, each applied to it (rejected points
        replaced by fresh draws), and the flow layer that ends the unit trains on the
        result. Checkpoints are written between units, so resuming equals an uninterrupted
        run.
        """
        units: list[list[int]] = []
        current: list[int] = []
        for k, (kind, _) in enumerate(self.plan):
            current.append(k)
            if kind != "rejection":
                units.append(current)
                current = []
        if current:
            units.append(current)
        return units

    def _fit_latent_mean(self) -> None:
        """Latent mean by gradient ascent on log g from 0 (LGCP, Remark E.2)."""
        x = torch.zeros(1, self.dim, device=self.device, dtype=self.dtype, requires_grad=True)
        for _ in range(self.config.latent_mode_steps):
            (grad,) = torch.autograd.grad(self._log_g(x).sum(), x)
            with torch.no_grad():
                x += self.config.latent_mode_lr * grad
        self.latent_mean.copy_(x.detach()[0])

    @torch.no_grad()
    def _fresh_dataset(self, gen: torch.Generator) -> _Batch:
        """``dataset_size`` fresh samples of the model so far, with log p and log g."""
        self._buffers_by_layer.clear()
        data = self._sample_batch(self.config.dataset_size, gen)
        if data.log_g is None:
            data = _Batch(data.x, data.log_p, self._log_g(data.x))
        return data

    def _fit_unit(self, unit: list[int], progress: bool) -> list[dict[str, Any]]:
        gen = self._new_generator(_seed_for(self.seed or 0, unit[0]))
        t0 = time.perf_counter()
        data = self._fresh_dataset(gen)
        t_data = time.perf_counter() - t0
        entries: list[dict[str, Any]] = []
        for k in unit:
            kind, tau = self.plan[k]
            assert data.log_g is not None
            stats = _stats_entry(data.log_g, data.log_p)
            if self.log:  # the dataset is a sample of the model so far: log its quality
                self.log[-1].update(stats)
            entry: dict[str, Any] = {"layer": k, "kind": kind, "tau": float(tau), "dataset_seconds": t_data,
                                     "log_z_elbo_before": stats["log_z_elbo"]}
            t1 = time.perf_counter()
            if kind == "rejection":
                params = fit_rejection(data.log_g, data.log_p, self.config.rejection_rate)
                if self.config.alpha_samples is not None:
                    entry["mean_alpha_dataset"] = params.mean_alpha
                    params = RejectionParams(params.log_c, self._estimate_mean_alpha(params.log_c, k))
                self.layers.append(_RejectionLayer(params))
                entry.update(log_c=params.log_c, mean_alpha=params.mean_alpha)
                with torch.no_grad():
                    data = self._reject(params, data, k, gen)
            elif kind == "gradient_flow":
                field = self._gradient_flow_field(tau)
                self.layers.append(_FlowLayer(field, kind, tau, self.config.gradient_flow_steps))
            else:
                layer, info = self._train_cnf(k, tau, data.x, gen, progress)
                self.layers.append(layer)
                entry.update(info)
            t_data = 0.0
            entry["train_seconds"] = time.perf_counter() - t1
            self.log.append(entry)
            entries.append(entry)
        self._buffers_by_layer.clear()
        return entries

    @torch.no_grad()
    def _estimate_mean_alpha(self, log_c: float, k: int) -> float:
        """``E[alpha]`` of a rejection layer with constant ``log_c``, on fresh samples (Theorem 4.2).

        ``Config.alpha_samples`` fresh samples of the model so far, drawn in chunks with a
        generator of their own and with the sample buffers set aside, so that training draws
        the same numbers with or without this estimate. The frozen ``E[alpha]`` normalises
        the layer's density factor ``alpha + 1 - E[alpha]``: its estimation error is the
        error of the model's total mass, which the dataset estimate (20000 samples: standard
        error about 1e-3 per layer on 8 Modes) leaves at several 1e-3 after 12 layers.
        """
        n = self.config.alpha_samples
        assert n is not None, "called only when Config.alpha_samples is set"
        gen = self._new_generator(_seed_for(self.seed or 0, k, 4))
        total, done = 0.0, 0
        with self._buffers_set_aside():
            while done < n:
                m = min(self.config.dataset_size, n - done)
                b = self._sample_batch(m, gen)
                lg = b.log_g if b.log_g is not None else self._log_g(b.x)
                total += float(log_alpha(lg, b.log_p, log_c).double().exp().sum())
                done += m
        return total / n

    @contextlib.contextmanager
    def _buffers_set_aside(self) -> Iterator[None]:
        """Draw side samples (validation, E[alpha]) without touching the training draws' buffers."""
        saved = self._buffers_by_layer
        self._buffers_by_layer = {}
        try:
            yield
        finally:
            self._buffers_by_layer = saved

    @torch.no_grad()
    def _search_scale(self, field: MLPVelocity, k: int, tau: float, steps: int) -> dict[str, Any]:
        """Scale a trained field by the ``Config.scale_search`` multiple with the lowest JKO objective.

        The objective ``E[-log g(T x) - int div v] + (1/tau) E[int |v|^2]`` (the training loss,
        up to the constant ``E[log p(x)]``) is estimated on ``validation_size`` fresh samples
        of the model so far, drawn with a generator of their own and with the sample buffers
        set aside, so the training's random stream is the same with or without the search.
        All multiples are scored on the same samples. Scaling the last layer scales ``v``.
        """
        with self._buffers_set_aside():
            val = self._sample_batch(self.config.validation_size, self._new_generator(_seed_for(self.seed or 0, k, 2)))
        grid = self.config.scale_search
        assert grid, "called only when Config.scale_search is set"
        weight, bias = field.out.weight.clone(), field.out.bias.clone()
        scores: list[float] = []
        for s in grid:
            field.out.weight.copy_(weight * s)
            field.out.bias.copy_(bias * s)
            total = 0.0
            gen = self._new_generator(_seed_for(self.seed or 0, k, 3))  # same probes for every s
            try:
                for xc in val.x.split(self.config.chunk_size):
                    z, ld, kin = integrate(field, xc, n_steps=steps, trace=self._trace_eval(),
                                           n_probes=self.config.n_probes_eval, kinetic=True, generator=gen)
                    assert kin is not None
                    total += float((-self._log_g(z) - ld + kin / tau).sum())
            except ValueError:  # log g not finite where this multiple moves a point: not a candidate
                total = math.inf
            scores.append(total / len(val) if math.isfinite(total) else math.inf)
        if not any(math.isfinite(v) for v in scores):
            raise FloatingPointError(f"layer {k}: the JKO objective is not finite at any multiple in "
                                     f"Config.scale_search = {grid}")
        scale = grid[min(range(len(scores)), key=scores.__getitem__)]
        field.out.weight.copy_(weight * scale)
        field.out.bias.copy_(bias * scale)
        return {"scale": scale, "scale_objectives": scores}

    def _previous_cnf_field(self) -> MLPVelocity | None:
        """The velocity field of the last trained CNF layer (``None`` before the first)."""
        for layer in reversed(self.layers):
            if isinstance(layer, _FlowLayer) and layer.kind == "cnf" and isinstance(layer.field, MLPVelocity):
                return layer.field
        return None

    def _train_cnf(self, k: int, tau: float, data: Tensor, gen: torch.Generator,
                   progress: bool) -> tuple[_FlowLayer, dict[str, Any]]:
        from tqdm import tqdm

        cfg = self.config
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_seed_for(self.seed or 0, k, 1))
            field = MLPVelocity(self.dim, cfg.hidden_width(self.dim), cfg.n_hidden_layers)
        field.to(device=self.device, dtype=self.dtype)
        previous = self._previous_cnf_field()
        if cfg.warm_start and previous is not None:
            field.load_state_dict(previous.state_dict())
        opt = torch.optim.Adam(field.parameters(), lr=cfg.learning_rate(tau))
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.lr_decay_every, gamma=cfg.lr_decay)
        trace = cfg.trace_mode(self.dim)
        n_data = data.shape[0]
        losses: list[float] = []
        nfes: list[int] = []
        best, best_it, ma = math.inf, 0, None
        it = 0
        n_iters, batch_size = cfg.budget(tau)
        bar = tqdm(range(n_iters), desc=f"layer {k} (cnf, tau={tau:.3g})", leave=False,
                   disable=not progress, unit="it")
        for it in bar:
            idx = torch.randint(0, n_data, (batch_size,), generator=gen, device=self.device)
            x = data[idx]
            if cfg.solver == "rk4":
                z1, ld, kin = integrate(field, x, n_steps=cfg.train_steps, trace=trace,
                                        n_probes=cfg.n_probes_train, kinetic=True, generator=gen)
            else:
                z1, ld, kin, nfe = integrate_adaptive(field, x, trace=trace, n_probes=cfg.n_probes_train,
                                                      atol=cfg.atol, rtol=cfg.rtol, method=cfg.solver,
                                                      adjoint=cfg.adjoint, generator=gen)
                nfes.append(nfe)
            assert kin is not None
            lg = self._log_g(z1)
            loss = (-lg - ld + kin / tau).mean()
            if not torch.isfinite(loss):
                raise FloatingPointError(f"training loss became {loss.item()} at iteration {it} of layer {k}; "
                                         "try a smaller lr or tau0")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip is not None:
                nn.utils.clip_grad_norm_(field.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            lv = float(loss.detach())
            losses.append(lv)
            if it % 50 == 0:
                bar.set_postfix(loss=f"{lv:.4g}")
            if cfg.early_stop_patience is not None:
                w = cfg.early_stop_window
                ma = lv if ma is None else ma + (lv - ma) / w
                if ma < best - 1e-4 * abs(best if math.isfinite(best) else 1.0):
                    best, best_it = ma, it
                elif it - best_it >= cfg.early_stop_patience and it >= w:
                    break
        bar.close()
        if cfg.sample_steps is not None:
            steps = cfg.sample_steps
        elif cfg.solver == "rk4":
            steps = cfg.train_steps
        else:
            tail = nfes[-max(1, len(nfes) // 10):]
            steps = steps_from_nfe(int(sum(tail) / len(tail)), cfg.solver)
        field.eval()
        for p in field.parameters():
            p.requires_grad_(False)
        tail = losses[-min(len(losses), 100):]
        info = {"iterations": it + 1, "final_loss": sum(tail) / len(tail)}
        if cfg.scale_search:
            info.update(self._search_scale(field, k, tau, steps))
        if cfg.sample_steps_tol is not None and self._trace_eval() == "exact":
            steps, info["sample_steps_error"] = _fewest_steps(field, data[:_CALIBRATION_POINTS], steps,
                                                             cfg.sample_steps_tol)
        info["sample_steps"] = steps
        if nfes:
            info["mean_nfe"] = sum(nfes) / len(nfes)
        return _FlowLayer(field, "cnf", tau, steps), info

    # ------------------------------------------------------------------ save / load
    def state(self) -> dict[str, Any]:
        """A checkpoint of plain types and tensors (loads with ``weights_only=True``)."""
        layers: list[dict[str, Any]] = []
        for layer in self.layers:
            if isinstance(layer, _RejectionLayer):
                layers.append({"kind": "rejection", "log_c": float(layer.params.log_c),
                               "mean_alpha": float(layer.params.mean_alpha)})
            elif layer.kind == "gradient_flow":
                layers.append({"kind": "gradient_flow", "tau": layer.tau, "sample_steps": layer.sample_steps})
            else:
                sd = {k: v.detach().cpu().clone() for k, v in layer.field.state_dict().items()}
                layers.append({"kind": "cnf", "tau": layer.tau, "sample_steps": layer.sample_steps, "state_dict": sd})
        return {
            "format": _FORMAT,
            "format_version": _FORMAT_VERSION,
            "jkoic_version": _version(),
            "target": {"name": str(self.target.name), "dim": self.dim,
                       "kwargs": _plain(dict(getattr(self.target, "kwargs", None) or {}))},
            "config": _plain(self.config.to_dict()),
            "seed": self.seed,
            "dtype": str(self.dtype).replace("torch.", ""),
            "latent_mean": self.latent_mean.detach().cpu().clone(),
            "layers": layers,
            "log": _plain(self.log),
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the model atomically (temp file + rename); returns the path."""
        path = Path(path)
        _atomic_save(self.state(), path)
        return path

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        target: Target | Callable[[Tensor], Tensor] | None = None,
        *,
        dim: int | None = None,
        device: str | torch.device = "cpu",
    ) -> "Sampler":
        """Load a saved model. ``target`` defaults to ``jkoic.targets.get(saved name)``."""
        state = _read_checkpoint(Path(path))
        if target is None:
            from .bench import targets as _targets

            name = state["target"]["name"]
            try:
                target = _targets.get(name, **state["target"].get("kwargs", {}))
            except ValueError as e:
                raise ValueError(f"checkpoint {path} is for target {name!r}; pass the target explicitly ({e})") from None
        config = Config.from_dict(state["config"])
        dtype = getattr(torch, state["dtype"], None)
        if not isinstance(dtype, torch.dtype):
            raise CheckpointError(f"{path}: unknown dtype {state['dtype']!r}")
        model = cls(target, config, dim=dim, device=device, dtype=dtype)
        model._load_state(state, strict_config=False, source=str(path))
        return model

    def _load_state(self, state: dict[str, Any], *, strict_config: bool, source: str = "checkpoint") -> None:
        if state["target"]["dim"] != self.dim:
            raise ValueError(f"{source} is for dimension {state['target']['dim']}, the target has {self.dim}")
        if strict_config and state["config"] != _plain(self.config.to_dict()):
            raise ValueError(f"{source} was trained with a different Config; pass resume=False to start over")
        self.layers = nn.ModuleList()
        for i, spec in enumerate(state["layers"]):
            kind = spec.get("kind")
            if kind == "rejection":
                self.layers.append(_RejectionLayer(RejectionParams(float(spec["log_c"]), float(spec["mean_alpha"]))))
            elif kind == "gradient_flow":
                field = self._gradient_flow_field(float(spec["tau"]))
                self.layers.append(_FlowLayer(field, kind, float(spec["tau"]), int(spec["sample_steps"])))
            elif kind == "cnf":
                field = MLPVelocity(self.dim, self.config.hidden_width(self.dim), self.config.n_hidden_layers)
                try:
                    field.load_state_dict(spec["state_dict"])
                except RuntimeError as e:
                    raise CheckpointError(f"{source}: layer {i} weights do not fit the Config ({e})") from None
                for p in field.parameters():
                    p.requires_grad_(False)
                field.eval()
                self.layers.append(_FlowLayer(field, kind, float(spec["tau"]), int(spec["sample_steps"])))
            else:
                raise CheckpointError(f"{source}: layer {i} has unknown kind {kind!r}")
            if i >= len(self.plan) or self.layers[-1].kind != self.plan[i][0]:
                raise CheckpointError(f"{source}: layer {i} ({kind}) does not match the Config's schedule")
        self.layers.to(device=self.device, dtype=self.dtype)
        self.latent_mean.copy_(state["latent_mean"].to(self.latent_mean))
        self.seed = state["seed"]
        self.log = list(state["log"])


def _read_checkpoint(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt zip, truncated file, pickled objects, ...
        raise CheckpointError(f"{path} is not a readable jkoic checkpoint: {type(e).__name__}: {str(e)[:200]}") from None
    if not isinstance(state, dict) or state.get("format") != _FORMAT:
        raise CheckpointError(f"{path} is not a jkoic checkpoint (missing format marker {_FORMAT!r})")
    if state.get("format_version") != _FORMAT_VERSION:
        raise CheckpointError(f"{path} has checkpoint format version {state.get('format_version')}, "
                              f"this jkoic reads version {_FORMAT_VERSION}")
    for key, typ in [("target", dict), ("config", dict), ("layers", list), ("log", list), ("latent_mean", Tensor)]:
        if not isinstance(state.get(key), typ):
            raise CheckpointError(f"{path}: field {key!r} is missing or of the wrong type")
    return state


def _plain(obj: Any) -> Any:
    """Recursively convert to plain Python types (no numpy scalars, no tensors)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj)
    if isinstance(obj, Tensor) and obj.numel() == 1:
        return obj.item()
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"cannot store {type(obj).__name__} in a checkpoint")


def _log_z_stats(log_g: Tensor, log_p: Tensor) -> dict[str, float]:
    from .bench import metrics

    n = log_g.numel()
    ess = float(metrics.effective_sample_size(log_g, log_p))
    return {"elbo": float(metrics.log_z_elbo(log_g, log_p)), "importance": float(metrics.log_z_importance(log_g, log_p)),
            "ess": ess, "ess_fraction": ess / n, "n": n}


def _stats_entry(log_g: Tensor, log_p: Tensor) -> dict[str, float]:
    s = _log_z_stats(log_g, log_p)
    return {"log_z_elbo": s["elbo"], "log_z_importance": s["importance"], "ess_fraction": s["ess_fraction"]}


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("jkoic")
    except Exception:
        return "unknown"
