"""A project we have never seen, run from the installed wheel outside the checkout: `fti init` in an empty folder,
the starter's definitions replaced by a small shop of its own (orders: an existing Delta table written by plain
Spark, not by fti; users: a CSV file), `fti features`, `fti train` with a regression objective and `fti score`;
then the user appends to the orders table, runs OPTIMIZE on it and deletes some of its rows, and after each step the
feature and label rows equal a pandas recomputation of the same definitions. No file of fti is changed."""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from tests.helpers.wheel import run

DEFINITIONS = '''
"""The shop: orders (a Delta table the orders team writes) and users (a CSV export)."""

from pyspark.sql import functions as F

from fti.authoring import DeltaSource, Feature, FeatureGroup, Labels, Project, Source

ORDERS = DeltaSource(name="orders", location="{lake}/orders", columns=("user_id", "ts", "amount"),
                     description="Orders, written by the orders team's job", day=lambda: F.to_date("ts"))
USERS = Source(name="users", columns=("user_id", "signup_ts", "segment"), description="Users (a CSV export)",
               day=lambda: F.to_date(F.expr("try_to_timestamp(signup_ts, \\"yyyy-MM-dd'T'HH:mm:ss'Z'\\")")))


def parse_orders(raw, *, now, **_):
    reason = F.when(F.col("user_id").isNull(), F.lit("no user")).when(F.col("amount") < 0, F.lit("negative amount"))
    return raw.select("user_id", F.col("ts").alias("event_time"), F.to_date("ts").alias("day"), "amount",
                      "ingested_at", reason.alias("_reason"), *[c for c in raw.columns if c.startswith("_raw_")])


def parse_users(raw, *, now, **_):
    ts = F.expr("try_to_timestamp(signup_ts, \\"yyyy-MM-dd'T'HH:mm:ss'Z'\\")")
    code = F.when(F.col("segment") == "basic", 0).when(F.col("segment") == "plus", 1).when(F.col("segment") == "pro", 2)
    reason = F.when(ts.isNull(), F.lit("bad signup_ts")).when(code.isNull(), F.lit("unknown segment"))
    return raw.select("user_id", ts.alias("event_time"), F.to_date(ts).alias("day"), code.alias("segment_code"),
                      "ingested_at", reason.alias("_reason"), *[c for c in raw.columns if c.startswith("_raw_")])


def spend(inputs, **_):
    return inputs["orders"].groupBy("user_id", "day").agg(F.max("event_time").alias("event_time"),
                                                          F.count(F.lit(1)).alias("orders"), F.sum("amount").alias("spent"))


def profile(inputs, **_):
    return inputs["users"].select("user_id", "day", "event_time", "segment_code")


def labels(orders, *, config):
    return orders.groupBy("user_id", "day").agg(F.sum("amount").alias("spent_today")) \\
        .select("user_id", "day", F.col("day").cast("timestamp").alias("prediction_time"), "spent_today")


def build():
    return Project(
        sources={{"orders": ORDERS, "users": USERS}}, parsers={{"orders": parse_orders, "users": parse_users}},
        groups=(FeatureGroup(name="spend", keys=("user_id",), sources=("orders",), transform=spend,
                             description="A user's orders of a day", owner="growth team",
                             features=(Feature("orders", "bigint", "orders that day", 0, None),
                                       Feature("spent", "double", "amount spent that day", 0, None))),
                FeatureGroup(name="profile", keys=("user_id",), sources=("users",), transform=profile,
                             description="A user's segment", features=(Feature("segment_code", "int", "0 basic, 1 plus, 2 pro", 0, 2),))),
        labels=Labels(source="orders", transform=labels, description="What a user spends on a day",
                      schema_ddl="user_id string NOT NULL, day date NOT NULL, prediction_time timestamp NOT NULL, "
                                 "spent_today double, ingested_at timestamp NOT NULL"))
'''

CONFIG = {
    "system": "shop", "definitions": "shop", "description": "A shop of our own", "timezone": "UTC",
    "features": {"max_bad_share": 0.2},
    "feature_views": {"spend_v1": {
        "description": "What will a user spend today?",
        "spine": {"table": "shop/labels", "keys": ["user_id"], "event_time": "prediction_time", "label": "spent_today"},
        "groups": [{"group": "spend", "keys": {"user_id": "user_id"}, "features": ["orders", "spent"]},
                   {"group": "profile", "keys": {"user_id": "user_id"}, "features": ["segment_code"]}]}},
    "training": {"model_name": "shop_spend", "feature_view": "spend_v1", "objective": "regression",
                 "train": {"start": "2024-02-02", "end": "2024-02-20"},
                 "validation": {"start": "2024-02-20", "end": "2024-02-25"},
                 "test": {"start": "2024-02-25", "end": "2024-03-01"},
                 "num_boost_round": 40, "early_stopping_rounds": 10},
}
SCHEMA = "user_id string, ts timestamp, amount double"


def _orders(rng: np.random.Generator, segments: dict[str, int], days: list[dt.date]) -> list[tuple]:
    rows = []
    for user, segment in segments.items():
        for day in days:
            for _ in range(rng.poisson(0.8 + segment)):
                moment = dt.datetime.combine(day, dt.time(int(rng.integers(6, 22)), int(rng.integers(0, 60))))
                rows.append((user, moment.replace(tzinfo=dt.timezone.utc), round(float(10 * (segment + 1) + rng.normal(0, 3)), 2)))
    return rows


def _expected(spark, lake: Path, users: pd.DataFrame) -> dict[str, pd.DataFrame]:
    orders = spark.read.format("delta").load(str(lake / "orders")).toPandas()
    orders = orders[orders.user_id.notna() & (orders.amount >= 0)].assign(day=lambda f: f.ts.dt.date)
    grouped = orders.groupby(["user_id", "day"])
    spend = grouped.agg(orders=("amount", "size"), spent=("amount", "sum")).reset_index()
    label = grouped.agg(spent_today=("amount", "sum")).reset_index()
    codes = {"basic": 0, "plus": 1, "pro": 2}
    profile = users.assign(segment_code=users.segment.map(codes))[["user_id", "segment_code"]]
    return {"spend": spend, "labels": label, "profile": profile}


def _check(spark, home: Path, lake: Path, users: pd.DataFrame) -> None:
    want = _expected(spark, lake, users)
    columns = {"spend": ["user_id", "day", "orders", "spent"], "labels": ["user_id", "day", "spent_today"],
               "profile": ["user_id", "segment_code"]}
    for name, cols in columns.items():
        got = spark.read.format("delta").load(str(home / "shop" / name)).select(*cols).toPandas()
        keys = [c for c in ("user_id", "day") if c in cols]
        got = got.sort_values(keys).reset_index(drop=True)
        exp = want[name][cols].sort_values(keys).reset_index(drop=True)
        pd.testing.assert_frame_equal(got, exp, check_dtype=False, obj=name)


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*.py")):
        h.update(path.read_bytes())
    return h.hexdigest()


def test_a_project_of_our_own_from_the_installed_wheel(spark, installed_wheel, tmp_path):
    from delta.tables import DeltaTable

    fti_code = installed_wheel.site / "fti"
    before = _digest(fti_code)
    folder, lake, home = tmp_path / "shop", tmp_path / "lake", tmp_path / "home"
    env, fti = installed_wheel.env(), installed_wheel.fti
    run([fti, "init", str(folder)], cwd=tmp_path, env=env)
    starter = yaml.safe_load((folder / "fti.yaml").read_text())
    shutil.rmtree(folder / starter["definitions"])  # the starter's definitions go; ours come
    (folder / "shop.py").write_text(textwrap.dedent(DEFINITIONS.format(lake=lake)))
    (folder / "fti.yaml").write_text(yaml.safe_dump({**{k: starter[k] for k in ("delta", "spark", "ray", "mlflow")},
                                                     **CONFIG}))

    rng = np.random.default_rng(11)
    segments = {f"u{i:02d}": int(rng.integers(0, 3)) for i in range(30)}
    names = ["basic", "plus", "pro"]
    users = pd.DataFrame([(u, f"2024-01-{1 + i % 28:02d}T08:00:00Z", names[s]) for i, (u, s) in enumerate(segments.items())],
                         columns=["user_id", "signup_ts", "segment"])
    users.to_csv(tmp_path / "users.csv", index=False)
    feb = [dt.date(2024, 2, 1) + dt.timedelta(days=i) for i in range(30)]  # Feb 1 .. Mar 1
    spark.createDataFrame(_orders(rng, segments, feb), SCHEMA).write.format("delta").save(str(lake / "orders"))

    at = ["--home", str(home)]
    run([fti, "ingest", *at, "--source", "users", "--file", str(tmp_path / "users.csv")], cwd=folder, env=env)
    first = run([fti, "features", *at, "--now", "2024-03-02T00:00Z"], cwd=folder, env=env)
    assert "shop/spend" in first, first
    _check(spark, home, lake, users)

    trained = run([fti, "train", *at], cwd=folder, env=env)
    assert "regression" in trained and "test rmse (promotion)" in trained and "shop_spend/1 -> champion" in trained, trained
    scored = run([fti, "score", *at, "--as-of", "2024-03-01T00:00Z"], cwd=folder, env=env)
    preds = spark.read.format("delta").load(str(home / "shop" / "predictions")).toPandas()
    population = _expected(spark, lake, users)["labels"].query("day == @dt.date(2024, 3, 1)")
    assert len(preds) == len(population) > 10, scored
    assert preds.predicted_label.isna().all() and preds.score.between(0, 200).all()
    assert set(preds.model_name) == {"shop_spend"}

    # the orders team appends (a new day and a late order of Feb 10), compacts, then deletes a user's orders
    late = _orders(rng, segments, [dt.date(2024, 3, 2)]) + [("u03", dt.datetime(2024, 2, 10, 12, tzinfo=dt.timezone.utc), 99.0)]
    spark.createDataFrame(late, SCHEMA).write.format("delta").mode("append").save(str(lake / "orders"))
    run([fti, "features", *at, "--now", "2024-03-03T00:00Z"], cwd=folder, env=env)
    _check(spark, home, lake, users)
    DeltaTable.forPath(spark, str(lake / "orders")).optimize().executeCompaction()
    versions = {t: DeltaTable.forPath(spark, str(home / "shop" / t)).history(1).first()["version"]
                for t in ("spend", "labels")}
    compacted = run([fti, "features", *at, "--now", "2024-03-03T01:00Z"], cwd=folder, env=env)
    assert versions == {t: DeltaTable.forPath(spark, str(home / "shop" / t)).history(1).first()["version"]
                        for t in ("spend", "labels")}, compacted  # OPTIMIZE alone rewrites no feature
    _check(spark, home, lake, users)
    DeltaTable.forPath(spark, str(lake / "orders")).delete("user_id = 'u07'")
    run([fti, "features", *at, "--now", "2024-03-03T02:00Z"], cwd=folder, env=env)
    _check(spark, home, lake, users)
    spend = spark.read.format("delta").load(str(home / "shop" / "spend"))
    assert spend.where("user_id = 'u07'").count() == 0 and spend.where("user_id = 'u03'").count() > 0
    assert _digest(fti_code) == before  # nothing of fti was changed to run it
