"""Named fault points, so kill-and-recover tests are deterministic.

Set ``FTI_FAULT`` to ``point`` or ``point:mode`` (comma-separated for several), where mode is ``kill``
(SIGKILL this process, the default), ``kill-once=PATH`` (SIGKILL the first process that gets there, which
creates ``PATH``; later ones pass: a restarted worker must not die again), ``raise`` (raise
:class:`FaultInjected`) or ``wait=PATH`` (create ``PATH.reached``, then wait until ``PATH`` exists: a test holds a
writer between its read and its commit to make a race real). A point may be narrowed to one table (or other
target its caller names, such as ``rank 1 round 20`` of a training fit) with ``point@table/name``. Points in the store
layer:

- ``before_files``: before Spark writes any data file.
- ``after_files``: data files are in the table folder, the Delta commit has not happened.
- ``after_log_write``: the commit's log entry is written, the store call has not returned (an error here
  stands for a failing post-commit hook or an interrupt while the call returns).
- ``after_commit``: the Delta commit is done (the caller's later steps have not run).

Elsewhere: ``after_checkpoint`` (target ``rank N round R``), in a Ray Train worker after it reported a checkpoint
(:mod:`fti.training.ray_train`).
"""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path

from fti.errors import FaultInjected

log = logging.getLogger(__name__)

POINTS = ("before_files", "after_files", "after_log_write", "after_commit")


def _armed() -> dict[str, str]:
    spec = os.environ.get("FTI_FAULT", "")
    armed = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        point, _, mode = item.partition(":")
        armed[point] = mode or "kill"
    return armed


def fault_point(point: str, *, table: str | None = None) -> None:
    """Trigger the fault armed for ``point`` (and optionally this table), if any.

    Args:
        point: Name of the point, one of :data:`POINTS` or a pipeline's own.
        table: The table being written, to allow ``point@table`` narrowing.

    Raises:
        FaultInjected: If the point is armed with mode ``raise``.
    """
    armed = _armed()
    if not armed:
        return
    mode = armed.get(f"{point}@{table}") if table else None
    mode = mode or armed.get(point)
    if mode is None:
        return
    log.warning("fault point %s reached (table %s): %s", point, table, mode)
    if mode == "raise":
        raise FaultInjected(f"fault injected at {point} (table {table})")
    if mode.startswith("wait="):
        release = Path(mode[len("wait="):])
        Path(f"{release}.reached").touch()
        deadline = time.monotonic() + 300
        while not release.exists():
            if time.monotonic() > deadline:
                raise FaultInjected(f"fault point {point} (table {table}) was never released ({release})")
            time.sleep(0.05)
        return
    if mode.startswith("kill-once="):
        try:
            os.close(os.open(mode[len("kill-once="):], os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return
    os.kill(os.getpid(), signal.SIGKILL)
