"""What a project is: raw sources, a parser per source, feature groups, labels and its own data loader.

Projects build these with the public names of :mod:`fti.authoring`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

from fti.errors import ConfigError
from fti.features.definitions import FeatureGroup
from fti.sources import Source

if TYPE_CHECKING:
    from pyspark.sql import DataFrame
    from pyspark.sql.types import StructType

    from fti.authoring import Tables
    from fti.store import TableStore


@dataclass(frozen=True)
class Labels:
    """How a project's labels table (the training spine) is computed from a parsed source.

    Attributes:
        source: The parsed source the labels come from.
        transform: ``(parsed rows, *, config) -> DataFrame`` with the keys, ``day``, ``prediction_time`` (see
            :func:`fti.authoring.prediction_time_col`) and the label columns.
        schema_ddl: The labels table's schema (Spark DDL), ``ingested_at timestamp NOT NULL`` last.
        description: What one row is.
    """

    source: str
    transform: Callable[..., DataFrame]
    schema_ddl: str
    description: str


@dataclass(frozen=True)
class Project:
    """A project's definitions: raw sources, a parser per source (rows + ``_reason``), feature groups, labels.

    Attributes:
        sources: Raw sources by name.
        parsers: Source name -> ``parse(raw_df, now=..., **context) -> DataFrame`` with ``_reason``.
        groups: Feature groups.
        labels: The labels table spec.
        context: ``(tables: fti.authoring.Tables) -> dict`` of reference data the parsers need (read once per
            run).
        key_types: Spark SQL type of each key column (default string).
        load: The project's own data loader, what ``fti ingest --through DAY`` runs:
            ``(landing: fti.authoring.Landing, *, through, batch, now, **options) -> list[LandedBatch]``
            (None: the project's data arrives by ``fti ingest --source S --file PATH`` only).
        name: The project's name: set from its project file's ``system`` when fti loads it.
    """

    sources: Mapping[str, Source]
    parsers: Mapping[str, Callable[..., DataFrame]]
    groups: tuple[FeatureGroup, ...]
    labels: Labels
    context: Callable[[Tables], dict[str, Any]] = field(default=lambda tables: {})
    key_types: Mapping[str, str] = field(default_factory=dict)
    load: Callable[..., list[Any]] | None = None
    name: str = ""

    def group(self, name: str) -> FeatureGroup:
        for group in self.groups:
            if group.name == name:
                return group
        raise ConfigError(f"project {self.name} has no feature group {name!r}",
                          hint=f"groups: {', '.join(g.name for g in self.groups)}")

    def reference_data(self, store: TableStore) -> dict[str, Any]:
        """What :attr:`context` gives for this project's tables in ``store``."""
        from fti.authoring import Tables

        return self.context(Tables(store, self.name))

    def labels_schema(self) -> StructType:
        from pyspark.sql.types import _parse_datatype_string

        return _parse_datatype_string(self.labels.schema_ddl)
