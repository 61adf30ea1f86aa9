"""What each training objective fits, scores and gates on (fti.objectives), and the config that picks it."""

import numpy as np
import pytest

from fti import objectives
from fti.config import load_config
from fti.errors import ConfigError
from fti.inference.monitoring import realized, realized_text


def test_outputs_of_each_objective():
    score, label, valid = objectives.outputs("binary", np.array([0.2, 0.7, 0.5]), 0.5)
    assert score.tolist() == [0.2, 0.7, 0.5] and label.tolist() == [0, 1, 1] and valid.all()
    score, label, valid = objectives.outputs("regression", np.array([3.5, -1.0]), 0.5)
    assert score.tolist() == [3.5, -1.0] and not valid.any()
    score, label, valid = objectives.outputs("multiclass", np.array([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3]]), 0.5)
    assert score.tolist() == [0.6, 0.5] and label.tolist() == [1, 0] and valid.all()


def test_scoring_gives_a_regression_model_a_null_label():
    from fti.inference.scoring import _outputs

    scores, labels = _outputs("regression", np.array([1.5, 2.5]), 0.5)
    assert scores.to_pylist() == [1.5, 2.5] and labels.to_pylist() == [None, None]


def test_lower_is_better_metrics_need_to_fall_by_the_margin():
    assert objectives.beats("auc", 0.70, 0.69, 0.005) and not objectives.beats("auc", 0.692, 0.69, 0.005)
    assert objectives.beats("rmse", 2.0, 2.1, 0.05) and not objectives.beats("rmse", 2.1, 2.0, 0.05)
    assert not objectives.beats("log_loss", 0.60, 0.62, 0.05)


def test_quality_of_each_objective_against_hand_computed_values():
    q = objectives.quality("regression", np.array([1.0, 2.0, 4.0]), np.array([1.0, 3.0, 2.0]), 0.5)
    assert q["rmse"] == pytest.approx(np.sqrt(5 / 3)) and q["mae"] == pytest.approx(1.0)
    assert q["r2"] == pytest.approx(1 - 5 / (14 / 3))
    q = objectives.quality("multiclass", np.array([0, 1, 2, 1]),
                           np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.5, 0.2, 0.3], [0.1, 0.8, 0.1]]), 0.5)
    assert q["accuracy"] == 0.75
    assert q["log_loss"] == pytest.approx(-np.mean(np.log([0.8, 0.7, 0.3, 0.8])))


def test_multiclass_labels_must_be_class_numbers():
    assert objectives.num_classes(np.array([0, 2]), np.array([1.0])) == 3
    with pytest.raises(ValueError, match="class number 0..K-1, found 1.5"):
        objectives.num_classes(np.array([0, 1.5]))
    with pytest.raises(ValueError, match="at least two classes"):
        objectives.xgb_params("multiclass", num_class=1)
    assert objectives.xgb_params("multiclass", num_class=3) == {"objective": "multi:softprob",
                                                                "eval_metric": ["mlogloss"], "num_class": 3}


def test_the_promotion_metric_defaults_by_objective_and_must_belong_to_it(tmp_path):
    def training(**env):
        return load_config("synthetic", home=tmp_path,
                           env={f"FTI__TRAINING__{k.upper()}": v for k, v in env.items()}).config.training

    assert training().metric == "auc"
    assert training(objective="regression").metric == "rmse"
    assert training(objective="regression", promotion_metric="mae").metric == "mae"
    with pytest.raises(ConfigError, match="promotion_metric 'auc' is not a metric of objective 'regression'"):
        training(objective="regression", promotion_metric="auc")


def test_realized_quality_of_a_monitored_run():
    y = np.array([1.0, 0.0, 1.0, 0.0])
    assert realized("binary", y, np.array([0.9, 0.1, 0.8, 0.3]), np.array([1, 0, 1, 0.0])) == {"auc": 1.0}
    assert realized("binary", np.array([1.0, 1.0]), np.array([0.9, 0.1]), np.array([1, 0.0])) == {}
    r = realized("regression", np.array([1.0, 3.0]), np.array([2.0, 3.0]), np.array([np.nan, np.nan]))
    assert r == {"rmse": pytest.approx(np.sqrt(0.5)), "mae": 0.5}
    r = realized("multiclass", np.array([0.0, 2.0, 1.0]), np.array([0.5, 0.6, 0.7]), np.array([0.0, 2.0, 2.0]))
    assert r["accuracy"] == pytest.approx(2 / 3)
    assert realized_text({"realized_rmse": 1.25, "realized_mae": None, "score_psi": 0.1}) == "rmse 1.2500"
    assert realized_text({"score_psi": 0.1}) == "n/a"


@pytest.mark.parametrize("objective", ["binary", "multiclass"])
def test_reason_codes_rank_each_rows_features_by_their_contribution(objective):
    """Reason codes against XGBoost's own per-row contributions, computed here: the K features of largest absolute
    contribution (for multiclass, to the predicted class), in falling order, and null columns past the model's
    feature count."""
    import pyarrow as pa
    import xgboost

    from fti.inference.scoring import reason_fields, score_arrow

    rng = np.random.default_rng(7)
    x = rng.normal(size=(400, 3))
    y = ((x[:, 1] * 3 + x[:, 2]) > 0).astype(int)
    params = {"objective": "binary:logistic"} if objective == "binary" else \
        {"objective": "multi:softprob", "num_class": 2}
    booster = xgboost.train({**params, "max_depth": 3, "seed": 0},
                            xgboost.DMatrix(x, label=y, feature_names=["a", "b", "c"]), num_boost_round=10)
    table = pa.table({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2]})
    arrays = score_arrow(table, booster=booster, features=["a", "b", "c"], threshold=0.5, objective=objective,
                         explain=4)
    assert [n for n, _ in reason_fields(4)][:3] == ["reason_1", "reason_1_contribution", "reason_2"]
    assert len(arrays) == 2 + 8
    contribs = booster.predict(xgboost.DMatrix(x, feature_names=["a", "b", "c"]), pred_contribs=True)
    if objective == "multiclass":
        top_class = booster.predict(xgboost.DMatrix(x, feature_names=["a", "b", "c"])).argmax(axis=1)
        contribs = contribs[np.arange(len(x)), top_class]
    contribs = contribs[:, :3]
    for row in (0, 1, 123):
        want = sorted(zip("abc", contribs[row]), key=lambda t: -abs(t[1]))
        got = [(arrays[2 + 2 * i][row].as_py(), arrays[3 + 2 * i][row].as_py()) for i in range(3)]
        assert [n for n, _ in got] == [n for n, _ in want]
        assert [v for _, v in got] == pytest.approx([float(v) for _, v in want])
    assert arrays[2].to_pylist().count("b") > 300  # b drives the label
    assert arrays[8].null_count == arrays[9].null_count == len(x)  # a fourth reason of a three-feature model
