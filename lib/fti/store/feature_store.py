"""The public Python API (notebooks and users): ``FeatureStore``.

``get_training_set(spine_df, feature_view, *, versions=None, bitemporal=False)`` returns a
:class:`TrainingSet` (the Spark DataFrame and its manifest); ``get_batch_features(feature_view, *, as_of,
population_df=None)`` gives the features of a population at a prediction time (``batch_features_local``: the
same in this process, pyarrow over the pinned Delta files); ``get_latest_features(group, keys)`` the newest row
per key. Store reads take ``version=`` or ``timestamp=`` (a commit time); ``as_of``
always means a prediction time.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from fti.errors import ConfigError, FtiError
from fti.store import RunContext, TableStore, new_run_id
from fti.store.pit import UNTIL, GroupJoin, PitResult, point_in_time_join
from fti.store.manifest import GroupEntry, OutputEntry, SpineEntry, TrainingSetManifest
from fti.store.training_set import code_version, content_hash
from fti.timeutil import UTC, day_start, parse_duration

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame

    from fti.config import FeatureViewConfig, Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ViewGroup:
    """A feature group inside a resolved feature view."""

    group: str
    table: str
    keys: dict[str, str]
    columns: dict[str, str]
    ttl_seconds: int | None
    event_time: str = "event_time"


@dataclass(frozen=True)
class FeatureView:
    """A named list of features from groups plus spine columns (from ``feature_views`` in the config)."""

    name: str
    spine_table: str
    spine_keys: list[str]
    spine_time: str
    label: str
    spine_features: list[str]
    groups: list[ViewGroup]

    @property
    def feature_columns(self) -> list[str]:
        return list(self.spine_features) + [c for g in self.groups for c in g.columns]

    def definition_hash(self) -> str:
        """SHA-256 of everything that decides the rows of a training set built from this view (spine, groups,
        keys, columns with their prefixes, TTLs, event times), recorded in the manifest: a training set is
        reused only for the same definition."""
        import hashlib

        text = json.dumps(dataclasses.asdict(self), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class TrainingSet:
    """A point-in-time-correct training set: the rows and the manifest that pins how they were made."""

    df: DataFrame
    manifest: TrainingSetManifest
    pit: PitResult | None = None
    path: str | None = None
    manifest_file: str | None = None

    @property
    def feature_columns(self) -> list[str]:
        return self.manifest.feature_columns


def _missing_columns(group: ViewGroup, version: int, missing: Sequence[str]) -> FtiError:
    return FtiError(f"feature group {group.group} (table {group.table} version {version}) has no column(s) "
                    f"{', '.join(missing)}", hint="the group's schema changed incompatibly: pin an older version or "
                    "retrain on the new group version")


def view_of_manifest(manifest: TrainingSetManifest) -> FeatureView:
    """The feature view a training set (and so a model) was made with."""
    groups = [ViewGroup(group=g.group, table=g.table, keys=dict(g.keys), columns=dict(g.columns),
                        ttl_seconds=g.ttl_seconds, event_time=g.event_time) for g in manifest.groups]
    spine = manifest.spine
    return FeatureView(name=manifest.feature_view, spine_table=spine.table, spine_keys=list(spine.keys),
                       spine_time=spine.event_time, label=spine.label, spine_features=list(spine.feature_columns),
                       groups=groups)


class FeatureStore:
    """Feature views, point-in-time training sets and batch features over the Delta tables of a home.

    Args:
        store: The table store (its Spark session does the work).
        settings: Loaded settings (system, feature views, time zone).
    """

    def __init__(self, store: TableStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.spark = store.spark

    # ----------------------------------------------------------------------------- views
    def feature_view(self, name: str | None = None) -> FeatureView:
        """Resolve a feature view from the config (default: the system's only or first view)."""
        views = self.settings.config.feature_views
        if not views:
            raise ConfigError(f"no feature_views in the config of system {self.settings.system}")
        name = name or next(iter(views))
        if name not in views:
            raise ConfigError(f"feature view {name!r} is not in the config", hint=f"views: {', '.join(views)}")
        return self._resolve(name, views[name])

    def _resolve(self, name: str, cfg: FeatureViewConfig) -> FeatureView:
        system = self.settings.system
        groups = []
        for g in cfg.groups:
            table = f"{system}/{g.group}"
            ttl = int(parse_duration(g.ttl).total_seconds()) if g.ttl else None
            if ttl is None and self.store.exists(table):
                definition = json.loads(self.store.properties(table).get("fti.definition", "{}"))
                ttl = definition.get("ttl_seconds")
            groups.append(ViewGroup(group=g.group, table=table, keys=dict(g.keys),
                                    columns={f"{g.prefix}{f}": f for f in g.features}, ttl_seconds=ttl))
        return FeatureView(name=name, spine_table=cfg.spine.table, spine_keys=list(cfg.spine.keys),
                           spine_time=cfg.spine.event_time, label=cfg.spine.label,
                           spine_features=list(cfg.spine.features), groups=groups)

    # ----------------------------------------------------------------------------- training sets
    def _joins(self, view: FeatureView, versions: Mapping[str, int], *,
               bitemporal: bool = False) -> tuple[list[GroupJoin], list[GroupEntry]]:
        from pyspark.sql import functions as F

        joins, entries = [], []
        for g in view.groups:
            if not self.store.exists(g.table):
                raise FtiError(f"feature group {g.group} of view {view.name} has no table {g.table}",
                               hint=f"run the feature pipeline: fti features --system {self.settings.system}")
            version = versions.get(g.group, self.store.version(g.table))
            rows = self.store.read(g.table, version=version)
            count = self.store.row_count(g.table, version=version)
            history = None
            if bitemporal:  # the rows recomputes replaced: what was known before each revision
                history = self._history(g, versions)
                if history is not None:  # a replaced row is a candidate only until its replacement (_until)
                    old = self.store.read(history["table"], version=history["version"])
                    old = old.select(*[c for c in old.columns if c in rows.columns],
                                     old["replaced_at"].alias(UNTIL))
                    rows = rows.withColumn(UNTIL, F.lit(None).cast("timestamp")).unionByName(
                        old, allowMissingColumns=True)
                    count += self.store.row_count(history["table"], version=history["version"])
            missing = [c for c in list(g.columns.values()) + list(g.keys.values()) if c not in rows.columns]
            if missing:
                raise _missing_columns(g, version, missing)
            joins.append(GroupJoin(g.group, rows, g.keys, g.columns,
                                   dt.timedelta(seconds=g.ttl_seconds) if g.ttl_seconds else None, g.event_time,
                                   row_count=count, until=UNTIL if UNTIL in rows.columns else None))
            entries.append(GroupEntry(group=g.group, table=g.table, version=version, keys=dict(g.keys),
                                      columns=dict(g.columns), ttl_seconds=g.ttl_seconds, event_time=g.event_time,
                                      history_table=history["table"] if history else None,
                                      history_version=history["version"] if history else None))
        return joins, entries

    def _pit_options(self, joins: Sequence[GroupJoin]) -> dict[str, Any]:
        """The configured algorithm, enough hash buckets that one merge call holds about ``pit.bucket_rows``
        feature rows (row counts from the Delta log: no Spark job), and hot keys split above ``pit.split_rows``."""
        cfg = self.settings.config.pit
        rows = sum(j.row_count or 0 for j in joins)
        partitions = int(self.spark.conf.get("spark.sql.shuffle.partitions"))
        return {"algorithm": cfg.algorithm, "buckets": max(partitions, -(-rows // cfg.bucket_rows)),
                "split_rows": cfg.split_rows}

    def _history(self, group: ViewGroup, versions: Mapping[str, int]) -> dict[str, Any] | None:
        """The group's history table and the version to read (``versions["<group>/history"]``, else latest)."""
        system, _, name = group.table.partition("/")
        table = f"{system}/history/{name}"
        if not self.store.exists(table):
            return None
        return {"table": table, "version": versions.get(f"{group.group}/history", self.store.version(table))}

    def get_training_set(self, spine_df: DataFrame | None, feature_view: str | FeatureView | None = None, *,
                         versions: Mapping[str, int] | None = None, bitemporal: bool = False,
                         start: dt.date | None = None, end: dt.date | None = None,
                         require_label: bool = True) -> TrainingSet:
        """Build a point-in-time-correct training set (not yet materialized).

        Args:
            spine_df: Spine rows (keys, prediction time, label...). None reads the view's spine table; an
                in-memory spine is first written to a Delta table so that the manifest can pin it.
            feature_view: View name (default: the config's first) or a resolved view.
            versions: Group name (or ``"spine"``) -> Delta version to read (default: latest).
            bitemporal: Only use feature rows stored (``ingested_at``) by the prediction time.
            start: Keep spine rows whose prediction time falls on or after this local day.
            end: ... and before this local day (exclusive).
            require_label: Drop spine rows without a label (cancelled flights).

        Returns:
            The training set with its manifest (``output`` is filled by :meth:`materialize`).
        """
        from pyspark.sql import functions as F

        view = feature_view if isinstance(feature_view, FeatureView) else self.feature_view(feature_view)
        versions = dict(versions or {})
        spine_table = view.spine_table
        if spine_df is not None:
            spine_table = f"{self.settings.system}/spines/{new_run_id('spine')}"
            self.store.create_table(spine_table, spine_df.schema, kind="labels", description="in-memory spine")
            self.store.append(spine_table, spine_df, run=RunContext(pipeline="training"))
        if not self.store.exists(spine_table):
            raise FtiError(f"spine table {spine_table} does not exist",
                           hint=f"run the feature pipeline first: fti features --system {self.settings.system}")
        spine_version = versions.get("spine", self.store.version(spine_table))
        spine = self.store.read(spine_table, version=spine_version)
        tz = self.settings.config.timezone
        cond = F.lit(True)
        if require_label:
            cond = cond & F.col(view.label).isNotNull()
        if start:
            cond = cond & (F.col(view.spine_time) >= F.lit(day_start(start, tz)))
        if end:
            cond = cond & (F.col(view.spine_time) < F.lit(day_start(end, tz)))
        keep = list(dict.fromkeys(view.spine_keys + [view.spine_time, view.label] + view.spine_features +
                                  [k for g in view.groups for k in g.keys]))
        spine = spine.where(cond).select(*keep)
        joins, entries = self._joins(view, versions, bitemporal=bitemporal)
        pit = point_in_time_join(spine, joins, spine_time=view.spine_time, bitemporal=bitemporal, **self._pit_options(joins))
        manifest = TrainingSetManifest(
            name=view.name.rsplit("_v", 1)[0] if "_v" in view.name else view.name, feature_view=view.name,
            system=self.settings.system,
            spine=SpineEntry(table=spine_table, version=spine_version, keys=list(view.spine_keys),
                             event_time=view.spine_time, label=view.label,
                             start=start.isoformat() if start else None, end=end.isoformat() if end else None,
                             require_label=require_label, feature_columns=list(view.spine_features)),
            groups=entries, bitemporal=bitemporal, view_hash=view.definition_hash(), code_version=code_version())
        return TrainingSet(df=pit.frame, manifest=manifest, pit=pit)

    def materialize(self, training_set: TrainingSet, *, run_id: str | None = None) -> TrainingSet:
        """Write the training set as a Delta table (kind ``training_set``) whose path ends in the run id,
        compute the leakage report and content hash, and write the manifest beside it."""
        run_id = run_id or new_run_id("train")
        name = f"{self.settings.system}/training_sets/{training_set.manifest.feature_view}/{run_id}"
        joined = training_set.pit.joined.cache() if training_set.pit else training_set.df.cache()
        report = training_set.pit.report() if training_set.pit else {}
        frame = joined.drop(*training_set.pit.helper_columns) if training_set.pit else joined
        self.store.create_table(name, frame.schema, kind="training_set",
                                description=f"training set of view {training_set.manifest.feature_view}",
                                properties={"fti.feature_view": training_set.manifest.feature_view})
        result = self.store.append(name, frame.coalesce(max(1, self.spark.sparkContext.defaultParallelism)),
                                   run=RunContext(run_id=run_id, pipeline="training"))
        stored = self.store.read(name, version=result.version)
        digest = content_hash(stored)
        joined.unpersist()
        manifest = training_set.manifest.with_output(
            OutputEntry(table=name, version=result.version, rows=result.rows, sha256=digest), report)
        path = manifest.write(self.store.home)
        log.info("training set %s: %d rows, sha256 %s…", name, result.rows, digest[:12])
        return TrainingSet(df=stored, manifest=manifest, pit=None, path=name, manifest_file=str(path))

    def rebuild(self, manifest: TrainingSetManifest | str) -> dict[str, Any]:
        """Rebuild a training set from its manifest (every table at its pinned version) and compare hashes.

        Returns:
            ``{"matches": bool, "expected": sha, "actual": sha, "rows": n}``.
        """
        if not isinstance(manifest, TrainingSetManifest):
            manifest = TrainingSetManifest.read(manifest)
        spine = manifest.spine
        rebuilt = self.get_training_set(
            None, view_of_manifest(manifest), versions=manifest.versions(), bitemporal=manifest.bitemporal,
            start=dt.date.fromisoformat(spine.start) if spine.start else None,
            end=dt.date.fromisoformat(spine.end) if spine.end else None, require_label=spine.require_label)
        frame = rebuilt.df.cache()
        actual = content_hash(frame)
        rows = frame.count()
        frame.unpersist()
        expected = manifest.output.sha256 if manifest.output else None
        return {"matches": actual == expected, "expected": expected, "actual": actual, "rows": rows,
                "table": manifest.output.table if manifest.output else None}

    # ----------------------------------------------------------------------------- serving reads
    def get_batch_features(self, feature_view: str | FeatureView | None = None, *, as_of: dt.datetime,
                           population_df: DataFrame | None = None, versions: Mapping[str, int] | None = None,
                           spine_table: str | None = None, bitemporal: bool = False) -> DataFrame:
        """Features of a population at prediction time ``as_of``, with the same join as training.

        Args:
            feature_view: View name or resolved view.
            as_of: The prediction time (UTC-aware).
            population_df: The entities to score (their spine columns); default: the spine table's rows whose
                prediction time is ``as_of`` (every one, labelled or not).
            versions: Group -> Delta version (default: latest).
            spine_table: Read the population from this table instead of the view's.
            bitemporal: Only feature rows stored by ``as_of`` (what a bi-temporal model was trained on).

        Returns:
            Population rows with the view's features.
        """
        from pyspark.sql import functions as F

        view = feature_view if isinstance(feature_view, FeatureView) else self.feature_view(feature_view)
        as_of = as_of.astimezone(UTC)
        if population_df is None:
            population_df = self.store.read(spine_table or view.spine_table).where(
                F.col(view.spine_time) == F.lit(as_of).cast("timestamp"))
        else:
            population_df = population_df.withColumn(view.spine_time, F.lit(as_of).cast("timestamp"))
        joins, entries = self._joins(view, dict(versions or {}), bitemporal=bitemporal)
        return point_in_time_join(population_df, joins, spine_time=view.spine_time, bitemporal=bitemporal,
                                  **self._pit_options(joins)).frame

    def batch_features_local(self, view: FeatureView, *, as_of: dt.datetime, versions: Mapping[str, int],
                             bitemporal: bool = False) -> pa.Table:
        """:meth:`get_batch_features` in this process, without Spark: the population (the spine table's rows at
        ``as_of``) and each group's rows at its pinned version, read with pyarrow from the Delta files
        (only the population's keys and rows with ``event_time <= as_of``), joined by the same as-of merge as
        the co-grouped Spark join (:func:`fti.store.asof.asof_merge`).

        Returns:
            The population's spine columns and the view's features, one row per population row.
        """
        import pyarrow as pa
        import pyarrow.compute as pc

        from fti.store.asof import asof_merge

        as_of = as_of.astimezone(UTC)
        moment = pa.scalar(as_of, type=pa.timestamp("us", tz="UTC"))
        keep = list(dict.fromkeys(view.spine_keys + [view.spine_time] + view.spine_features +
                                  [k for g in view.groups for k in g.keys]))
        spine = self.store.arrow_dataset(view.spine_table).to_table(columns=keep, filter=pc.field(view.spine_time) == moment)
        out = spine
        for g in view.groups:
            version = versions.get(g.group, self.store.version(g.table))
            cols = list(dict.fromkeys(list(g.keys.values()) + [g.event_time, "ingested_at"] + list(g.columns.values())))
            dataset = self.store.arrow_dataset(g.table, version=version)
            missing = [c for c in cols if c not in dataset.schema.names]
            if missing:
                raise _missing_columns(g, version, missing)
            cond = pc.field(g.event_time) <= moment
            for spine_key, group_key in g.keys.items():  # only the population's keys
                values = pc.unique(spine.column(spine_key)).drop_null()
                cond = cond & pc.field(group_key).isin(values.cast(dataset.schema.field(group_key).type))
            rows = dataset.to_table(columns=cols, filter=cond)
            history = self._history(g, versions) if bitemporal else None
            if history is not None:  # what was known before each revision, each replaced row until its replacement
                old = self.store.arrow_dataset(history["table"], version=history["version"]).to_table(
                    columns=cols + ["replaced_at"], filter=cond)
                until = old.column("replaced_at").cast(pa.timestamp("us", tz="UTC"))
                old = old.drop_columns(["replaced_at"]).cast(rows.schema).append_column(UNTIL, until)
                rows = pa.concat_tables([rows.append_column(UNTIL, pa.nulls(rows.num_rows, until.type)), old])
            out = asof_merge(out, rows, spine_keys=list(g.keys), feature_keys=list(g.keys.values()),
                             spine_time=view.spine_time, event_time=g.event_time, columns=dict(g.columns),
                             ttl_micros=g.ttl_seconds * 1_000_000 if g.ttl_seconds else None, bitemporal=bitemporal,
                             until=UNTIL if history is not None else None)
        return out

    def get_latest_features(self, group: str, keys: Sequence[Mapping[str, Any]] | DataFrame) -> DataFrame:
        """The newest row of a feature group for each given key."""
        from pyspark.sql import Window
        from pyspark.sql import functions as F

        table = f"{self.settings.system}/{group}"
        definition = json.loads(self.store.properties(table)["fti.definition"])
        key_cols = definition["keys"]
        rows = self.store.read(table)
        wanted = keys if not isinstance(keys, (list, tuple)) else self.spark.createDataFrame(
            [tuple(k[c] for c in key_cols) for k in keys], ", ".join(f"`{c}` string" for c in key_cols))
        latest = Window.partitionBy(*key_cols).orderBy(F.col("event_time").desc())
        newest = rows.join(wanted.select(*key_cols), key_cols, "inner").withColumn("_r", F.row_number().over(latest))
        return newest.where("_r = 1").drop("_r")
