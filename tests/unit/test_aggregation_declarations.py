"""Declared aggregations: what a declaration derives (features, types, look-back, definition) and the declarations
refused with a message that says what to change. No Spark: nothing here runs a query."""

from __future__ import annotations

import json

import pytest

from fti.authoring import Aggregation, Check, Feature, FeatureGroup


def _group(*aggregations: Aggregation, **kw) -> FeatureGroup:
    return FeatureGroup(name="spend", keys=("user_id",), sources=("orders",), description="spend",
                        aggregations=aggregations, **kw)


def test_a_declaration_derives_features_types_and_the_lookback():
    group = _group(Aggregation("amount", "sum", ("7d", "28d")), Aggregation(None, "count", "1d", name="orders_{window}"),
                   Aggregation("item", "count_distinct", "7d", name="items_{window}"),
                   Aggregation(None, "count", "7d", bucket_by="channel", buckets=("web", "app"),
                               name="orders_{bucket}_{window}", description="{bucket} orders over {window}"))
    assert [(f.name, f.type, f.min) for f in group.features] == [
        ("sum_amount_7d", "double", None), ("sum_amount_28d", "double", None), ("orders_1d", "bigint", 0),
        ("items_7d", "bigint", 0), ("orders_web_7d", "bigint", 0), ("orders_app_7d", "bigint", 0)]
    assert group.features[-1].description == "app orders over 7d"
    assert group.lookback_days == 28 and group.keeps_state
    declared = json.loads(group.to_json())["declared"]
    assert declared["aggregations"][0]["windows"] == ["7d", "28d"] and declared["time_column"] == "event_time"


def test_a_copy_of_a_declared_group_is_compiled_again():
    import dataclasses

    group = _group(Aggregation("amount", "sum", "7d"))
    wider = dataclasses.replace(group, aggregations=group.aggregations + (Aggregation("amount", "max", "7d"),))
    assert [f.name for f in wider.features] == ["sum_amount_7d", "max_amount_7d"]
    assert dataclasses.replace(group, description="other").features == group.features


@pytest.mark.parametrize("make, message", [
    (lambda: Aggregation("amount", "median", "7d"), "unknown function; use one of count, sum"),
    (lambda: Aggregation(None, "sum", "7d"), "only count may leave the column out"),
    (lambda: Aggregation("amount", "sum", "7h"), "a trailing window is a whole number of days"),
    (lambda: Aggregation("amount > 15", "mean", "7d"), "an expression needs a name template"),
    (lambda: Aggregation("amount", "sum", ("7d", "28d"), name="spend"), "needs {window}"),
    (lambda: Aggregation("amount", "sum", "7d", bucket_by="channel"), "bucket_by and buckets go together"),
    (lambda: _group(Aggregation("amount", "sum", "7d", name="x_{window}"), Aggregation("amount", "max", "7d", name="x_{window}")),
     "name x_7d more than once"),
    (lambda: FeatureGroup(name="g", keys=("k",), sources=("a", "b"), description="d",
                          aggregations=(Aggregation("v", "sum", "7d"),)), "read ONE source"),
    (lambda: FeatureGroup(name="g", keys=("k",), sources=("a",), description="d", transform=lambda inputs: None,
                          aggregations=(Aggregation("v", "sum", "7d"),)), "give either the aggregations or those"),
    (lambda: FeatureGroup(name="g", keys=("k",), sources=("a",), description="d", transform=lambda inputs: None,
                          features=(Feature("v", "double", "v"),), where="v > 0"), "belong to declared aggregations"),
    (lambda: _group(Aggregation("amount", "sum", "7d"), checks=("sum_amount_7d >= 0",)),
     "checks are Check\\(condition, reason, policy\\) rules"),
    (lambda: FeatureGroup(name="g", keys=("k",), description="d", features=(Feature("v", "double", "v"),),
                          checks=(Check("v >= 0", "negative"),)), "an inserted group's rows are checked"),
])
def test_a_bad_declaration_is_refused_saying_what_to_change(make, message):
    with pytest.raises(ValueError, match=message.replace("{", r"\{").replace("}", r"\}")):
        make()
