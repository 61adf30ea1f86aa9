"""Validation as data: every rule of a declared validation yields its reason on the row that breaks it (compared
whole with chispa against hand-written rows), a value that breaks its field's rule is null in the typed column, and
the three policies hold in a real feature run: ``fail`` rows count toward ``max_bad_share`` (the batch is rejected and
no table changes), ``quarantine`` rows are quarantined without rejecting the batch, ``warn`` rows are kept and counted.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from fti.authoring import (Aggregation, Check, ConfigError, Field, FeatureGroup, Labels, Project, Source, Unique,
                           Validation)
from fti.config import load_config
from fti.features import pipeline
from fti.features.quarantine import TooManyBadRows
from fti.ingest import land
from fti.store import open_store

UTC = dt.timezone.utc
NOW = dt.datetime(2025, 1, 1, tzinfo=UTC)
RAW = ("id", "ts", "n", "x", "d", "code", "kind", "price", "big")
RULES = Validation(
    fields=(Field("id", key=True),
            Field("ts", "timestamp", format="yyyy-MM-dd'T'HH:mm:ss'Z'", expected="YYYY-MM-DDTHH:MM:SSZ",
                  between=("2000-01-01", None), not_in_future=True),
            Field("n", "int", between=(0, 10)),
            Field("x", "double", not_null=True),
            Field("d", "date", format="yyyy-MM-dd"),
            Field("code", matches="^[A-Z]{3}$"),
            Field("kind", in_set=("a", "b")),
            Field("price", "decimal(10,2)", between=(0, None)),
            Field("big", "bigint")),
    derive={"n_plus_x": "n + x"},
    checks=(Check("n <= x", "n above x"),),
    unique=Unique(key=("id",)),
)
GOOD = dict(id="k1", ts="2024-01-01T00:00:00Z", n="3", x="5.5", d="2024-01-01", code="ABC", kind="a", price="1.25",
            big="9007199254740993")
EARLY, LATE = dt.datetime(2024, 6, 1), dt.datetime(2024, 6, 2)
# (the row's changes from GOOD, when it landed, the reason it must get)
CASES = [
    ({}, LATE, None),
    ({}, EARLY, "duplicate row"),
    ({"id": "k2"}, LATE, None),
    ({"id": "k2", "code": "XYZ"}, EARLY, "superseded by a later landing of the same key"),
    ({"id": "  "}, LATE, "null or empty key: id"),
    ({"id": "k3", "x": None}, LATE, "null or empty x"),
    ({"id": "k4", "ts": "2024/01/01"}, LATE, "unparseable ts: '2024/01/01' (expected YYYY-MM-DDTHH:MM:SSZ)"),
    ({"id": "k5", "ts": "1999-12-31T23:59:59Z"}, LATE, "ts before 2000-01-01"),
    ({"id": "k6", "ts": "2025-01-01T00:00:01Z"}, LATE, "ts after the run's clock (2025-01-01T00:00:00+00:00)"),
    ({"id": "k7", "n": "abc"}, LATE, "unparseable n: 'abc'"),
    ({"id": "k8", "n": "3.5"}, LATE, "n is not a whole number"),
    ({"id": "k9", "n": "99999999999"}, LATE, "n does not fit int: 99999999999"),
    ({"id": "k10", "n": "11"}, LATE, "n out of range [0, 10]: 11"),
    ({"id": "k11", "x": "inf"}, LATE, "x is not a finite number: inf"),
    ({"id": "k12", "d": "2024-13-01"}, LATE, "unparseable d: '2024-13-01' (expected yyyy-MM-dd)"),
    ({"id": "k13", "code": "abcd"}, LATE, "code does not match ^[A-Z]{3}$: abcd"),
    ({"id": "k14", "kind": "c"}, LATE, "kind not one of a, b: c"),
    ({"id": "k15", "price": "-1"}, LATE, "price below 0: -1"),
    ({"id": "k16", "big": "99999999999999999999"}, LATE, "big does not fit bigint: 99999999999999999999"),
    ({"id": "k17", "n": "6", "x": "5.5"}, LATE, "n above x"),
    ({"id": "k18", "n": " 4 ", "x": " 4.0", "code": None, "kind": None}, LATE, None),
]


def _raw(spark, cases):
    rows = [tuple({**GOOD, **change}[c] for c in RAW) + (landed, f"b{i}") for i, (change, landed, _) in enumerate(cases)]
    return spark.createDataFrame(rows, ", ".join(f"{c} string" for c in RAW) + ", ingested_at timestamp, _batch string")


def test_every_rule_yields_its_reason_and_a_broken_value_is_null(spark):
    got = RULES(_raw(spark, CASES), now=NOW)
    assert got.columns == [*(f.name for f in RULES.fields), "n_plus_x", "ingested_at", "_reason", "_policy"]
    want = spark.createDataFrame(
        [({**GOOD, **change}["id"].strip() or None, reason) for change, _, reason in CASES], "id string, _reason string")
    assert_df_equality(got.select("id", "_reason"), want, ignore_row_order=True, ignore_nullable=True)
    # the typed values: the broken one is null, the others parsed (trimmed; a bigint past 2^53 exact)
    typed = got.where(F.col("id").isin("k1", "k10", "k18")).where("_reason is null or id != 'k1'")
    expected = spark.createDataFrame([
        ("k1", dt.datetime(2024, 1, 1), 3, 5.5, dt.date(2024, 1, 1), "ABC", "a", decimal.Decimal("1.25"),
         9007199254740993, 8.5),
        ("k10", dt.datetime(2024, 1, 1), None, 5.5, dt.date(2024, 1, 1), "ABC", "a", decimal.Decimal("1.25"),
         9007199254740993, None),
        ("k18", dt.datetime(2024, 1, 1), 4, 4.0, dt.date(2024, 1, 1), None, None, decimal.Decimal("1.25"),
         9007199254740993, 8.0),
    ], "id string, ts timestamp, n int, x double, d date, code string, kind string, price decimal(10,2), big bigint, "
       "n_plus_x double")
    assert_df_equality(typed.select(*expected.columns), expected, ignore_row_order=True, ignore_nullable=True)


def test_typed_input_columns_are_checked_without_parsing(spark):
    """A Delta source's rows arrive typed: the rules apply to the values as they are."""
    rules = Validation(fields=(Field("id", key=True), Field("n", "int", between=(0, 10)), Field("x", "double")))
    raw = spark.createDataFrame([("a", 3, 1.0), ("b", 12, float("nan")), (None, 1, 2.0)],
                                "id string, n bigint, x double").withColumn("ingested_at", F.current_timestamp())
    got = rules(raw, now=NOW).select("id", "n", "_reason")
    want = spark.createDataFrame([("a", 3, None), ("b", None, "n out of range [0, 10]: 12"),
                                  (None, 1, "null or empty key: id")], "id string, n int, _reason string")
    assert_df_equality(got, want, ignore_row_order=True, ignore_nullable=True)


@pytest.mark.parametrize("make, message", [
    (lambda: Field("t", "interger"), "unknown type 'interger'"),
    (lambda: Field("t", "int", whole=True), "whole is for float and double fields"),
    (lambda: Field("t", "string", format="yyyy"), "a format is for date and timestamp fields"),
    (lambda: Field("t", "int", not_in_future=True), "not_in_future is for date and timestamp fields"),
    (lambda: Field("t", between=(1,)), "between is (low, high)"),
    (lambda: Field("t", policy="drop"), "unknown policy 'drop'"),
    (lambda: Validation(fields=(Field("a"), Field("a"))), "declares a more than once"),
    (lambda: Validation(fields=(Field("a"),), unique=Unique(key=("b",))), "undeclared column(s) b"),
])
def test_declarations_that_cannot_work_are_refused(make, message):
    with pytest.raises(ConfigError) as e:
        make()
    assert message in str(e.value)


def test_a_raw_column_the_validation_reads_must_exist(spark):
    raw = spark.createDataFrame([("a",)], "id string").withColumn("ingested_at", F.current_timestamp())
    with pytest.raises(ConfigError) as e:
        Validation(fields=(Field("id"), Field("amount", "double")))(raw, now=NOW)
    assert "reads column(s) amount the raw rows do not have" in str(e.value) and "raw columns: id" in str(e.value)


EVENTS = Source(name="events", columns=("user_id", "ts", "amount"), description="payments",
                day=lambda: F.to_date(F.expr("try_to_timestamp(ts, \"yyyy-MM-dd'T'HH:mm:ss'Z'\")")))


def _project(amount: Field) -> Project:
    rules = Validation(fields=(Field("user_id", key=True, policy="fail"),
                               Field("ts", "timestamp", format="yyyy-MM-dd'T'HH:mm:ss'Z'", not_null=True, policy="fail"),
                               amount),
                       derive={"event_time": "ts", "day": "to_date(ts)"}, keep=("user_id", "event_time", "day", "amount"))
    labels = Labels(source="events", description="user-days",
                    transform=lambda ev, **_: ev.groupBy("user_id", "day").count().select(
                        "user_id", "day", F.col("day").cast("timestamp").alias("prediction_time"), "count"),
                    schema_ddl="user_id string NOT NULL, day date NOT NULL, prediction_time timestamp NOT NULL, "
                               "count bigint, ingested_at timestamp NOT NULL")
    group = FeatureGroup(name="spend", keys=("user_id",), sources=("events",), description="spend",
                         aggregations=(Aggregation("amount", "sum", "2d", name="spend_{window}",
                                                   description="spend over 2 days"),))
    return Project(sources={"events": EVENTS}, parsers={"events": rules}, groups=(group,), labels=labels,
                   name="synthetic")


@pytest.mark.parametrize("policy", ["fail", "quarantine", "warn"])
def test_policies_in_a_feature_run(spark, tmp_path, policy):
    """Half the batch breaks the amount rule (max_bad_share 5%): ``fail`` rejects the batch (nothing written),
    ``quarantine`` quarantines those rows and writes the rest, ``warn`` keeps them and counts them."""
    project = _project(Field("amount", "double", between=(0, 100), policy=policy))
    settings = load_config("synthetic", home=tmp_path / "home")
    store = open_store(spark, settings)
    rows = [("u1", "2024-03-01T10:00:00Z", "10"), ("u1", "2024-03-01T11:00:00Z", "500"),
            ("u2", "2024-03-01T10:00:00Z", "20"), ("u2", "2024-03-01T12:00:00Z", "-5")]
    land(store, "synthetic", EVENTS, spark.createDataFrame(rows, "user_id string, ts string, amount string"),
         ingested_at=dt.datetime(2024, 3, 2, tzinfo=UTC), source_label="batch")
    clock = dt.datetime(2024, 3, 2, tzinfo=UTC)
    if policy == "fail":
        with pytest.raises(TooManyBadRows) as e:
            pipeline.run(store, settings, system=project, now=clock)
        assert "2 of 4 new rows of synthetic/events failed validation (50.0% > 5.0%)" in str(e.value)
        assert not store.exists("synthetic/spend")
        return
    report = pipeline.run(store, settings, system=project, now=clock)
    spend = store.read("synthetic/spend").where("day = '2024-03-01'").select("user_id", "spend_2d")
    quarantined = {r.reason for r in store.read("synthetic/quarantine").collect()} if policy == "quarantine" else set()
    if policy == "quarantine":
        assert report.bad_rows["events"] == 2 and quarantined == {"amount out of range [0, 100]: 500",
                                                                  "amount out of range [0, 100]: -5"}
        want = [("u1", 10.0), ("u2", 20.0)]
    else:
        assert report.bad_rows["events"] == 0 and not store.exists("synthetic/quarantine") or \
            store.read("synthetic/quarantine").count() == 0
        assert report.warned_rows["events"] == {"amount out of range [0, 100]: 500": 1,
                                                "amount out of range [0, 100]: -5": 1}
        want = [("u1", 510.0), ("u2", 15.0)]
    assert_df_equality(spend, spark.createDataFrame(want, "user_id string, spend_2d double"), ignore_row_order=True,
                       ignore_nullable=True)


def _checked(policy: str | None) -> Project:
    """The payments project with one check on the group's own rows: at most 100 spent in 2 days."""
    base = _project(Field("amount", "double"))
    group = dataclasses.replace(base.groups[0], checks=(
        Check("spend_2d <= 100", "spent more than 100 in 2 days", policy=policy),))
    return dataclasses.replace(base, groups=(group,))


@pytest.mark.parametrize("policy", ["fail", "quarantine", "warn"])
def test_checks_on_a_groups_own_rows(spark, tmp_path, policy):
    """A group's checks judge the rows it computes: ``quarantine`` keeps a breaking row out of the group and in
    the quarantine (source: the group's table), and a later run that recomputes the day clean replaces it there;
    ``warn`` keeps and counts it; ``fail`` past ``max_bad_share`` refuses the group's write (nothing of it written)."""
    project = _checked(policy)
    settings = load_config("synthetic", home=tmp_path / "home")
    store = open_store(spark, settings)

    def land_rows(rows, at):
        land(store, "synthetic", EVENTS, spark.createDataFrame(rows, "user_id string, ts string, amount string"),
             ingested_at=at, source_label="batch")

    land_rows([("u1", "2024-03-01T10:00:00Z", "10"), ("u1", "2024-03-01T11:00:00Z", "500"),
               ("u2", "2024-03-01T10:00:00Z", "20")], dt.datetime(2024, 3, 2, tzinfo=UTC))
    clock = dt.datetime(2024, 3, 2, tzinfo=UTC)
    schema = "user_id string, spend_2d double"
    if policy == "fail":
        with pytest.raises(TooManyBadRows) as e:
            pipeline.run(store, settings, system=project, now=clock)
        assert ("1 of 2 rows synthetic/spend computed for 2024-03-01..2024-03-02 broke a fail check (50.0% > 5.0%; "
                "spent more than 100 in 2 days: 1): synthetic/spend was not changed") in str(e.value)
        assert not store.exists("synthetic/spend") or store.read("synthetic/spend").count() == 0
        # a share that allows it: the refused rows are quarantined and the rest written, from the state the
        # refused run kept
        settings = load_config("synthetic", home=tmp_path / "home", env={"FTI__FEATURES__MAX_BAD_SHARE": "0.6"})
        pipeline.run(open_store(spark, settings), settings, system=project, now=clock)
        assert_df_equality(store.read("synthetic/spend").select("user_id", "spend_2d"),
                           spark.createDataFrame([("u2", 20.0)], schema), ignore_nullable=True)
        assert store.read("synthetic/quarantine").where("source = 'synthetic/spend'").count() == 1
        return
    report = pipeline.run(store, settings, system=project, now=clock)
    (spend,) = [o for o in report.outputs if o.table == "synthetic/spend"]
    rows = store.read("synthetic/spend").select("user_id", "spend_2d")
    if policy == "warn":
        assert spend.quarantined == 0 and spend.warned == {"spent more than 100 in 2 days": 1}
        assert_df_equality(rows, spark.createDataFrame([("u1", 510.0), ("u2", 20.0)], schema),
                           ignore_row_order=True, ignore_nullable=True)
        return

    def quarantined():
        return store.read("synthetic/quarantine").where("source = 'synthetic/spend'").select(
            "reason", F.get_json_object("raw_row", "$.user_id").alias("user_id"),
            F.get_json_object("raw_row", "$.spend_2d").cast("double").alias("spend_2d"), "land_day")

    assert spend.quarantined == 1 and spend.warned == {}
    assert_df_equality(rows, spark.createDataFrame([("u2", 20.0)], schema), ignore_nullable=True)
    assert_df_equality(quarantined(), spark.createDataFrame(
        [("spent more than 100 in 2 days", "u1", 510.0, dt.date(2024, 3, 1))],
        "reason string, user_id string, spend_2d double, land_day date"), ignore_nullable=True)
    # a late refund brings u1's day under the limit: the recompute writes the row and clears the quarantine
    land_rows([("u1", "2024-03-01T12:00:00Z", "-450")], dt.datetime(2024, 3, 3, tzinfo=UTC))
    report = pipeline.run(store, settings, system=project, now=dt.datetime(2024, 3, 3, tzinfo=UTC))
    assert [o.quarantined for o in report.outputs if o.table == "synthetic/spend"] == [0]
    assert_df_equality(store.read("synthetic/spend").select("user_id", "spend_2d"),
                       spark.createDataFrame([("u1", 60.0), ("u2", 20.0)], schema), ignore_row_order=True,
                       ignore_nullable=True)
    assert quarantined().count() == 0
