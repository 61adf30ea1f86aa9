"""The bucket-level as-of merge against a brute-force reference (and pandas merge_asof) on random data: hot keys,
equal timestamps, TTL edges, null values and keys, late-stored rows (bi-temporal)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from fti.store.asof import asof_merge

UTC = dt.timezone.utc
T0 = dt.datetime(2024, 1, 1, tzinfo=UTC)


def random_case(seed: int):
    rng = np.random.default_rng(seed)
    n_keys = int(rng.integers(1, 8))
    n_f, n_s = int(rng.integers(0, 60)), int(rng.integers(1, 40))
    hot = rng.random() < 0.5
    def key(n):
        keys = rng.integers(0, n_keys, n).astype(str).astype(object)
        if hot:
            keys[rng.random(n) < 0.5] = "0"
        return keys
    def when(n):  # coarse minutes: many equal timestamps
        return pd.to_datetime([T0 + dt.timedelta(minutes=int(m)) for m in rng.integers(0, 30, n)], utc=True)
    features = pd.DataFrame({"k": key(n_f), "event_time": when(n_f)})
    features["ingested_at"] = features.event_time + pd.to_timedelta(rng.integers(0, 20, n_f), unit="m")
    features["v"] = np.where(rng.random(n_f) < 0.2, None, rng.normal(size=n_f).round(3)).astype(object)
    features = features.drop_duplicates(["k", "event_time", "ingested_at"]).reset_index(drop=True)
    spine = pd.DataFrame({"key": key(n_s), "t": when(n_s), "row": range(n_s)})
    spine.loc[rng.random(n_s) < 0.1, "key"] = None
    return spine, features


def reference(spine, features, *, ttl, bitemporal):
    """For each spine row, the candidate with the greatest (event_time, ingested_at); candidates: same key,
    available (event time, or also stored when bi-temporal) by the spine time, within the TTL; with a
    ``replaced_at`` column, a replaced row only before it (bi-temporal) or never (plain)."""
    out = []
    for _, s in spine.iterrows():
        cand = features[features.k == s.key] if s.key is not None else features.iloc[0:0]
        avail = cand[["event_time", "ingested_at"]].max(axis=1) if bitemporal else cand.event_time
        if "replaced_at" in cand:
            current = cand.replaced_at.isna()
            cand = cand[(avail <= s.t) & (current | ((cand.replaced_at > s.t) if bitemporal else False))]
        else:
            cand = cand[avail <= s.t]
        if len(cand):
            best = cand.sort_values(["event_time", "ingested_at"]).iloc[-1]
            if ttl is None or best.event_time >= s.t - ttl:
                out.append(best.v)
                continue
        out.append(None)
    return out


def table(frame, types):
    return pa.Table.from_pandas(frame, schema=pa.schema(types), preserve_index=False)


@pytest.mark.parametrize("seed", range(60))
def test_merge_equals_the_reference(seed):
    spine, features = random_case(seed)
    ttl = [None, dt.timedelta(minutes=5), dt.timedelta(0)][seed % 3]
    bitemporal = seed % 2 == 1
    ts = pa.timestamp("us", tz="UTC")
    s = table(spine, [("key", pa.string()), ("t", ts), ("row", pa.int64())])
    f = table(features, [("k", pa.string()), ("event_time", ts), ("ingested_at", ts), ("v", pa.float64())])
    got = asof_merge(s, f, spine_keys=["key"], feature_keys=["k"], spine_time="t", event_time="event_time",
                     columns={"v_out": "v"}, ttl_micros=None if ttl is None else int(ttl.total_seconds() * 1e6),
                     bitemporal=bitemporal)
    assert got.column("row").to_pylist() == list(range(len(spine)))  # every spine row once, in order
    expected = reference(spine, features, ttl=ttl, bitemporal=bitemporal)
    assert got.column("v_out").to_pylist() == [None if v is None or v != v else v for v in expected]


def test_agrees_with_pandas_merge_asof_without_ties():
    rng = np.random.default_rng(1)
    features = pd.DataFrame({"k": rng.integers(0, 50, 5000).astype(str),
                             "event_time": pd.to_datetime(rng.choice(10**6, 5000, replace=False), unit="s", utc=True)})
    features["ingested_at"], features["v"] = features.event_time, rng.normal(size=5000)
    spine = pd.DataFrame({"key": rng.integers(0, 50, 2000).astype(str),
                          "t": pd.to_datetime(rng.integers(0, 10**6, 2000), unit="s", utc=True)})
    ts = pa.timestamp("us", tz="UTC")
    got = asof_merge(table(spine, [("key", pa.string()), ("t", ts)]),
                     table(features, [("k", pa.string()), ("event_time", ts), ("ingested_at", ts), ("v", pa.float64())]),
                     spine_keys=["key"], feature_keys=["k"], spine_time="t", event_time="event_time",
                     columns={"v": "v"}).to_pandas()
    expected = pd.merge_asof(spine.reset_index().sort_values("t"), features.sort_values("event_time"), left_on="t",
                             right_on="event_time", left_by="key", right_by="k").sort_values("index")
    assert np.allclose(got.v.to_numpy(), expected.v.to_numpy(), equal_nan=True)


def test_two_key_columns_and_empty_sides():
    ts = pa.timestamp("us", tz="UTC")
    spine = pa.table({"o": ["EWR", "JFK", "EWR"], "d": ["ORD", "ORD", "LAX"],
                      "t": pa.array([T0 + dt.timedelta(hours=2)] * 3, type=ts)})
    feats = pa.table({"origin": ["EWR", "JFK"], "dest": ["ORD", "LAX"], "event_time": pa.array([T0, T0], type=ts),
                      "ingested_at": pa.array([T0, T0], type=ts), "x": [1, 2]})
    got = asof_merge(spine, feats, spine_keys=["o", "d"], feature_keys=["origin", "dest"], spine_time="t",
                     event_time="event_time", columns={"x": "x"})
    assert got.column("x").to_pylist() == [1, None, None]
    empty = asof_merge(spine, feats.slice(0, 0), spine_keys=["o", "d"], feature_keys=["origin", "dest"],
                       spine_time="t", event_time="event_time", columns={"x": "x"})
    assert empty.column("x").to_pylist() == [None, None, None]
    for bitemporal in (False, True):  # a bucket with feature rows and no spine row (seen in a bi-temporal read)
        none = asof_merge(spine.slice(0, 0), feats, spine_keys=["o", "d"], feature_keys=["origin", "dest"],
                          spine_time="t", event_time="event_time", columns={"x": "x"}, bitemporal=bitemporal,
                          report_index=0)
        assert none.num_rows == 0 and "x" in none.column_names


@pytest.mark.parametrize("seed", range(60))
def test_replaced_rows_are_candidates_only_while_they_were_current(seed):
    """History rows (``replaced_at`` set) against the reference: a revision that moved a row's event time earlier
    or stopped producing it no longer serves the replaced row after the revision (bi-temporal); a plain read uses
    the current rows only."""
    spine, features = random_case(seed)
    rng = np.random.default_rng(1000 + seed)
    replaced = rng.random(len(features)) < 0.4
    stored = features[["event_time", "ingested_at"]].max(axis=1)
    features["replaced_at"] = pd.Series(pd.NaT, index=features.index, dtype="datetime64[ns, UTC]")
    features.loc[replaced, "replaced_at"] = (stored + pd.to_timedelta(rng.integers(0, 15, len(features)), unit="m"))[replaced]
    ttl = [None, dt.timedelta(minutes=5)][seed % 2]
    bitemporal = seed % 3 != 0
    ts = pa.timestamp("us", tz="UTC")
    s = table(spine, [("key", pa.string()), ("t", ts), ("row", pa.int64())])
    f = table(features, [("k", pa.string()), ("event_time", ts), ("ingested_at", ts), ("v", pa.float64()),
                         ("replaced_at", ts)])
    got = asof_merge(s, f, spine_keys=["key"], feature_keys=["k"], spine_time="t", event_time="event_time",
                     columns={"v_out": "v"}, ttl_micros=None if ttl is None else int(ttl.total_seconds() * 1e6),
                     bitemporal=bitemporal, until="replaced_at", report_index=0)
    expected = reference(spine, features, ttl=ttl, bitemporal=bitemporal)
    assert got.column("v_out").to_pylist() == [None if v is None or v != v else v for v in expected]


def test_the_issue_example_a_revision_that_moved_a_row_earlier_and_one_that_stopped_a_row():
    """As of 2013-01-05: N1 was revised (its row moved from 01-04 to 01-02, -10.0), N2's row stopped (None);
    the replaced rows (120.0, 45.0) are history and must not be served after the revision."""
    ts = pa.timestamp("us", tz="UTC")
    d = lambda day, hour=0: dt.datetime(2013, 1, day, hour, tzinfo=UTC)
    f = pa.table({"k": ["N1", "N1", "N2"], "event_time": [d(4), d(2), d(3)], "ingested_at": [d(4, 6), d(4, 12), d(3, 6)],
                  "v": [120.0, -10.0, 45.0], "replaced_at": [d(4, 12), None, d(4, 12)]},
                 schema=pa.schema([("k", pa.string()), ("event_time", ts), ("ingested_at", ts), ("v", pa.float64()),
                                   ("replaced_at", ts)]))
    s = pa.table({"key": ["N1", "N2", "N1", "N2"], "t": [d(5), d(5), d(4, 8), d(4, 8)]},
                 schema=pa.schema([("key", pa.string()), ("t", ts)]))
    got = asof_merge(s, f, spine_keys=["key"], feature_keys=["k"], spine_time="t", event_time="event_time",
                     columns={"v_out": "v"}, bitemporal=True, until="replaced_at")
    assert got.column("v_out").to_pylist() == [-10.0, None, 120.0, 45.0]
