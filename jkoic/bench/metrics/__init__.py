"""Error measures of the paper (Appendix E.2 and E.3).

Every metric returns a :class:`MetricValue`: a ``float`` that also carries a ``protocol``
dict (metric name, sample sizes, seed, number of projections / eps / evaluations where they
apply, and the jkoic / torch / POT versions), so a table can cite exactly how each number was
computed. ``float(v)`` and ``json.dumps(v)`` work, ``v.to_dict()`` gives a JSON-ready dict,
and values pickle.

Samples are torch tensors or numpy arrays of shape ``(n, d)``; a 1-D array of shape ``(n,)``
is read as ``d = 1``. Samples with NaN or inf entries and mismatched dimensions are rejected
with a ``ValueError``.

Modules:
    :mod:`.energy`: :func:`energy_distance` (exact, chunked, O(N^2) time, bounded memory),
        :func:`sliced_energy_distance` (the estimator the authors report, Table 1),
        :func:`slicing_constant`, :func:`sampling_error` (a metric between two independent
        ground-truth sets).
    :mod:`.transport`: :func:`w2_squared` (exact squared Wasserstein-2 via POT, Table 3).
    :mod:`.sinkhorn`: :func:`sinkhorn_divergence` (exact limit, POT Sinkhorn, or the authors'
        geomloss call; GMM40-50D, Table 5).
    :mod:`.sinkhorn_eval`: :func:`sinkhorn_chunks` (chunk by chunk: the paper's 25 x 2000 vs
        2000) and :func:`sinkhorn_protocol` (fresh ground-truth draws).
    :mod:`.modes`: :func:`mode_weights`, :func:`mode_mse` (mass per mixture mode, Table 4).
    :mod:`.log_z`: :func:`log_z_elbo`, :func:`log_z_importance`,
        :func:`effective_sample_size` (log normalising constant, Table 2).
    :mod:`._common`: :class:`MetricValue`, protocol records, input validation.

References:
    J. Hertrich, R. Gruhlke. Importance Corrected Neural JKO Sampling. ICML 2025.
    Appendix E.2 (error measures) and E.3 (GMM40-50D comparison).
    G. J. Szekely. E-statistics: the energy of statistical samples. 2002.
    J. Hertrich, C. Wald, F. Altekrueger, P. Hagemann. Generative sliced MMD flows
    with Riesz kernels. ICLR 2024 (slicing the negative distance kernel).
    M. Cuturi. Sinkhorn distances. NeurIPS 2013.
    J. Feydy et al. Interpolating between optimal transport and MMD using Sinkhorn
    divergences. AISTATS 2019.
    B. Schmitzer. Stabilized sparse scaling algorithms for entropy regularized
    transport problems. SIAM J. Sci. Comput. 2019 (epsilon scaling).
    L. Kish. Survey Sampling. 1965 (effective sample size).
"""

from __future__ import annotations

from ._common import MetricValue
from .energy import energy_distance, sampling_error, sliced_energy_distance, slicing_constant
from .log_z import effective_sample_size, log_z_elbo, log_z_importance
from .modes import mode_mse, mode_weights
from .sinkhorn import sinkhorn_divergence
from .sinkhorn_eval import sinkhorn_chunks, sinkhorn_protocol
from .transport import w2_squared

__all__ = [
    "MetricValue",
    "energy_distance",
    "sliced_energy_distance",
    "slicing_constant",
    "sampling_error",
    "w2_squared",
    "log_z_elbo",
    "log_z_importance",
    "effective_sample_size",
    "mode_weights",
    "mode_mse",
    "sinkhorn_divergence",
    "sinkhorn_protocol",
    "sinkhorn_chunks",
]
