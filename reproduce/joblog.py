"""Per-layer progress of a grid job, written into the job's log while its notebook runs.

A grid job runs its notebook in a kernel whose cell output reaches the job log only cell by cell.
The worker names the log in ``$JKOIC_JOB_LOG``; :func:`layer_lines` attaches a handler for the
``jkoic`` logger (one INFO record per fitted layer, see :meth:`jkoic.Sampler.fit`) that appends to
it, so a long fit shows its layers in ``results/<profile>/runs/.scratch/<job>.*/job.log`` as they
finish and in ``results/<profile>/logs/<job>.log`` afterwards. Nothing goes into the notebook.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["ENV", "layer_lines"]

#: the environment variable that names the job's log file
ENV = "JKOIC_JOB_LOG"


@contextmanager
def layer_lines(label: str) -> Iterator[None]:
    """Within the block, append the ``jkoic`` logger's INFO records to ``$JKOIC_JOB_LOG`` as
    ``[<label>] <message>`` lines; without the variable, do nothing."""
    path = os.environ.get(ENV)
    if not path:
        yield
        return
    logger = logging.getLogger("jkoic")
    handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    handler.setFormatter(logging.Formatter(f"[{label}] %(message)s"))
    handler.setLevel(logging.INFO)
    level = logger.level
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        handler.close()
