"""Locating, loading and fetching the data files the benchmark targets need.

The files are public data and benchmark constants (see ``data/README.md``):

* ``pines.csv`` -- the Finnish pines point pattern of the LGCP target;
* ``gmm40_50d_means.csv`` -- the 40 x 50 means of the GMM40-50D benchmark;
* ``gmm_means/gmm10_means_id{i}_{d}.csv`` -- the five 10 x d mean sets of GMM-d.

They are not part of the repository.  The package looks for them in the *data
directory* (:func:`data_dir`): ``$JKOIC_DATA_DIR`` if that environment variable is set;
otherwise the checkout's ``data/`` folder when the package runs from a source checkout;
otherwise, for an installed package, the per-user cache ``$XDG_CACHE_HOME/jkoic/data``
(``~/.cache/jkoic/data``).  :func:`fetch` (``make data``, or ``python -m jkoic.bench.data``)
fills the data directory, either by copying from a local source directory or by
downloading the public files and checking their sha256 checksums.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tomllib
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_write
from ._pickles import load_array_pickle

__all__ = [
    "ENV_VAR",
    "FILES",
    "DataFile",
    "data_dir",
    "data_path",
    "default_source",
    "fetch",
    "load_csv",
    "main",
    "sha256_of",
    "user_cache_dir",
]

ENV_VAR = "JKOIC_DATA_DIR"
"""Environment variable that overrides the default data directory."""

# The directory holding the ``jkoic`` package: the checkout's root when the package runs
# from a source checkout, ``site-packages`` when it is installed.
_PACKAGE_PARENT = Path(__file__).resolve().parents[2]

#: Raw URL of the pines point pattern (DDS repository of Vargas et al., 2023).
PINES_URL = "https://raw.githubusercontent.com/franciscovargas/denoising_diffusion_samplers/main/dds_data/pines.csv"
#: Raw URL prefix of the authors' repository (github johertrich/neural_JKO_ic).
JKO_IC_RAW_URL = "https://raw.githubusercontent.com/johertrich/neural_JKO_ic/main"

GMM_DIMS: tuple[int, ...] = (10, 20, 50, 100, 200)
GMM_MEANS_IDS: tuple[int, ...] = (1, 2, 3, 4, 5)

_FIX_HINT = f"run `make data` (or `python -m jkoic.bench.data`) or set {ENV_VAR} to a directory holding the data files"

# sha256 of the files exactly as the project stores them (CSV, float32 values
# written with "%.9g", comma separated, one row per line, trailing newline).
_SHA256: dict[str, str] = {
    "pines.csv": "5ad41bb1bf4313f72e2d1c44c5b3fd909382902bf5088fc35d39526de73e95dd",
    "gmm40_50d_means.csv": "c6971dbce1f57e2e102b4d2d1700de1838627067148aac4fc1428889c95d16e0",
    "gmm_means/gmm10_means_id1_10.csv": "eba6619f0fb960f0d5a3e91a3d96a46805b82adbe4f0516faeeff956a5f1e597",
    "gmm_means/gmm10_means_id1_20.csv": "22531ed7a68047f5923750517073dde74eefa39c66fc537b5bb75b196ff74d8d",
    "gmm_means/gmm10_means_id1_50.csv": "d01e6a7bcb3456d638a175a61a8f0d72eda8377e57ac545efcce17a85bc34a65",
    "gmm_means/gmm10_means_id1_100.csv": "61cc1b0d200f07c45b453c786eb6f4a43cab7ad9d17e2fe589f8c82fc22e68fb",
    "gmm_means/gmm10_means_id1_200.csv": "e18459dc65bc767497814a16efe9c06cb85a3384a7d8fb98e1586df5cda99e1a",
    "gmm_means/gmm10_means_id2_10.csv": "1476ce0d98f49f78d828efcd9a255fb67b878d45472b007e12453e9f3557d49a",
    "gmm_means/gmm10_means_id2_20.csv": "9eea749c6f7edc2926f03c3e5893b907d342d6bd53b5de4a2ca511f5f4a0691e",
    "gmm_means/gmm10_means_id2_50.csv": "5d31277d180c46b3c1514b2fde24f525b23b1f836f2e874c8d2e43f7e81c25cc",
    "gmm_means/gmm10_means_id2_100.csv": "050bcf3a94f90c4e61054e3b9d0fbd94559155d6181dcc3b02bb8fb67aee9dc7",
    "gmm_means/gmm10_means_id2_200.csv": "d2b29c68780495c53f37c22ef494f2b05801d5b475a239345a7594ad6d51bf41",
    "gmm_means/gmm10_means_id3_10.csv": "fc2eb4c485c780ee3e5715d77c2795efab82712538bc1cfc745ca54f31a36120",
    "gmm_means/gmm10_means_id3_20.csv": "e772cf2a08f2f066c633d68781b277a4450562cca37dba721f0c4e3911b1979f",
    "gmm_means/gmm10_means_id3_50.csv": "7962ba3c9de653fd82bc75a1e2270f39c42aa375e55f8f8937b5512e14758a3b",
    "gmm_means/gmm10_means_id3_100.csv": "fe5f33f4832c02bd40a37f4b77668143e615d68cad1ab0cd8fdd68ba41b97e8e",
    "gmm_means/gmm10_means_id3_200.csv": "ec3e08ae67c5ec00ac342b58b4be281aa58f0cacabe506cfa251a262d0460fe7",
    "gmm_means/gmm10_means_id4_10.csv": "30357940bf0191f8f7f16a883105374a3ac8da666ca261e802c6a63b790636e3",
    "gmm_means/gmm10_means_id4_20.csv": "7ca4d47da901b1f0201e0fa4353c524b60e13e5c1bb6f2703fd55b260e1dcda9",
    "gmm_means/gmm10_means_id4_50.csv": "b6f94c2e7c8ef75a39cf24d53c4cbed773274f89b311eed8bed20a180d0c55fd",
    "gmm_means/gmm10_means_id4_100.csv": "048bad8c147fb361fdcdb399e02cd4838fe2b5c45fd0984c6910b27c0aa8b5ee",
    "gmm_means/gmm10_means_id4_200.csv": "e2fbc89c8488d9ca90ad62f060c44033ffecac34c94fde8e4241997d29e3d005",
    "gmm_means/gmm10_means_id5_10.csv": "af097bd62c9d20ca4190fa9597310bcbe4980e230e1621bf328081d0c89ed02b",
    "gmm_means/gmm10_means_id5_20.csv": "f8c44a98a63d94e275822c00fa55398b59f1bf61282d025e95544974b8461a46",
    "gmm_means/gmm10_means_id5_50.csv": "ce857e546e06b9af675e56ed887bddcad23e54da2b39cf4b44ba051b7efce0f9",
    "gmm_means/gmm10_means_id5_100.csv": "ac8a909ccccca947c28b47eb8316595960d3d2398d0b210d31b1e53364d0fd8b",
    "gmm_means/gmm10_means_id5_200.csv": "5e9d2c713d66a63c4f7556f1d0953958bb77d13ab7c22084cc183492a7073cc9",
}


@dataclass(frozen=True)
class DataFile:
    """One file of the data directory.

    Attributes:
        name: path relative to the data directory (``/``-separated).
        url: public URL the file (or the pickle it is converted from) is downloaded from.
        kind: ``"csv"`` (downloaded as is), ``"pickle_array"`` (a pickled array) or
            ``"pickle_means"`` (a pickled ``{"means": [array, ...]}`` dict as written by
            the authors' code); the pickles are converted to CSV.
        shape: expected ``(rows, columns)`` of the CSV.
        sha256: checksum of the CSV as stored in the data directory.
    """

    name: str
    url: str
    kind: str
    shape: tuple[int, int]
    sha256: str


def _build_manifest() -> dict[str, DataFile]:
    files = [
        DataFile("pines.csv", PINES_URL, "csv", (127, 2), _SHA256["pines.csv"]),
        DataFile(
            "gmm40_50d_means.csv",
            f"{JKO_IC_RAW_URL}/data/GMM40_mean.pck",
            "pickle_array",
            (40, 50),
            _SHA256["gmm40_50d_means.csv"],
        ),
    ]
    for i in GMM_MEANS_IDS:
        for d in GMM_DIMS:
            name = gmm_means_name(i, d)
            files.append(
                DataFile(
                    name,
                    f"{JKO_IC_RAW_URL}/data/mixture_means/mixture_means{i}_{d}.pck",
                    "pickle_means",
                    (10, d),
                    _SHA256[name],
                )
            )
    return {f.name: f for f in files}


def gmm_means_name(means_id: int, dim: int) -> str:
    """Relative file name of the GMM-``dim`` mean set number ``means_id``."""
    return f"gmm_means/gmm10_means_id{means_id}_{dim}.csv"


FILES: dict[str, DataFile] = _build_manifest()
"""All files of the data directory, keyed by their relative name."""


# ----------------------------------------------------------------------------- locating


def _checkout_root() -> Path | None:
    """The source checkout the package runs from, or ``None`` for an installed package.

    A checkout is recognised by its ``pyproject.toml`` beside the ``jkoic`` package, naming
    the project ``jkoic``.
    """
    try:
        meta = tomllib.loads((_PACKAGE_PARENT / "pyproject.toml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    project = meta.get("project")
    return _PACKAGE_PARENT if isinstance(project, dict) and project.get("name") == "jkoic" else None


def user_cache_dir() -> Path:
    """The per-user data directory: ``$XDG_CACHE_HOME/jkoic/data``, by default ``~/.cache/jkoic/data``.

    A relative ``$XDG_CACHE_HOME`` is ignored, as the XDG base directory specification asks.
    """
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "jkoic" / "data"


def data_dir() -> Path:
    """The data directory, the first of:

    1. ``$JKOIC_DATA_DIR`` if set and non-empty (the Makefile sets it to the checkout's
       ``data/``);
    2. the checkout's ``data/`` folder, when the package runs from a source checkout (a
       ``pyproject.toml`` naming ``jkoic`` beside the package);
    3. :func:`user_cache_dir` (an installed package has no checkout to hold the files).

    The directory need not exist; :func:`fetch` creates it.
    """
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return Path(env).expanduser()
    root = _checkout_root()
    return root / "data" if root is not None else user_cache_dir()


def default_source() -> Path:
    """Default local source of :func:`fetch`: ``<checkout>/../shared/data``."""
    return Path(__file__).resolve().parents[3] / "shared" / "data"


def data_path(name: str | os.PathLike[str]) -> Path:
    """Path of the data file ``name`` (relative to :func:`data_dir`, or absolute).

    Raises:
        FileNotFoundError: if the file does not exist; the message names the file, the
            directory searched and how to obtain the data.
    """
    p = Path(name)
    if p.is_absolute():
        if not p.is_file():
            raise FileNotFoundError(f"data file {str(p)!r} does not exist")
        return p
    directory = data_dir()
    path = directory / p
    if not path.is_file():
        where = f"${ENV_VAR}" if os.environ.get(ENV_VAR, "").strip() else "the default data directory"
        raise FileNotFoundError(f"data file {str(name)!r} not found in {where} {str(directory)!r}; {_FIX_HINT}.")
    return path


# ----------------------------------------------------------------------------- loading


def _parse_csv(text: str, label: str) -> np.ndarray:
    rows: list[list[float]] = []
    ncols: int | None = None
    for lineno, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        fields = line.split(",")
        if ncols is None:
            ncols = len(fields)
        elif len(fields) != ncols:
            raise ValueError(
                f"corrupt CSV file {label}: line {lineno} has {len(fields)} columns, "
                f"expected {ncols} like the first line"
            )
        try:
            values = [float(f) for f in fields]
        except ValueError:
            raise ValueError(f"corrupt CSV file {label}: line {lineno} is not numeric: {line[:80]!r}") from None
        if not all(np.isfinite(values)):
            raise ValueError(f"corrupt CSV file {label}: line {lineno} holds a non-finite value")
        rows.append(values)
    if not rows:
        raise ValueError(f"corrupt CSV file {label}: it is empty (no numeric rows)")
    return np.asarray(rows, dtype=np.float64)


def load_csv(name: str | os.PathLike[str], shape: tuple[int | None, int | None] | None = None) -> np.ndarray:
    """Load a headerless, comma separated numeric data file as a 2-D float64 array.

    Args:
        name: file name relative to :func:`data_dir` (e.g. ``"pines.csv"``) or an
            absolute path.
        shape: optional expected ``(rows, columns)``; ``None`` entries are not checked.
            For the known files of :data:`FILES` the expected shape is checked by default.

    Returns:
        The values, shape ``(rows, columns)``, float64.

    Raises:
        FileNotFoundError: if the file is missing (see :func:`data_path`).
        ValueError: if the file is empty, has a non-numeric or non-finite entry, rows of
            different length, or not the expected shape; the message names the file.
    """
    path = data_path(name)
    label = repr(str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"corrupt CSV file {label}: not a UTF-8 text file") from None
    arr = _parse_csv(text, label)
    if shape is None and str(name) in FILES:
        shape = FILES[str(name)].shape
    if shape is not None:
        for axis, (want, got) in enumerate(zip(shape, arr.shape, strict=False)):
            if want is not None and want != got:
                what = "rows" if axis == 0 else "columns"
                raise ValueError(
                    f"corrupt CSV file {label}: expected shape {tuple(shape)}, got {arr.shape} "
                    f"(wrong number of {what}); {_FIX_HINT}"
                )
    return arr


# ----------------------------------------------------------------------------- fetching


def sha256_of(data: bytes) -> str:
    """Hex sha256 digest of ``data``."""
    return hashlib.sha256(data).hexdigest()


def _file_sha256(path: Path) -> str | None:
    try:
        return sha256_of(path.read_bytes())
    except OSError:
        return None


def _urlopen(url: str, timeout: float = 60.0) -> Any:
    """Open ``url`` (indirection so tests can replace the opener)."""
    return urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 (fixed https / file URLs)


def _download(url: str) -> bytes:
    try:
        with _urlopen(url) as resp:
            return resp.read()
    except Exception as exc:  # network errors come in many types
        raise RuntimeError(
            f"could not download {url}: {exc}. Without network access, supply a local copy: "
            f"`python -m jkoic.bench.data --source DIR` with DIR holding the data files."
        ) from exc


def _unpickle(data: bytes, label: str) -> Any:
    try:
        return load_array_pickle(data)
    except Exception as exc:
        raise ValueError(
            f"cannot read the pickle {label} as numpy data ({exc}); supply the CSV files "
            f"yourself with `python -m jkoic.bench.data --source DIR`."
        ) from exc


def _array_to_csv(arr: np.ndarray) -> bytes:
    """Format like the project's data files: float32 values, ``%.9g``, comma separated."""
    arr32 = np.asarray(arr, dtype=np.float32)
    lines = [",".join(f"{v:.9g}" for v in row) for row in arr32]
    return ("\n".join(lines) + "\n").encode("ascii")


def _pickle_to_csv(data: bytes, spec: DataFile) -> bytes:
    obj = _unpickle(data, spec.url)
    try:
        if spec.kind == "pickle_means":
            if not isinstance(obj, dict) or "means" not in obj:
                raise ValueError("expected a dict with key 'means'")
            arr = np.stack([np.asarray(m, dtype=np.float64).reshape(-1) for m in obj["means"]])
        else:
            arr = np.asarray(obj, dtype=np.float64)
    except Exception as exc:
        raise ValueError(
            f"unexpected content of {spec.url} ({exc}); supply the CSV files yourself with "
            f"`python -m jkoic.bench.data --source DIR`."
        ) from exc
    if arr.shape != spec.shape:
        raise ValueError(
            f"unexpected array shape {arr.shape} in {spec.url}, expected {spec.shape}; supply the CSV "
            f"files yourself with `python -m jkoic.bench.data --source DIR`."
        )
    return _array_to_csv(arr)


def _obtain(spec: DataFile, source: Path | None) -> tuple[bytes, str]:
    """Bytes of ``spec`` from ``source`` (a directory) or from the network, and their origin."""
    if source is not None:
        src = source / spec.name
        if not src.is_file():
            raise FileNotFoundError(f"data file {spec.name!r} is missing from the source directory {str(source)!r}")
        return src.read_bytes(), str(src)
    raw = _download(spec.url)
    if spec.kind == "csv":
        return raw, spec.url
    return _pickle_to_csv(raw, spec), spec.url


def fetch(
    dest: str | os.PathLike[str] | None = None,
    source: str | os.PathLike[str] | None = None,
    names: Sequence[str] | None = None,
) -> list[Path]:
    """Fill the data directory with the files of :data:`FILES`.

    Each file is copied from ``source`` when a source directory is available,
    otherwise downloaded (the authors' pickles are converted to CSV).  Every file
    is checked against its sha256 before it is written; writes go to a temporary
    file in the destination directory and are moved into place with
    ``os.replace``, so a failed check leaves nothing behind.  Files already present
    with the right checksum are left alone, so ``fetch`` is idempotent.

    Args:
        dest: destination directory; default :func:`data_dir`.
        source: directory holding the files under the same relative names.  Default:
            :func:`default_source` when that directory exists, else download.
        names: subset of :data:`FILES` to fetch; default all.

    Returns:
        The paths of the fetched (or already present) files.

    Raises:
        ValueError: on a checksum mismatch or an unknown name in ``names``.
        FileNotFoundError: if an explicitly given ``source`` does not exist or lacks a
            file.
        RuntimeError: if a download fails.
    """
    dest_dir = Path(dest).expanduser() if dest is not None else data_dir()
    if source is not None:
        src_dir: Path | None = Path(source).expanduser()
        if not src_dir.is_dir():
            raise FileNotFoundError(f"source directory {str(src_dir)!r} does not exist")
    else:
        src_dir = default_source() if default_source().is_dir() else None
    wanted = list(FILES) if names is None else list(names)
    unknown = [n for n in wanted if n not in FILES]
    if unknown:
        raise ValueError(f"unknown data file(s) {unknown}; known files: {sorted(FILES)}")

    out: list[Path] = []
    for name in wanted:
        spec = FILES[name]
        target = dest_dir / spec.name
        if _file_sha256(target) == spec.sha256:
            out.append(target)
            continue
        data, origin = _obtain(spec, src_dir)
        got = sha256_of(data)
        if got != spec.sha256:
            raise ValueError(
                f"sha256 mismatch for {spec.name!r} from {origin}: expected {spec.sha256}, got {got}; "
                f"nothing was written to {str(target)!r}"
            )
        atomic_write(target, data)
        out.append(target)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point: ``python -m jkoic.bench.data [--dest DIR] [--source DIR]``.

    Returns:
        The exit status: 0 on success, 1 on an error (reported on stderr).
    """
    parser = argparse.ArgumentParser(
        prog="python -m jkoic.bench.data",
        description="Fill the jkoic data directory (copy from a local source or download, checking sha256).",
    )
    parser.add_argument(
        "--dest",
        default=None,
        help=f"destination (default: ${ENV_VAR}, else the checkout's data/, else ~/.cache/jkoic/data)",
    )
    parser.add_argument(
        "--source",
        default=None,
        help="directory holding the data files (default: ../shared/data if it exists, else download)",
    )
    args = parser.parse_args(argv)
    try:
        paths = fetch(dest=args.dest, source=args.source)
    except (OSError, ValueError, RuntimeError) as exc:
        sys.stderr.write(f"jkoic.bench.data: error: {exc}\n")
        return 1
    dest = Path(args.dest) if args.dest else data_dir()
    sys.stdout.write(f"{len(paths)} data files ready in {dest}\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
