"""Maintenance of the home's tables: vacuum with pin checks (deletion by key: :mod:`fti.forget`)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from fti.errors import FtiError

if TYPE_CHECKING:
    from fti.store import DeltaLog, Pin

log = logging.getLogger(__name__)


def vacuum_tables(log_reader: DeltaLog, tables: list[str], *, retention_hours: float | None, pins: list[Pin],
                  force: bool, dry_run: bool) -> list[dict]:
    """Vacuum tables, refusing (unless ``force``) to delete files a registered model's training set pins.

    The default retention of each table is the one it declares (``delta.deletedFileRetentionDuration``)."""
    from fti.store.vacuum import vacuum

    out = []
    for table in tables:
        hours = log_reader.file_retention_hours(table) if retention_hours is None else retention_hours
        result = vacuum(log_reader, table, retention_hours=hours, pins=pins, force=force, dry_run=dry_run)
        out.append({"table": table, **result})
    if not out:
        raise FtiError("no tables to vacuum")
    return out
