"""The vectorized as-of merge of one bucket: spine rows and feature rows of the same keys meet in memory (numpy
and pyarrow, no Python loop over rows), and each spine row gets the feature ROW with the greatest event time at
or before its prediction time.

Semantics (the same as the window join's, tested against both it and pandas ``merge_asof``):

- candidates are the rows with the same keys and ``event_time <= spine time``; with the bi-temporal cutoff a
  row becomes a candidate only once it was also stored, at ``greatest(event_time, ingested_at)``;
- among candidates the row with the greatest ``(event_time, ingested_at)`` wins (a revision stored later wins
  over the row it replaced);
- with a TTL the winner must also satisfy ``event_time >= spine time - ttl`` (inclusive), else no match;
- a matched row's nulls stay null; no match gives nulls; a spine row with a null key never matches;
- every spine row comes out exactly once, in its input order (duplicates kept).

How: keys are factorized to integer codes over spine and feature rows together; times become dense ranks over
both sides, so ``(code, time)`` is ONE int64 and a single ``searchsorted`` finds, for every spine row, the last
feature row of its key at or before its time; a running maximum of the ``(event_time, ingested_at)`` rank
within each key turns "last available" into "latest event" for the bi-temporal order. Memory: a few int64
arrays per row of the bucket, plus the gathered output columns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa


def _micros(column: pa.ChunkedArray | pa.Array, *, null_last: bool = False) -> np.ndarray:
    """A timestamp column as int64 microseconds: nulls as the smallest value (they never match), or with
    ``null_last`` the largest (a replaced-at column: null is a current row)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = column.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
    fill = np.iinfo(np.int64).max if null_last else np.iinfo(np.int64).min
    return np.asarray(pc.fill_null(arr, fill).to_numpy(zero_copy_only=False), dtype=np.int64)


def _key_codes(spine: pa.Table, spine_keys: Sequence[str], features: pa.Table,
               feature_keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes of the key tuples, shared by both sides; -1 for a spine row with a null key part."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    n_spine = spine.num_rows
    parts = []
    valid = np.ones(n_spine + features.num_rows, dtype=bool)
    for sk, fk in zip(spine_keys, feature_keys):
        both = pa.chunked_array(spine.column(sk).chunks + features.column(fk).cast(spine.column(sk).type).chunks,
                                type=spine.column(sk).type)
        codes, _ = pd.factorize(both.to_pandas(), use_na_sentinel=True)
        valid &= codes >= 0
        parts.append(codes.astype(np.int64))
    if len(parts) == 1:
        combined = parts[0]
    else:
        combined, _ = pd.factorize(pd.MultiIndex.from_arrays(parts))
        combined = combined.astype(np.int64)
    combined = np.where(valid, combined, -1)
    return combined[:n_spine], combined[n_spine:]


def _winners(code_p: np.ndarray, t_p: np.ndarray, code_f: np.ndarray, et: np.ndarray, ia: np.ndarray, *,
             bitemporal: bool) -> tuple[np.ndarray, np.ndarray]:
    """For each spine row, ``(hit, feature row)``: the candidate with the greatest (event_time, ingested_at)."""
    import numpy as np

    if not bitemporal:
        packed = _winners_packed(code_p, t_p, code_f, et, ia)
        if packed is not None:
            return packed
    n = len(code_f)
    avail = np.maximum(et, ia) if bitemporal else et
    # rank of each feature row by (event_time, ingested_at): the winner among candidates is the max rank
    by_event = np.lexsort((ia, et))
    rank = np.empty(n, dtype=np.int64)
    rank[by_event] = np.arange(n, dtype=np.int64)
    # feature rows in (key, available time, rank) order; running max of rank within each key
    order = np.lexsort((rank, avail, code_f))
    code_s, avail_s, rank_s = code_f[order], avail[order], rank[order]
    offset = code_s * (n + 1)
    best = np.maximum.accumulate(offset + rank_s) - offset
    # (key, time) as one int64: dense time ranks over both sides keep it small
    times, inverse = np.unique(np.concatenate([avail_s, t_p]), return_inverse=True)
    width = np.int64(len(times) + 1)
    pos = np.searchsorted(code_s * width + inverse[:n], code_p * width + inverse[n:], side="right") - 1
    hit = (pos >= 0) & (code_p >= 0)
    pos = np.where(hit, pos, 0)
    hit &= code_s[pos] == code_p
    return hit, by_event[best[pos]]


def _subset_winners(code_p: np.ndarray, t_p: np.ndarray, code_f: np.ndarray, et: np.ndarray, ia: np.ndarray,
                    rows: np.ndarray, *, bitemporal: bool) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_winners` over the feature rows ``rows`` only, as indices into all feature rows."""
    import numpy as np

    if not len(rows):
        return np.zeros(len(code_p), dtype=bool), np.zeros(len(code_p), dtype=np.int64)
    hit, winner = _winners(code_p, t_p, code_f[rows], et[rows], ia[rows], bitemporal=bitemporal)
    return hit, rows[winner]


def _current_winners(code_p: np.ndarray, t_p: np.ndarray, code_f: np.ndarray, et: np.ndarray, ia: np.ndarray,
                     until: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bi-temporal winners when some feature rows were REPLACED at ``until`` (history rows; current rows have
    the largest int64): a row is a candidate at time T only while it was current, ``avail <= T < until``.

    The current rows' winner comes from :func:`_winners`; each replaced row is a candidate for the spine rows of
    its key whose time falls in its interval (found by two ``searchsorted`` over the spine sorted by key and
    time, then expanded); the greatest ``(event_time, ingested_at)`` of both wins.
    """
    import numpy as np

    n = len(code_f)
    current = np.flatnonzero(until == np.iinfo(np.int64).max)
    replaced = np.flatnonzero((until != np.iinfo(np.int64).max) & (code_f >= 0))
    hit_c, win_c = _subset_winners(code_p, t_p, code_f, et, ia, current, bitemporal=True)
    by_event = np.lexsort((ia, et))
    rank = np.empty(n, dtype=np.int64)
    rank[by_event] = np.arange(n, dtype=np.int64)
    best = np.where(hit_c & (code_p >= 0), rank[win_c], -1)
    if len(replaced) and len(code_p):
        avail = np.maximum(et[replaced], ia[replaced])
        times, inverse = np.unique(np.concatenate([t_p, avail, until[replaced]]), return_inverse=True)
        width = np.int64(len(times) + 1)
        n_p, n_h = len(t_p), len(replaced)
        spine_key = code_p * width + inverse[:n_p]
        order_p = np.argsort(spine_key, kind="stable")
        sorted_key = spine_key[order_p]
        codes_h = code_f[replaced]
        lo = np.searchsorted(sorted_key, codes_h * width + inverse[n_p:n_p + n_h], side="left")
        hi = np.searchsorted(sorted_key, codes_h * width + inverse[n_p + n_h:], side="left")
        counts = np.maximum(hi - lo, 0)
        total = int(counts.sum())
        if total:
            which = np.repeat(np.arange(n_h), counts)
            starts = np.repeat(lo, counts)
            offsets = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
            np.maximum.at(best, order_p[starts + offsets], rank[replaced[which]])
    hit = best >= 0
    return hit, by_event[np.where(hit, best, 0)]


def _winners_packed(code_p: np.ndarray, t_p: np.ndarray, code_f: np.ndarray, et: np.ndarray,
                    ia: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The plain (not bi-temporal) winners with ONE sort: ``(key, event time)`` packed into one int64 (times
    relative to the bucket's earliest event), feature rows sorted by it and ``ingested_at``; the last row at
    or before each spine row's packed value is its winner. None when the packing would overflow."""
    import numpy as np

    if not len(code_p) or not len(code_f):
        return np.zeros(len(code_p), dtype=bool), np.zeros(len(code_p), dtype=np.int64)
    t_min, t_max = int(et.min()), int(et.max())
    width = t_max - t_min + 2  # relative times 1..width-1; 0 is "before every event"
    n_codes = int(max(code_f.max(), code_p.max(), 0)) + 1
    if n_codes * width >= 2**62:
        return None
    key_f = code_f * width + (et - (t_min - 1))
    order = np.argsort(key_f)
    key_s = key_f[order]
    if len(key_s) > 1 and (key_s[1:] == key_s[:-1]).any():  # revisions of an event: the later stored wins
        order = np.lexsort((ia, key_f))
        key_s = key_f[order]
    key_p = code_p * width + (np.clip(t_p, t_min - 1, t_max) - (t_min - 1))
    pos = np.searchsorted(key_s, key_p, side="right") - 1
    hit = (pos >= 0) & (code_p >= 0)
    pos = np.where(hit, pos, 0)
    hit &= code_f[order[pos]] == code_p
    return hit, order[pos]


def asof_merge(spine: pa.Table, features: pa.Table, *, spine_keys: Sequence[str], feature_keys: Sequence[str],
               spine_time: str, event_time: str, columns: dict[str, str], ttl_micros: int | None = None,
               bitemporal: bool = False, ingested_at: str = "ingested_at", report_index: int | None = None,
               until: str | None = None) -> pa.Table:
    """The spine with the group's columns added (``columns`` maps output name -> feature column).

    Args:
        spine: Spine rows of one bucket (any columns; ``spine_time`` a timestamp).
        features: The group's rows of the same bucket: keys, ``event_time``, ``ingested_at``, the columns.
        spine_keys: Spine key columns, in the order of ``feature_keys``.
        feature_keys: The group's key columns.
        spine_time: The spine's prediction-time column.
        event_time: The group's event-time column.
        columns: Output column -> feature column.
        ttl_micros: The group's TTL, or None.
        bitemporal: Only rows stored by the prediction time are candidates.
        ingested_at: The group's storage-time column.
        report_index: Also add the leakage report's helper columns ``_m{i}`` (matched), ``_age{i}`` (seconds),
            ``_ttlx{i}`` (a match older than the TTL), ``_btx{i}`` (a later match the cutoff excluded).
        until: Bi-temporal reads: the column holding when a row was REPLACED by a recompute (history rows; null
            for current rows). Such a row is a candidate only before it; a plain read uses current rows only.

    Returns:
        ``spine`` plus the output columns, row for row.
    """
    import numpy as np
    import pyarrow as pa

    n_spine = spine.num_rows
    if features.num_rows:
        code_p, code_f = _key_codes(spine, spine_keys, features, feature_keys)
        et = _micros(features.column(event_time))
        ia = _micros(features.column(ingested_at))
        t_p = _micros(spine.column(spine_time))
        ut = _micros(features.column(until), null_last=True) if until is not None and until in features.column_names else None
        if ut is not None and bitemporal:
            hit, winner = _current_winners(code_p, t_p, code_f, et, ia, ut)
        elif ut is not None:
            hit, winner = _subset_winners(code_p, t_p, code_f, et, ia, np.flatnonzero(ut == np.iinfo(np.int64).max),
                                          bitemporal=False)
        else:
            hit, winner = _winners(code_p, t_p, code_f, et, ia, bitemporal=bitemporal)
        age = np.where(hit, t_p - et[winner], 0)
        fresh = hit if ttl_micros is None else hit & (age <= ttl_micros)
    else:
        hit = fresh = np.zeros(n_spine, dtype=bool)
        winner = age = np.zeros(n_spine, dtype=np.int64)
    indices = pa.array(np.where(fresh, winner, 0), mask=~fresh, type=pa.int64())
    out = spine
    for name, src in columns.items():
        out = out.append_column(name, features.column(src).take(indices))
    if report_index is None:
        return out
    i = report_index
    excluded = np.zeros(n_spine, dtype=bool)
    if bitemporal and features.num_rows:  # a plain join would have matched a later row
        plain_hit, plain = _winners(code_p, t_p, code_f, et, ia, bitemporal=False) if ut is None else \
            _subset_winners(code_p, t_p, code_f, et, ia, np.flatnonzero(ut == np.iinfo(np.int64).max),
                            bitemporal=False)
        plain_ok = plain_hit if ttl_micros is None else plain_hit & (t_p - et[plain] <= ttl_micros)
        excluded = plain_ok & (~fresh | (et[np.where(fresh, winner, 0)] < et[np.where(plain_ok, plain, 0)]))
    return (out.append_column(f"_m{i}", pa.array(fresh))
            .append_column(f"_age{i}", pa.array(np.where(fresh, age / 1e6, np.nan), mask=~fresh))
            .append_column(f"_ttlx{i}", pa.array(hit & ~fresh))
            .append_column(f"_btx{i}", pa.array(excluded)))
