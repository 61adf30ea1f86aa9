"""Raw landing: data arrives into raw Delta tables under the home, one commit per batch or file."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from fti.errors import FtiError
from fti.forget import forgotten, without_forgotten
from fti.sources import RAW_EXTRA, DeltaSource, Source
from fti.store import CommitResult, RunContext, TableStore, Txn

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from fti.config import Settings

log = logging.getLogger(__name__)

INGEST_APP = "fti.ingest:"


class BadFileError(FtiError):
    """A landed file that cannot be used at all: nothing of it lands."""


def ensure_raw_table(store: TableStore, system: str, source: Source) -> str:
    """Create the raw table of a source if needed and return its name."""
    name = source.table(system)
    # Not partitioned: one file per landed batch (a year of daily partitions would be hundreds of small files);
    # the store compacts past `delta.compact_above_files`, and feature runs see through compactions.
    store.create_table(name, source.schema(), kind="raw", description=source.description,
                       properties={"fti.source": source.name})
    return name


def land(store: TableStore, system: str, source: Source, text_df: DataFrame, *, ingested_at: dt.datetime,
         source_label: str, txn: Txn | None = None, run: RunContext | None = None) -> CommitResult:
    """Land a DataFrame of text columns into the source's raw table as ONE new version.

    Args:
        store: Table store.
        system: System name.
        source: The raw source.
        text_df: The source's columns (any order; values are kept as text).
        ingested_at: The landing clock (``--now``), stamped on every row.
        source_label: Where the rows came from (file path or generator), stored in ``_source``.
        txn: Guard so that a retried batch is not landed twice.
        run: Run id and pipeline name.

    Returns:
        The commit.
    """
    if isinstance(source, DeltaSource):
        raise FtiError(f"source {source.name} of {system} is the Delta table {source.location}, read in place: fti "
                       "lands nothing into it; nothing was landed",
                       hint=f"write the rows to {source.location} with your own job (df.write.format('delta')"
                            ".mode('append')); the next feature run reads them")
    name = ensure_raw_table(store, system, source)
    run = run or RunContext(pipeline="ingest")
    raw = source.to_raw(text_df, ingested_at=ingested_at, source_label=source_label, batch=run.run_id)
    # one file per landed batch, sorted by day so that its statistics and row groups prune well
    with store.system_lock(system, what=f"landing {run.run_id} into {name}"):  # no deletion between read and commit
        raw = without_forgotten(raw, forgotten(store, system))  # a forgotten entity's new rows never land
        raw = raw.coalesce(1).sortWithinPartitions("land_day") if source.day else raw.coalesce(1)
        return store.append(name, raw, txn=txn, run=run)


def read_text_file(spark: SparkSession, path: Path) -> DataFrame:
    """Read a CSV (header row), JSON lines or parquet file with every column as text.

    Raises:
        BadFileError: The file is missing, truncated or not CSV, JSON lines or parquet.
    """

    if not path.is_file():
        raise BadFileError(f"file {path} does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            pq.read_metadata(str(path))  # a truncated file fails here, before Spark touches it
            df = spark.read.parquet(str(path))
            return df.select(*[_as_text(spark, f) for f in df.schema.fields])
        if suffix in (".csv", ".txt"):
            check_utf8(path)
            return (spark.read.option("header", True).option("inferSchema", False).option("mode", "PERMISSIVE")
                    .option("encoding", "UTF-8").csv(str(path)))
        if suffix in JSON_LINES:
            check_utf8(path)
            return _json_lines(spark, path)
    except BadFileError:
        raise
    except Exception as exc:
        raise BadFileError(f"cannot read {path}: {str(exc).splitlines()[0][:300]}",
                           hint="check that the file is complete and in CSV (with a header), JSON lines or parquet "
                                "format") from None
    raise BadFileError(f"{path} is neither .csv, .jsonl nor .parquet",
                       hint="land CSV files with a header row, JSON lines (one object per line, .jsonl), or parquet")


JSON_LINES = (".jsonl", ".ndjson", ".json")


def _json_lines(spark: SparkSession, path: Path) -> DataFrame:
    """A JSON lines file (one object per line) with every column as text: a string as it is, a number or boolean
    as the text of its value (``1.50`` lands as ``1.5``), a nested object or array as its JSON text, a missing
    key or ``null`` as null.

    Raises:
        BadFileError: A line that is not a JSON object, naming how many and the first one's line number.
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType

    corrupt = "_fti_corrupt_line"
    df = (spark.read.option("primitivesAsString", True).option("mode", "PERMISSIVE")
          .option("columnNameOfCorruptRecord", corrupt).option("encoding", "UTF-8").json(str(path)))
    if corrupt in df.columns:
        with open(path, encoding="utf-8") as handle:
            bad = [n for n, line in enumerate(handle, 1) if line.strip() and not _is_object(line)]
        if bad:
            raise BadFileError(f"{path}: {len(bad)} line(s) are not JSON objects (first: line {bad[0]}); nothing "
                               "was landed", hint="each line of a JSON lines file holds one object: {\"col\": value, ...}")
        df = df.drop(corrupt)
    return df.select(*[F.col(f"`{f.name}`") if isinstance(f.dataType, StringType)
                       else F.to_json(F.col(f"`{f.name}`")).alias(f.name) for f in df.schema.fields])


def _is_object(line: str) -> bool:
    import json

    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def _as_text(spark: SparkSession, field):
    """One parquet column as raw text. Typed timestamps become the raw contract's UTC ISO-8601 text
    (``2024-02-21T13:00:00Z``; a timestamp without a zone is taken as UTC, the contract's zone). A fraction of a
    second is kept (``...00.500000Z``), never dropped, so the feature run quarantines it with its value."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import TimestampNTZType, TimestampType

    col = F.col(f"`{field.name}`")
    if isinstance(field.dataType, TimestampType):
        # rendered in the session's zone: shift so the rendering is the UTC wall clock
        col = F.to_utc_timestamp(col, spark.conf.get("spark.sql.session.timeZone"))
    elif not isinstance(field.dataType, TimestampNTZType):
        return col.cast("string").alias(field.name)
    return (F.when(F.date_format(col, "SSSSSS") == "000000", F.date_format(col, "yyyy-MM-dd'T'HH:mm:ss'Z'"))
            .otherwise(F.date_format(col, "yyyy-MM-dd'T'HH:mm:ss.SSSSSS'Z'")).alias(field.name))


def check_utf8(path: Path, *, chunk: int = 1 << 20) -> None:
    """Refuse a text file that is not UTF-8 (Spark would silently turn its bytes into U+FFFD).

    Raises:
        BadFileError: Naming the line and byte offset of the first bad byte.
    """
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, line = 0, 1
    with open(path, "rb") as handle:
        while True:
            data = handle.read(chunk)
            try:
                decoder.decode(data, final=not data)
            except UnicodeDecodeError as exc:
                bad = offset + exc.start
                line += data[:exc.start].count(b"\n")
                raise BadFileError(
                    f"{path} is not UTF-8: byte 0x{data[exc.start]:02x} at offset {bad} (line {line}); "
                    "nothing was landed",
                    hint=f"re-encode it, e.g. iconv -f latin1 -t utf-8 {path.name} > {path.stem}.utf8{path.suffix}")\
                    from None
            if not data:
                return
            offset += len(data)
            line += data.count(b"\n")


def land_file(spark: SparkSession, store: TableStore, system: str, source: Source, path: Path, *,
              now: dt.datetime, run: RunContext | None = None) -> CommitResult:
    """Land an external CSV, JSON lines or parquet file into a source's raw table.

    A file whose columns do not match the source (missing or unknown columns) is refused whole and
    nothing lands; rows whose values do not parse land and are quarantined by the feature run.

    Raises:
        BadFileError: Wrong columns, unreadable file, or no rows.
    """
    df = read_text_file(spark, path)
    columns = [c for c in df.columns]
    missing = [c for c in source.columns if c not in columns]
    extra = [c for c in columns if c not in source.columns and c not in RAW_EXTRA]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing column(s) {', '.join(missing)}")
        if extra:
            parts.append(f"unknown column(s) {', '.join(extra)}")
        raise BadFileError(
            f"{path} does not match source '{source.name}' of system {system}: " + "; ".join(parts)
            + "; nothing was landed",
            hint=f"the file needs exactly the columns: {', '.join(source.columns)}",
        )
    rows = df.count()
    if rows == 0:
        raise BadFileError(f"{path} has no rows; nothing was landed", hint="check the export that produced it")
    result = land(store, system, source, df.select(*source.columns), ingested_at=now, source_label=str(path),
                  run=run or RunContext(pipeline="ingest"))
    log.info("landed %d rows of %s into %s (version %d)", rows, path, source.table(system), result.version)
    return result


def load_through(store: TableStore, settings: Settings, *, through: dt.date, batch: str | None = None,
                 now: dt.datetime | None = None, **options: object) -> list:
    """Run the project's own data loader (its ``Project.load``) up to ``through``: what ``fti ingest --through``,
    notebook 01 and ``fti demo`` call; ``options`` (only those given) go to the loader.

    Returns:
        The loader's :class:`fti.authoring.LandedBatch` list (empty when already landed through that day).

    Raises:
        FtiError: The project has no loader (its data arrives as files).
    """
    from fti.authoring import Landing
    from fti.projects import load_project

    project = load_project(settings)
    if project.load is None:
        raise FtiError(f"project {settings.system} ({settings.source}) has no data loader (Project.load), so "
                       "there is nothing to land --through a day",
                       hint=f"land files with: fti ingest --source SOURCE --file PATH (sources: "
                            f"{', '.join(project.sources)})")
    given = {k: v for k, v in options.items() if v is not None}
    return project.load(Landing(store.spark, store, settings), through=through,
                        batch=batch or settings.config.ingest.batch, now=now, **given)
