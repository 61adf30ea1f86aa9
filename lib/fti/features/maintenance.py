"""Maintenance of feature tables: delete by key (data-protection requests) and vacuum with pin checks."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fti.errors import FtiError
from fti.features.systems import get_system
from fti.store import RunContext

if TYPE_CHECKING:
    from fti.config import Settings
    from fti.store import DeltaLog, Pin, TableStore

log = logging.getLogger(__name__)
_WHERE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.+?)\s*$")


@dataclass(frozen=True)
class DeleteResult:
    table: str
    rows: int
    version: int
    message: str


def delete_by_key(store: TableStore, settings: Settings, *, group: str, where: str) -> DeleteResult:
    """Delete every row of a feature group whose entity key equals a value, in ONE Delta commit.

    Args:
        store: Table store.
        settings: Settings (system).
        group: Feature group name.
        where: ``KEY=VALUE``; KEY must be one of the group's keys.

    Returns:
        What was deleted, with a message saying how the files leave storage.

    Raises:
        FtiError: Unknown group or a column that is not a key.
    """
    spec = get_system(settings.system).group(group)
    match = _WHERE.match(where)
    if not match:
        raise FtiError(f"--where {where!r} is not COLUMN=VALUE", hint="e.g. --where carrier=UA")
    column, value = match.group(1), match.group(2).strip("'\"")
    if column not in spec.keys:
        raise FtiError(f"'{column}' is not a key of feature group {group} (keys: {', '.join(spec.keys)})")
    table = spec.table(settings.system)
    literal = value.replace("'", "''")
    result = store.delete(table, f"`{column}` = '{literal}'", run=RunContext(pipeline="delete"))
    message = (
        f"deleted {result.rows} row(s) of {table} where {column} = '{value}' (version {result.version}). "
        f"Earlier versions still hold them: the files leave storage only with "
        f"`fti vacuum --table {table} --retention-hours 0 --force`, which names the model versions that "
        f"lose rebuildability."
    )
    log.info(message)
    return DeleteResult(table, result.rows, result.version, message)


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
