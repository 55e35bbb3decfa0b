"""The importance corrected neural JKO sampler (Algorithm 2 of the paper): the public facade.

``Sampler`` stacks neural JKO steps (CNFs) and importance-based rejection steps on a Gaussian
latent, trains them one after the other (:mod:`jkoic.training`), and then draws iid samples
together with their exact model log density, evaluates the density at any point and
estimates log Z (:mod:`jkoic.stack`); :mod:`jkoic.checkpoint` saves and loads it.

References:
    J. Hertrich, R. Gruhlke. Importance Corrected Neural JKO Sampling. ICML 2025.
    Alg. 1-6, Theorem 4.2, Remark 4.4, 4.5, E.2, App. E.5.
"""

from __future__ import annotations

import logging
import numbers
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from . import checkpoint, stack, stopping, training
from .checkpoint import CheckpointError
from .config import Config, schedule
from .defaults import auto_config
from .estimators import log_z_stats
from .seeding import check_seed, new_generator
from .stack import KIND_LETTERS, FlowLayer, Latent
from .target import Target, as_target, check_log_prob

__all__ = ["CheckpointError", "Sampler"]

#: one INFO record per fitted layer (no handler: attach one to the ``jkoic`` logger to see them)
_log = logging.getLogger(__name__)


def _count(value: Any, what: str, minimum: int = 0) -> int:
    """``value`` as an int of at least ``minimum`` (numpy ints accepted), else ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < minimum:
        raise ValueError(f"{what} must be an int >= {minimum}, got {value!r}")
    return int(value)


class Sampler(nn.Module):
    """Importance corrected neural JKO sampler for an unnormalised density.

    Args:
        target: a :class:`jkoic.target.Target` (e.g. from ``jkoic.targets.get``), a target
            name, or any callable ``log g(x)`` (``x`` of shape ``(n, dim)`` to ``(n,)``) with a
            ``dim`` attribute or ``dim=`` given.
        config: hyper-parameters; default: :func:`jkoic.defaults.auto_config`, CPU-friendly
            training with the latent and ``tau0`` read off the target and the adaptive
            schedule. :func:`jkoic.preset` gives the paper's settings per target. The model
            keeps its own copy.
        dim: the dimension when ``target`` is a plain callable without ``dim``.
        device: ``"cpu"`` or ``"cuda"`` (the target must accept tensors there).
        dtype: floating point type of the model (float32 as the paper).

    Raises:
        TypeError: if ``config`` is not a :class:`jkoic.Config` or the target cannot be made
            into one.
        ValueError: for an invalid dimension.

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
        target: Target | Callable[[Tensor], Tensor] | str,
        config: Config | None = None,
        *,
        dim: int | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        if config is not None and not isinstance(config, Config):
            raise TypeError(f"config must be a jkoic.Config, got {type(config).__name__}")
        self.target = as_target(target, dim=dim)
        self.dim = int(self.target.dim)
        self.register_buffer("latent_mean", torch.zeros(self.dim, dtype=dtype))
        #: the Laplace latent's precision factor (``Config.latent_covariance="laplace"``; set by fit)
        self.latent_factor: Tensor | None
        self.register_buffer("latent_factor", None)
        self.to(device)
        self._probe_target()
        if config is None:  # the default: settings read off the target (jkoic.defaults)
            config = auto_config(self.target, self.dim, device=self.device, dtype=dtype)
        self.config = config.replace()  # an own, frozen copy
        if self.config.latent_mean is not None:
            if len(self.config.latent_mean) != self.dim:
                raise ValueError(
                    f"Config.latent_mean has {len(self.config.latent_mean)} entries, the target has dim {self.dim}"
                )
            self.latent_mean.copy_(torch.tensor(self.config.latent_mean, dtype=dtype))
        self.plan = schedule(self.config)
        self.layers = nn.ModuleList()
        self.latent_scale = float(self.config.latent_scale)
        self.seed: int | None = None
        self.log: list[dict[str, Any]] = []
        #: why an adaptive or budgeted fit stopped early (None: the whole schedule was trained)
        self.stop_reason: str | None = None

    # ------------------------------------------------------------------ basics
    @property
    def device(self) -> torch.device:
        return self.latent_mean.device

    @property
    def dtype(self) -> torch.dtype:
        return self.latent_mean.dtype

    @property
    def n_layers(self) -> int:
        """Layers trained so far."""
        return len(self.layers)

    @property
    def is_trained(self) -> bool:
        """Whether every layer of the schedule is trained."""
        return len(self.layers) == len(self.plan)

    def latent(self) -> Latent:
        """The Gaussian latent ``N(latent_mean, latent_scale^2 I)`` (or the Laplace latent's covariance)."""
        return Latent(self.latent_mean, self.latent_scale, self.latent_factor)

    def log_g(self, x: Tensor, *, allow_neg_inf: bool = False) -> Tensor:
        """The target's unnormalised log density at ``x``, checked (shape, dtype, finite).

        Args:
            x: points of shape ``(n, dim)``.
            allow_neg_inf: accept ``-inf`` (a density that vanishes at a point).

        Raises:
            ValueError: if the target fails on ``x`` or returns a malformed or non-finite result.
        """
        try:
            return check_log_prob(self.target, x, allow_neg_inf=allow_neg_inf)
        except (IndexError, KeyError, TypeError) as e:
            raise ValueError(
                f"log_prob of target {self.target.name!r} failed on points of shape "
                f"{tuple(x.shape)}: {type(e).__name__}: {e}"
            ) from e

    def _probe_target(self) -> None:
        """Evaluate the target at three points before any training, so that a target that fails
        on ``(n, dim)`` input (a wrong column, a wrong output shape, NaN) is reported at once.
        ``-inf`` is allowed here: a density may vanish at these points."""
        x = torch.zeros(3, self.dim, device=self.device, dtype=self.dtype)
        x[1, 0], x[2, 0] = 1.0, -1.0
        with torch.no_grad():
            self.log_g(x, allow_neg_inf=True)

    def set_sample_steps(self, n_steps: int) -> Sampler:
        """Use ``n_steps`` RK4 steps in every trained CNF layer (accuracy vs speed)."""
        n_steps = _count(n_steps, "n_steps", 1)
        for layer in self.layers:
            if isinstance(layer, FlowLayer) and layer.kind == "cnf":
                layer.sample_steps = n_steps
        return self

    def layer_kinds(self) -> list[str]:
        """The kinds of the trained layers, in order."""
        return [layer.kind for layer in self.layers]

    def extra_repr(self) -> str:
        kinds = "".join(KIND_LETTERS[k] for k, _ in self.plan)
        return (
            f"target={self.target.name!r}, dim={self.dim}, plan={kinds}, "
            f"trained_layers={self.n_layers}/{len(self.plan)}"
        )

    def _top(self, upto: Any) -> int:
        """The number of layers a call uses: all (trained model) or ``upto``.

        Raises:
            RuntimeError: for ``upto=None`` on a model that is not fully trained.
            ValueError: for ``upto`` outside ``[0, n_layers]``.
        """
        if upto is None:
            if not self.is_trained:
                raise RuntimeError(
                    f"the model has {self.n_layers} of {len(self.plan)} layers trained: call fit() first "
                    "(or pass upto=k to use the model made of its first k layers)"
                )
            return self.n_layers
        if isinstance(upto, bool) or not isinstance(upto, numbers.Integral) or not 0 <= int(upto) <= self.n_layers:
            raise ValueError(f"upto must be an int in [0, {self.n_layers}], got {upto!r}")
        return int(upto)

    def _generator(self, seed: Any) -> torch.Generator:
        seed = int(torch.randint(0, 2**62, ()).item()) if seed is None else check_seed(seed)
        return new_generator(seed, self.device)

    # ------------------------------------------------------------------ sampling and density
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
        """Draw ``n`` iid samples and their model log density ``log p`` (Alg. 1, Theorem 4.2).

        Args:
            n: number of samples.
            seed: seed of this draw (reproducible on CPU at a fixed thread count); ``None``
                derives one from the global torch RNG (so ``torch.manual_seed`` controls it).
            chunk_size: samples per chunk (bounds memory for any ``n``); default 50000.
            progress: show a tqdm bar over the chunks.
            return_log_g: also return the target's ``log g`` at the samples.
            upto: sample the model made of the first ``upto`` layers only (0: the latent).

        Returns:
            ``(x, log_p)`` or ``(x, log_p, log_g)`` with shapes (n, d), (n,), (n,).

        Raises:
            ValueError: for a negative or non-integer ``n`` or ``chunk_size``, or a bad seed.
            RuntimeError: on a model that is not fully trained, unless ``upto`` is given.
        """
        from tqdm import tqdm

        n = _count(n, "n")
        chunk = 50000 if chunk_size is None else _count(chunk_size, "chunk_size", 1)
        k = self._top(upto)
        drawer = stack.Drawer(self, self._generator(seed))
        xs, lps, lgs = [], [], []
        with tqdm(total=n, desc="sampling", disable=not progress, unit="pt") as bar:
            done = 0
            while done < n:
                m = min(chunk, n - done)
                b = drawer.draw(k, m)
                xs.append(b.x)
                lps.append(b.log_p)
                if return_log_g:
                    lgs.append(b.log_g if b.log_g is not None else self.log_g(b.x))
                done += m
                bar.update(m)
        x = torch.cat(xs) if xs else torch.empty(0, self.dim, device=self.device, dtype=self.dtype)
        lp = torch.cat(lps) if lps else torch.empty(0, device=self.device, dtype=self.dtype)
        if return_log_g:
            lg = torch.cat(lgs) if lgs else torch.empty(0, device=self.device, dtype=self.dtype)
            return x, lp, lg
        return x, lp

    @torch.no_grad()
    def sample_path(self, n: int, *, seed: int | None = None) -> list[dict[str, Any]]:
        """Follow ``n`` samples through every trained layer (Figures 1, 3 and 4 of the paper).

        Returns:
            One dict per stage (see :func:`jkoic.stack.sample_path`).
        """
        return stack.sample_path(self, _count(n, "n"), self._generator(seed))

    @torch.no_grad()
    def log_prob(self, x: Tensor, *, seed: int = 0, upto: int | None = None) -> Tensor:
        """Model log density at arbitrary points (Alg. 6).

        Exact up to the ODE solver and, where ``Config.trace_mode(dim, evaluation=True)`` is
        ``"hutchinson"``, the Hutchinson estimator, whose probes are drawn from ``seed``.

        Args:
            x: points of shape ``(n, dim)``.
            seed: seed of the Hutchinson probes.
            upto: the density of the model made of the first ``upto`` layers.

        Raises:
            ValueError: for points of the wrong shape or with NaN or inf.
            RuntimeError: on a model that is not fully trained, unless ``upto`` is given.
        """
        if not isinstance(x, Tensor):
            x = torch.as_tensor(x)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (n, {self.dim}), got {tuple(x.shape)}")
        if not torch.isfinite(x).all():
            raise ValueError(f"x has {int((~torch.isfinite(x)).any(-1).sum())} rows with NaN or inf")
        k = self._top(upto)
        x = x.to(device=self.device, dtype=self.dtype)
        return stack.log_prob(self, x, k, self._generator(seed))

    @torch.no_grad()
    def log_z(self, n: int = 50000, *, seed: int | None = None, densities: str = "auto") -> dict[str, float]:
        """log Z estimates from ``n`` model samples (App. E.2).

        Where the sampling densities are Hutchinson estimates (``Config.trace_mode(dim,
        evaluation=True)``), every rejection layer keeps the points whose estimate came out low,
        so that mean(log g - log p) on the sampling paths' densities lies above the model's
        (GMM-200, 12 rejection layers, 1 probe: -0.08 against -0.84 on recomputed densities).
        ``densities="auto"`` then recomputes the samples' densities with :meth:`log_prob`,
        whose probes are independent of the sampling (seed ``seed + 1``); ``"path"`` keeps the
        sampling paths' densities, ``"recomputed"`` always recomputes.

        Returns:
            ``elbo`` = mean(log g - log p) (the paper's Table 2 estimate, a lower bound in
            expectation) with its standard error ``elbo_std_error``, ``importance`` = log
            mean exp(log g - log p) (its exponential is unbiased for Z), the Kish effective
            sample size ``ess`` and ``ess_fraction`` of the weights, and ``n``.

        Raises:
            ValueError: for a bad ``n`` or an unknown ``densities``.
        """
        if densities not in ("auto", "path", "recomputed"):
            raise ValueError(f"densities must be 'auto', 'path' or 'recomputed', got {densities!r}")
        n = _count(n, "n", 1)
        if seed is not None:
            seed = check_seed(seed)
        x, lp, lg = self.sample(n, seed=seed, return_log_g=True)
        if densities == "recomputed" or (densities == "auto" and self.selects_density_noise()):
            lp = self.log_prob(x, seed=0 if seed is None else (seed + 1) % 2**63)
        return log_z_stats(lg, lp)

    def selects_density_noise(self) -> bool:
        """Whether the sampling paths' log densities are biased upwards: Hutchinson estimates
        (see :meth:`log_z`) below at least one rejection layer."""
        noisy = self.config.trace_mode(self.dim, evaluation=True) == "hutchinson"
        return noisy and any(kind == "rejection" for kind in self.layer_kinds())

    # ------------------------------------------------------------------ training
    def fit(
        self,
        *,
        seed: int = 0,
        progress: bool = True,
        checkpoint: str | os.PathLike[str] | None = None,
        resume: bool = True,
        callback: Callable[[Sampler, dict[str, Any]], None] | None = None,
        final_stats: bool = True,
        max_layers: int | None = None,
        max_time: float | None = None,
    ) -> Sampler:
        """Train the layers of Algorithm 2 one after the other.

        With ``Config.adaptive`` the schedule stops at the first block boundary where the
        model, measured on fresh samples, no longer improves by more than the estimates'
        standard errors (:func:`jkoic.training.improved`); ``max_layers`` and ``max_time``
        stop it as well. A stopped schedule still fits the rejection steps of the block it
        stops in (they cost no training), and the model counts as trained with the layers it
        has (``model.plan`` is cut there; ``model.stop_reason`` says why).

        Args:
            seed: run seed; every training unit draws its randomness from a generator seeded
                by ``(seed, first layer index)``, so a resumed run equals an uninterrupted one.
            progress: tqdm bars over layers and Adam iterations.
            checkpoint: file written atomically after every completed unit; with
                ``resume=True`` an existing checkpoint is loaded and training continues from
                its last completed unit.
            resume: continue from ``checkpoint`` if it exists (else start over).
            callback: called as ``callback(model, log_entry)`` after every layer.
            final_stats: log the ELBO, importance log Z and ESS of the finished model on one
                more fresh dataset of ``dataset_size`` samples (every earlier layer gets them
                from the next unit's dataset).
            max_layers: train at most this many layers.
            max_time: start no further CNF step after this many seconds of this call.

        Returns:
            ``self``.

        Raises:
            ValueError: for a bad seed, ``max_layers`` or ``max_time``, or a seed other than
                the one the model (or the checkpoint) was trained with.
            CheckpointError: if ``checkpoint`` is damaged, for another target, or was trained
                with another Config.
        """
        from tqdm import tqdm

        seed = check_seed(seed)
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be callable, got {type(callback).__name__}")
        if max_layers is not None:
            max_layers = _count(max_layers, "max_layers", 1)
        if max_time is not None and (
            isinstance(max_time, bool) or not isinstance(max_time, numbers.Real) or not max_time > 0
        ):
            raise ValueError(f"max_time must be a positive number of seconds, got {max_time!r}")
        if checkpoint is not None and resume and Path(checkpoint).exists():
            _load_resumable(self, checkpoint)
            if self.seed is not None and self.seed != seed:
                raise ValueError(
                    f"checkpoint {checkpoint} was trained with seed {self.seed}, not {seed}; "
                    "pass resume=False to start over"
                )
        elif self.n_layers > 0 and self.seed != seed:
            raise ValueError(
                f"this model's {self.n_layers} layers were trained with seed {self.seed}, not {seed}: "
                "make a new Sampler to train with another seed"
            )
        self.seed = seed
        t0 = time.perf_counter()
        if self.n_layers == 0 and self.config.latent_mode_steps > 0:
            self.latent_mean.copy_(training.fit_latent_mean(self))
        if self.n_layers == 0 and self.config.latent_covariance == "laplace":
            self.latent_factor = training.laplace_precision_factor(self)
        units = training.units(self.plan)
        done = self.n_layers
        if done > 0 and not any(u[-1] == done - 1 for u in units):  # a partial unit: redo it
            start = max(u[0] for u in units if u[0] <= done - 1)
            del self.layers[start:]
            self.log = self.log[:start]
        rule = stopping.StopRule(self, max_layers, max_time, t0)
        bar = tqdm(
            total=len(self.plan),
            initial=self.n_layers,
            desc=f"jkoic[{self.target.name}]",
            disable=not progress,
            unit="layer",
        )
        try:
            for unit in units:
                if unit[0] < self.n_layers:
                    continue
                try:
                    entries = training.fit_unit(self, seed, unit, progress, keep=rule.keep)
                except BaseException:  # leave the model at its last complete unit
                    del self.layers[unit[0] :]
                    self.log = self.log[: unit[0]]
                    raise
                if rule.reason is not None:
                    self.plan = self.plan[: self.n_layers]
                    self.stop_reason = rule.reason
                    bar.total = len(self.plan)
                if checkpoint is not None:
                    self.save(checkpoint)
                for entry in entries:
                    _log.info(stopping.layer_line(entry, self.target.name, len(self.plan)))
                    if callback is not None:
                        callback(self, entry)
                    bar.set_postfix_str(f"{entry['kind']} elbo={entry.get('log_z_elbo_before', float('nan')):.3g}")
                    bar.update(1)
                if rule.reason is not None:
                    break
        finally:
            bar.close()
        if final_stats and self.log and "log_z_elbo" not in self.log[-1]:
            self.log[-1].update(training.final_stats(self, seed, len(self.plan)))
            if checkpoint is not None:
                self.save(checkpoint)
        return self

    def summary(self, seconds: bool = True) -> str:
        """The per-layer report of the training log, one line per layer (see :func:`jkoic.stopping.summary`);
        ``seconds=False`` leaves out the timings (a report that is the same on every machine)."""
        return stopping.summary(self.log, self.stop_reason, self.n_layers, seconds)

    # ------------------------------------------------------------------ save / load
    def state(self) -> dict[str, Any]:
        """The model's checkpoint as a dict (see :mod:`jkoic.checkpoint`)."""
        return checkpoint.state(self)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the model atomically (temp file + rename); returns the path."""
        return checkpoint.write(self, path)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        target: Target | Callable[[Tensor], Tensor] | None = None,
        *,
        dim: int | None = None,
        device: str | torch.device = "cpu",
    ) -> Sampler:
        """Load a saved model.

        Args:
            path: the checkpoint file.
            target: the target it was trained on; default ``jkoic.targets.get(saved name,
                **saved kwargs)`` (a benchmark target).
            dim: the dimension when ``target`` is a plain callable without ``dim``.
            device: where to put the model.

        Raises:
            FileNotFoundError: if there is no file at ``path``.
            CheckpointError: if the file is damaged or foreign, or ``target`` is not the
                target the model was trained on (another dimension or log density).
            ValueError: if ``target`` is omitted and the saved name is not a benchmark target.
        """
        st = checkpoint.read(path)
        if target is None:
            from .bench import targets as _targets  # the benchmark targets' names, looked up on demand

            name = st["target"]["name"]
            try:
                target = _targets.get(name, **st["target"].get("kwargs", {}))
            except (TypeError, ValueError) as e:
                raise ValueError(
                    f"checkpoint {path} is for target {name!r}; pass the target explicitly ({e})"
                ) from None
        try:
            config = Config.from_dict(st["config"])
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"{path}: its Config is invalid ({e})") from None
        dtype = getattr(torch, st["dtype"], None)
        if not isinstance(dtype, torch.dtype):
            raise CheckpointError(f"{path}: unknown dtype {st['dtype']!r}")
        model = cls(target, config, dim=dim, device=device, dtype=dtype)
        checkpoint.load_into(model, st, strict_config=False, source=str(path))
        return model


def _load_resumable(model: Sampler, path: str | os.PathLike[str]) -> None:
    """Load a resumable checkpoint into ``model`` (same target, same Config)."""
    checkpoint.load_into(model, checkpoint.read(path), strict_config=True, source=str(path))
