"""Pure parts of the store layer, without Spark: replace predicates, transaction guards, connector naming."""

from __future__ import annotations

import datetime as dt

import pytest

from fti.connector import Connector, _artifact_of
from fti.store.predicate import Match
from fti.store.records import Txn

UTC = dt.timezone.utc


def file(partition=None, lo=None, hi=None):
    return {"partition": partition or {}, "min": lo or {}, "max": hi or {}}


def test_match_sql_quotes_every_type():
    m = Match.of(day=[dt.date(2013, 1, 2), dt.date(2013, 1, 1)], source=["it's"], v=[None, 3])
    assert m.sql() == ("(`day` IN (DATE'2013-01-01', DATE'2013-01-02')) AND (`source` IN ('it\\'s')) "
                       "AND (`v` IN (3) OR `v` IS NULL)")
    ts = Match.of(as_of=[dt.datetime(2013, 12, 1, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=-5)))])
    assert ts.sql() == "(`as_of` IN (TIMESTAMP'2013-12-01 05:00:00.000000+00:00'))"
    with pytest.raises(ValueError, match="no time zone"):
        Match.of(t=[dt.datetime(2013, 1, 1)]).sql()
    with pytest.raises(ValueError, match="at least one value"):
        Match.of(day=[])


def test_match_may_hold_uses_partitions_and_statistics():
    days = Match.of(day=[dt.date(2013, 1, 5)])
    assert days.may_hold(file(lo={"day": dt.date(2013, 1, 1)}, hi={"day": dt.date(2013, 1, 31)}))
    assert not days.may_hold(file(lo={"day": dt.date(2013, 2, 1)}, hi={"day": dt.date(2013, 2, 28)}))
    assert days.may_hold(file())  # no statistics: it may
    by_part = Match.of(model_name=["m"], as_of_date=[dt.date(2013, 12, 1)])
    assert by_part.may_hold(file({"model_name": "m", "as_of_date": "2013-12-01"}))
    assert not by_part.may_hold(file({"model_name": "m", "as_of_date": "2013-12-02"}))
    # timestamp maxima are truncated to the millisecond by the connector: widen by 1 ms
    t = dt.datetime(2013, 1, 1, 0, 0, 0, 500, tzinfo=UTC)
    stamp = Match.of(ts=[t])
    assert stamp.may_hold(file(lo={"ts": t.replace(microsecond=0)}, hi={"ts": t.replace(microsecond=0)}))


def test_txn_version_zero_is_applied():
    assert Txn("a", 0).applied_in(0)
    assert not Txn("a", 0).applied_in(None)
    assert not Txn("a", 5).applied_in(4) and Txn("a", 5).applied_in(6)


def test_connector_coordinates_and_jar_names():
    assert Connector("4.2.0", "4.4.0").coordinates == "io.delta:delta-spark_4.2_2.13:4.4.0"
    assert _artifact_of("parquet-hadoop-1.16.0") == "parquet-hadoop"
    assert _artifact_of("zstd-jni-1.5.7-3") == "zstd-jni"
    assert _artifact_of("delta-spark_4.2_2.13-4.4.0") == "delta-spark_4.2_2.13"


def test_manifest_round_trip_and_older_manifests_load(tmp_path):
    """The typed manifest writes the documented JSON and reads it back; a manifest written before the view
    hash and history entries existed still loads."""
    import json

    from fti.store.manifest import GroupEntry, OutputEntry, SpineEntry, TrainingSetManifest

    manifest = TrainingSetManifest(
        name="flights_delay", feature_view="flights_delay_v1", system="flights",
        spine=SpineEntry("flights/labels", 7, ["flight_id"], "prediction_time", "delayed", "2013-01-01", "2013-12-01",
                         True, ["distance"]),
        groups=[GroupEntry("carrier_delay", "flights/carrier_delay", 12, {"carrier": "carrier"},
                           {"carrier_rate": "dep_delay_rate_7d"}, 604800, history_table="flights/history/carrier_delay",
                           history_version=3)],
        bitemporal=True, view_hash="abc", code_version="sha",
    ).with_output(OutputEntry("flights/training_sets/flights_delay_v1/train-1", 0, 10, "f" * 64), {"x": {}})
    path = manifest.write(tmp_path)
    assert path == tmp_path / "flights/training_sets/flights_delay_v1/train-1.training_set.json"
    data = json.loads(path.read_text())
    assert data["spine"]["filter"] == {"start": "2013-01-01", "end": "2013-12-01", "require_label": True}
    assert data["features"][0]["history"] == {"table": "flights/history/carrier_delay", "version": 3}
    assert TrainingSetManifest.read(path) == manifest
    assert manifest.versions() == {"spine": 7, "carrier_delay": 12, "carrier_delay/history": 3}
    assert manifest.pins() == {"flights/labels": 7, "flights/carrier_delay": 12, "flights/history/carrier_delay": 3,
                               "flights/training_sets/flights_delay_v1/train-1": 0}
    assert manifest.feature_columns == ["distance", "carrier_rate"]
    for key in ("view_hash", "system", "name"):
        data.pop(key)
    data["features"][0].pop("history")
    old = TrainingSetManifest.from_json(data)
    assert old.view_hash is None and old.system == "flights" and old.groups[0].history_table is None
