"""Feature group definitions: what a group is, stored in code and in its Delta table's properties."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from fti.features.aggregations import Aggregation, compile_aggregations, describe
from fti.features.rules import Check

if TYPE_CHECKING:
    from pyspark.sql import DataFrame
    from pyspark.sql.types import StructType


@dataclass(frozen=True)
class Feature:
    """One feature column.

    Attributes:
        name: Column name.
        type: Spark SQL type name (``double``, ``bigint``, ``string``...).
        description: What it means, in the user's words.
        min: Lowest plausible value (validation), if any.
        max: Highest plausible value (validation), if any.
    """

    name: str
    type: str
    description: str
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class FeatureGroup:
    """A feature group: a Delta table plus this definition.

    Every row holds the keys, ``event_time`` (when the values became KNOWN), ``ingested_at`` (the
    pipeline's clock when it wrote the row) and ``day`` (the calendar day the row describes, the table's
    partition column and the unit of window replacement).

    Attributes:
        name: Group name (``carrier_delay``); a breaking change makes ``carrier_delay_v2``.
        keys: Entity key columns.
        features: Feature columns (derived from ``aggregations`` when those are declared).
        description: What the group describes.
        ttl_seconds: Rows older than this at prediction time are not used (None: no limit).
        owner: Who to ask.
        sources: Raw tables (names relative to the system) the transform reads. None (and no transform): an
            inserted group, whose rows the user computes and hands over with
            :func:`fti.features.insert.insert` (feature runs leave it alone).
        lookback_days: How many days of input one output day needs (1 = the day itself).
        transform: ``(inputs: dict[source, DataFrame], context) -> DataFrame`` with no I/O.
        version: Definition version (a breaking change is a new group name, this counts additive ones).
        daily: For a trailing-window group: ``(inputs) -> DataFrame`` of per (keys, day) partial aggregates
            (sums, counts, maxima), kept in the group's state table so that a run combines stored days with the
            days it recomputes instead of re-reading the look-back's raw rows. With ``combine``;
            ``transform(inputs)`` must equal ``combine(daily(inputs))``.
        combine: ``(daily rows) -> DataFrame``: the group's rows from partial aggregates over the look-back.
        aggregations: Instead of ``transform``/``daily``/``combine``: :class:`~fti.features.aggregations.Aggregation`
            declarations over the group's ONE source, per key; fti derives the features, the per-day partials (the
            state), the combine step and the look-back (the longest window) from them.
        time_column: With ``aggregations``: the parsed source's column that says when a row became known (rows
            where it is null do not count); the group's ``event_time`` is its latest value the longest window covers.
        where: With ``aggregations``: only rows where this Spark SQL condition holds count (each aggregation may
            add its own ``where``).
        checks: Rules over the group's OWN rows (a computed group), judged before they are written:
            :class:`~fti.features.rules.Check` conditions over the keys, ``event_time``, ``day`` and the features
            (``"arr_delay_rate_28d BETWEEN 0 AND 1"``; null passes, so ``"x IS NOT NULL"`` says not null). A
            broken ``quarantine`` rule (the default) keeps the row out of the table and in the quarantine (its
            ``source`` is the group's table), so a point-in-time read serves the key's previous row; ``warn``
            keeps it and counts it; ``fail`` also refuses the group's write when more than
            ``features.max_bad_share`` of the rows a run computes break a ``fail`` rule.
    """

    name: str
    keys: tuple[str, ...]
    features: tuple[Feature, ...] = ()
    description: str = ""
    sources: tuple[str, ...] = ()
    transform: Callable[..., DataFrame] | None = field(default=None, compare=False, repr=False)
    lookback_days: int = 1
    ttl_seconds: int | None = None
    owner: str = "fti"
    version: int = 1
    event_time: str = "event_time"
    daily: Callable[..., DataFrame] | None = field(default=None, compare=False, repr=False)
    combine: Callable[..., DataFrame] | None = field(default=None, compare=False, repr=False)
    aggregations: tuple[Aggregation, ...] = ()
    time_column: str = "event_time"
    where: str | None = None
    checks: tuple[Check, ...] = ()

    def __post_init__(self) -> None:
        if not self.description:
            raise ValueError(f"feature group {self.name}: give it a description (what one row describes)")
        if self.aggregations:
            self._compile()
        elif self.where is not None or self.time_column != "event_time":
            raise ValueError(f"feature group {self.name}: where and time_column belong to declared aggregations")
        if not self.features:
            raise ValueError(f"feature group {self.name}: declare its features (or its aggregations)")
        if bool(self.sources) != (self.transform is not None):
            raise ValueError(f"feature group {self.name}: a computed group has sources and a transform; an inserted "
                             "group (rows handed over with insert) has neither")
        object.__setattr__(self, "checks", tuple(self.checks))
        wrong = [c for c in self.checks if not isinstance(c, Check)]
        if wrong:
            raise ValueError(f"feature group {self.name}: checks are Check(condition, reason, policy) rules, got "
                             f"{wrong[0]!r}")
        if self.checks and self.inserted:
            raise ValueError(f"feature group {self.name}: checks judge the rows a feature run computes; an inserted "
                             "group's rows are checked by its features' types and min/max when they are inserted")

    def _compile(self) -> None:
        """Derive the features, look-back and functions of declared aggregations (the dataclass is frozen)."""
        given = [f for f in (self.transform, self.daily, self.combine) if f is not None]
        if all(getattr(f, "fti_declared", False) for f in given) and len(given) == 3:
            given, features = [], ()  # dataclasses.replace of a declared group: compiled again below
        else:
            features = self.features
        if given or features:
            raise ValueError(f"feature group {self.name}: declared aggregations derive the features, transform, daily "
                             "and combine; give either the aggregations or those")
        if len(self.sources) != 1:
            raise ValueError(f"feature group {self.name}: declared aggregations read ONE source (got "
                             f"{len(self.sources)}); a group over several sources is a transform")
        object.__setattr__(self, "aggregations", tuple(self.aggregations))
        compiled = compile_aggregations(group=self.name, keys=self.keys, source=self.sources[0],
                                        aggregations=self.aggregations, time_column=self.time_column, where=self.where)
        object.__setattr__(self, "features", tuple(Feature(*f) for f in compiled.features))
        object.__setattr__(self, "lookback_days", compiled.lookback_days)
        object.__setattr__(self, "transform", compiled.transform)
        object.__setattr__(self, "daily", compiled.daily)
        object.__setattr__(self, "combine", compiled.combine)

    @property
    def inserted(self) -> bool:
        """Whether the user computes the rows and inserts them (no sources, no transform)."""
        return not self.sources

    @property
    def keeps_state(self) -> bool:
        """Whether runs combine stored per-day partial aggregates (a look-back longer than the day itself)."""
        return self.daily is not None and self.combine is not None and self.lookback_days > 1

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def table(self, system: str) -> str:
        return f"{system}/{self.name}"

    def to_json(self) -> str:
        """The definition as stored in the table property ``fti.definition``."""
        data: dict[str, Any] = {
            "name": self.name,
            "keys": list(self.keys),
            "event_time": self.event_time,
            "ttl_seconds": self.ttl_seconds,
            "owner": self.owner,
            "description": self.description,
            "sources": list(self.sources),
            "lookback_days": self.lookback_days,
            "version": self.version,
            "features": [dataclasses.asdict(f) for f in self.features],
        }
        if self.aggregations:
            data["declared"] = describe(self.aggregations, time_column=self.time_column, where=self.where)
        return json.dumps(data, sort_keys=True)

    def schema(self, key_types: dict[str, str]) -> StructType:
        """The table schema: keys, ``event_time``, features, ``ingested_at``, ``day``."""
        from pyspark.sql.types import StructType, _parse_datatype_string

        fields = ", ".join(
            [f"`{k}` {key_types.get(k, 'string')} NOT NULL" for k in self.keys]
            + ["event_time timestamp NOT NULL"]
            + [f"`{f.name}` {f.type}" for f in self.features]
            + ["ingested_at timestamp NOT NULL", "day date NOT NULL"]
        )
        schema = _parse_datatype_string(fields)
        assert isinstance(schema, StructType)
        return schema
