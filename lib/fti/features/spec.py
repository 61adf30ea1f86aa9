"""What a system is: raw sources, a parser per source, feature groups and labels (each system builds one)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

from fti.errors import ConfigError
from fti.features.definitions import FeatureGroup
from fti.sources import Source

if TYPE_CHECKING:
    from pyspark.sql import DataFrame
    from pyspark.sql.types import StructType

    from fti.store import TableStore


@dataclass(frozen=True)
class LabelsSpec:
    """How a system's labels table (the training spine) is computed from a parsed source."""

    source: str
    transform: Callable[..., DataFrame]
    schema_ddl: str
    description: str


@dataclass(frozen=True)
class SystemSpec:
    """A system: raw sources, a parser per source (rows + ``_reason``), feature groups, labels.

    Attributes:
        name: System name.
        sources: Raw sources by name.
        parsers: Source name -> ``parse(raw_df, now=..., **context) -> DataFrame`` with ``_reason``.
        groups: Feature groups.
        labels: The labels table spec.
        context: ``(store, system) -> dict`` of reference data the parsers need (read once per run).
        key_types: Spark SQL type of each key column (default string).
    """

    name: str
    sources: Mapping[str, Source]
    parsers: Mapping[str, Callable[..., DataFrame]]
    groups: tuple[FeatureGroup, ...]
    labels: LabelsSpec
    context: Callable[[TableStore, str], dict[str, Any]] = field(default=lambda store, system: {})
    key_types: Mapping[str, str] = field(default_factory=dict)

    def group(self, name: str) -> FeatureGroup:
        for group in self.groups:
            if group.name == name:
                return group
        raise ConfigError(f"system {self.name} has no feature group {name!r}",
                          hint=f"groups: {', '.join(g.name for g in self.groups)}")

    def labels_schema(self) -> StructType:
        from pyspark.sql.types import _parse_datatype_string

        return _parse_datatype_string(self.labels.schema_ddl)
