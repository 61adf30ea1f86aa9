"""The store interface shared by both Delta backends, and the log-reading half they have in common.

Reading the Delta log (versions, history, properties, app transactions, file lists) is done with
``deltalake`` for both backends: it reads any table at reader protocol 1, which every fti table is.
Writing and reading data differ per backend (see ``delta_rs.py`` and ``native.py``).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import os
import secrets
import time
from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Literal, Mapping, Sequence
from urllib.parse import unquote

from fti.errors import RetentionError, TableNotFoundError, VersionNotFoundError
from fti.names import validate_table_name

if TYPE_CHECKING:
    from deltalake import DeltaTable
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

log = logging.getLogger(__name__)

KINDS = ("raw", "feature_group", "labels", "training_set", "predictions", "quarantine", "monitoring")
WATERMARK_PREFIX = "fti.watermark:"
WriteMode = Literal["append", "overwrite", "replace_partitions"]


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


@dataclass(frozen=True)
class RunContext:
    """Who is writing: recorded in every commit's commitInfo.

    Attributes:
        run_id: Unique id of the run; data files carry it in their names.
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


class TableStore(ABC):
    """Delta tables under one home folder, addressed by relative names like ``flights/carrier_delay``.

    Args:
        spark: The Spark session used to read and write data.
        home: The home folder; tables live at ``home/<name>``.
        retention_days: Log and file retention set on every table created.
        checkpoint_interval: Delta checkpoint interval set on every table created.
    """

    backend_name = "abstract"

    def __init__(self, spark: SparkSession, home: str | os.PathLike[str], *, retention_days: int = 365,
                 checkpoint_interval: int = 10) -> None:
        self.spark = spark
        self.home = Path(home)
        self.retention_days = retention_days
        self.checkpoint_interval = checkpoint_interval

    # ----------------------------------------------------------------------------- naming
    def path(self, name: str) -> Path:
        """Absolute folder of a table (checked to stay inside the home)."""
        validate_table_name(name)
        path = (self.home / name).resolve()
        if self.home.resolve() not in path.parents:
            raise TableNotFoundError(f"table {name!r} would lie outside the home {self.home}")
        return path

    def uri(self, name: str) -> str:
        return str(self.path(name))

    def exists(self, name: str) -> bool:
        return (self.path(name) / "_delta_log").is_dir() and any((self.path(name) / "_delta_log").glob("*.json"))

    def _delta(self, name: str, version: int | None = None) -> DeltaTable:
        from deltalake import DeltaTable

        if not self.exists(name):
            raise TableNotFoundError(
                f"table {name!r} does not exist under {self.home}",
                hint="run the pipeline that writes it first, or check --home",
            )
        try:
            return DeltaTable(self.uri(name), version=version)
        except Exception as exc:  # deltalake raises a generic error for a missing version
            if version is not None:
                raise VersionNotFoundError(
                    f"table {name!r} has no version {version} (latest is {self.version(name)})",
                    hint="the version may be older than the log retention",
                ) from exc
            raise

    def table_properties_for(self, kind: str, properties: Mapping[str, str] | None) -> dict[str, str]:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
        props = {
            "delta.logRetentionDuration": f"interval {self.retention_days} days",
            "delta.deletedFileRetentionDuration": f"interval {self.retention_days} days",
            "delta.checkpointInterval": str(self.checkpoint_interval),
            "fti.kind": kind,
        }
        props.update(properties or {})
        return props

    @contextmanager
    def commit_lock(self, name: str) -> Iterator[None]:
        """Serialize commits to one table from processes on this machine.

        delta-rs detects most conflicts itself; this lock also covers the case it does not: two
        replaces of the same EMPTY partition (no file to conflict on), which would both land.
        """
        lock_dir = self.home / "_locks"
        lock_dir.mkdir(parents=True, exist_ok=True)
        with open(lock_dir / (name.replace("/", "__") + ".lock"), "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @contextmanager
    def run_lock(self, key: str, *, what: str, wait_s: float = 900.0) -> Iterator[None]:
        """Hold an exclusive lock on ``key`` across a read-then-write that spans several store calls.

        A second run with the same key waits (logging who holds it) and proceeds once the first is done,
        so the two serialize; after ``wait_s`` it gives up without writing anything.

        Args:
            key: What is locked, e.g. ``flights/predictions@model@2013-12-01``.
            what: The work, for messages ("scoring flights_delay at 2013-12-01").
            wait_s: How long to wait for the holder.

        Raises:
            ConcurrentRunError: Another run held the lock for longer than ``wait_s``.
        """
        from fti.errors import ConcurrentRunError

        lock_dir = self.home / "_locks"
        lock_dir.mkdir(parents=True, exist_ok=True)
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in key)
        path = lock_dir / f"{safe}.run.lock"
        with open(path, "a+") as handle:
            deadline = time.monotonic() + wait_s
            waited = False
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if not waited:
                        handle.seek(0)
                        log.warning("another run holds %s (%s): waiting for it", key, handle.read().strip() or "?")
                        waited = True
                    if time.monotonic() > deadline:
                        raise ConcurrentRunError(
                            f"another run holds {what} ({key}) and did not finish within {wait_s:.0f} s; "
                            "nothing was written by this run",
                            hint=f"wait for it to finish, then rerun; a stale holder cannot exist (the lock "
                                 f"dies with its process): {path}") from None
                    time.sleep(0.5)
            try:
                handle.seek(0)
                handle.truncate()
                handle.write(f"pid {os.getpid()}, since {dt.datetime.now(dt.timezone.utc).isoformat()}")
                handle.flush()
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # ----------------------------------------------------------------------------- log reads
    def version(self, name: str) -> int:
        """Latest version of a table."""
        return self._delta(name).version()

    def properties(self, name: str, *, version: int | None = None) -> dict[str, str]:
        """Table properties (``fti.kind``, feature group definitions, retention...)."""
        return dict(self._delta(name, version).metadata().configuration)

    def schema(self, name: str, *, version: int | None = None) -> StructType:
        from fti.store.schema import delta_to_spark

        return delta_to_spark(self._delta(name, version).schema())

    def partition_by(self, name: str) -> list[str]:
        return list(self._delta(name).metadata().partition_columns)

    def transaction_version(self, name: str, app_id: str) -> int | None:
        """The last version recorded for a Delta application transaction id (survives checkpoints)."""
        if not self.exists(name):
            return None
        return self._delta(name).transaction_version(app_id)

    def watermark(self, name: str, source: str, *, version: int | None = None) -> int | None:
        """The raw table version of ``source`` that the data in ``name`` (at ``version``) covers, recorded in
        its commit."""
        if version is None:
            return self.transaction_version(name, WATERMARK_PREFIX + source)
        return self._delta(name, version).transaction_version(WATERMARK_PREFIX + source)

    def history(self, name: str, *, limit: int | None = None) -> list[dict[str, Any]]:
        """Commits, newest first: ``version``, ``timestamp`` (UTC datetime), ``operation``, ``run_id``,
        ``pipeline`` and any other commit metadata."""
        out = []
        for entry in self._delta(name).history(limit):
            item = dict(entry)
            item["timestamp"] = dt.datetime.fromtimestamp(entry["timestamp"] / 1000, dt.timezone.utc)
            item["run_id"] = entry.get("fti.run_id")
            item["pipeline"] = entry.get("fti.pipeline")
            out.append(item)
        return out

    def version_at(self, name: str, timestamp: dt.datetime) -> int:
        """The version that was latest at a commit time.

        Raises:
            VersionNotFoundError: If ``timestamp`` is before the table's first commit (delta-rs would
                silently give version 0).
        """
        if timestamp.tzinfo is None:
            raise ValueError("timestamp must be timezone-aware")
        hist = sorted(self.history(name), key=lambda h: h["version"])
        chosen = None
        for entry in hist:
            if entry["timestamp"] <= timestamp:
                chosen = entry["version"]
        if chosen is None:
            raise VersionNotFoundError(
                f"table {name!r} did not exist at {timestamp.isoformat()}: its first commit is "
                f"{hist[0]['timestamp'].isoformat()}",
                hint="pass a later timestamp or a version",
            )
        return chosen

    def resolve_version(self, name: str, *, version: int | None = None, timestamp: dt.datetime | None = None) -> int:
        if version is not None and timestamp is not None:
            raise ValueError("pass version= or timestamp=, not both")
        if timestamp is not None:
            return self.version_at(name, timestamp)
        if version is not None:
            latest = self.version(name)
            if version < 0 or version > latest:
                raise VersionNotFoundError(f"table {name!r} has no version {version} (latest is {latest})")
            return version
        return self.version(name)

    def file_uris(self, name: str, *, version: int | None = None) -> list[str]:
        return list(self._delta(name, version).file_uris())

    def file_actions(self, name: str, *, version: int | None = None) -> list[dict[str, Any]]:
        """Live data files of a version: ``path`` (absolute), ``partition`` (column -> value string), ``rows``."""
        import pyarrow as pa

        delta = self._delta(name, version)
        parts = list(delta.metadata().partition_columns)
        root = self.path(name)
        out = []
        for act in pa.table(delta.get_add_actions(flatten=True)).to_pylist():
            out.append({
                "path": str(root / act["path"]),
                "partition": {c: format_partition_value(act.get(f"partition.{c}")) for c in parts},
                "rows": act.get("num_records"),
            })
        return out

    def added_files(self, name: str, *, after: int | None, upto: int) -> dict[str, int]:
        """Data files added by the commits ``after < version <= upto`` (absolute path -> version).

        Read from the commit files of the log (no Change Data Feed needed); falls back to comparing
        snapshots when a commit file is gone (log retention).
        """
        start = -1 if after is None else after
        log_dir = self.path(name) / "_delta_log"
        root = self.path(name)
        added: dict[str, int] = {}
        for version in range(start + 1, upto + 1):
            commit = log_dir / f"{version:020d}.json"
            if not commit.is_file():
                before = {f["path"] for f in self.file_actions(name, version=start)} if start >= 0 else set()
                return {f["path"]: upto for f in self.file_actions(name, version=upto) if f["path"] not in before}
            for line in commit.read_text().splitlines():
                action = json.loads(line)
                if "add" in action and action["add"].get("dataChange", True):
                    added[str(root / unquote(action["add"]["path"]))] = version
                elif "remove" in action:
                    added.pop(str(root / unquote(action["remove"]["path"])), None)
        live = {f["path"] for f in self.file_actions(name, version=upto)}
        return {p: v for p, v in added.items() if p in live}

    def read_files(self, name: str, paths: Sequence[str], *, version: int | None = None) -> DataFrame:
        """Read chosen data files of a table (with its schema and partition columns) plus ``_file``,
        the file's base name."""
        from pyspark.sql import functions as F

        from fti.store.schema import delta_to_spark

        schema = delta_to_spark(self._delta(name, version).schema())
        if not paths:
            empty = self.spark.createDataFrame([], schema)
            return empty.withColumn("_file", F.lit(None).cast("string"))
        df = self.spark.read.schema(schema).option("basePath", self.uri(name)).parquet(*paths)
        return df.select(*schema.fieldNames(), F.regexp_extract(F.input_file_name(), r"[^/]+$", 0).alias("_file"))

    def row_count(self, name: str, *, version: int | None = None) -> int:
        """Exact row count from the log's per-file stats (every fti write records numRecords)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        actions = pa.table(self._delta(name, version).get_add_actions(flatten=True))
        if actions.num_rows == 0:
            return 0
        counts = actions.column("num_records")
        if counts.null_count:
            return self.read(name, version=version).count()
        return int(pc.sum(counts).as_py())

    def info(self, name: str) -> TableInfo:
        delta = self._delta(name)
        meta = delta.metadata()
        last = delta.history(1)[0]
        return TableInfo(
            name=name,
            kind=meta.configuration.get("fti.kind", "unknown"),
            path=self.uri(name),
            version=delta.version(),
            rows=self.row_count(name),
            last_commit=dt.datetime.fromtimestamp(last["timestamp"] / 1000, dt.timezone.utc),
            partition_by=tuple(meta.partition_columns),
            description=meta.description or "",
            properties=dict(meta.configuration),
        )

    def list_tables(self) -> list[str]:
        """Every Delta table under the home, as relative names, sorted."""
        names = []
        if not self.home.is_dir():
            return names
        for log_dir in self.home.rglob("_delta_log"):
            table_dir = log_dir.parent
            rel = table_dir.relative_to(self.home)
            if any(part.startswith(("_", ".")) for part in rel.parts):
                continue
            names.append(rel.as_posix())
        return sorted(names)

    def set_properties(self, name: str, properties: Mapping[str, str], *, run: RunContext | None = None) -> int:
        """Set table properties (one commit). Returns the new version."""
        from deltalake import DeltaTable
        from deltalake.transaction import CommitProperties

        run = run or RunContext()
        with self.commit_lock(name):
            DeltaTable(self.uri(name)).alter.set_table_properties(
                dict(properties), raise_if_not_exists=False,
                commit_properties=CommitProperties(custom_metadata=self.commit_metadata(run, "set_properties")))
        return self.version(name)

    # ----------------------------------------------------------------------------- retention
    def vacuum(self, name: str, *, retention_hours: float | None = None, pins: Sequence[Pin] = (),
               force: bool = False, dry_run: bool = False) -> dict[str, Any]:
        """Delete data files that no version within the retention needs.

        Refuses (unless ``force``) a retention shorter than the age of the oldest version pinned by a
        registered model, because vacuum cannot keep chosen versions: it would break that model's
        rebuild. With ``force``, the result names the pins that lose rebuildability.

        Args:
            name: Table name.
            retention_hours: Keep files removed less than this long ago (default: the table's setting).
            pins: Versions that registered models need (see ``fti.registry``).
            force: Vacuum even if pinned versions lose rebuildability.
            dry_run: Only list what would be deleted.

        Returns:
            ``{"deleted": [...], "broken_pins": [Pin...]}``.

        Raises:
            RetentionError: If pinned versions would lose rebuildability and ``force`` is not set.
        """
        if retention_hours is None:
            retention_hours = self.retention_days * 24.0
        now = dt.datetime.now(dt.timezone.utc)
        cutoff = now - dt.timedelta(hours=retention_hours)
        own = [p for p in pins if p.table == name]
        hist = {h["version"]: h["timestamp"] for h in self.history(name)}
        latest = self.version(name)
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
        with self.commit_lock(name):
            deleted = self._delta(name).vacuum(
                retention_hours=max(0, int(retention_hours)), dry_run=dry_run, enforce_retention_duration=False
            )
        return {"deleted": list(deleted), "broken_pins": broken}

    # ----------------------------------------------------------------------------- data (per backend)
    @abstractmethod
    def create_table(self, name: str, schema: StructType, *, kind: str, partition_by: Sequence[str] = (),
                     description: str = "", properties: Mapping[str, str] | None = None) -> int:
        """Create an empty table (no-op if it exists with the same schema). Returns its version."""

    @abstractmethod
    def write(self, name: str, df: DataFrame, *, mode: WriteMode = "append",
              partitions: Sequence[Mapping[str, Any]] | None = None, txn: Txn | None = None,
              watermarks: Mapping[str, int] | None = None, run: RunContext | None = None,
              allow_new_columns: bool = False, metadata: Mapping[str, Any] | None = None) -> CommitResult:
        """Write a DataFrame in ONE commit (see the backends for the mechanics)."""

    @abstractmethod
    def read(self, name: str, *, version: int | None = None, timestamp: dt.datetime | None = None) -> DataFrame:
        """Read a table, latest or at a version or a commit time."""

    @abstractmethod
    def merge(self, name: str, df: DataFrame, *, keys: Sequence[str], txn: Txn | None = None,
              run: RunContext | None = None) -> CommitResult:
        """Upsert rows on keys (small upserts)."""

    @abstractmethod
    def delete(self, name: str, predicate: str, *, run: RunContext | None = None) -> CommitResult:
        """Delete the rows matching a SQL predicate, in one commit."""

    @abstractmethod
    def compact(self, name: str, *, run: RunContext | None = None) -> CommitResult:
        """Rewrite small files into larger ones (no data change)."""

    def append(self, name: str, df: DataFrame, **kwargs: Any) -> CommitResult:
        return self.write(name, df, mode="append", **kwargs)

    def overwrite(self, name: str, df: DataFrame, **kwargs: Any) -> CommitResult:
        return self.write(name, df, mode="overwrite", **kwargs)

    def replace_partitions(self, name: str, df: DataFrame, partitions: Sequence[Mapping[str, Any]],
                           **kwargs: Any) -> CommitResult:
        """Replace exactly the given partitions (e.g. the days a late batch touched) with ``df``."""
        return self.write(name, df, mode="replace_partitions", partitions=partitions, **kwargs)

    @staticmethod
    def commit_metadata(run: RunContext, operation: str, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        meta = {"fti.run_id": run.run_id, "fti.pipeline": run.pipeline, "fti.operation": operation}
        for key, value in (extra or {}).items():
            meta[key] = value if isinstance(value, (str, int, float, bool)) else json.dumps(value, default=str)
        return meta

    @staticmethod
    def _now_ms() -> int:
        return int(time.time() * 1000)
