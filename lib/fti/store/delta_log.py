"""A Spark-free reader of the Delta logs under a home: versions, history, properties, watermarks, file lists.

Both backends write tables that ``deltalake`` (delta-rs) reads: fti creates every table with reader protocol
1 and no reader features (see :data:`READABLE_READER_FEATURES`). The CLI's catalog, lineage and vacuum use
this reader directly, without a Spark session; the stores inherit it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence
from urllib.parse import unquote

from fti.errors import TableNotFoundError, UnsupportedTableError, VersionNotFoundError
from fti.location import Location, is_uri
from fti.names import validate_table_name
from fti.store.records import WATERMARK_PREFIX, TableInfo, Txn, format_partition_value

if TYPE_CHECKING:
    from deltalake import DeltaTable
    from pyspark.sql.types import StructType

    from fti.store.predicate import Match

log = logging.getLogger(__name__)

# Reader features every engine fti supports (the connector, delta-rs, polars, DuckDB) reads; fti creates
# tables with none. A table that needs another one (deletion vectors, column mapping...) is refused by name.
READABLE_READER_FEATURES: frozenset[str] = frozenset()
# fti's own commit metadata keys: delta-rs records them at the top level of commitInfo, the connector inside
# the JSON string `userMetadata`; readers see both the same way.
FTI_PREFIX = "fti."


def _uncommitted_leftover(rel: str) -> bool:
    """A file of a log folder that is not part of any version: a hidden temporary or checksum file (a commit is
    written to ``.NNN.json.<uuid>.tmp`` first, then renamed)."""
    return rel.rsplit("/", 1)[-1].startswith(".")


@dataclass(frozen=True)
class Changes:
    """What the commits ``after < version <= upto`` of a table added.

    Attributes:
        files: Live data files (absolute path -> version that added them) that may hold rows added in the
            range: files added by data commits, and the files a rewrite without data change
            (``dataChange=false``: compaction, OPTIMIZE) wrote in place of such files.
        batches: Run id of each data commit in the range -> its version. Rows that carry their landing run
            id (raw tables' ``_batch``) are new exactly when it is one of these.
        base: Set when the commit files up to ``base - 1`` are gone (Delta's log cleanup, once a checkpoint
            covers them): every file live at ``base`` is then in ``files`` with version ``base``, and the batches
            of its rows are not known from the log (the caller reads them from the rows' ``_batch``).
        foreign: Data commits in the range that carry no fti run id (a writer other than fti, e.g. a Spark SQL
            ``INSERT INTO``): version -> operation. Their rows carry no new landing batch.
        removed: Files live before the range that a data commit in it removed (``DELETE``, ``UPDATE``, ``MERGE``,
            an overwrite; ``dataChange=true``): path -> the version that removed them. Their rows were there at
            ``version - 1`` and are gone (or rewritten into a file of ``files``) since.
    """

    files: dict[str, int]
    batches: dict[str, int]
    base: int | None = None
    foreign: dict[int, str] | None = None
    removed: dict[str, int] = field(default_factory=dict)

    def foreign_files(self) -> dict[str, int]:
        """The live files that data commits without an fti run id (another writer) added in the range."""
        return {p: v for p, v in self.files.items() if self.foreign and v in self.foreign}


def commit_metadata_of(commit_info: dict[str, Any]) -> dict[str, Any]:
    """fti's metadata of one commit, whichever backend wrote it (top-level keys or ``userMetadata`` JSON)."""
    meta = {k: v for k, v in commit_info.items() if k.startswith(FTI_PREFIX)}
    user = commit_info.get("userMetadata")
    if isinstance(user, str) and user.startswith("{"):
        try:
            parsed = json.loads(user)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            meta.update({k: v for k, v in parsed.items() if k.startswith(FTI_PREFIX)})
    return meta


class DeltaLog:
    """Delta tables under one home (a local folder or an object-store URI), addressed by relative names like
    ``flights/carrier_delay``.

    Args:
        home: The home; tables live at ``home/<name>``.
    """

    def __init__(self, home: str | Path | Location) -> None:
        self.home = Location(home).resolve()

    # ----------------------------------------------------------------------------- naming
    def path(self, name: str) -> Location:
        """Location of a table's folder (checked to stay inside the home)."""
        validate_table_name(name)
        path = (self.home / name).resolve()
        if not path.is_under(self.home):
            raise TableNotFoundError(f"table {name!r} would lie outside the home {self.home}")
        return path

    def uri(self, name: str) -> str:
        return self.path(name).uri

    @property
    def storage_options(self) -> dict[str, str]:
        """``deltalake``'s storage options for the home (endpoint and region of an object store)."""
        return self.home.storage_options()

    def exists(self, name: str) -> bool:
        log_dir = self.path(name) / "_delta_log"
        if log_dir.local is not None:
            return log_dir.local.is_dir() and any(log_dir.local.glob("*.json"))
        return any(entry.name.endswith(".json") for entry in log_dir.iterdir())

    def clear_uncommitted_log(self, name: str) -> bool:
        """Remove a ``_delta_log`` folder that holds no commit: what a process killed while it created the table
        leaves (the folder made, version 0 never written). Delta then refuses to create the table there
        (DELTA_TABLE_NOT_FOUND) and every rerun would fail. A folder with any commit, checkpoint or
        ``_last_checkpoint`` is a table and is left alone. Call it under the table's commit lock."""
        log_dir = self.path(name) / "_delta_log"
        entries = list(log_dir.walk())
        if not entries and not log_dir.is_dir():
            return False
        table_files = [rel for rel, is_dir in entries if not is_dir and not _uncommitted_leftover(rel)]
        if table_files:
            return False
        log.warning("table %s: its log folder holds no commit (a creation was interrupted); creating it again", name)
        log_dir.rmtree()
        return True

    def delta_table(self, name: str) -> DeltaTable:
        """The ``deltalake`` handle of a table's latest version (no checks: for the bridge's writes)."""
        from deltalake import DeltaTable

        return DeltaTable(self.path(name).delta_uri, storage_options=self.storage_options)

    def _delta(self, name: str, version: int | None = None) -> DeltaTable:
        from deltalake import DeltaTable

        if not self.exists(name):
            raise TableNotFoundError(
                f"table {name!r} does not exist under {self.home}",
                hint="run the pipeline that writes it first, or check --home",
            )
        try:
            delta = DeltaTable(self.path(name).delta_uri, version=version, storage_options=self.storage_options)
        except Exception as exc:  # deltalake raises a generic error for a missing version
            if version is not None:
                raise VersionNotFoundError(
                    f"table {name!r} has no version {version} (latest is {self.version(name)})",
                    hint="the version may be older than the log retention",
                ) from exc
            raise
        self._check_readable(name, delta)
        return delta

    @staticmethod
    def _check_readable(name: str, delta: DeltaTable) -> None:
        proto = delta.protocol()
        needed = set(proto.reader_features or [])
        if proto.min_reader_version == 2:
            needed.add("columnMapping")
        unknown = sorted(needed - READABLE_READER_FEATURES)
        if unknown or proto.min_reader_version > 3:
            raise UnsupportedTableError(
                f"table {name!r} uses Delta reader feature(s) {', '.join(unknown) or proto.min_reader_version} "
                f"(reader protocol {proto.min_reader_version}), which fti's readers (delta-rs, polars, DuckDB) "
                "do not all support",
                hint="rewrite it without them (e.g. ALTER TABLE ... DROP FEATURE deletionVectors, then REORG), "
                     "or let fti create the table",
            )

    # ----------------------------------------------------------------------------- versions and metadata
    def version(self, name: str) -> int:
        """Latest version of a table."""
        return self._delta(name).version()

    def properties(self, name: str, *, version: int | None = None) -> dict[str, str]:
        """Table properties (``fti.kind``, feature group definitions, retention...)."""
        return dict(self._delta(name, version).metadata().configuration)

    def schema(self, name: str, *, version: int | None = None) -> StructType:
        from fti.store.schema import delta_to_spark

        return delta_to_spark(self._delta(name, version).schema())

    def file_retention_hours(self, name: str) -> float:
        """How long the table keeps removed files (``delta.deletedFileRetentionDuration``; Delta's default
        is 7 days)."""
        text = self.properties(name).get("delta.deletedFileRetentionDuration", "interval 7 days")
        match = re.fullmatch(r"\s*interval\s+(\d+(?:\.\d+)?)\s+(second|minute|hour|day|week)s?\s*", text.lower())
        if not match:
            raise UnsupportedTableError(f"table {name!r} declares a retention fti cannot read: {text!r}",
                                        hint="set delta.deletedFileRetentionDuration to 'interval N days'")
        unit = {"second": 1 / 3600, "minute": 1 / 60, "hour": 1, "day": 24, "week": 168}[match.group(2)]
        return float(match.group(1)) * unit

    def partition_by(self, name: str) -> list[str]:
        return list(self._delta(name).metadata().partition_columns)

    def transaction_version(self, name: str, app_id: str, *, version: int | None = None) -> int | None:
        """The last version recorded for a Delta application transaction id (survives checkpoints)."""
        if not self.exists(name):
            return None
        return self._delta(name, version).transaction_version(app_id)

    def watermark(self, name: str, source: str, *, version: int | None = None) -> int | None:
        """The raw table version of ``source`` that the data in ``name`` (at ``version``) covers, recorded in
        its commit."""
        return self.transaction_version(name, WATERMARK_PREFIX + source, version=version)

    def is_applied(self, name: str, txn: Txn) -> bool:
        """Whether the table already holds the write that ``txn`` guards."""
        return txn.applied_in(self.transaction_version(name, txn.app_id))

    def history(self, name: str, *, limit: int | None = None) -> list[dict[str, Any]]:
        """Commits, newest first: ``version``, ``timestamp`` (UTC datetime), ``operation``, ``run_id``,
        ``pipeline`` and fti's other commit metadata (the same keys on both backends)."""
        out = []
        for entry in self._delta(name).history(limit):
            item = dict(entry)
            item.update(commit_metadata_of(entry))
            item["timestamp"] = dt.datetime.fromtimestamp(entry["timestamp"] / 1000, dt.timezone.utc)
            item["run_id"] = item.get("fti.run_id")
            item["pipeline"] = item.get("fti.pipeline")
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

    # ----------------------------------------------------------------------------- files
    def arrow_dataset(self, name: str, *, version: int | None = None) -> Any:
        """The table at a version (default: latest) as a pyarrow dataset over its data files (no Spark)."""
        return self._delta(name, version).to_pyarrow_dataset()

    def file_uris(self, name: str, *, version: int | None = None) -> list[str]:
        return list(self._delta(name, version).file_uris())

    def file_actions(self, name: str, *, version: int | None = None,
                     stats_columns: Sequence[str] = ()) -> list[dict[str, Any]]:
        """Live data files of a version: ``path`` (absolute), ``partition`` (column -> value string), ``rows``,
        ``size``, and ``min``/``max`` (column -> value, None when the file has no statistics for it) of
        ``stats_columns``."""
        import pyarrow as pa

        delta = self._delta(name, version)
        parts = list(delta.metadata().partition_columns)
        root = self.path(name)
        out = []
        for act in pa.table(delta.get_add_actions(flatten=True)).to_pylist():
            out.append({
                "path": (root / act["path"]).uri,
                "partition": {c: format_partition_value(act.get(f"partition.{c}")) for c in parts},
                "rows": act.get("num_records"),
                "size": act.get("size_bytes"),
                "min": {c: act.get(f"min.{c}") for c in stats_columns},
                "max": {c: act.get(f"max.{c}") for c in stats_columns},
            })
        return out

    def files_holding(self, name: str, where: Match, *, version: int | None = None) -> list[dict[str, Any]]:
        """The live files of a version (:meth:`file_actions` entries) whose partition values or statistics may
        hold rows that ``where`` covers (unknown statistics mean they may)."""
        return [f for f in self.file_actions(name, version=version, stats_columns=list(where.values))
                if where.may_hold(f)]

    def _commits(self, name: str, after: int, upto: int) -> Iterator[tuple[int, list[dict[str, Any]] | None]]:
        """The actions of each commit file ``after < version <= upto`` (None when it is gone: log retention)."""
        log_dir = self.path(name) / "_delta_log"
        for version in range(after + 1, upto + 1):
            try:
                text = (log_dir / f"{version:020d}.json").read_text()
            except FileNotFoundError:
                yield version, None
                continue
            yield version, [json.loads(line) for line in text.splitlines() if line.strip()]

    def changes(self, name: str, *, after: int | None, upto: int) -> Changes:
        """What the commits ``after < version <= upto`` added, by content lineage (see :class:`Changes`).

        A rewrite without data change (compaction, OPTIMIZE) that removes a file added in the range carries
        its rows: the files it adds are reported too, so new rows are never lost to a compaction that ran
        before the reader. Read from the commit files (no Change Data Feed). When some are gone (log cleanup),
        the range starts over at the first version after them: every file live there counts as added by it
        (``base``), so a reader older than the cleanup, or a new one, reads them all, never none.
        """
        start = -1 if after is None else after
        commits = list(self._commits(name, start, upto))
        gone = [version for version, actions in commits if actions is None]
        files: dict[str, int] = {}
        base = None
        if gone:
            base = min(max(gone) + 1, upto)
            files = {f["path"]: base for f in self.file_actions(name, version=base)}
            log.warning("%s: the commit files of versions %d..%d are gone (Delta's log cleanup): the rows of the %d "
                        "file(s) live at version %d count as added by it", name, gone[0], max(gone),
                        len(files), base)
            commits = [(v, a) for v, a in commits if v > base]
        root = self.path(name)
        batches: dict[str, int] = {}
        foreign: dict[int, str] = {}
        removed_before: dict[str, int] = {}
        for version, actions in commits:
            carried = False
            adds: list[tuple[str, bool]] = []
            data_commit = False
            run_id, operation = None, "?"
            for action in actions or []:
                if "remove" in action:
                    removed = (root / unquote(action["remove"]["path"])).uri
                    change = action["remove"].get("dataChange", True)
                    if files.pop(removed, None) is not None:
                        carried = carried or not change
                    elif change:  # a file from before the range: its rows changed or went
                        removed_before.setdefault(removed, version)
                elif "add" in action:
                    change = action["add"].get("dataChange", True)
                    adds.append(((root / unquote(action["add"]["path"])).uri, change))
                    data_commit = data_commit or change
                elif "commitInfo" in action:
                    run_id = commit_metadata_of(action["commitInfo"]).get("fti.run_id")
                    operation = action["commitInfo"].get("operation", "?")
            for path, change in adds:
                if change or carried:
                    files[path] = version
            if data_commit and run_id:
                batches.setdefault(run_id, version)
            elif data_commit and any(change for _, change in adds):
                foreign[version] = operation
        live = {f["path"] for f in self.file_actions(name, version=upto)}
        return Changes({p: v for p, v in files.items() if p in live}, batches, base, foreign, removed_before)

    def commit_landed(self, name: str, *, after: int, paths: Sequence[str]) -> int | None:
        """The version after ``after`` whose commit added any of ``paths`` (absolute), or None.

        How a writer whose commit call failed knows whether the commit happened anyway (an error raised by
        a post-commit hook, an interrupt while the call returned): only files of a commit that did NOT land
        may be deleted.
        """
        if not self.exists(name):
            return None
        wanted = {p if is_uri(p) else str(Path(p)) for p in paths}
        root = self.path(name)
        for version, actions in self._commits(name, after, self.version(name)):
            for action in actions or []:
                if "add" in action and (root / unquote(action["add"]["path"])).uri in wanted:
                    return version
        return None

    def commit_of_run(self, name: str, *, after: int, run_id: str) -> int | None:
        """The last version after ``after`` that the run ``run_id`` committed (None: none). What a writer
        reports as its version: the latest version may already be another writer's (object storage, where
        writers on other machines share no lock)."""
        found = None
        for version, actions in self._commits(name, after, self.version(name)):
            if any("commitInfo" in a and commit_metadata_of(a["commitInfo"]).get("fti.run_id") == run_id
                   for a in actions or []):
                found = version
        return found

    def row_count(self, name: str, *, version: int | None = None) -> int | None:
        """Exact row count from the log's per-file stats, or None when a file lacks them."""
        import pyarrow as pa
        import pyarrow.compute as pc

        actions = pa.table(self._delta(name, version).get_add_actions(flatten=True))
        if actions.num_rows == 0:
            return 0
        counts = actions.column("num_records")
        if counts.null_count:
            return None
        return int(pc.sum(counts).as_py())

    def info(self, name: str) -> TableInfo:
        import pyarrow as pa

        delta = self._delta(name)
        meta = delta.metadata()
        last = delta.history(1)[0]
        return TableInfo(
            name=name,
            kind=meta.configuration.get("fti.kind", "unknown"),
            path=self.uri(name),
            version=delta.version(),
            rows=self.row_count(name) or 0,
            files=pa.table(delta.get_add_actions(flatten=True)).num_rows,
            last_commit=dt.datetime.fromtimestamp(last["timestamp"] / 1000, dt.timezone.utc),
            partition_by=tuple(meta.partition_columns),
            description=meta.description or "",
            properties=dict(meta.configuration),
        )

    def list_tables(self) -> list[str]:
        """Every Delta table under the home, as relative names, sorted."""
        names = []
        for rel, is_dir in self.home.walk():
            parts = rel.split("/")
            if not is_dir or parts[-1] != "_delta_log" or len(parts) < 2:
                continue
            if any(part.startswith(("_", ".")) for part in parts[:-1]):
                continue
            names.append("/".join(parts[:-1]))
        return sorted(names)
