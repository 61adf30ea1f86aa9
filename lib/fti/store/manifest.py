"""The training-set manifest (``training_set.json``), typed: the only code that knows its JSON keys.

A manifest pins how a training set was made: the spine table and version (with its keys, prediction-time
column, label, filter and spine feature columns), every feature group at the version read (key and column
mappings, TTL, event-time column, and for bi-temporal sets the history table read), the view's definition hash,
the code version, the leakage report and the output (table, version, rows, content hash). Manifests written
before a field existed still load (the field takes its default).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

from fti.errors import FtiError
from fti.location import Location

MANIFEST_SUFFIX = ".training_set.json"


@dataclass(frozen=True)
class SpineEntry:
    """The spine: a labels table at a version."""

    table: str
    version: int
    keys: list[str]
    event_time: str
    label: str
    start: str | None = None
    end: str | None = None
    require_label: bool = True
    feature_columns: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"table": self.table, "version": self.version, "keys": list(self.keys), "event_time": self.event_time,
                "label": self.label, "filter": {"start": self.start, "end": self.end,
                                                "require_label": self.require_label},
                "feature_columns": list(self.feature_columns)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SpineEntry:
        flt = data.get("filter") or {}
        return cls(table=data["table"], version=int(data["version"]), keys=list(data["keys"]),
                   event_time=data["event_time"], label=data["label"], start=flt.get("start"), end=flt.get("end"),
                   require_label=flt.get("require_label", True), feature_columns=list(data.get("feature_columns", [])))


@dataclass(frozen=True)
class GroupEntry:
    """One feature group at the version read (and its history table, for a bi-temporal set)."""

    group: str
    table: str
    version: int
    keys: dict[str, str]
    columns: dict[str, str]
    ttl_seconds: int | None = None
    event_time: str = "event_time"
    history_table: str | None = None
    history_version: int | None = None

    def to_json(self) -> dict[str, Any]:
        out = {"group": self.group, "table": self.table, "version": self.version, "keys": dict(self.keys),
               "event_time": self.event_time, "ttl_seconds": self.ttl_seconds, "columns": dict(self.columns)}
        if self.history_table:
            out["history"] = {"table": self.history_table, "version": self.history_version}
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GroupEntry:
        history = data.get("history") or {}
        return cls(group=data["group"], table=data["table"], version=int(data["version"]), keys=dict(data["keys"]),
                   columns=dict(data["columns"]), ttl_seconds=data.get("ttl_seconds"),
                   event_time=data.get("event_time", "event_time"), history_table=history.get("table"),
                   history_version=history.get("version"))


@dataclass(frozen=True)
class OutputEntry:
    """The materialized training set."""

    table: str
    version: int
    rows: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {"table": self.table, "version": self.version, "rows": self.rows, "sha256": self.sha256}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OutputEntry:
        return cls(table=data["table"], version=int(data.get("version", 0)), rows=int(data.get("rows", 0)),
                   sha256=data["sha256"])


@dataclass(frozen=True)
class TrainingSetManifest:
    """What ``training_set.json`` says (see the module docstring)."""

    name: str
    feature_view: str
    system: str
    spine: SpineEntry
    groups: list[GroupEntry]
    bitemporal: bool = False
    view_hash: str | None = None
    code_version: str | None = None
    leakage_report: dict[str, Any] = field(default_factory=dict)
    output: OutputEntry | None = None

    # ----------------------------------------------------------------------------- what readers need
    @property
    def feature_columns(self) -> list[str]:
        return list(self.spine.feature_columns) + [c for g in self.groups for c in g.columns]

    def versions(self) -> dict[str, int]:
        """What the set pinned: ``spine``, each group, and ``<group>/history`` for the history tables read."""
        out = {"spine": self.spine.version, **{g.group: g.version for g in self.groups}}
        out.update({f"{g.group}/history": g.history_version for g in self.groups if g.history_table})
        return out

    def pins(self) -> dict[str, int]:
        """Table -> version of every table this set read or wrote (what a registered model pins)."""
        out = {self.spine.table: self.spine.version, **{g.table: g.version for g in self.groups}}
        out.update({g.history_table: g.history_version for g in self.groups if g.history_table})
        if self.output is not None:
            out[self.output.table] = self.output.version
        return out

    def with_output(self, output: OutputEntry, leakage_report: Mapping[str, Any]) -> TrainingSetManifest:
        return replace(self, output=output, leakage_report=dict(leakage_report))

    # ----------------------------------------------------------------------------- JSON
    def to_json(self) -> dict[str, Any]:
        out = {"name": self.name, "feature_view": self.feature_view, "system": self.system,
               "spine": self.spine.to_json(), "features": [g.to_json() for g in self.groups],
               "bitemporal": self.bitemporal, "view_hash": self.view_hash, "code_version": self.code_version,
               "leakage_report": self.leakage_report}
        if self.output is not None:
            out["output"] = self.output.to_json()
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TrainingSetManifest:
        return cls(name=data.get("name", data["feature_view"]), feature_view=data["feature_view"],
                   system=data.get("system", data["spine"]["table"].split("/")[0]),
                   spine=SpineEntry.from_json(data["spine"]),
                   groups=[GroupEntry.from_json(g) for g in data["features"]],
                   bitemporal=bool(data.get("bitemporal", False)), view_hash=data.get("view_hash"),
                   code_version=data.get("code_version"), leakage_report=dict(data.get("leakage_report") or {}),
                   output=OutputEntry.from_json(data["output"]) if data.get("output") else None)

    # ----------------------------------------------------------------------------- files
    @staticmethod
    def path_of(home: Path | Location, table: str) -> Location:
        """Where the manifest of a training-set table lives: beside it, ``<table>.training_set.json``."""
        return Location(home) / f"{table}{MANIFEST_SUFFIX}"

    def write(self, home: Path | Location) -> Location:
        """Write beside the output table (whole: a temporary file and a rename locally, one PUT on object
        storage)."""
        if self.output is None:
            raise ValueError("a manifest is written once its training set is materialized")
        path = self.path_of(home, self.output.table)
        path.write_text(json.dumps(self.to_json(), indent=2, sort_keys=True, default=str))
        return path

    @classmethod
    def read(cls, path: str | Path | Location) -> TrainingSetManifest:
        try:
            return cls.from_json(json.loads(Location(path).read_text()))
        except FileNotFoundError:
            raise FtiError(f"manifest {path} does not exist") from None
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise FtiError(f"manifest {path} is not a training-set manifest: {exc}") from None
