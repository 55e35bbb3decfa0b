"""Checkpoints of a model: plain types and tensors, a checksum, and the target's identity.

A checkpoint is a dict that ``torch.load(weights_only=True)`` reads (no pickled objects): the
format marker and version, the target's identity, the Config, the seed, the latent mean, the
layers (``log c`` and ``E[alpha]`` of a rejection layer, the weights of a CNF), the training
log, and a SHA-256 checksum over all of it. Reading verifies the checksum (``torch.load``
does not check the zip's CRCs, so a flipped byte in the weights would otherwise load) and the
target's identity: its name, its dimension, and its log density at a few fixed points (the
fingerprint), so that a model is never combined with another density of the same dimension.
Files are written atomically.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from ._io import atomic_write, to_plain
from .cnf import MLPVelocity
from .rejection import RejectionParams
from .stack import FlowLayer, RejectionLayer
from .training import gradient_flow_layer

if TYPE_CHECKING:
    from .sampler import Sampler

__all__ = ["CheckpointError", "fingerprint", "read", "state", "write"]

FORMAT = "jkoic.Sampler"
FORMAT_VERSION = 2
#: points at which the fingerprint evaluates log g, and its relative tolerance (float32 on
#: another device or thread count differs in the last digits)
FINGERPRINT_POINTS = 4
FINGERPRINT_RTOL = 1e-4


class CheckpointError(ValueError):
    """A file is not a valid checkpoint of this model (corrupt, truncated, foreign, or for another target)."""


# ----------------------------------------------------------------------------- target identity


def fingerprint(target: Any, dim: int, dtype: torch.dtype = torch.float32) -> list[float | None]:
    """``log g`` at ``FINGERPRINT_POINTS`` fixed points (seeded ``N(0, I)`` draws), ``None`` if not finite.

    Returns ``[]`` when the target cannot be evaluated there (it raises).
    """
    gen = torch.Generator().manual_seed(20250713)
    x = torch.randn(FINGERPRINT_POINTS, dim, generator=gen, dtype=torch.float64).to(dtype)
    try:
        with torch.no_grad():
            values = target.log_prob(x)
        values = torch.as_tensor(values).detach().double().cpu().reshape(-1).tolist()
    except Exception:  # noqa: BLE001 - a target that cannot be evaluated there has no fingerprint
        return []
    if len(values) != FINGERPRINT_POINTS:
        return []
    return [v if math.isfinite(v) else None for v in values]


def _same_fingerprint(a: list[float | None], b: list[float | None]) -> bool:
    if not a or not b:  # one side could not be evaluated: nothing to compare
        return True
    if len(a) != len(b):
        return False
    for u, v in zip(a, b, strict=False):
        if (u is None) != (v is None):
            return False
        if u is not None and v is not None and abs(u - v) > FINGERPRINT_RTOL * (1.0 + abs(u)):
            return False
    return True


def check_target(saved: dict[str, Any], model: Sampler, source: str) -> None:
    """Raise :class:`CheckpointError` if ``saved`` (a checkpoint's target record) is another target than the model's."""
    if saved["dim"] != model.dim:
        raise CheckpointError(
            f"{source} is for a target of dimension {saved['dim']} "
            f"({saved['name']!r}), the model's target {model.target.name!r} has {model.dim}"
        )
    mine = fingerprint(model.target, model.dim, model.dtype)
    if not _same_fingerprint(saved["fingerprint"], mine):
        raise CheckpointError(
            f"{source} was trained on target {saved['name']!r}, whose log density differs from that of the "
            f"given target {model.target.name!r} at the checkpoint's fixed points ({saved['fingerprint']} vs "
            f"{mine}): load it with the target it was trained on"
        )
    if saved["name"] != str(model.target.name):
        warnings.warn(
            f"{source} was trained on a target named {saved['name']!r}, loaded with one named "
            f"{model.target.name!r} whose log density agrees at the checkpoint's fixed points",
            stacklevel=3,
        )


# ----------------------------------------------------------------------------- checksum


def _digest(obj: Any, h: Any) -> None:
    """Feed a canonical encoding of ``obj`` (dicts by sorted key, tensors by dtype, shape and bytes) to ``h``."""
    if isinstance(obj, dict):
        h.update(b"{")
        for k in sorted(obj):
            h.update(json.dumps(str(k)).encode())
            _digest(obj[k], h)
        h.update(b"}")
    elif isinstance(obj, (list, tuple)):
        h.update(b"[")
        for v in obj:
            _digest(v, h)
        h.update(b"]")
    elif isinstance(obj, Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    else:
        h.update(json.dumps(obj, allow_nan=True).encode())


def checksum(st: dict[str, Any]) -> str:
    """SHA-256 of a checkpoint's contents (everything but the checksum itself)."""
    h = hashlib.sha256()
    _digest({k: v for k, v in st.items() if k != "checksum"}, h)
    return h.hexdigest()


# ----------------------------------------------------------------------------- writing


def state(model: Sampler) -> dict[str, Any]:
    """A checkpoint of the model: plain types and tensors (loads with ``weights_only=True``)."""
    layers: list[dict[str, Any]] = []
    for layer in model.layers:
        if isinstance(layer, RejectionLayer):
            layers.append(
                {"kind": "rejection", "log_c": float(layer.params.log_c), "mean_alpha": float(layer.params.mean_alpha)}
            )
        elif layer.kind == "gradient_flow":
            layers.append({"kind": "gradient_flow", "tau": layer.tau, "sample_steps": layer.sample_steps})
        else:
            sd = {k: v.detach().cpu().clone() for k, v in layer.field.state_dict().items()}
            layers.append({"kind": "cnf", "tau": layer.tau, "sample_steps": layer.sample_steps, "state_dict": sd})
    st: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "jkoic_version": _version(),
        "target": {
            "name": str(model.target.name),
            "dim": model.dim,
            "kwargs": to_plain(dict(getattr(model.target, "kwargs", None) or {})),
            "fingerprint": fingerprint(model.target, model.dim, model.dtype),
        },
        "config": to_plain(model.config.to_dict()),
        "seed": model.seed,
        "dtype": str(model.dtype).replace("torch.", ""),
        "latent_mean": model.latent_mean.detach().cpu().clone(),
        "layers": layers,
        "plan_length": len(model.plan),
        "stop_reason": model.stop_reason,
        "log": to_plain(model.log),
    }
    if model.latent_factor is not None:  # the Laplace latent (absent otherwise: older files stay valid)
        st["latent_factor"] = model.latent_factor.detach().cpu().clone()
    st["checksum"] = checksum(st)
    return st


def write(model: Sampler, path: str | os.PathLike[str]) -> Path:
    """Write the model's checkpoint to ``path`` atomically; returns the path."""
    st = state(model)
    return atomic_write(path, lambda f: torch.save(st, f))


# ----------------------------------------------------------------------------- reading

_FIELDS: dict[str, type | tuple[type, ...]] = {
    "target": dict,
    "config": dict,
    "layers": list,
    "log": list,
    "latent_mean": Tensor,
    "dtype": str,
    "seed": (int, type(None)),
    "plan_length": int,
    "stop_reason": (str, type(None)),
    "checksum": str,
}


def read(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and verify a checkpoint file (format, version, fields, checksum).

    Raises:
        FileNotFoundError: if there is no file at ``path``.
        CheckpointError: if the file is unreadable, foreign, of another version, incomplete,
            or its contents do not match its checksum.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        st = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt zip, truncated file, pickled objects, ...
        raise CheckpointError(
            f"{path} is not a readable jkoic checkpoint: {type(e).__name__}: {str(e)[:200]}"
        ) from None
    if not isinstance(st, dict) or st.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a jkoic checkpoint (missing format marker {FORMAT!r})")
    if st.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {st.get('format_version')}, "
            f"this jkoic reads version {FORMAT_VERSION}"
        )
    for key, typ in _FIELDS.items():
        if key not in st:
            raise CheckpointError(f"{path}: field {key!r} is missing")
        if not isinstance(st[key], typ):
            raise CheckpointError(f"{path}: field {key!r} has type {type(st[key]).__name__}")
    for key in ("name", "dim", "fingerprint"):
        if key not in st["target"]:
            raise CheckpointError(f"{path}: field 'target' lacks {key!r}")
    if not isinstance(st.get("latent_factor", None), (Tensor, type(None))):
        raise CheckpointError(f"{path}: field 'latent_factor' has type {type(st['latent_factor']).__name__}")
    if checksum(st) != st["checksum"]:
        raise CheckpointError(f"{path} is damaged: its contents do not match its checksum")
    return st


def load_into(model: Sampler, st: dict[str, Any], *, strict_config: bool, source: str) -> None:
    """Rebuild the model's layers, latent mean, seed and log from a verified checkpoint.

    Raises:
        CheckpointError: if the checkpoint is for another target, (with ``strict_config``) was
            trained with another Config, or its layers do not fit the model's schedule.
    """
    check_target(st["target"], model, source)
    if strict_config and st["config"] != to_plain(model.config.to_dict()):
        raise CheckpointError(f"{source} was trained with a different Config; pass resume=False to start over")
    full = len(model.plan)
    if not len(st["layers"]) <= st["plan_length"] <= full:
        raise CheckpointError(
            f"{source}: plan_length {st['plan_length']} does not fit its {len(st['layers'])} layers and the "
            f"Config's schedule of {full}"
        )
    model.plan = model.plan[: st["plan_length"]]
    layers = nn.ModuleList()
    for i, spec in enumerate(st["layers"]):
        kind = spec.get("kind") if isinstance(spec, dict) else None
        try:
            if kind == "rejection":
                layers.append(RejectionLayer(RejectionParams(float(spec["log_c"]), float(spec["mean_alpha"]))))
            elif kind == "gradient_flow":
                layers.append(gradient_flow_layer(model, float(spec["tau"]), int(spec["sample_steps"])))
            elif kind == "cnf":
                field = MLPVelocity(model.dim, model.config.hidden_width(model.dim), model.config.n_hidden_layers)
                field.load_state_dict(spec["state_dict"])
                for p in field.parameters():
                    p.requires_grad_(False)
                field.eval()
                layers.append(FlowLayer(field, kind, float(spec["tau"]), int(spec["sample_steps"])))
            else:
                raise CheckpointError(f"{source}: layer {i} has unknown kind {kind!r}")
        except (KeyError, TypeError, RuntimeError, ValueError) as e:
            if isinstance(e, CheckpointError):
                raise
            raise CheckpointError(f"{source}: layer {i} ({kind}) is malformed: {type(e).__name__}: {e}") from None
        if i >= len(model.plan) or layers[-1].kind != model.plan[i][0]:
            raise CheckpointError(f"{source}: layer {i} ({kind}) does not match the Config's schedule")
    if tuple(st["latent_mean"].shape) != (model.dim,):
        raise CheckpointError(f"{source}: latent_mean has shape {tuple(st['latent_mean'].shape)}, not ({model.dim},)")
    model.layers = layers.to(device=model.device, dtype=model.dtype)
    factor = st.get("latent_factor")
    if factor is not None and tuple(factor.shape) != (model.dim, model.dim):
        raise CheckpointError(
            f"{source}: latent_factor has shape {tuple(factor.shape)}, not ({model.dim}, {model.dim})"
        )
    laplace = model.config.latent_covariance == "laplace"
    if (factor is not None and not laplace) or (factor is None and laplace and st["layers"]):
        raise CheckpointError(
            f"{source}: a latent_factor {'is' if factor is not None else 'is not'} stored, but the Config's "
            f"latent_covariance is {model.config.latent_covariance!r}"
        )
    model.latent_mean.copy_(st["latent_mean"].to(model.latent_mean))
    model.latent_factor = None if factor is None else factor.to(model.latent_mean)
    model.seed = st["seed"]
    model.stop_reason = st["stop_reason"]
    model.log = list(st["log"])


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("jkoic")
    except Exception:  # noqa: BLE001 - not installed (a source tree on sys.path)
        return "unknown"
