"""The machine a notebook runs on: kernel setup and the description recorded with the results."""

from __future__ import annotations

import os
import platform
import warnings
from pathlib import Path
from typing import Any

import torch

__all__ = ["machine_info", "setup", "source_commit"]


def _cpu_model() -> str:
    """The CPU model name from ``/proc/cpuinfo``, else what :mod:`platform` reports."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return cpu


def machine_info(device: str = "cpu") -> dict[str, Any]:
    """Describe the machine for Table 6 and the results files.

    Args:
        device: the torch device the notebook computes on; a CUDA device is reported with
            its name.

    Returns:
        ``platform``, ``python``, ``cpu`` (model name), ``cores``, ``torch_threads``,
        ``torch`` (version) and ``device``.
    """
    dev = str(device)
    if dev.startswith("cuda") and torch.cuda.is_available():
        dev = f"{dev} ({torch.cuda.get_device_name(torch.device(dev))})"
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "device": dev,
    }


def source_commit() -> str | None:
    """The commit of the checkout the reproduction runs from, recorded with the results.

    Returns:
        The short hash, with ``+dirty`` when tracked files outside the generated outputs
        (``figures/``, ``README.md``) have uncommitted changes; None outside a git checkout.
    """
    import subprocess

    root = Path(__file__).resolve().parent.parent
    git = ["git", "-C", str(root)]
    try:
        head = subprocess.run([*git, "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, timeout=30)
        if head.returncode != 0:
            return None
        status = subprocess.run(
            [*git, "status", "--porcelain", "--untracked-files=no", "--", ".", ":!figures", ":!README.md"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+dirty" if status.stdout.strip() else "")


def setup(threads: int = 0, device: str = "cpu", seed: int = 0) -> dict[str, Any]:
    """Prepare a notebook kernel: torch threads and seed, the Agg backend, quiet warnings.

    Args:
        threads: torch CPU threads; ``<= 0`` takes ``$JKOIC_THREADS`` if set, else all cores.
        device: the device the notebook will use.
        seed: the global torch seed.

    Returns:
        :func:`machine_info` of ``device``.

    Raises:
        RuntimeError: ``device`` is a CUDA device and CUDA is not available.
    """
    if threads <= 0:
        threads = int(os.environ.get("JKOIC_THREADS", "0") or 0) or (os.cpu_count() or 1)
    torch.set_num_threads(int(threads))
    torch.manual_seed(seed)
    import matplotlib

    matplotlib.use("Agg")
    warnings.filterwarnings("ignore", category=UserWarning, module="torch")
    warnings.filterwarnings("ignore", message=".*TqdmWarning.*")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device={device!r} but CUDA is not available; use the cpu or smoke profile")
    return machine_info(device)
