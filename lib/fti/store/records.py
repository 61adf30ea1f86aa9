"""The store's plain records: what a write is (transaction, run), what it did, and what the catalog shows."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping, Union

KINDS = ("raw", "feature_group", "labels", "training_set", "predictions", "quarantine", "monitoring", "deletions",
         "feature_history", "feature_state")
WATERMARK_PREFIX = "fti.watermark:"
WriteMode = Literal["append", "overwrite", "replace"]
# commit metadata, or a function that gives it once the data files are written (statistics the write observed)
Metadata = Union[Mapping[str, Any], Callable[[], Mapping[str, Any]]]


def resolve_metadata(metadata: Metadata | None) -> Mapping[str, Any]:
    """The commit metadata of a write, asked for after its files are written and before its commit."""
    if metadata is None:
        return {}
    return metadata() if callable(metadata) else metadata


def new_run_id(prefix: str = "run") -> str:
    """A run id that sorts by time and is unique: ``run-20131201T000000Z-1a2b3c4d``."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{prefix}-{stamp}-{secrets.token_hex(4)}"


@dataclass(frozen=True)
class Txn:
    """A Delta application transaction: the commit is skipped if ``app_id`` already reached ``version``.

    Attributes:
        app_id: Pipeline + table, e.g. ``features:flights/carrier_delay``.
        version: A per-run number fixed before writing that increases run after run.
    """

    app_id: str
    version: int

    def applied_in(self, recorded: int | None) -> bool:
        """Whether a table whose recorded version for ``app_id`` is ``recorded`` already has this write.

        The one place that decides it: a recorded version 0 is a real version, not "absent".
        """
        return recorded is not None and recorded >= self.version


@dataclass(frozen=True)
class RunContext:
    """Who is writing: recorded in every commit's metadata.

    Attributes:
        run_id: Unique id of the run; data files carry it in their names (delta-rs bridge) and raw rows
            in their ``_batch`` column.
        pipeline: Pipeline name (``features``, ``training``, ``inference``, ``ingest``...).
    """

    run_id: str = field(default_factory=new_run_id)
    pipeline: str = "fti"


@dataclass(frozen=True)
class CommitResult:
    """What one write did.

    Attributes:
        table: Table name.
        version: The version committed, or the current version when ``skipped``.
        skipped: True when the transaction id showed the same write had already been applied.
        rows: Rows added.
        files_added: Data files added.
        files_removed: Data files logically removed.
    """

    table: str
    version: int
    skipped: bool = False
    rows: int = 0
    files_added: int = 0
    files_removed: int = 0


@dataclass(frozen=True)
class Pin:
    """A table version that a registered model (or a manifest) needs to stay rebuildable."""

    table: str
    version: int
    owner: str


@dataclass(frozen=True)
class TableInfo:
    """What the catalog shows about one table."""

    name: str
    kind: str
    path: str
    version: int
    rows: int
    files: int
    last_commit: dt.datetime
    partition_by: tuple[str, ...]
    description: str
    properties: Mapping[str, str]


def format_partition_value(value: Any) -> str | None:
    """Delta's string form of a partition value."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        raise TypeError("timestamp partition columns are not supported: partition by a date")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)
