"""Vacuum with pin checks: delete data files no version within the retention needs, never a pinned one
silently. Spark-free (it reads and edits the Delta log with ``deltalake``)."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any, Sequence

from fti.errors import RetentionError
from fti.store.delta_log import DeltaLog
from fti.store.locks import commit_lock
from fti.store.records import Pin

# The youngest an unreferenced file can be and still be taken for an orphan (not a running writer's file).
ORPHAN_MIN_AGE_HOURS = 24


def vacuum(log: DeltaLog, name: str, *, retention_hours: float, pins: Sequence[Pin] = (), force: bool = False,
           dry_run: bool = False) -> dict[str, Any]:
    """Delete data files that no version within the retention needs.

    Refuses (unless ``force``) a retention shorter than the age of the oldest version pinned by a
    registered model, because vacuum cannot keep chosen versions: it would break that model's
    rebuild. With ``force``, the result names the pins that lose rebuildability.

    Args:
        log: The home's log reader.
        name: Table name.
        retention_hours: Keep files removed less than this long ago (a fraction of an hour is rounded up).
        pins: Versions that registered models need (see ``fti.registry``).
        force: Vacuum even if pinned versions lose rebuildability.
        dry_run: Only list what would be deleted.

    Returns:
        ``{"deleted": [...], "broken_pins": [Pin...]}``.

    Raises:
        RetentionError: If pinned versions would lose rebuildability and ``force`` is not set.
    """
    # deltalake vacuums whole hours: round a fraction UP (keep more), and check the pins with that same value
    retention_hours = float(math.ceil(retention_hours))
    now = dt.datetime.now(dt.timezone.utc)
    cutoff = now - dt.timedelta(hours=retention_hours)
    own = [p for p in pins if p.table == name]
    hist = {h["version"]: h["timestamp"] for h in log.history(name)}
    latest = log.version(name)
    broken = []
    for pin in own:
        if pin.version >= latest:
            continue
        # Files of a pinned version disappear once they were removed (at a later commit) before the cutoff.
        removed_after = hist.get(pin.version + 1)
        if removed_after is not None and removed_after < cutoff:
            broken.append(pin)
    if broken and not force:
        owners = ", ".join(sorted({f"{p.owner} (version {p.version})" for p in broken}))
        raise RetentionError(
            f"vacuum of {name} with retention {retention_hours:g} h would break the rebuild of: {owners}",
            hint="use a longer retention, or --force to vacuum anyway (those training sets can no longer be rebuilt)",
        )
    with commit_lock(log.home, name):
        delta = log._delta(name)  # noqa: SLF001 - the log reader's own table handle
        deleted = delta.vacuum(retention_hours=max(0, int(retention_hours)), dry_run=dry_run,
                               enforce_retention_duration=False)
        # Files no version references (left by killed runs) go too, once older than the retention AND than
        # ORPHAN_MIN_AGE_HOURS: a file younger than that may belong to a writer that has not committed yet.
        deleted += delta.vacuum(retention_hours=max(int(retention_hours), ORPHAN_MIN_AGE_HOURS), dry_run=dry_run,
                                enforce_retention_duration=False, full=True)
    return {"deleted": sorted(set(deleted)), "broken_pins": broken}
