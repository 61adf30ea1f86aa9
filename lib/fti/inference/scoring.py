"""Vectorized scoring: an Arrow UDF that deserializes the booster once per executor process, and the same
arithmetic in this process (the single-process path); both can add reason codes (``scoring.explain``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame

_BOOSTERS: dict[str, Any] = {}


def _booster(key: str, raw: bytes) -> Any:
    """The booster of ``raw`` (``key`` ends in its content digest), deserialized once per executor process."""
    import xgboost

    if key not in _BOOSTERS:  # once per executor (Python worker) process and model CONTENT
        booster = xgboost.Booster()
        booster.load_model(bytearray(raw))
        _BOOSTERS[key] = booster
    return _BOOSTERS[key]


def _outputs(objective: str, raw: Any, threshold: float) -> tuple[pa.Array, pa.Array]:
    """``score`` and ``predicted_label`` as Arrow arrays (the label null where the objective has none)."""
    import pyarrow as pa

    from fti.objectives import outputs

    scores, labels, valid = outputs(objective, raw, threshold)
    return pa.array(scores.astype("float64")), pa.array(labels, type=pa.int32(), mask=~valid)


def reason_fields(k: int) -> list[tuple[str, str]]:
    """The reason-code columns of ``scoring.explain: k`` (name, Spark SQL type): ``reason_i`` is the feature with the
    i-th largest contribution to the row's score by absolute value, ``reason_i_contribution`` that contribution
    (XGBoost's per-row SHAP value, in the model's margin: log-odds for ``binary``, the predicted class's margin for
    ``multiclass``; positive pushes the score up)."""
    return [c for i in range(1, k + 1) for c in ((f"reason_{i}", "string"), (f"reason_{i}_contribution", "double"))]


def reason_schema(k: int) -> list[Any]:
    """The reason-code columns of ``scoring.explain: k`` as nullable Spark fields (:func:`reason_fields`)."""
    from pyspark.sql.types import DoubleType, StringType, StructField

    return [StructField(name, StringType() if kind == "string" else DoubleType(), True)
            for name, kind in reason_fields(k)]


def _arrow(kind: str) -> pa.DataType:
    import pyarrow as pa

    return pa.string() if kind == "string" else pa.float64()


def reasons(booster: Any, matrix: Any, *, features: list[str], k: int, objective: str, raw: Any) -> list[pa.Array]:
    """The reason-code arrays (see :func:`reason_fields`) of the rows of ``matrix`` (missing values NaN); ``raw``
    is the rows' predictions (the predicted class of a multiclass model is their argmax). Ties keep the features'
    order; past the model's feature count the columns are null."""
    import numpy as np
    import pyarrow as pa
    import xgboost

    n = matrix.shape[0]
    if not features:
        return [pa.nulls(n, _arrow(kind)) for _, kind in reason_fields(k)]
    contribs = booster.predict(xgboost.DMatrix(matrix, missing=np.nan, feature_names=features), pred_contribs=True)
    if contribs.ndim == 3:  # multiclass: (rows, classes, features + 1); the predicted class's row
        contribs = contribs[np.arange(n), np.asarray(raw).reshape(n, -1).argmax(axis=1)]
    contribs = contribs[:, :-1].astype("float64")  # the last column is the bias
    top = min(k, len(features))
    order = np.argsort(-np.abs(contribs), axis=1, kind="stable")[:, :top]
    names = np.asarray(features, dtype=object)[order]
    values = np.take_along_axis(contribs, order, axis=1)
    out: list[pa.Array] = []
    for i in range(k):
        if i < top:
            out += [pa.array(names[:, i], type=pa.string()), pa.array(values[:, i], type=pa.float64())]
        else:
            out += [pa.nulls(n, pa.string()), pa.nulls(n, pa.float64())]
    return out


def _predict(booster: Any, matrix: Any, features: list[str], *, threshold: float, objective: str,
             explain: int) -> list[pa.Array]:
    """``score``, ``predicted_label`` and the reason codes of ``explain`` (the Arrow arrays both paths append)."""
    import numpy as np
    import xgboost

    raw = booster.inplace_predict(matrix, missing=np.nan) if features else \
        booster.predict(xgboost.DMatrix(matrix, feature_names=features, missing=np.nan))
    out = list(_outputs(objective, raw, threshold))
    if explain:
        out += reasons(booster, matrix, features=features, k=explain, objective=objective, raw=raw)
    return out


def score_arrow(table: pa.Table, *, booster: Any, features: list[str], threshold: float,
                objective: str = "binary", explain: int = 0) -> list[pa.Array]:
    """``score``, ``predicted_label`` and the ``explain`` reason codes of an Arrow table's rows in this process
    (nulls are missing values), as Arrow arrays: the single-process scoring path, the Spark UDF's arithmetic."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    matrix = np.column_stack([pc.cast(table.column(f), pa.float64()).to_numpy(zero_copy_only=False)
                              for f in features]) if features else np.empty((table.num_rows, 0))
    return _predict(booster, matrix, features, threshold=threshold, objective=objective, explain=explain)


def score(df: DataFrame, *, booster_raw: bytes, key: str, features: list[str], threshold: float,
          objective: str = "binary", explain: int = 0) -> DataFrame:
    """Add ``score``, ``predicted_label`` and the ``explain`` reason codes (:func:`reason_fields`) to ``df`` with a
    mapInArrow UDF (missing features stay NaN)."""
    import hashlib

    import numpy as np
    from pyspark.sql.types import DoubleType, IntegerType, StructField, StructType

    # the cache is keyed on the model's CONTENT: "name/version" alone names another model in a second home of the
    # same session, or after a re-registration as version 1
    digest = f"{key}@{hashlib.sha256(booster_raw).hexdigest()}"
    broadcast = df.sparkSession.sparkContext.broadcast(booster_raw)
    added = [StructField("score", DoubleType()), StructField("predicted_label", IntegerType()), *reason_schema(explain)]
    schema = StructType(df.schema.fields + added)

    def fn(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pyarrow as pa

        booster = _booster(digest, broadcast.value)
        arrow_added = [pa.field("score", pa.float64()), pa.field("predicted_label", pa.int32())] + [
            pa.field(name, _arrow(kind)) for name, kind in reason_fields(explain)]
        for batch in batches:
            if batch.num_rows == 0:
                continue
            matrix = np.column_stack([batch.column(f).to_numpy(zero_copy_only=False).astype("float64")
                                      for f in features]) if features else np.empty((batch.num_rows, 0))
            yield pa.RecordBatch.from_arrays(
                list(batch.columns) + _predict(booster, matrix, features, threshold=threshold, objective=objective,
                                               explain=explain),
                schema=pa.schema(list(batch.schema) + arrow_added),
            )

    return df.mapInArrow(fn, schema)
