"""The notebooks' one namespace: ``from reproduce import paper``.

Re-exports the public helpers of the reproduction's modules, so a notebook needs a single
import:

* :mod:`reproduce.environment`: :func:`setup`, :func:`machine_info`;
* :mod:`reproduce.methods`: :func:`make_target`, :func:`method_config`, :func:`run_method`,
  :func:`ground_truth`, :func:`evaluate`, :func:`reference_errors`, :func:`layer_curve`,
  :func:`path_data`;
* :mod:`reproduce.results`: :class:`Study` (one target's results JSON), :func:`load_results`,
  the atomic writers :func:`write_json`, :func:`write_text`, :func:`save_npz`;
* :mod:`reproduce.tables`: :func:`build_table`, :func:`build_table6`, :func:`write_all_tables`, ...;
* :mod:`reproduce.runner`: profiles and notebook execution (``python -m reproduce``);
* :mod:`reproduce.paths`: :func:`repo_root`, :func:`resolve_path`.

Figures are drawn by :mod:`reproduce.figures`.
"""

from __future__ import annotations

from .environment import machine_info, setup
from .evaluation import evaluate, ground_truth, layer_curve, path_data, reference_errors
from .methods import (
    DEFAULT_COUPLING,
    DEFAULT_MCMC,
    HMC_STEP,
    MALA_STEP,
    METHODS,
    MethodRun,
    make_target,
    method_config,
    run_method,
    target_key,
)
from .paths import repo_root, resolve_path
from .results import (
    Study,
    fmt,
    fmt_pm,
    load_results,
    mean_std,
    save_npz,
    write_json,
    write_text,
)
from .runner import (
    execute,
    load_profile,
    main,
    plan,
    profiles_dir,
    run_names,
    run_profile,
    smoke,
)
from .tables import (
    Table,
    build_table,
    build_table6,
    collect,
    header_cells,
    headline,
    to_csv,
    to_latex,
    to_markdown,
    write_all_tables,
    write_table,
)

__all__ = [
    "DEFAULT_COUPLING",
    "DEFAULT_MCMC",
    "HMC_STEP",
    "MALA_STEP",
    "METHODS",
    "MethodRun",
    "Study",
    "Table",
    "build_table",
    "build_table6",
    "collect",
    "evaluate",
    "execute",
    "fmt",
    "fmt_pm",
    "ground_truth",
    "header_cells",
    "headline",
    "layer_curve",
    "load_profile",
    "load_results",
    "machine_info",
    "main",
    "make_target",
    "mean_std",
    "method_config",
    "path_data",
    "plan",
    "profiles_dir",
    "reference_errors",
    "repo_root",
    "resolve_path",
    "run_method",
    "run_names",
    "run_profile",
    "save_npz",
    "setup",
    "smoke",
    "target_key",
    "to_csv",
    "to_latex",
    "to_markdown",
    "write_all_tables",
    "write_json",
    "write_table",
    "write_text",
]
