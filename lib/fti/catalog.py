"""``fti catalog``: every Delta table under the home, every feature group, every registered model.

Reads only Delta logs (no Spark) and the MLflow registry, so it is fast and safe to run anywhere.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import TYPE_CHECKING, Any

from fti.registry import mlflow_store_exists
from fti.store.manifest import TrainingSetManifest

if TYPE_CHECKING:
    from fti.config import Settings
    from fti.store import DeltaLog

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1


def _iso(ts: dt.datetime) -> str:
    return ts.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _last_stats(store: DeltaLog, name: str) -> dict[str, Any]:
    for entry in store.history(name):
        raw = entry.get("fti.stats")
        if raw:
            return json.loads(raw) if isinstance(raw, str) else raw
    return {}


def feature_group_entry(store: DeltaLog, name: str, *, now: dt.datetime) -> dict[str, Any] | None:
    """The catalog entry of one feature group table (definition from its properties, stats from its commits)."""
    props = store.properties(name)
    raw = props.get("fti.definition")
    if not raw:
        return None
    definition = json.loads(raw)
    stats = _last_stats(store, name)
    event_col = definition.get("event_time", "event_time")
    newest = (stats.get(event_col) or {}).get("max")
    freshness = None
    if newest:
        newest_ts = dt.datetime.fromisoformat(newest.replace("Z", "+00:00"))
        freshness = int((now - newest_ts).total_seconds())
    return {
        "name": definition["name"],
        "table": name,
        "keys": definition["keys"],
        "event_time": event_col,
        "ttl_seconds": definition.get("ttl_seconds"),
        "features": definition["features"],
        "freshness_seconds": freshness,
        "last_stats": stats,
    }


def registered_models(settings: Settings) -> list[dict[str, Any]]:
    """Registered MLflow models with their versions and aliases (empty if no store exists yet)."""
    if not mlflow_store_exists(settings):
        return []
    uri = settings.tracking_uri
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri, registry_uri=settings.config.mlflow.registry_uri or uri)
    out = []
    for model in client.search_registered_models():
        versions = sorted(int(v.version) for v in client.search_model_versions(f"name='{model.name}'"))
        aliases = {alias: int(version) for alias, version in (model.aliases or {}).items()}
        out.append({"name": model.name, "versions": versions, "aliases": aliases})
    return sorted(out, key=lambda m: m["name"])


def build_catalog(settings: Settings, store: DeltaLog, *, now: dt.datetime | None = None) -> dict[str, Any]:
    """Build the catalog object that ``fti catalog --json`` prints (schema_version 1).

    Args:
        settings: Loaded settings.
        store: The home's log reader.
        now: The clock for freshness (default: now).

    Returns:
        ``{"schema_version", "home", "tracking_uri", "tables", "feature_groups", "models"}``.
    """
    now = now or dt.datetime.now(dt.timezone.utc)
    tables = []
    groups = []
    for name in store.list_tables():
        info = store.info(name)
        tables.append({
            "name": name,
            "kind": info.kind,
            "path": info.path,
            "version": info.version,
            "rows": info.rows,
            "last_commit": _iso(info.last_commit),
        })
        if info.kind == "training_set":
            # a build killed between its commit and its manifest leaves a set that nothing can pin
            tables[-1]["incomplete"] = not TrainingSetManifest.path_of(store.home, name).exists()
        if info.kind == "feature_group":
            entry = feature_group_entry(store, name, now=now)
            if entry:
                groups.append(entry)
    return {
        "schema_version": SCHEMA_VERSION,
        "home": str(settings.home),
        "tracking_uri": settings.tracking_uri,
        "tables": tables,
        "feature_groups": groups,
        "models": registered_models(settings),
    }
