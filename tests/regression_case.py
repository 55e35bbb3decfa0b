"""The small trained model whose seeded outputs ``test_regression.py`` pins to float32 round-off.

The case runs every training path of Algorithm 2 that a refactoring can disturb: the latent
mode search, the gradient-flow layer, CNF steps with warm start, the late budget, the scale
search and the step-count calibration, rejection layers with a fresh ``E[alpha]``. Its outputs
were written by ``python tests/regression_case.py`` (one torch thread, this repository's CPU
build of torch); run it again only when a change of the numbers is intended, and say so in the
commit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

import jkoic

REFERENCE = Path(__file__).parent / "data" / "regression_reference.npz"


def config(**overrides: object) -> jkoic.Config:
    settings: dict[str, object] = dict(
        n_flow_steps=1,
        n_blocks=2,
        rejections_per_block=2,
        tau0=0.05,
        tau_base=4.0,
        hidden=16,
        n_iters=15,
        batch_size=128,
        dataset_size=1000,
        solver="rk4",
        train_steps=2,
        adjoint=False,
        lr=1e-2,
        warm_start=True,
        late_tau=0.5,
        late_n_iters=10,
        late_batch_size=256,
        late_lr=5e-3,
        scale_search=[0.0, 0.5, 1.0],
        validation_size=300,
        sample_steps_tol=1e-3,
        alpha_samples=2000,
        exact_trace_eval_max_dim=10,
        gradient_flow_time=0.05,
        gradient_flow_steps=3,
        latent_mode_steps=5,
        latent_mode_lr=0.01,
    )
    settings.update(overrides)
    return jkoic.Config(**settings)


def outputs(**overrides: object) -> dict[str, np.ndarray]:
    """Train the case (its config with ``overrides``) with seed 2 and return its seeded samples,
    densities and log Z."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = jkoic.Sampler(jkoic.targets.get("8modes"), config(**overrides)).fit(seed=2, progress=False)
    x, log_p, log_g = model.sample(700, seed=5, return_log_g=True)
    grid = torch.linspace(-4.0, 4.0, 9)
    pts = torch.cartesian_prod(grid, grid)
    lz = model.log_z(600, seed=6)
    return {
        "x": x.numpy(),
        "log_p": log_p.numpy(),
        "log_g": log_g.numpy(),
        "log_prob": model.log_prob(pts, seed=4).numpy(),
        "log_z": np.array([lz["elbo"], lz["importance"], lz["ess"]]),
        "latent_mean": model.latent_mean.numpy(),
        "sample_steps": np.array([getattr(layer, "sample_steps", -1) for layer in model.layers]),
    }


if __name__ == "__main__":
    REFERENCE.parent.mkdir(parents=True, exist_ok=True)
    np.savez(REFERENCE, **outputs())
    print(f"wrote {REFERENCE}")
