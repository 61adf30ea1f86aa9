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
