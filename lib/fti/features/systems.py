"""The example systems: their raw sources, parsers, feature groups and labels."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

from fti.errors import ConfigError
from fti.features.definitions import FeatureGroup
from fti.sources import Source

if TYPE_CHECKING:
    from pyspark.sql import DataFrame
    from pyspark.sql.types import StructType

    from fti.store import TableStore


@dataclass(frozen=True)
class LabelsSpec:
    """How a system's labels table (the training spine) is computed from a parsed source."""

    source: str
    transform: Callable[..., DataFrame]
    schema_ddl: str
    description: str


@dataclass(frozen=True)
class SystemSpec:
    """A system: raw sources, a parser per source (rows + ``_reason``), feature groups, labels.

    Attributes:
        name: System name.
        sources: Raw sources by name.
        parsers: Source name -> ``parse(raw_df, now=..., **context) -> DataFrame`` with ``_reason``.
        groups: Feature groups.
        labels: The labels table spec.
        context: ``(store, system) -> dict`` of reference data the parsers need (read once per run).
        key_types: Spark SQL type of each key column (default string).
    """

    name: str
    sources: Mapping[str, Source]
    parsers: Mapping[str, Callable[..., DataFrame]]
    groups: tuple[FeatureGroup, ...]
    labels: LabelsSpec
    context: Callable[[TableStore, str], dict[str, Any]] = field(default=lambda store, system: {})
    key_types: Mapping[str, str] = field(default_factory=dict)

    def group(self, name: str) -> FeatureGroup:
        for group in self.groups:
            if group.name == name:
                return group
        raise ConfigError(f"system {self.name} has no feature group {name!r}",
                          hint=f"groups: {', '.join(g.name for g in self.groups)}")

    def labels_schema(self) -> StructType:
        from pyspark.sql.types import _parse_datatype_string

        return _parse_datatype_string(self.labels.schema_ddl)


def _flights() -> SystemSpec:
    from fti.features.flights import groups, parse
    from fti.features.flights.sources import AIRPORTS, EXTRA_AIRPORT_ZONES, SOURCES

    def context(store: TableStore, system: str) -> dict[str, Any]:
        zones = dict(EXTRA_AIRPORT_ZONES)
        name = AIRPORTS.table(system)
        if store.exists(name):
            for row in store.read(name).select("faa", "tzone").collect():
                if row.faa and row.tzone and row.tzone != "\\N":
                    zones[row.faa] = row.tzone
        return {"airport_zones": zones}

    return SystemSpec(
        name="flights",
        sources=SOURCES,
        parsers={"raw_flights": parse.parse_flights,
                 "raw_weather": lambda df, now, **ctx: parse.parse_weather(df, now=now)},
        groups=groups.GROUPS,
        labels=LabelsSpec(
            source="raw_flights",
            transform=groups.labels,
            description="Every NYC departure with its prediction time and label (delayed > 15 min; null if cancelled)",
            schema_ddl=("flight_id string NOT NULL, day date NOT NULL, prediction_time timestamp NOT NULL, "
                        "sched_dep_utc timestamp NOT NULL, carrier string, flight int, tailnum string, origin string, "
                        "dest string, sched_dep_hour int, day_of_week int, month int, distance double, "
                        "cancelled boolean, delayed int, label_time timestamp, ingested_at timestamp NOT NULL"),
        ),
        context=context,
    )


def get_system(name: str) -> SystemSpec:
    """The spec of a system by name.

    Raises:
        ConfigError: For an unknown system.
    """
    builders = {"flights": _flights}
    try:
        from fti.features.synthetic import system as synthetic_system

        builders["synthetic"] = synthetic_system.build
    except ImportError:
        pass
    if name not in builders:
        raise ConfigError(f"no feature pipeline for system {name!r}", hint=f"systems: {', '.join(sorted(builders))}")
    return builders[name]()
