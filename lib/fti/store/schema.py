"""Schemas: Spark <-> Delta conversion, and the check that runs before every commit."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from fti.errors import SchemaMismatchError

if TYPE_CHECKING:
    from deltalake import Schema as DeltaSchema
    from pyspark.sql.types import StructType

# Types that need a writer protocol above 2 or that other Delta readers reject.
_FORBIDDEN_TYPES = {"timestamp_ntz": "use TimestampType (UTC) instead of TimestampNTZType", "void": "give the column a type"}


def _walk_types(type_json: object, column: str, table: str) -> None:
    if isinstance(type_json, str):
        if type_json in _FORBIDDEN_TYPES:
            raise SchemaMismatchError(
                f"column '{column}' of {table} has type {type_json}, which fti tables do not allow",
                hint=_FORBIDDEN_TYPES[type_json],
            )
        return
    if isinstance(type_json, dict):
        kind = type_json.get("type")
        if kind == "struct":
            for field in type_json["fields"]:
                _walk_types(field["type"], f"{column}.{field['name']}", table)
        elif kind == "array":
            _walk_types(type_json["elementType"], f"{column}[]", table)
        elif kind == "map":
            _walk_types(type_json["keyType"], f"{column}{{key}}", table)
            _walk_types(type_json["valueType"], f"{column}{{value}}", table)


def spark_to_delta(schema: StructType, *, table: str = "table") -> DeltaSchema:
    """Convert a Spark schema to a Delta schema (the JSON forms are the same).

    Args:
        schema: Spark schema.
        table: Table name for error messages.

    Returns:
        The deltalake schema.

    Raises:
        SchemaMismatchError: For types fti tables do not allow (TimestampNTZ, void).
    """
    from deltalake import Schema

    data = json.loads(schema.json())
    for field in data["fields"]:
        field["metadata"] = {}
        _walk_types(field["type"], field["name"], table)
    return Schema.from_json(json.dumps(data))


def delta_to_spark(schema: DeltaSchema) -> StructType:
    """Convert a deltalake schema to a Spark schema."""
    from pyspark.sql.types import StructType

    return StructType.fromJson(json.loads(schema.to_json()))


def check_schema(actual: StructType, expected: StructType, *, table: str, allow_new_columns: bool = False) -> list[str]:
    """Check a DataFrame's schema against the table's before anything is written.

    Args:
        actual: Schema of the data to write.
        expected: Schema of the table.
        table: Table name for messages.
        allow_new_columns: Accept (nullable) columns the table does not have yet (schema evolution).

    Returns:
        The names of new columns (empty unless ``allow_new_columns``).

    Raises:
        SchemaMismatchError: Missing columns, unknown columns, or a type that differs; every problem is named.
    """
    exp = {f.name: f for f in expected.fields}
    act = {f.name: f for f in actual.fields}
    problems = []
    missing = [n for n in exp if n not in act]
    if missing:
        problems.append(f"missing column(s) {', '.join(repr(m) for m in missing)}")
    extra = [n for n in act if n not in exp]
    if extra and not allow_new_columns:
        problems.append(f"unknown column(s) {', '.join(repr(e) for e in extra)}")
    for name in exp:
        # nested nullability (a map's valueContainsNull...) is not a type difference: compare the type names
        if name in act and act[name].dataType.simpleString() != exp[name].dataType.simpleString():
            problems.append(
                f"column '{name}' has type {act[name].dataType.simpleString()}, "
                f"the table has {exp[name].dataType.simpleString()}"
            )
    if problems:
        raise SchemaMismatchError(
            f"cannot write to {table}: " + "; ".join(problems),
            hint="cast or rename the columns to the table's schema, or create a new table version for a breaking change",
        )
    return extra if allow_new_columns else []
