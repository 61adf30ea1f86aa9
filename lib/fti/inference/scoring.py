"""Vectorized scoring: an Arrow UDF that deserializes the booster once per executor process."""

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


def score_arrow(table: pa.Table, *, booster: Any, features: list[str], threshold: float,
                objective: str = "binary") -> tuple[pa.Array, pa.Array]:
    """Scores and predicted labels of an Arrow table's rows in this process (nulls are missing values), as
    Arrow arrays: the single-process scoring path, the same ``inplace_predict`` as the Spark UDF."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    matrix = np.column_stack([pc.cast(table.column(f), pa.float64()).to_numpy(zero_copy_only=False)
                              for f in features]) if features else np.empty((table.num_rows, 0))
    return _outputs(objective, booster.inplace_predict(matrix, missing=np.nan), threshold)


def score(df: DataFrame, *, booster_raw: bytes, key: str, features: list[str], threshold: float,
          objective: str = "binary") -> DataFrame:
    """Add ``score`` and ``predicted_label`` to ``df`` with a mapInArrow UDF (missing features stay NaN)."""
    import numpy as np
    from pyspark.sql.types import DoubleType, IntegerType, StructField, StructType

    import hashlib

    # the cache is keyed on the model's CONTENT: "name/version" alone names another model in a second home of the
    # same session, or after a re-registration as version 1
    digest = f"{key}@{hashlib.sha256(booster_raw).hexdigest()}"
    broadcast = df.sparkSession.sparkContext.broadcast(booster_raw)
    schema = StructType(df.schema.fields + [StructField("score", DoubleType()), StructField("predicted_label", IntegerType())])

    def fn(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pyarrow as pa
        import xgboost

        booster = _booster(digest, broadcast.value)
        for batch in batches:
            if batch.num_rows == 0:
                continue
            matrix = np.column_stack([batch.column(f).to_numpy(zero_copy_only=False).astype("float64")
                                      for f in features]) if features else np.empty((batch.num_rows, 0))
            scores = booster.inplace_predict(matrix, missing=np.nan) if features else \
                booster.predict(xgboost.DMatrix(matrix, feature_names=features, missing=np.nan))
            yield pa.RecordBatch.from_arrays(
                list(batch.columns) + list(_outputs(objective, scores, threshold)),
                schema=pa.schema(list(batch.schema) + [pa.field("score", pa.float64()), pa.field("predicted_label", pa.int32())]),
            )

    return df.mapInArrow(fn, schema)
