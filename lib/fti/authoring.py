"""The authoring API: the one part of fti that a project imports.

A project is a folder (or an installed package) of the user's own: a project file ``fti.yaml`` (the typed
configuration: Spark, Delta, MLflow, feature views, training windows, profiles) and a Python module that
builds a :class:`Project` from the classes below. ``fti init DIR`` writes a starter; ``fti --project DIR
<command>`` runs any command on it. The shipped examples (``fti.examples.flights`` and
``fti.examples.synthetic``) import nothing else from fti.

A minimal project module::

    from fti.authoring import Feature, FeatureGroup, Labels, Project, Source

    EVENTS = Source(name="raw_events", columns=("user_id", "ts", "amount"), description="Payments")

    def parse(raw, *, now, **_):
        from pyspark.sql import functions as F
        ts = F.to_timestamp("ts")
        return raw.select("user_id", ts.alias("event_time"), F.to_date(ts).alias("day"),
                          F.col("amount").cast("double").alias("amount"), "ingested_at",
                          F.when(ts.isNull(), F.lit("bad ts")).alias("_reason"))

    def spend(inputs, **_):
        from pyspark.sql import functions as F
        ev = inputs["raw_events"]
        return ev.groupBy("user_id", "day").agg(F.max("event_time").alias("event_time"),
                                                 F.sum("amount").alias("spend_1d"))

    def build() -> Project:
        return Project(sources={"raw_events": EVENTS}, parsers={"raw_events": parse},
                       groups=(FeatureGroup(name="spend", keys=("user_id",), sources=("raw_events",),
                                            transform=spend, description="Daily spend",
                                            features=(Feature("spend_1d", "double", "spend that day", 0),)),),
                       labels=Labels(source="raw_events", transform=..., schema_ddl=..., description=...))

A project's own data loader (what ``fti ingest --through DAY`` runs, such as the flights replay) receives a
:class:`Landing`; everything else (feature runs, training, scoring) is fti's and reads the definitions only.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping

from fti.config import SystemConfig as ProjectConfig
from fti.errors import ConfigError, EnvironmentProblem, FtiError
from fti.features.aggregations import Aggregation
from fti.features.definitions import Feature, FeatureGroup
from fti.features.prediction_time import prediction_time_col
from fti.features.rules import Check, Field, Unique, Validation
from fti.features.spec import Labels, Project
from fti.sources import DeltaSource, Source
from fti.timeutil import UTC, day_start, parse_duration, plan_batches

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession

    from fti.config import Settings
    from fti.store import RunContext, TableStore

__all__ = ["Aggregation", "Check", "ConfigError", "EnvironmentProblem", "Feature", "FeatureGroup", "Field", "FtiError", "Labels", "LandedBatch",
           "Landing", "Project", "ProjectConfig", "Source", "DeltaSource", "Tables", "UTC", "Unique", "Validation", "day_start", "parse_duration",
           "plan_batches", "prediction_time_col"]


class Tables:
    """Read access to a project's raw tables for :attr:`Project.context` (reference data its parsers need).

    Example::

        def context(tables):
            airports = tables.arrow(AIRPORTS, columns=["faa", "tzone"])
            return {"zones": {} if airports is None else dict(zip(*airports.columns))}
    """

    def __init__(self, store: TableStore, project: str) -> None:
        self._store, self.project = store, project

    def arrow(self, source: Source, *, columns: list[str] | None = None) -> pa.Table | None:
        """The source's raw table at its latest version, read without Spark (for small reference tables), or
        None when nothing was landed into it yet."""
        name = source.table(self.project)
        if not self._store.exists(name):
            return None
        return self._store.arrow_dataset(name).to_table(columns=columns)


@dataclass(frozen=True)
class LandedBatch:
    """What a project's loader landed in one batch, as ``fti ingest`` prints it.

    Attributes:
        first_day: First day of the batch.
        last_day: Last day of the batch (inclusive).
        now: The landing clock stamped on its rows (``ingested_at``).
        counts: Rows landed, by what they are (``{"flights": 1200, "weather hours": 72}``).
        version: The raw table version the batch made (of its main source).
    """

    first_day: dt.date
    last_day: dt.date
    now: dt.datetime
    counts: Mapping[str, int]
    version: int


class Landing:
    """What a project's own data loader is handed by ``fti ingest --through DAY`` (and notebook 01): the Spark
    session, the project's configuration, and a guarded way to land rows into the project's raw tables.

    Each :meth:`land` is ONE new version of the source's raw table. ``tag`` names the loader and ``mark`` is an
    increasing integer it chooses (a day's ordinal): both are recorded in that same commit, so :meth:`landed`
    says where a stopped loader resumes, and a retried ``land`` with a mark already recorded lands nothing.

    Example::

        def load(landing, *, through, batch, now=None, **_):
            done = landing.landed(EVENTS, tag="my-export")
            first = dt.date.fromordinal(done + 1) if done else dt.date(2024, 1, 1)
            out = []
            for first_day, last_day in plan_batches(first, through, batch):
                frame = read_my_export(first_day, last_day)          # a pandas DataFrame of text columns
                clock = now or day_start(last_day + dt.timedelta(days=1), "UTC")
                version = landing.land(EVENTS, frame, ingested_at=clock, label="my export",
                                       tag="my-export", mark=last_day.toordinal())
                out.append(LandedBatch(first_day, last_day, clock, {"events": len(frame)}, version))
            return out
    """

    def __init__(self, spark: SparkSession, store: TableStore, settings: Settings) -> None:
        self.spark = spark
        self._store, self._settings = store, settings

    @property
    def project(self) -> str:
        """The project's name (its tables are ``<project>/<source>``)."""
        return self._settings.system

    @property
    def config(self) -> ProjectConfig:
        """The project's configuration (``fti.yaml`` with its profile and overrides applied)."""
        return self._settings.config

    def landed(self, source: Source, *, tag: str) -> int | None:
        """The last mark ``tag`` recorded in the source's raw table, or None."""
        from fti.ingest import INGEST_APP

        return self._store.transaction_version(source.table(self.project), INGEST_APP + tag)

    def version(self, source: Source) -> int:
        """The source raw table's latest version."""
        return self._store.version(source.table(self.project))

    def run(self) -> RunContext:
        """A new landing run: pass it to several :meth:`land` calls that belong to one batch."""
        from fti.store import RunContext

        return RunContext(pipeline="ingest")

    def land(self, source: Source, rows: pd.DataFrame | DataFrame, *, ingested_at: dt.datetime, label: str,
             tag: str, mark: int, run: RunContext | None = None) -> int:
        """Land rows of the source's columns (kept as text) as one new version; returns that version.

        Args:
            source: The raw source.
            rows: A pandas or Spark DataFrame holding the source's columns.
            ingested_at: The landing clock stamped on every row.
            label: Where the rows came from (stored in ``_source``).
            tag: The loader's name (its marks are its own).
            mark: This batch's mark (an integer larger than the previous batch's).
            run: The batch's landing run (:meth:`run`), default a new one.
        """
        from pyspark.sql import DataFrame as SparkDataFrame

        from fti.ingest import INGEST_APP, land
        from fti.store import Txn

        frame = rows if isinstance(rows, SparkDataFrame) else self.spark.createDataFrame(rows[list(source.columns)])
        return land(self._store, self.project, source, frame, ingested_at=ingested_at, source_label=label,
                    txn=Txn(INGEST_APP + tag, mark), run=run or self.run()).version
