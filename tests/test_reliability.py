"""Bad settings, untrained models, seeds, foreign targets and damaged checkpoints raise clear errors.

Each case is reported before any compute is spent on it, names the problem, and leaves no
half-trained model or half-written file behind.
"""

from __future__ import annotations

import dataclasses
import io
import zipfile

import numpy as np
import pytest
import torch
from torch import nn

import jkoic
from jkoic import CheckpointError, Config, Sampler
from jkoic.cnf import steps_from_nfe


def tiny(**kw) -> Config:
    base = dict(
        n_flow_steps=1,
        n_blocks=1,
        rejections_per_block=1,
        tau0=0.05,
        hidden=8,
        n_iters=3,
        batch_size=64,
        dataset_size=300,
        solver="rk4",
        train_steps=1,
        adjoint=False,
        sample_steps=1,
    )
    base.update(kw)
    return Config(**base)


@pytest.fixture(scope="module")
def trained() -> Sampler:
    return Sampler(jkoic.targets.get("8modes"), tiny()).fit(seed=0, progress=False)


class CountingTarget:
    """A 2-D Gaussian log density that counts its evaluations."""

    dim = 2
    name = "counting"

    def __init__(self) -> None:
        self.calls = 0

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return -0.5 * x.square().sum(-1)


# ----------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    "field, value",
    [
        ("grad_clip", -1.0),
        ("grad_clip", 0.0),
        ("gradient_flow_time", -1.0),
        ("gradient_flow_time", 0.0),
        ("latent_mode_lr", 0.0),
        ("latent_mode_lr", float("nan")),
        ("rejection_rate", "0.2"),
        ("tau0", float("inf")),
        ("n_iters", 10.0),
        ("n_iters", True),
        ("spare_sigmas", -1.0),
        ("min_draw", 0),
        ("solver", "dopri8"),
    ],
)
def test_invalid_setting_names_its_field(field, value):
    with pytest.raises(ValueError, match=f"Config.{field} "):
        jkoic.preset("8peaky", "fast", **{field: value})


@pytest.mark.parametrize("field", ["extra", "early_stop_patience", "early_stop_window"])
def test_removed_fields_are_unknown(field):
    with pytest.raises(ValueError, match=f"unknown Config field.*{field}"):
        Config.from_dict({field: None})


def test_every_field_is_documented_and_grouped():
    from jkoic.config import GROUPS, describe

    for f in dataclasses.fields(Config):
        assert f.metadata["group"] in GROUPS and len(f.metadata["doc"]) > 20, f.name
        assert f.name in describe()


def test_numpy_ints_are_accepted_and_normalised():
    cfg = tiny(n_iters=np.int64(5), scale_search=(0, 1))
    assert type(cfg.n_iters) is int and cfg.scale_search == [0.0, 1.0]


def test_config_is_frozen_and_the_model_keeps_its_own_copy():
    cfg = tiny()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.n_blocks = 5  # type: ignore[misc]
    model = Sampler(jkoic.targets.get("8modes"), cfg)
    assert model.config == cfg and model.config is not cfg


def test_grad_clip_clips_every_adam_step(monkeypatch):
    norms = []
    real = nn.utils.clip_grad_norm_

    def spy(params, max_norm, *a, **kw):
        norms.append(max_norm)
        return real(params, max_norm, *a, **kw)

    monkeypatch.setattr(nn.utils, "clip_grad_norm_", spy)
    cfg = tiny(grad_clip=0.5, n_blocks=0)
    Sampler(jkoic.targets.get("8modes"), cfg).fit(seed=0, progress=False, final_stats=False)
    assert norms == [0.5] * cfg.n_iters
    norms.clear()
    Sampler(jkoic.targets.get("8modes"), cfg.replace(grad_clip=None)).fit(seed=0, progress=False, final_stats=False)
    assert norms == []


@pytest.mark.parametrize(
    "method, nfe, steps", [("dopri5", 240, 10), ("bosh3", 120, 10), ("adaptive_heun", 80, 10), ("dopri5", 6, 4)]
)
def test_steps_from_nfe_knows_each_adaptive_solver(method, nfe, steps):
    assert steps_from_nfe(nfe, method) == steps


def test_steps_from_nfe_refuses_unknown_solvers():
    with pytest.raises(ValueError, match="dopri8"):
        steps_from_nfe(100, "dopri8")


# ----------------------------------------------------------------------------- untrained or partial models


def test_untrained_model_refuses_to_sample_or_evaluate():
    model = Sampler(jkoic.targets.get("8modes"), tiny())
    for call in (lambda: model.sample(10), lambda: model.log_prob(torch.zeros(2, 2)), lambda: model.log_z(10)):
        with pytest.raises(RuntimeError, match="0 of 3 layers trained: call fit"):
            call()
    x, _ = model.sample(10, seed=0, upto=0)  # the latent, asked for explicitly
    assert x.shape == (10, 2)


def test_failed_fit_leaves_the_last_complete_unit():
    target = jkoic.targets.get("8modes")
    calls: dict[str, int | None] = {"n": 0, "limit": None}

    def flaky(x):
        calls["n"] += 1
        if calls["limit"] is not None and calls["n"] > calls["limit"]:
            raise FloatingPointError("the target broke")
        return target.log_prob(x)

    Sampler(flaky, tiny(n_blocks=2), dim=2).fit(seed=0, progress=False)  # counts the evaluations of a whole run
    calls.update(limit=calls["n"] // 2, n=0)  # the next run breaks half way through
    model = Sampler(flaky, tiny(n_blocks=2), dim=2)
    with pytest.raises(FloatingPointError, match="the target broke"):
        model.fit(seed=0, progress=False)
    starts = [u[0] for u in jkoic.training.units(model.plan)]
    assert 0 < model.n_layers < len(model.plan) and model.n_layers in starts
    assert len(model.log) == model.n_layers
    with pytest.raises(RuntimeError, match="call fit"):
        model.sample(5)


# ----------------------------------------------------------------------------- seeds and counts


@pytest.mark.parametrize("seed", [None, 1.5, -1, "0", True])
def test_fit_refuses_a_bad_seed_before_any_compute(seed):
    target = CountingTarget()
    model = Sampler(target, tiny())
    probes = target.calls  # the construction-time probe
    with pytest.raises(ValueError, match="seed must be an int"):
        model.fit(seed=seed, progress=False)
    assert target.calls == probes and model.n_layers == 0


def test_fit_with_another_seed_on_a_trained_model_raises(trained):
    with pytest.raises(ValueError, match="trained with seed 0, not 1"):
        trained.fit(seed=1, progress=False)
    assert trained.seed == 0
    assert trained.fit(seed=0, progress=False) is trained  # the same seed: nothing left to do


def test_sample_arguments(trained):
    x, lp = trained.sample(np.int64(7), seed=np.int64(1))
    assert x.shape == (7, 2) and lp.shape == (7,)
    for kw, match in [
        ({"chunk_size": -3}, "chunk_size"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"seed": 1.5}, "seed"),
        ({"upto": 99}, "upto"),
    ]:
        with pytest.raises(ValueError, match=match):
            trained.sample(10, **kw)


def test_target_reading_beyond_its_dimension_is_reported_at_construction():
    with pytest.raises(ValueError, match=r"failed on points of shape \(3, 2\): IndexError"):
        Sampler(lambda x: -(x[:, 5] ** 2), tiny(), dim=2)


def test_target_returning_the_wrong_shape_is_reported_at_construction():
    with pytest.raises(ValueError, match=r"returned shape \(3, 2\), expected \(3,\)"):
        Sampler(lambda x: -(x**2), tiny(), dim=2)


def test_target_vanishing_at_the_probe_points_is_allowed():
    def half_plane(x):  # zero density for x1 < 0.5: -inf at two of the three probe points
        return torch.where(x[:, 0] > 0.5, -x.square().sum(-1), torch.full_like(x[:, 0], -torch.inf))

    assert Sampler(half_plane, tiny(), dim=2).n_layers == 0


# ----------------------------------------------------------------------------- checkpoints


def test_loading_with_another_target_of_the_same_dimension_raises(trained, tmp_path):
    path = trained.save(tmp_path / "m.pt")
    with pytest.raises(CheckpointError, match="trained on target '8modes'.*differs.*'8peaky'"):
        Sampler.load(path, jkoic.targets.get("8peaky"))
    with pytest.raises(CheckpointError, match="dimension 2"):
        Sampler.load(path, jkoic.targets.get("funnel"))
    again = Sampler.load(path, jkoic.targets.get("8modes"))  # the right target loads
    assert again.n_layers == trained.n_layers


def test_resuming_with_another_target_raises(trained, tmp_path):
    path = trained.save(tmp_path / "m.pt")
    model = Sampler(jkoic.targets.get("8peaky"), trained.config)
    with pytest.raises(CheckpointError, match="differs"):
        model.fit(seed=0, checkpoint=path, progress=False)
    assert model.n_layers == 0


def test_same_density_under_another_name_loads_with_a_warning(trained, tmp_path):
    path = trained.save(tmp_path / "m.pt")
    target = jkoic.targets.get("8modes")
    with pytest.warns(UserWarning, match="named 'renamed'"):
        Sampler.load(path, jkoic.target.CallableTarget(target.log_prob, 2, name="renamed"))


def _tensor_offset(blob: bytes, tensor: torch.Tensor) -> int:
    raw = tensor.detach().cpu().contiguous().numpy().tobytes()
    at = blob.find(raw)
    assert at >= 0 and blob.find(raw, at + 1) < 0
    return at


def test_flipped_byte_in_the_weights_raises(trained, tmp_path):
    path = trained.save(tmp_path / "m.pt")
    blob = bytearray(path.read_bytes())
    cnf = next(layer for layer in trained.layers if layer.kind == "cnf")
    at = _tensor_offset(bytes(blob), cnf.field.out.weight)
    blob[at + 3] ^= 0x10
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(bytes(blob))
    # torch itself reads the damaged file without complaint; the checksum catches it
    assert torch.load(damaged, weights_only=True)["format"] == "jkoic.Sampler"
    with pytest.raises(CheckpointError, match="damaged"):
        Sampler.load(damaged)


def test_hand_edited_checkpoints_raise(trained, tmp_path):
    st = trained.state()
    for key in ("latent_mean", "checksum", "seed"):
        edited = {k: v for k, v in st.items() if k != key}
        path = tmp_path / f"no_{key}.pt"
        torch.save(edited, path)
        with pytest.raises(CheckpointError, match=f"field '{key}' is missing"):
            Sampler.load(path)
    changed = dict(st, seed=5)
    torch.save(changed, tmp_path / "seed.pt")
    with pytest.raises(CheckpointError, match="damaged"):
        Sampler.load(tmp_path / "seed.pt")


def test_checkpoint_is_a_valid_zip_of_plain_types(trained):
    buf = io.BytesIO()
    torch.save(trained.state(), buf)
    assert zipfile.is_zipfile(io.BytesIO(buf.getvalue()))
    st = torch.load(io.BytesIO(buf.getvalue()), weights_only=True)
    assert st["target"]["name"] == "8modes" and len(st["target"]["fingerprint"]) == 4
    assert st["format_version"] == 2 and len(st["checksum"]) == 64


def test_check_log_prob_allows_neg_inf_only_when_asked():
    from jkoic.target import check_log_prob

    x = torch.zeros(3, 2)
    vanishing = jkoic.target.CallableTarget(lambda x: torch.tensor([0.0, -torch.inf, -1.0]), 2)
    with pytest.raises(ValueError, match=r"1 of 3 points \(0 NaN, 0 \+inf, 1 -inf\)"):
        check_log_prob(vanishing, x)
    assert check_log_prob(vanishing, x, allow_neg_inf=True)[1] == -torch.inf
    broken = jkoic.target.CallableTarget(lambda x: torch.tensor([0.0, -torch.inf, torch.nan]), 2)
    with pytest.raises(ValueError, match=r"1 of 3 points \(1 NaN, 0 \+inf, 0 -inf\)"):
        check_log_prob(broken, x, allow_neg_inf=True)
