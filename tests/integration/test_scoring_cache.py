"""The scoring UDF caches a booster per Python worker: the cache must be keyed on the model's CONTENT. Keyed on
"name/version" (the old code), a second home in the same session, or a model registered again as version 1,
scored with the first booster the worker had loaded."""

from __future__ import annotations

import numpy as np
import pytest


def _booster(seed: int):
    import xgboost

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(200, 2))
    y = (x[:, 0] * (1 if seed % 2 else -1) > 0).astype(int)
    return xgboost.train({"objective": "binary:logistic", "max_depth": 2, "seed": seed},
                         xgboost.DMatrix(x, label=y), num_boost_round=5)


def test_two_models_with_the_same_name_and_version_score_with_their_own_booster(spark):
    from fti.inference.scoring import score

    df = spark.createDataFrame([(float(a), float(b)) for a, b in [(-1.0, 0.5), (1.0, -0.5), (0.3, 0.3)]],
                               "f0 double, f1 double").coalesce(1)
    matrix = np.array([[-1.0, 0.5], [1.0, -0.5], [0.3, 0.3]])
    for seed in (1, 2, 3):  # three different models, all "model/1" (one Python worker reused for each job)
        booster = _booster(seed)
        got = score(df, booster_raw=bytes(booster.save_raw("ubj")), key="model/1", features=["f0", "f1"],
                    threshold=0.5).orderBy("f0").select("score").toPandas()["score"].to_numpy()
        expected = booster.inplace_predict(matrix[np.argsort(matrix[:, 0])]).astype("float64")
        assert got == pytest.approx(expected, abs=1e-6), f"model {seed} scored with another model's booster"
