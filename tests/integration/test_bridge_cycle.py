"""One whole cycle on the delta-rs bridge (the fallback for machines without the connector): land, features,
training set, train, score; every table it wrote reads the same through the connector."""

from __future__ import annotations

import datetime as dt

import pytest
from chispa import assert_df_equality

UTC = dt.timezone.utc
ENV = {"FTI__INGEST__ENTITIES": "80", "FTI__TRAINING__NUM_BOOST_ROUND": "15", "FTI__TRAINING__NUM_WORKERS": "1",
       "FTI__DELTA__BACKEND": "delta-rs"}


@pytest.fixture(scope="module")
def bridge_cycle(spark, tmp_path_factory):
    from fti.config import load_config
    from fti.features import pipeline
    from fti.ingest import load_through
    from fti.inference.pipeline import run as score
    from fti.store import open_store
    from fti.training.pipeline import run as train

    settings = load_config("synthetic", home=tmp_path_factory.mktemp("bridge"), env=ENV)
    store = open_store(spark, settings)
    assert store.backend_name == "delta-rs"
    load_through(store, settings, through=dt.date(2024, 2, 25), batch="week")
    features = pipeline.run(store, settings, now=dt.datetime(2024, 2, 26, tzinfo=UTC))
    trained = train(store, settings)
    scored = score(store, settings, as_of=dt.datetime(2024, 2, 20, tzinfo=UTC))
    return store, settings, features, trained, scored


def test_bridge_cycle_writes_every_table_and_scores_the_population(bridge_cycle):
    store, _, features, trained, scored = bridge_cycle
    assert {o.status for o in features.outputs} == {"written"}
    assert trained.alias == "champion"
    population = store.read("synthetic/labels").where("prediction_time = timestamp'2024-02-20 00:00:00'").count()
    assert scored.scored == population > 20
    assert store.read("synthetic/predictions").count() == population
    for table in store.list_tables():  # every commit of this home came from the bridge, none from the connector
        assert all("Delta-Lake/" not in (h.get("engineInfo") or "") for h in store.history(table)), table


def _sortable(df):
    """Maps cannot be sorted (chispa sorts to ignore row order): compare their entries sorted by key."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import MapType

    return df.select(*[F.array_sort(F.map_entries(f.name)).alias(f.name) if isinstance(f.dataType, MapType)
                       else F.col(f.name) for f in sorted(df.schema.fields, key=lambda f: f.name)])


def test_connector_reads_what_the_bridge_wrote(spark, bridge_cycle):
    store = bridge_cycle[0]
    for table in store.list_tables():
        for version in sorted({0, store.version(table)}):
            by_connector = spark.read.format("delta").option("versionAsOf", version).load(store.uri(table))
            assert_df_equality(_sortable(by_connector), _sortable(store.read(table, version=version)),
                               ignore_row_order=True, ignore_nullable=True)
