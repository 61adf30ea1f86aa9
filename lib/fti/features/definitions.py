"""Feature group definitions: what a group is, stored in code and in its Delta table's properties."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

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
        features: Feature columns.
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
    """

    name: str
    keys: tuple[str, ...]
    features: tuple[Feature, ...]
    description: str
    sources: tuple[str, ...] = ()
    transform: Callable[..., DataFrame] | None = field(default=None, compare=False, repr=False)
    lookback_days: int = 1
    ttl_seconds: int | None = None
    owner: str = "fti"
    version: int = 1
    event_time: str = "event_time"
    daily: Callable[..., DataFrame] | None = field(default=None, compare=False, repr=False)
    combine: Callable[..., DataFrame] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if bool(self.sources) != (self.transform is not None):
            raise ValueError(f"feature group {self.name}: a computed group has sources and a transform; an inserted "
                             "group (rows handed over with insert) has neither")

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
