"""Tests of ``jkoic.bench.data``: locating, loading and fetching the data files.

Fetching is tested from a local source directory (copy + sha256 check) and
through the download path with ``file://`` URLs (no network here): the pickles
are written in the authors' formats from the real values and must convert to
byte-identical CSV files.
"""

from __future__ import annotations

import dataclasses
import pickle
import shutil
import sys
import types
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from jkoic.bench import data as jdata

requires_data = pytest.mark.skipif(
    not all((jdata.data_dir() / n).is_file() for n in jdata.FILES),
    reason="data files missing: run `make data` (or set JKOIC_DATA_DIR)",
)

SUBSET = ["pines.csv", "gmm40_50d_means.csv", "gmm_means/gmm10_means_id1_10.csv", "gmm_means/gmm10_means_id5_200.csv"]


def _files_under(d: Path) -> list[str]:
    return sorted(str(p.relative_to(d)) for p in d.rglob("*") if p.is_file())


@pytest.fixture
def real_dir() -> Path:
    """The filled data directory (skips when the data are not installed)."""
    d = jdata.data_dir()
    if not all((d / n).is_file() for n in jdata.FILES):
        pytest.skip("data files missing: run `make data` (or set JKOIC_DATA_DIR)")
    return d


@pytest.fixture
def no_default_source(monkeypatch, tmp_path) -> None:
    """Pretend ``../shared/data`` does not exist, so ``fetch`` downloads."""
    monkeypatch.setattr(jdata, "default_source", lambda: tmp_path / "no-such-dir")


# ----------------------------------------------------------------------------- locating / loading


def test_data_dir_default_and_env(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv(jdata.ENV_VAR, raising=False)
    # these tests run from the source checkout: its data/ folder
    checkout = Path(jdata.__file__).resolve().parents[2]
    assert (checkout / "pyproject.toml").is_file()
    assert jdata.data_dir() == checkout / "data"
    monkeypatch.setenv(jdata.ENV_VAR, str(tmp_path))
    assert jdata.data_dir() == tmp_path
    monkeypatch.setenv(jdata.ENV_VAR, "  ")  # blank counts as unset
    assert jdata.data_dir() == checkout / "data"


def _as_if_installed_in(monkeypatch, parent: Path) -> None:
    """Pretend the ``jkoic`` package sits in ``parent`` (e.g. site-packages)."""
    monkeypatch.delenv(jdata.ENV_VAR, raising=False)
    monkeypatch.setattr(jdata, "_PACKAGE_PARENT", parent)


def test_data_dir_of_an_installed_package_is_the_user_cache(monkeypatch, tmp_path) -> None:
    site = tmp_path / "site-packages"
    site.mkdir()
    _as_if_installed_in(monkeypatch, site)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert jdata.data_dir() == tmp_path / "cache" / "jkoic" / "data" == jdata.user_cache_dir()
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert jdata.data_dir() == Path.home() / ".cache" / "jkoic" / "data"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")  # not absolute: ignored (XDG spec)
    assert jdata.data_dir() == Path.home() / ".cache" / "jkoic" / "data"
    monkeypatch.setenv(jdata.ENV_VAR, str(tmp_path / "mine"))  # the variable still comes first
    assert jdata.data_dir() == tmp_path / "mine"


@pytest.mark.parametrize(
    "pyproject, is_checkout",
    [
        ('[project]\nname = "jkoic"\nversion = "0.1.0"\n', True),
        ('[project]\nname = "other"\n', False),
        ('[tool.x]\nname = "jkoic"\n', False),
        ("[project\nname = ", False),  # unreadable TOML
        (None, False),
    ],
)
def test_data_dir_recognises_a_checkout_by_its_pyproject(monkeypatch, tmp_path, pyproject, is_checkout) -> None:
    root = tmp_path / "root"
    root.mkdir()
    if pyproject is not None:
        (root / "pyproject.toml").write_text(pyproject)
    _as_if_installed_in(monkeypatch, root)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    expected = root / "data" if is_checkout else tmp_path / "cache" / "jkoic" / "data"
    assert jdata.data_dir() == expected


def test_data_path_missing_file_message(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv(jdata.ENV_VAR, str(tmp_path))
    with pytest.raises(FileNotFoundError) as info:
        jdata.data_path("pines.csv")
    msg = str(info.value)
    assert "'pines.csv'" in msg and str(tmp_path) in msg
    assert "make data" in msg and "python -m jkoic.bench.data" in msg and "JKOIC_DATA_DIR" in msg


@requires_data
def test_load_real_files() -> None:
    pines = jdata.load_csv("pines.csv")
    assert pines.shape == (127, 2) and pines.dtype == np.float64
    assert np.array_equal(pines[0], pines[1])  # the duplicated first row is kept
    assert pines.min() >= 0 and pines.max() <= 1
    means = jdata.load_csv("gmm40_50d_means.csv")
    assert means.shape == (40, 50) and np.abs(means).max() <= 40 and np.abs(means).max() > 39
    assert jdata.load_csv(jdata.gmm_means_name(3, 100)).shape == (10, 100)


@pytest.mark.parametrize(
    "text, match",
    [
        ("", r"corrupt CSV file '.*bad\.csv': it is empty"),
        ("\n  \n", r"it is empty"),
        ("1,2\n3,x\n", r"bad\.csv': line 2 is not numeric: '3,x'"),
        ("1,2\n3,4,5\n", r"line 2 has 3 columns, expected 2"),
        ("1,nan\n", r"line 1 holds a non-finite value"),
        ("\x89PNG\x00\xff".encode("latin1"), r"not a UTF-8 text file"),
    ],
)
def test_load_csv_corrupt(tmp_path, monkeypatch, text: str | bytes, match: str) -> None:
    monkeypatch.setenv(jdata.ENV_VAR, str(tmp_path))
    path = tmp_path / "bad.csv"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ValueError, match=match):
        jdata.load_csv("bad.csv")


def test_load_csv_checks_shape(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(jdata.ENV_VAR, str(tmp_path))
    (tmp_path / "pines.csv").write_text("0.1,0.2\n0.3,0.4\n")
    with pytest.raises(ValueError, match=r"pines\.csv.*expected shape \(127, 2\), got \(2, 2\).*rows"):
        jdata.load_csv("pines.csv")
    assert jdata.load_csv(tmp_path / "pines.csv", shape=(None, 2)).shape == (2, 2)  # absolute path


# ----------------------------------------------------------------------------- fetch: copy


def test_fetch_copies_and_verifies(real_dir, tmp_path, monkeypatch) -> None:
    dest = tmp_path / "dest"
    paths = jdata.fetch(dest=dest, source=real_dir)
    assert sorted(str(p.relative_to(dest)) for p in paths) == sorted(jdata.FILES)
    for name, spec in jdata.FILES.items():
        assert jdata.sha256_of((dest / name).read_bytes()) == spec.sha256
    assert _files_under(dest) == sorted(jdata.FILES)  # no temporary files left

    # idempotent: nothing is rewritten the second time
    def fail(*args, **kwargs):
        raise AssertionError("fetch rewrote a file that was already correct")

    monkeypatch.setattr(jdata, "atomic_write", fail)
    assert len(jdata.fetch(dest=dest, source=real_dir)) == len(jdata.FILES)


def test_fetch_replaces_a_wrong_file(real_dir, tmp_path) -> None:
    dest = tmp_path / "dest"
    (dest).mkdir()
    (dest / "pines.csv").write_text("0.5,0.5\n")
    jdata.fetch(dest=dest, source=real_dir, names=["pines.csv"])
    assert (dest / "pines.csv").read_bytes() == (real_dir / "pines.csv").read_bytes()


def test_fetch_sha_mismatch_leaves_nothing(real_dir, tmp_path) -> None:
    src, dest = tmp_path / "src", tmp_path / "dest"
    src.mkdir()
    text = (real_dir / "pines.csv").read_text().replace("3.003617891200475176e-01", "3.003617891200475177e-01", 1)
    (src / "pines.csv").write_text(text)
    with pytest.raises(
        ValueError,
        match=r"sha256 mismatch for 'pines\.csv' from .*src/pines\.csv: expected "
        r"5ad41bb1.*nothing was written",
    ):
        jdata.fetch(dest=dest, source=src, names=["pines.csv"])
    assert not dest.exists() or _files_under(dest) == []


def test_fetch_source_errors(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"source directory .*nope.* does not exist"):
        jdata.fetch(dest=tmp_path / "d", source=tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"'pines\.csv' is missing from the source directory"):
        jdata.fetch(dest=tmp_path / "d", source=tmp_path / "empty")
    with pytest.raises(ValueError, match=r"unknown data file\(s\) \['x\.csv'\]"):
        jdata.fetch(dest=tmp_path / "d", source=tmp_path / "empty", names=["x.csv"])


def test_cli(real_dir, tmp_path, capsys) -> None:
    assert jdata.main(["--dest", str(tmp_path / "d"), "--source", str(real_dir)]) == 0
    assert f"{len(jdata.FILES)} data files ready" in capsys.readouterr().out
    assert jdata.main(["--dest", str(tmp_path / "d2"), "--source", str(tmp_path / "nope")]) == 1
    assert "jkoic.bench.data: error: source directory" in capsys.readouterr().err


def test_cli_runs_as_a_module() -> None:
    """``python -m jkoic.bench.data``, which the error messages recommend, exists."""
    import os
    import subprocess

    env = {**os.environ, "PYTHONPATH": str(Path(jdata.__file__).resolve().parents[2])}
    out = subprocess.run(
        [sys.executable, "-m", "jkoic.bench.data", "--help"], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "usage: python -m jkoic.bench.data" in out.stdout and "--source" in out.stdout


# ----------------------------------------------------------------------------- fetch: download


def _serve(monkeypatch, files: dict[str, Path]) -> None:
    """Point the manifest URLs of ``files`` to local ``file://`` URLs."""
    patched = dict(jdata.FILES)
    for name, path in files.items():
        patched[name] = dataclasses.replace(jdata.FILES[name], url=path.resolve().as_uri())
    monkeypatch.setattr(jdata, "FILES", patched)


def _authors_pickles(real_dir: Path, out: Path) -> dict[str, Path]:
    """Write the subset in the upstream formats: raw CSV, pickled array, pickled {'means': [...]}."""
    out.mkdir()
    files = {"pines.csv": out / "pines.csv"}
    shutil.copy(real_dir / "pines.csv", files["pines.csv"])
    gmm40 = jdata.load_csv(real_dir / "gmm40_50d_means.csv").astype(np.float32)
    files["gmm40_50d_means.csv"] = out / "GMM40_mean.pck"
    files["gmm40_50d_means.csv"].write_bytes(pickle.dumps(gmm40))
    for name in SUBSET[2:]:
        means = jdata.load_csv(real_dir / name).astype(np.float32)
        files[name] = out / Path(name).with_suffix(".pck").name
        files[name].write_bytes(pickle.dumps({"means": [row.copy() for row in means]}, protocol=4))
    return files


def test_fetch_download_converts_pickles(real_dir, tmp_path, monkeypatch, no_default_source) -> None:
    _serve(monkeypatch, _authors_pickles(real_dir, tmp_path / "remote"))
    dest = tmp_path / "dest"
    jdata.fetch(dest=dest, names=SUBSET)
    for name in SUBSET:
        assert (dest / name).read_bytes() == (real_dir / name).read_bytes(), name
    assert _files_under(dest) == sorted(SUBSET)


def test_fetch_download_reads_pickled_jax_array(real_dir, tmp_path, monkeypatch, no_default_source) -> None:
    # a JAX array pickles as jax._src.array._reconstruct_array(fun, args, arr_state, aval_state)
    def _reconstruct_array(fun, args, arr_state, aval_state):  # pragma: no cover - never called
        raise AssertionError("the real JAX function must not be called")

    _reconstruct_array.__module__ = "jax._src.array"
    _reconstruct_array.__qualname__ = "_reconstruct_array"
    for mod in ("jax", "jax._src", "jax._src.array"):
        monkeypatch.setitem(sys.modules, mod, types.ModuleType(mod))
    sys.modules["jax._src.array"]._reconstruct_array = _reconstruct_array  # type: ignore[attr-defined]
    arr = jdata.load_csv(real_dir / "gmm40_50d_means.csv").astype(np.float32)

    class FakeJaxArray:
        def __reduce__(self):
            fun, args, state = arr.__reduce__()
            return (_reconstruct_array, (fun, args, state, {"weak_type": False}))

    blob = pickle.dumps(FakeJaxArray())
    assert b"jax._src.array" in blob and b"_reconstruct_array" in blob
    for mod in ("jax", "jax._src", "jax._src.array"):
        monkeypatch.delitem(sys.modules, mod)
    (tmp_path / "GMM40_mean.pck").write_bytes(blob)
    _serve(monkeypatch, {"gmm40_50d_means.csv": tmp_path / "GMM40_mean.pck"})
    jdata.fetch(dest=tmp_path / "dest", names=["gmm40_50d_means.csv"])
    assert (tmp_path / "dest/gmm40_50d_means.csv").read_bytes() == (real_dir / "gmm40_50d_means.csv").read_bytes()


def test_fetch_download_refuses_unsafe_or_wrong_pickles(tmp_path, monkeypatch, no_default_source) -> None:
    evil = tmp_path / "evil.pck"
    evil.write_bytes(b"cos\nsystem\n(S'echo hacked'\ntR.")  # protocol-0 pickle calling os.system
    _serve(monkeypatch, {"gmm40_50d_means.csv": evil})
    with pytest.raises(ValueError, match=r"cannot read the pickle .*refusing to load global os\.system.*--source"):
        jdata.fetch(dest=tmp_path / "dest", names=["gmm40_50d_means.csv"])
    wrong = tmp_path / "wrong.pck"
    wrong.write_bytes(pickle.dumps(np.zeros((40, 49), dtype=np.float32)))
    _serve(monkeypatch, {"gmm40_50d_means.csv": wrong})
    with pytest.raises(ValueError, match=r"unexpected array shape \(40, 49\) .*expected \(40, 50\)"):
        jdata.fetch(dest=tmp_path / "dest", names=["gmm40_50d_means.csv"])
    zeros = tmp_path / "zeros.pck"
    zeros.write_bytes(pickle.dumps(np.zeros((40, 50), dtype=np.float32)))
    _serve(monkeypatch, {"gmm40_50d_means.csv": zeros})
    with pytest.raises(ValueError, match=r"sha256 mismatch for 'gmm40_50d_means\.csv' from file://"):
        jdata.fetch(dest=tmp_path / "dest", names=["gmm40_50d_means.csv"])
    assert not (tmp_path / "dest").exists() or _files_under(tmp_path / "dest") == []


def test_fetch_download_failure_is_clear(tmp_path, monkeypatch, no_default_source) -> None:
    def offline(url, timeout=60.0):
        raise urllib.error.URLError("network unreachable")

    monkeypatch.setattr(jdata, "_urlopen", offline)
    with pytest.raises(
        RuntimeError,
        match=r"could not download https://raw\.githubusercontent\.com/franciscovargas/"
        r".*pines\.csv.*--source DIR",
    ):
        jdata.fetch(dest=tmp_path / "dest", names=["pines.csv"])
    assert not (tmp_path / "dest").exists() or _files_under(tmp_path / "dest") == []


def test_manifest_urls() -> None:
    assert jdata.FILES["pines.csv"].url == (
        "https://raw.githubusercontent.com/franciscovargas/denoising_diffusion_samplers/main/dds_data/pines.csv"
    )
    assert jdata.FILES["gmm40_50d_means.csv"].url.endswith("johertrich/neural_JKO_ic/main/data/GMM40_mean.pck")
    assert jdata.FILES["gmm_means/gmm10_means_id4_50.csv"].url.endswith("data/mixture_means/mixture_means4_50.pck")
    assert len(jdata.FILES) == 2 + 5 * 5


def test_readme_lists_every_checksum() -> None:
    readme = (Path(jdata.__file__).resolve().parents[2] / "data" / "README.md").read_text()
    for name, spec in jdata.FILES.items():
        assert f"{spec.sha256}  {name}" in readme, name
