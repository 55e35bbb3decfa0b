"""The paper reproduction: profiles, notebook runner, tables and figures of the paper.

Sits beside the library (``jkoic``), which it calls; the wheel does not ship it. Run it from a
checkout: ``python -m reproduce run --profile cpu`` (``make paper``).

Modules: :mod:`~reproduce.paper` (the notebooks' namespace, re-exporting the helpers below),
:mod:`~reproduce.runner` (profiles, notebook execution, the command line),
the job grid (:mod:`~reproduce.grid`: one job per target and run, the skip rule;
:mod:`~reproduce.gridrun`, :mod:`~reproduce.engines`, :mod:`~reproduce.worker`,
:mod:`~reproduce.combine`: running it locally or on Dask, combining the runs),
:mod:`~reproduce.methods` (targets, method runs, metrics), :mod:`~reproduce.results`
(results files, :class:`~reproduce.results.Study`), :mod:`~reproduce.tables` (Tables 1-7),
:mod:`~reproduce.figures` (the figures), :mod:`~reproduce.pages` (the generated pages:
README.md's headline table, ``figures/README.md``), :mod:`~reproduce.values` (the paper's numbers),
:mod:`~reproduce.examples` (Example F.1), :mod:`~reproduce.environment` and
:mod:`~reproduce.paths`.
"""
