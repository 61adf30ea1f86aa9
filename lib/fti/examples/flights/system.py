"""The flights example project: its raw sources, parsers, feature groups, labels and the replay that lands them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fti.authoring import Labels, Project

from . import groups, parse
from .replay import load
from .sources import AIRPORTS, EXTRA_AIRPORT_ZONES, SOURCES

if TYPE_CHECKING:
    from fti.authoring import Tables


def airport_zones(tables: Tables) -> dict[str, Any]:
    """The parsers' reference data: each airport's IANA zone (the landed airports table, read without Spark)."""
    zones = dict(EXTRA_AIRPORT_ZONES)
    table = tables.arrow(AIRPORTS, columns=["faa", "tzone"])
    if table is not None:
        for faa, tzone in zip(table.column("faa").to_pylist(), table.column("tzone").to_pylist()):
            if faa and tzone and tzone != "\\N":
                zones[faa] = tzone
    return {"airport_zones": zones}


def build() -> Project:
    """The flights project's definitions."""
    return Project(
        sources=SOURCES,
        parsers={"raw_flights": parse.FLIGHTS, "raw_weather": parse.WEATHER},
        groups=groups.GROUPS,
        labels=Labels(
            source="raw_flights",
            transform=groups.labels,
            description="Every NYC departure with its prediction time and label (delayed > 15 min; null if cancelled)",
            schema_ddl=("flight_id string NOT NULL, day date NOT NULL, prediction_time timestamp NOT NULL, "
                        "sched_dep_utc timestamp NOT NULL, carrier string, flight int, tailnum string, origin string, "
                        "dest string, sched_dep_hour int, day_of_week int, month int, distance double, "
                        "cancelled boolean, delayed int, label_time timestamp, ingested_at timestamp NOT NULL"),
        ),
        context=airport_zones,
        load=load,
    )
