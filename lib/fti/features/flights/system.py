"""The flights system: its raw sources, parsers, feature groups and labels."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fti.features.flights import groups, parse
from fti.features.flights.sources import AIRPORTS, EXTRA_AIRPORT_ZONES, SOURCES
from fti.features.spec import LabelsSpec, SystemSpec

if TYPE_CHECKING:
    from fti.store import TableStore


def build() -> SystemSpec:
    """The flights system's spec."""
    def context(store: TableStore, system: str) -> dict[str, Any]:
        zones = dict(EXTRA_AIRPORT_ZONES)
        name = AIRPORTS.table(system)
        if store.exists(name):  # a small table: read from its files without Spark
            table = store.arrow_dataset(name).to_table(columns=["faa", "tzone"])
            for faa, tzone in zip(table.column("faa").to_pylist(), table.column("tzone").to_pylist()):
                if faa and tzone and tzone != "\\N":
                    zones[faa] = tzone
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
