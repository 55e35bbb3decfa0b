"""Where the reproduction reads and writes: paths relative to the repository checkout."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["repo_root", "resolve_path"]


def repo_root() -> Path:
    """The repository checkout holding this package.

    The reproduction runs from a checkout only (the wheel does not ship it), so the root is
    the parent of the ``reproduce/`` folder, wherever the caller's working directory is
    (nbval runs notebooks in their own folder).

    Returns:
        The absolute path of the checkout.
    """
    return Path(__file__).resolve().parent.parent


def resolve_path(path: str | os.PathLike[str]) -> Path:
    """Resolve a path from a profile or a notebook parameter.

    Args:
        path: an absolute path, or one relative to the repository root.

    Returns:
        ``path`` itself if absolute, else ``repo_root() / path``.
    """
    p = Path(path)
    return p if p.is_absolute() else repo_root() / p
