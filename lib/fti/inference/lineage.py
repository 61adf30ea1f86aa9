"""``fti lineage``: prediction -> model version -> training set manifest -> feature group versions -> raw versions."""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Any

from fti.errors import FtiError
from fti.registry import ModelMetadata, ModelRef, manifest_of_model, resolve_version
from fti.store import DeltaLog, TableStore
from fti.store.manifest import TrainingSetManifest

if TYPE_CHECKING:
    from fti.config import Settings


def _group_chain(store: DeltaLog, table: str, version: int) -> dict[str, Any]:
    definition = json.loads(store.properties(table, version=version).get("fti.definition", "{}")) \
        if store.exists(table) else {}
    raws = {}
    for source in definition.get("sources", []):
        raws[f"{table.split('/')[0]}/{source}"] = store.watermark(table, source, version=version)
    return {"table": table, "version": version, "raw_versions": raws}


def model_lineage(store: DeltaLog, settings: Settings, ref: ModelRef) -> dict[str, Any]:
    """Model version -> training set -> spine and feature group versions -> raw table versions."""
    mv = resolve_version(settings, ref)
    manifest = manifest_of_model(settings, ModelRef(ref.name, version=int(mv.version)))
    spine, out = manifest.spine, manifest.output
    # the labels table names its raw sources in its properties (no import of the feature pipeline)
    sources = json.loads(store.properties(spine.table, version=spine.version).get("fti.sources", "[]")) \
        if store.exists(spine.table) else []
    return {
        "model": {"name": ref.name, "version": int(mv.version), "aliases": list(getattr(mv, "aliases", []) or []),
                  "run_id": mv.run_id},
        "training_set": {"table": out.table, "version": out.version, "rows": out.rows, "sha256": out.sha256,
                         "manifest": TrainingSetManifest.path_of(store.home, out.table).relative_to(store.home),
                         "code_version": manifest.code_version},
        "spine": {"table": spine.table, "version": spine.version,
                  "raw_versions": {f"{settings.system}/{s}": store.watermark(spine.table, s, version=spine.version)
                                   for s in sources}},
        "feature_groups": {g.group: _group_chain(store, g.table, g.version) for g in manifest.groups},
        "training_set_tag": ModelMetadata.of(mv).training_set,
    }


def prediction_lineage(store: TableStore, settings: Settings, key: str, as_of: dt.datetime) -> dict[str, Any]:
    """The chain of one prediction row (the first key column equals ``key``)."""
    from pyspark.sql import functions as F

    table = f"{settings.system}/predictions"
    if not store.exists(table):
        raise FtiError(f"no predictions table {table}", hint="score first: fti score --as-of T")
    preds = store.read(table)
    key_col = preds.columns[0]
    rows = preds.where((F.col(key_col) == key) & (F.col("as_of") == F.lit(as_of).cast("timestamp"))).collect()
    if not rows:
        raise FtiError(f"no prediction for {key_col}={key} at {as_of.isoformat()} in {table}")
    row = rows[0]
    chain = model_lineage(store, settings, ModelRef(row.model_name, version=row.model_version))
    chain["prediction"] = {key_col: key, "as_of": as_of.isoformat(), "score": row.score,
                           "predicted_label": row.predicted_label, "scored_at": str(row.scored_at)}
    chain["scoring_feature_groups"] = {g: _group_chain(store, f"{settings.system}/{g}", v)
                                       for g, v in sorted((row.feature_versions or {}).items())}
    return chain


def format_chain(chain: dict[str, Any]) -> str:
    """A readable, indented chain."""
    lines = []
    if "prediction" in chain:
        p = chain["prediction"]
        lines.append(f"prediction {p}")
        lines.append("  scored with feature groups:")
        for g, c in chain["scoring_feature_groups"].items():
            lines.append(f"    {g}: {c['table']} v{c['version']} <- raw {c['raw_versions']}")
    m = chain["model"]
    lines.append(f"model {m['name']}/{m['version']} (aliases {m['aliases'] or '-'}, mlflow run {m['run_id']})")
    t = chain["training_set"]
    lines.append(f"  training set {t['table']} v{t['version']}: {t['rows']} rows, sha256 {t['sha256'][:16]}…, "
                 f"code {t['code_version']}")
    lines.append(f"    manifest {t['manifest']}")
    s = chain["spine"]
    lines.append(f"    spine {s['table']} v{s['version']} <- raw {s['raw_versions']}")
    for g, c in chain["feature_groups"].items():
        lines.append(f"    {g}: {c['table']} v{c['version']} <- raw {c['raw_versions']}")
    return "\n".join(lines)
