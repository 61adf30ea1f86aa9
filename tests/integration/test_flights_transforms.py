"""Flights transforms on hand-written rows, compared whole with chispa.

Times: New York is UTC-5 in winter (EST) and UTC-4 in summer (EDT); Chicago UTC-6 in winter; Los Angeles
UTC-8 in winter; San Juan UTC-4 all year.
"""

from __future__ import annotations

import datetime as dt

import pytest
from chispa import assert_approx_df_equality, assert_df_equality

from fti.examples.flights.groups import GROUPS, aircraft_legs, labels
from fti.examples.flights.parse import parse_flights, parse_weather
from fti.examples.flights.sources import FLIGHTS, WEATHER
from fti.features.prediction_time import prediction_time, prediction_time_col

UTC = dt.timezone.utc
ZONES = {"IAH": "America/Chicago", "ORD": "America/Chicago", "LAX": "America/Los_Angeles", "SJU": "America/Puerto_Rico"}
LANDED = dt.datetime(2013, 1, 3, 5, 0)
LATER = dt.datetime(2013, 1, 4, 5, 0)


def flight(y, m, d, sched, dep_delay, arr_time, arr_delay, carrier, num, tail, origin, dest, time_hour,
           ingested=LANDED, file="f1.parquet"):
    hour, minute = divmod(sched, 100)
    values = dict(year=str(y), month=str(m), day=str(d), dep_time=None, sched_dep_time=str(sched),
                  dep_delay=dep_delay, arr_time=arr_time, sched_arr_time=None, arr_delay=arr_delay,
                  carrier=carrier, flight=str(num), tailnum=tail, origin=origin, dest=dest, air_time=None,
                  distance="1000", hour=str(hour), minute=str(minute), time_hour=time_hour)
    return tuple(values[c] for c in FLIGHTS.columns) + (ingested, file)


def raw_flights_df(spark, rows):
    ddl = ", ".join(f"{c} string" for c in FLIGHTS.columns) + ", ingested_at timestamp, _batch string"
    return spark.createDataFrame(rows, ddl)


A = flight(2013, 1, 1, 515, "2", "830", "11", "UA", 1545, "N14228", "EWR", "IAH", "2013-01-01T10:00:00Z")
A_LATER_COPY = A[:-2] + (LATER, "f2.parquet")
B_AFTER_MIDNIGHT = flight(2013, 1, 1, 2330, "90", "300", "80", "UA", 100, "N1", "EWR", "ORD", "2013-01-02T04:00:00Z")
C_CANCELLED = flight(2013, 1, 1, 1200, None, None, None, "UA", 200, "N2", "EWR", "ORD", "2013-01-01T17:00:00Z")
D_WEST = flight(2013, 1, 1, 2100, "0", "10", "-5", "AA", 1, "N3", "JFK", "LAX", "2013-01-02T02:00:00Z")
DST_EDT = flight(2013, 11, 3, 130, "0", "500", "0", "B6", 1, "N4", "JFK", "SJU", "2013-11-03T05:00:00Z")
DST_EST = flight(2013, 11, 3, 130, "0", "500", "0", "B6", 1, "N5", "JFK", "SJU", "2013-11-03T06:00:00Z")
E_BAD_DELAY = flight(2013, 1, 1, 600, "abc", None, None, "UA", 300, "N6", "EWR", "ORD", "2013-01-01T11:00:00Z")
F_NO_CARRIER = flight(2013, 1, 1, 600, "1", None, None, None, 301, "N7", "EWR", "ORD", "2013-01-01T11:00:00Z")
G_WRONG_UTC = flight(2013, 1, 1, 515, "1", None, None, "UA", 302, "N8", "EWR", "ORD", "2013-01-01T11:00:00Z")
H_FUTURE = flight(2013, 12, 1, 1000, "1", None, None, "UA", 303, "N9", "EWR", "ORD", "2013-12-01T15:00:00Z")
I_NAN = flight(2013, 1, 1, 700, "NaN", None, None, "UA", 304, "N10", "EWR", "ORD", "2013-01-01T12:00:00Z")
J_RANGE = flight(2013, 1, 1, 800, "99999", None, None, "UA", 305, "N11", "EWR", "ORD", "2013-01-01T13:00:00Z")
K_ISO_OTHER = flight(2013, 1, 1, 900, "1", None, None, "UA", 306, "N12", "EWR", "ORD", "01/01/2013 14:00")
NOW = dt.datetime(2013, 11, 4, tzinfo=UTC)


def ts(*a):
    return dt.datetime(*a)


@pytest.fixture(scope="module")
def parsed(spark):
    rows = [A, A_LATER_COPY, B_AFTER_MIDNIGHT, C_CANCELLED, D_WEST, DST_EDT, DST_EST, E_BAD_DELAY, F_NO_CARRIER,
            G_WRONG_UTC, H_FUTURE, I_NAN, J_RANGE, K_ISO_OTHER]
    return parse_flights(raw_flights_df(spark, rows), now=NOW, airport_zones=ZONES).cache()


def test_good_flights_utc_times_and_arrivals(spark, parsed):
    got = parsed.where("_reason is null").select("flight_id", "day", "sched_dep_utc", "actual_dep_utc",
                                                 "actual_arr_utc", "cancelled", "ingested_at")
    expected = spark.createDataFrame([
        ("20130101T1015Z-UA-1545", dt.date(2013, 1, 1), ts(2013, 1, 1, 10, 15), ts(2013, 1, 1, 10, 17),
         ts(2013, 1, 1, 14, 30), False, LATER),
        # 23:30 EST + 90 min leaves at 01:00 EST the NEXT day (06:00Z); arrives 03:00 CST (09:00Z)
        ("20130102T0430Z-UA-100", dt.date(2013, 1, 1), ts(2013, 1, 2, 4, 30), ts(2013, 1, 2, 6, 0),
         ts(2013, 1, 2, 9, 0), False, LANDED),
        ("20130101T1700Z-UA-200", dt.date(2013, 1, 1), ts(2013, 1, 1, 17, 0), None, None, True, LANDED),
        # 21:00 EST = 02:00Z; arrives 00:10 PST the next local day = 08:10Z
        ("20130102T0200Z-AA-1", dt.date(2013, 1, 1), ts(2013, 1, 2, 2, 0), ts(2013, 1, 2, 2, 0),
         ts(2013, 1, 2, 8, 10), False, LANDED),
        # the repeated 01:30 on the DST night: once in EDT (05:30Z), once in EST (06:30Z)
        ("20131103T0530Z-B6-1", dt.date(2013, 11, 3), ts(2013, 11, 3, 5, 30), ts(2013, 11, 3, 5, 30),
         ts(2013, 11, 3, 9, 0), False, LANDED),
        ("20131103T0630Z-B6-1", dt.date(2013, 11, 3), ts(2013, 11, 3, 6, 30), ts(2013, 11, 3, 6, 30),
         ts(2013, 11, 3, 9, 0), False, LANDED),
    ], "flight_id string, day date, sched_dep_utc timestamp, actual_dep_utc timestamp, actual_arr_utc timestamp, "
       "cancelled boolean, ingested_at timestamp")
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_bad_flights_have_reasons(spark, parsed):
    got = parsed.where("_reason is not null").select("tailnum", "_reason")
    expected = spark.createDataFrame([
        ("N14228", "duplicate row"),
        ("N6", "unparseable dep_delay: 'abc'"),
        ("N7", "null or empty key: carrier"),
        ("N8", "time_hour disagrees with the local year/month/day/hour"),
        ("N9", "time_hour after the run's clock (2013-11-04T00:00:00+00:00)"),
        ("N10", "dep_delay is not a finite number: NaN"),
        ("N11", "dep_delay out of range [-1440, 2880]: 99999"),
        ("N12", "unparseable time_hour: '01/01/2013 14:00' (expected YYYY-MM-DDTHH:MM:SSZ)"),
    ], "tailnum string, _reason string")
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_weather_dst_repeated_hour_and_bad_rows(spark):
    def w(hour, time_hour, temp="50", origin="EWR"):
        values = dict(origin=origin, year="2013", month="11", day="3", hour=str(hour), temp=temp, dewp=None,
                      humid=None, wind_dir=None, wind_speed="5", wind_gust=None, precip="0", pressure="1010",
                      visib="10", time_hour=time_hour)
        return tuple(values[c] for c in WEATHER.columns) + (LANDED, "w.parquet")

    ddl = ", ".join(f"{c} string" for c in WEATHER.columns) + ", ingested_at timestamp, _batch string"
    raw = spark.createDataFrame([w(1, "2013-11-03T05:00:00Z"), w(1, "2013-11-03T06:00:00Z", "49"),
                                 w(1, "2013-11-03T07:00:00Z"), w(2, "2013-11-03T07:00:00Z", "hot")], ddl)
    got = parse_weather(raw, now=NOW).select("origin", "event_time", "day", "temp", "_reason")
    expected = spark.createDataFrame([
        ("EWR", ts(2013, 11, 3, 5), dt.date(2013, 11, 3), 50.0, None),
        ("EWR", ts(2013, 11, 3, 6), dt.date(2013, 11, 3), 49.0, None),
        ("EWR", ts(2013, 11, 3, 7), dt.date(2013, 11, 3), 50.0, "time_hour disagrees with the local year/month/day/hour"),
        ("EWR", ts(2013, 11, 3, 7), dt.date(2013, 11, 3), None, "unparseable temp: 'hot'"),
    ], "origin string, event_time timestamp, day date, temp double, _reason string")
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_trailing_delay_is_known_when_its_last_flight_left(spark):
    flights = spark.createDataFrame([
        ("UA", dt.date(2013, 1, 1), ts(2013, 1, 1, 15, 0), 20.0),
        ("UA", dt.date(2013, 1, 1), ts(2013, 1, 2, 6, 0), 90.0),  # scheduled Jan 1, left after midnight
        ("UA", dt.date(2013, 1, 2), ts(2013, 1, 2, 14, 0), 0.0),
        ("UA", dt.date(2013, 1, 9), ts(2013, 1, 9, 14, 0), -5.0),
        ("AA", dt.date(2013, 1, 1), None, None),  # cancelled: not known, not counted
    ], "carrier string, day date, actual_dep_utc timestamp, dep_delay double")
    carrier_delay = next(g for g in GROUPS if g.name == "carrier_delay")  # declared aggregations
    got = carrier_delay.transform({"raw_flights": flights})
    expected = spark.createDataFrame([
        # the Jan 1 aggregate is known at 06:00Z Jan 2 (01:00 New York), not at midnight
        ("UA", dt.date(2013, 1, 1), ts(2013, 1, 2, 6), 1.0, 2, 55.0, 1.0, 2, 55.0),
        ("UA", dt.date(2013, 1, 2), ts(2013, 1, 2, 14), 2 / 3, 3, 110 / 3, 2 / 3, 3, 110 / 3),
        ("UA", dt.date(2013, 1, 9), ts(2013, 1, 9, 14), 0.0, 1, -5.0, 0.5, 4, 26.25),
    ], "carrier string, day date, event_time timestamp, dep_delay_rate_7d double, flights_7d long, "
       "mean_dep_delay_7d double, dep_delay_rate_28d double, flights_28d long, mean_dep_delay_28d double")
    assert_approx_df_equality(got, expected, 1e-9, ignore_row_order=True, ignore_nullable=True)


def test_aircraft_legs_known_at_arrival(spark):
    parsed_rows = spark.createDataFrame([
        ("N1", dt.date(2013, 1, 1), "f1", ts(2013, 1, 1, 12), ts(2013, 1, 1, 14), 5.0, 7.0),
        ("N1", dt.date(2013, 1, 1), "f2", ts(2013, 1, 1, 16), None, 30.0, None),  # arrival unknown
        ("N1", dt.date(2013, 1, 2), "f3", ts(2013, 1, 2, 12), ts(2013, 1, 2, 13), 0.0, -2.0),
        (None, dt.date(2013, 1, 1), "f4", ts(2013, 1, 1, 12), ts(2013, 1, 1, 13), 0.0, 0.0),  # no tail
    ], "tailnum string, day date, flight_id string, actual_dep_utc timestamp, actual_arr_utc timestamp, "
       "dep_delay double, arr_delay double")
    got = aircraft_legs({"raw_flights": parsed_rows})
    expected = spark.createDataFrame([
        ("N1", dt.date(2013, 1, 1), ts(2013, 1, 1, 14), 5.0, 7.0, 1),
        ("N1", dt.date(2013, 1, 1), ts(2013, 1, 1, 16), 30.0, None, 2),
        ("N1", dt.date(2013, 1, 2), ts(2013, 1, 2, 13), 0.0, -2.0, 1),
    ], "tailnum string, day date, event_time timestamp, prev_dep_delay double, prev_arr_delay double, legs_today int")
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


@pytest.mark.parametrize("sched_utc, expected_utc", [
    (ts(2013, 1, 2, 15, 0), ts(2013, 1, 2, 5, 0)),   # 10:00 EST -> midnight EST the same day
    (ts(2013, 1, 2, 6, 30), ts(2013, 1, 1, 5, 0)),   # 01:30 EST: 2 h earlier is the previous day
    (ts(2013, 1, 2, 7, 0), ts(2013, 1, 2, 5, 0)),    # 02:00 EST exactly: 00:00 is that day's batch
    (ts(2013, 7, 2, 15, 0), ts(2013, 7, 2, 4, 0)),   # summer: midnight EDT is 04:00Z
    (ts(2013, 11, 3, 12, 0), ts(2013, 11, 3, 4, 0)),  # DST night: the day began in EDT
    (ts(2013, 3, 10, 12, 0), ts(2013, 3, 10, 5, 0)),  # spring forward: the day began in EST
])
def test_prediction_time_column_and_python_agree(spark, sched_utc, expected_utc):
    from pyspark.sql import functions as F

    lead, interval = dt.timedelta(hours=2), dt.timedelta(days=1)
    df = spark.createDataFrame([(sched_utc,)], "s timestamp")
    got = df.select(prediction_time_col(F.col("s"), lead=lead, interval=interval, tz="America/New_York")).first()[0]
    assert got == expected_utc
    py = prediction_time(sched_utc.replace(tzinfo=UTC), lead=lead, interval=interval, tz="America/New_York")
    assert py == expected_utc.replace(tzinfo=UTC)


def test_labels_spine_rows(spark, parsed, settings):
    got = labels(parsed.where("_reason is null"), config=settings.config).select(
        "flight_id", "prediction_time", "cancelled", "delayed", "sched_dep_hour", "day_of_week")
    expected = spark.createDataFrame([
        ("20130101T1015Z-UA-1545", ts(2013, 1, 1, 5), False, 0, 5, 3),
        ("20130102T0430Z-UA-100", ts(2013, 1, 1, 5), False, 1, 23, 3),
        ("20130101T1700Z-UA-200", ts(2013, 1, 1, 5), True, None, 12, 3),
        ("20130102T0200Z-AA-1", ts(2013, 1, 1, 5), False, 0, 21, 3),
        # 01:30 EDT on Nov 3 minus 2 h is 23:30 Nov 2: the Nov 2 batch (04:00Z);
        # 01:30 EST (an hour later) minus 2 h is 00:30 EDT Nov 3: the Nov 3 batch (04:00Z)
        ("20131103T0530Z-B6-1", ts(2013, 11, 2, 4), False, 0, 1, 1),
        ("20131103T0630Z-B6-1", ts(2013, 11, 3, 4), False, 0, 1, 1),
    ], "flight_id string, prediction_time timestamp, cancelled boolean, delayed int, sched_dep_hour int, "
       "day_of_week int")
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)
