"""The quarantine: raw rows that failed validation, kept with their reason, run id and raw version; a batch with
too many of them is rejected (recorded in the quarantine's commit) until a user accepts it."""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Iterable, Mapping

from fti.errors import FtiError
from fti.store import Match, RunContext, TableStore, Txn

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

    from fti.config import Settings

log = logging.getLogger(__name__)

QUARANTINE_DDL = ("source string NOT NULL, raw_version bigint NOT NULL, run_id string NOT NULL, reason string NOT NULL, "
                  "raw_row string NOT NULL, ingested_at timestamp, detected_at timestamp NOT NULL, land_day date")


class TooManyBadRows(FtiError):
    """A run found more bad raw rows than ``features.max_bad_share`` allows."""

    exit_code = 3


def quarantine_table(system: str) -> str:
    return f"{system}/quarantine"


def ensure_table(store: TableStore, system: str) -> str:
    from pyspark.sql.types import _parse_datatype_string

    name = quarantine_table(system)
    store.create_table(name, _parse_datatype_string(QUARANTINE_DDL), kind="quarantine",
                       description="Raw rows that failed validation, with the reason, run id and raw version")
    return name


REJECTED = "fti.rejected:"
ACCEPTED = "fti.accepted:"


def judged_through(store: TableStore, system: str, source: str, output_marks: Iterable[int | None]) -> int | None:
    """The raw version of ``source`` up to which every row was judged: the quarantine's watermark, or an output's
    watermark for the source where that is further. A run judges every new row of a source before it commits any
    output, and makes no quarantine commit when no row is bad; so an output at raw version V proves rows up to V
    were judged."""
    qname = quarantine_table(system)
    marks = [m for m in output_marks if m is not None]
    if store.exists(qname):
        marks.append(store.watermark(qname, source))
    marks = [m for m in marks if m is not None]
    return max(marks) if marks else None


def accept_hint(system: str, source: str, qname: str, run_id: str | None, share: float) -> str:
    return (f"inspect the rows in {qname}{f' (run id {run_id})' if run_id else ''}; then accept the batch with "
            f"`fti features accept --system {system} --source {source}`, or raise features.max_bad_share above "
            f"{100.0 * share:.1f}% (FTI__FEATURES__MAX_BAD_SHARE={share + 0.0005:.3f})")


def pending_rejection(store: TableStore, system: str, source: str) -> tuple[int, int, int] | None:
    """The raw version up to which a batch of ``source`` was rejected and not accepted since, with its
    ``(bad, new)`` row counts; None when there is none."""
    qname = quarantine_table(system)
    if not store.exists(qname):
        return None
    rejected = store.transaction_version(qname, REJECTED + source)
    accepted = store.transaction_version(qname, ACCEPTED + source)
    if rejected is None or (accepted is not None and accepted >= rejected):
        return None
    for entry in store.history(qname):
        if entry.get("fti.rejected") == source:
            return rejected, int(entry.get("fti.bad_rows") or 0), int(entry.get("fti.new_rows") or 0)
    return rejected, 0, 0


def refuse_rejected(store: TableStore, system: str, source: str, readers: Mapping[str, int | None],
                     max_bad_share: float) -> None:
    """Stop before any feature write while a rejected batch of ``source`` would be read by an output that has
    not moved past it, unless the user accepted it (``fti features accept``) or raised the share above its own."""
    pending = pending_rejection(store, system, source)
    if pending is None:
        return
    version, bad, new = pending
    behind = sorted(t for t, mark in readers.items() if mark is None or mark < version)
    if not behind or (new and bad / new <= max_bad_share):
        return
    raise TooManyBadRows(
        f"the batch of {source} up to raw version {version} was rejected ({bad} of {new} new rows failed "
        f"validation, {100.0 * bad / max(new, 1):.1f}% > {100.0 * max_bad_share:.1f}%) and is not accepted: "
        f"{', '.join(behind)} were not changed",
        hint=accept_hint(system, source, quarantine_table(system), None, bad / max(new, 1)),
    )


def accept_rejected(store: TableStore, settings: Settings, *, source: str) -> int:
    """Accept the rejected batch of a raw source: later runs featurize its good rows (its bad rows stay in the
    quarantine). Recorded as an application transaction in the quarantine table.

    Returns:
        The raw version accepted up to.

    Raises:
        FtiError: No rejected batch of that source is pending.
    """
    from pyspark.sql.types import _parse_datatype_string

    from fti.projects import load_project

    system = load_project(settings)
    if source not in system.sources:
        raise FtiError(f"unknown source {source!r} of system {settings.system}",
                       hint=f"sources: {', '.join(system.sources)}")
    pending = pending_rejection(store, settings.system, source)
    if pending is None:
        raise FtiError(f"no rejected batch of {source} is waiting to be accepted")
    qname = quarantine_table(settings.system)
    empty = store.spark.createDataFrame([], _parse_datatype_string(QUARANTINE_DDL))
    store.append(qname, empty, records=[Txn(ACCEPTED + source, pending[0])],
                 run=RunContext(pipeline="features"), metadata={"fti.accepted": source})
    log.info("accepted the batch of %s up to raw version %d (%d of %d rows bad)", source, *pending)
    return pending[0]


def _gate(parsed: DataFrame) -> Column:
    """Whether a bad row counts toward the batch gate: rows a ``fail`` rule refused (a declared validation's
    ``_policy``), or every bad row of a hand-written parser (no ``_policy`` column)."""
    from pyspark.sql import functions as F

    if "_policy" not in parsed.columns:
        return F.lit(True)
    return F.coalesce(F.col("_policy") == "fail", F.lit(True))


def warnings(parsed: DataFrame) -> dict[str, int]:
    """Rows kept although a ``warn`` rule broke, by reason, among the new rows (empty for hand-written parsers)."""
    from pyspark.sql import functions as F

    if "_warning" not in parsed.columns:
        return {}
    rows = parsed.where(F.col("_reason").isNull() & F.col("_warning").isNotNull() & F.col("_raw_version").isNotNull()) \
        .groupBy("_warning").count().collect()
    return {r["_warning"]: r["count"] for r in rows}


def record(store: TableStore, system: str, source: str, raw: str, parsed: DataFrame, *, first: int, version: int,
           new_rows: int, now: dt.datetime, run: RunContext, max_bad_share: float) -> int:
    """Write the bad rows among ``parsed``'s new ones (those tagged with their ``_raw_version``) of the raw table
    ``raw`` to the quarantine: ONE commit that replaces raw versions ``first..version`` of ``source`` and moves its
    watermark there (rows are judged once, when they arrive). A rejected batch (more than ``max_bad_share`` of the
    new rows refused by a ``fail`` rule, see :func:`_gate`) is recorded IN that commit, then refused. With no bad
    row there is no commit: the run's outputs carry the watermark (:func:`judged_through`).

    Returns:
        The number of bad new rows.

    Raises:
        TooManyBadRows: Past ``max_bad_share`` (after the commit: later runs keep refusing the batch until accepted).
    """
    from pyspark.sql import functions as F

    qname = quarantine_table(system)
    bad = parsed.where(F.col("_reason").isNotNull() & F.col("_raw_version").isNotNull()).select(
        F.lit(source).alias("source"), F.col("_raw_version").alias("raw_version"),
        F.lit(run.run_id).alias("run_id"), F.col("_reason").alias("reason"), F.col("_raw_row").alias("raw_row"),
        F.col("_raw_ingested_at").alias("ingested_at"), F.lit(now).cast("timestamp").alias("detected_at"),
        F.col("_raw_land_day").alias("land_day"), _gate(parsed).alias("_gate"),
    ).cache()
    try:
        counts = bad.agg(F.count(F.lit(1)).alias("bad"), F.sum(F.col("_gate").cast("int")).alias("gated")).first()
        bad_rows, gated = counts["bad"], counts["gated"] or 0
        rejected = bool(new_rows) and gated / new_rows > max_bad_share
        if bad_rows == 0:  # nothing to record: no commit (the outputs' watermarks say these rows were judged)
            log.info("%s: %d new raw rows, none quarantined", source, new_rows)
            return 0
        store.replace_where(qname, bad.drop("_gate").coalesce(1),
                            Match.of(source=[source], raw_version=range(first, version + 1)),
                            watermarks={source: version}, run=run, txn=Txn(f"quarantine:{source}", version),
                            records=[Txn(REJECTED + source, version)] if rejected else (),
                            metadata={"fti.bad_rows": gated, "fti.quarantined_rows": bad_rows, "fti.new_rows": new_rows,
                                      **({"fti.rejected": source} if rejected else {})})
    finally:
        bad.unpersist()
    if new_rows:
        log.info("%s: %d new raw rows, %d quarantined (%.2f%%)", source, new_rows, bad_rows, 100.0 * bad_rows / new_rows)
    if rejected:
        others = f", and {bad_rows - gated} more quarantined by quarantine-policy rules" if bad_rows > gated else ""
        raise TooManyBadRows(
            f"{gated} of {new_rows} new rows of {raw} failed validation "
            f"({100.0 * gated / new_rows:.1f}% > {100.0 * max_bad_share:.1f}%{others}); feature tables were not changed, "
            "and later runs refuse this batch until it is accepted",
            hint=accept_hint(system, source, qname, run.run_id, gated / new_rows),
        )
    return bad_rows
