"""PSI with its bins' counts: checked against hand computation."""

from __future__ import annotations

import json
import math

import numpy as np

from fti.inference.monitoring import SMOOTHING, psi


def test_psi_counts_and_value_match_a_hand_computation():
    reference = np.arange(100, dtype="float64")  # deciles: ten bins of ten rows
    scoring = np.full(50, 95.0)                   # every row in the last bin
    result = psi(reference, scoring)
    assert result.reference == [10] * 10 and result.scoring == [0] * 9 + [50] and result.distinct == 1
    pe = (10 + SMOOTHING) / (100 + 10 * SMOOTHING)
    empty, full = SMOOTHING / (50 + 10 * SMOOTHING), (50 + SMOOTHING) / (50 + 10 * SMOOTHING)
    expected = 9 * (empty - pe) * math.log(empty / pe) + (full - pe) * math.log(full / pe)
    assert math.isclose(result.value, expected, rel_tol=1e-12)
    assert json.loads(result.bins())["scoring"] == [0] * 9 + [50]


def test_psi_of_the_same_distribution_is_zero_and_of_nothing_is_nan():
    values = np.random.default_rng(3).normal(size=5000)
    assert psi(values, values).value == 0.0
    assert math.isnan(psi(values, np.array([np.nan, np.nan])).value)


def test_an_empty_bin_is_smoothed_not_clipped():
    """A scoring run missing one decile: with counts smoothed by half a row, the PSI stays near what the
    counts say (the earlier clip at 1e-4 made one empty bin worth 0.69 on its own)."""
    reference = np.arange(1000, dtype="float64")
    scoring = np.concatenate([np.arange(100, 1000, dtype="float64"), np.arange(100, 200, dtype="float64")])
    result = psi(reference, scoring)
    assert result.scoring[0] == 0 and result.scoring[1] == 200
    assert result.value < 0.6


def _days(rng, n_days: int, rows: int, *, shift: float = 0.0):
    """Days of a batch like the flights': ``x`` varies row by row; ``carrier_rate`` is one value per carrier and
    day (14 carriers, the values move from day to day); ``pressure`` one value per airport and day (3)."""
    import pandas as pd

    frames = []
    for d in range(n_days):
        carriers, airports = rng.normal(0.2, 0.05, 14), rng.normal(1015, 8, 3)
        frames.append(pd.DataFrame({"x": rng.normal(0, 1, rows) + shift,
                                    "carrier_rate": carriers[rng.integers(0, 14, rows)],
                                    "pressure": airports[rng.integers(0, 3, rows)]}).assign(day=d))
    return pd.concat(frames, ignore_index=True)


def test_drift_is_judged_against_the_features_own_day_to_day_variation():
    """Against 8 reference days: an ordinary day flags nothing (the carrier rate, one value per carrier and day,
    has a PSI past the fixed 0.2 on every day, its own days too); a day with ``x`` shifted by two reference standard
    deviations flags ``x`` alone; a feature with 3 values in the run is reported as not testable, never flagged."""
    from fti.config import MonitoringConfig
    from fti.inference.monitoring import feature_drift

    rng = np.random.default_rng(11)
    cfg = MonitoringConfig()
    reference = _days(rng, 8, 800)
    features = ["x", "carrier_rate", "pressure"]

    def judged(day):
        rows = feature_drift(reference[features], reference["day"].to_numpy(), day, features, cfg)
        return {(r["metric"], r["feature"]): r for r in rows}

    ordinary = judged(_days(rng, 1, 800))
    assert not [k for k, r in ordinary.items() if r["drift"]]
    assert ordinary[("psi", "carrier_rate")]["value"] > cfg.psi_threshold  # what the fixed threshold flagged
    assert ordinary[("psi", "carrier_rate")]["threshold"] > ordinary[("psi", "carrier_rate")]["value"]
    assert all(r["threshold"] is None and not r["drift"] for (m, f), r in ordinary.items() if f == "pressure")
    assert "3 distinct value(s)" in json.loads(ordinary[("psi", "pressure")]["bins"])["not_testable"]
    shifted = judged(_days(rng, 1, 800, shift=2 * reference["x"].std()))
    assert {f for (m, f), r in shifted.items() if r["drift"]} == {"x"} and shifted[("psi", "x")]["drift"]
    assert shifted[("psi", "x")]["value"] > 1.0 and ordinary[("psi", "x")]["threshold"] == cfg.psi_threshold
