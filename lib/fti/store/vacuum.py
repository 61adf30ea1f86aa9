"""Vacuum that keeps what registered models pin: delete data files no version within the retention needs,
except those of versions a registered model's training set pins. Spark-free (it reads and edits the Delta log
with ``deltalake``)."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any, Sequence

from fti.store.delta_log import DeltaLog
from fti.store.locks import commit_lock
from fti.store.records import Pin

# The youngest an unreferenced file can be and still be taken for an orphan (not a running writer's file).
ORPHAN_MIN_AGE_HOURS = 24


def vacuum(log: DeltaLog, name: str, *, retention_hours: float, pins: Sequence[Pin] = (), force: bool = False,
           dry_run: bool = False) -> dict[str, Any]:
    """Delete data files that no version within the retention needs, keeping the pinned versions' files.

    Files that no version references at all (left by killed runs) go too, once older than the retention and
    than :data:`ORPHAN_MIN_AGE_HOURS` (a younger one may be a running writer's). The files of every version a
    registered model pins are kept (``deltalake``'s ``keep_versions``), so a vacuum never breaks a model's
    rebuild; with ``force`` they go too (after a data-protection deletion, say) and the result names the pins
    that lost their files.

    Args:
        log: The home's log reader.
        name: Table name.
        retention_hours: Keep files removed less than this long ago (a fraction of an hour is rounded up: the
            pin check and the deletion use the same value).
        pins: Versions that registered models need (see ``fti.registry``).
        force: Delete the pinned versions' files as well.
        dry_run: Only list what would be deleted.

    Returns:
        ``{"deleted": [...], "kept_pins": [Pin...], "broken_pins": [Pin...]}``: the pins whose files were kept,
        and (with ``force``) those whose files were deleted.
    """
    # deltalake vacuums whole hours: round a fraction UP (keep more)
    hours = int(math.ceil(max(0.0, retention_hours)))
    cutoff = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=hours)
    own = [p for p in pins if p.table == name]
    latest = log.version(name)
    committed = {h["version"]: h["timestamp"] for h in log.history(name)}
    # a pinned version loses files once a later commit removed them before the cutoff
    exposed = [p for p in own if p.version < latest and committed.get(p.version + 1) is not None
               and committed[p.version + 1] < cutoff]
    keep = None if force else sorted({p.version for p in own if p.version <= latest}) or None
    with commit_lock(log.home, name):
        delta = log._delta(name)  # noqa: SLF001 - the log reader's own table handle
        deleted = delta.vacuum(retention_hours=hours, dry_run=dry_run, enforce_retention_duration=False,
                               keep_versions=keep)
        deleted += delta.vacuum(retention_hours=max(hours, ORPHAN_MIN_AGE_HOURS), dry_run=dry_run,
                                enforce_retention_duration=False, full=True, keep_versions=keep)
    return {"deleted": sorted(set(deleted)), "kept_pins": [] if force else exposed,
            "broken_pins": exposed if force else []}
