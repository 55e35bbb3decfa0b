"""The benchmark zoo of the paper: what the sampler is measured on and against.

* :mod:`jkoic.bench.targets`: the paper's target distributions (Gaussian mixtures, Mustache,
  Funnel, LGCP, ...) with exact samplers where they exist, and a registry by name;
* :mod:`jkoic.bench.metrics`: the error measures (energy distance, W2, Sinkhorn divergence,
  mode weights, log Z and effective sample size), each value carrying its protocol;
* :mod:`jkoic.bench.baselines`: MALA, HMC, neural JKO without rejection and reverse-KL flows;
* :mod:`jkoic.bench.data`: locating, loading and fetching the data files some targets need.

The core sampler does not depend on this package, except to look up a benchmark target by
name (:func:`jkoic.target.as_target`, :meth:`jkoic.Sampler.load`).
"""
