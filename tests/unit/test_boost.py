"""The resumable boosting loop (fti.training.ray_train.boost): XGBoost's early stopping, and a fit resumed from a
checkpoint's bytes equal to one that never stopped, with row and column sampling on."""

from __future__ import annotations

import numpy as np
import pytest
import xgboost

from fti.training.ray_train import boost

PARAMS = {"objective": "binary:logistic", "eval_metric": ["logloss", "auc"], "tree_method": "hist", "seed": 7,
          "max_depth": 4, "eta": 0.3, "subsample": 0.8, "colsample_bytree": 0.8, "nthread": 1}


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4000, 6)).astype("float32")
    y = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(size=4000) > 0).astype("float32")
    return xgboost.DMatrix(x[:3000], label=y[:3000]), xgboost.DMatrix(x[3000:], label=y[3000:])


def test_without_checkpoints_it_is_xgboost_train_with_early_stopping(data):
    dtrain, dvalid = data
    ours, start = boost(PARAMS, dtrain, dvalid, num_boost_round=200, early_stopping_rounds=5)
    theirs = xgboost.train(PARAMS, dtrain, num_boost_round=200, evals=[(dvalid, "validation")],
                           early_stopping_rounds=5, verbose_eval=False)
    assert start == 0 and ours.num_boosted_rounds() < 200  # it stopped early
    assert ours.attr("best_iteration") == theirs.attr("best_iteration")
    assert bytes(ours.save_raw("ubj")) == bytes(theirs.save_raw("ubj"))


@pytest.mark.parametrize("kill_after", [1, 2])
def test_a_fit_resumed_from_a_checkpoint_gives_the_uninterrupted_bytes(data, kill_after):
    dtrain, dvalid = data
    seen: list[tuple[bytes, int]] = []
    whole, _ = boost(PARAMS, dtrain, dvalid, num_boost_round=60, early_stopping_rounds=60, every=10,
                     on_checkpoint=lambda raw, rounds: seen.append((raw, rounds)))
    assert [r for _, r in seen] == [10, 20, 30, 40, 50] and whole.num_boosted_rounds() == 60
    raw, rounds = seen[kill_after - 1]  # the process died after this checkpoint; a new one starts from it
    resumed, start = boost(PARAMS, dtrain, dvalid, num_boost_round=60, early_stopping_rounds=60, every=10,
                           model=bytearray(raw))
    assert start == rounds
    assert bytes(resumed.save_raw("ubj")) == bytes(whole.save_raw("ubj"))
    # without the reload at each checkpoint the sampling streams differ from the resumption point on
    plain = xgboost.train(PARAMS, dtrain, num_boost_round=60, verbose_eval=False)
    assert bytes(plain.save_raw("ubj")) != bytes(whole.save_raw("ubj"))


def test_the_early_stopping_state_survives_a_resumption(data):
    dtrain, dvalid = data
    seen: list[tuple[bytes, int]] = []
    whole, _ = boost(PARAMS, dtrain, dvalid, num_boost_round=300, early_stopping_rounds=8, every=4,
                     on_checkpoint=lambda raw, rounds: seen.append((raw, rounds)))
    best = int(whole.attr("best_iteration"))
    assert whole.num_boosted_rounds() == best + 9  # stopped 8 rounds after its best
    raw, rounds = next((raw, r) for raw, r in seen if r > best)  # a checkpoint taken after the best round
    resumed, _ = boost(PARAMS, dtrain, dvalid, num_boost_round=300, early_stopping_rounds=8, every=4,
                       model=bytearray(raw))
    assert resumed.attr("best_iteration") == str(best)
    assert bytes(resumed.save_raw("ubj")) == bytes(whole.save_raw("ubj"))
