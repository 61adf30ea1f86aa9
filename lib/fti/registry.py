"""MLflow registry helpers shared by the pipelines: model references, a model's metadata, and the table
versions models pin.

What fti knows about a registered model version (its training set, feature view, features, threshold, test
AUC...) is stored ONCE, as version tags, written and read only through :class:`ModelMetadata`. Among them, one
tag per Delta table version its training set read: ``fti.pin.<table name> = <version>``; vacuum reads them to
keep those versions' files.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fti.errors import FtiError
from fti.store import Pin

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from fti.config import Settings
    from fti.store.manifest import TrainingSetManifest

log = logging.getLogger(__name__)
PIN_TAG = "fti.pin."
# where MLflow's SQL store records artifact locations (absolute URIs)
_ARTIFACT_COLUMNS = (("experiments", "artifact_location"), ("runs", "artifact_uri"),
                     ("model_versions", "storage_location"), ("logged_models", "artifact_location"))
_AT_HOME: set[str] = set()  # embedded stores already checked by this process
_REF = re.compile(r"^(?P<name>[A-Za-z0-9_.\-]+)(?:@(?P<alias>[A-Za-z0-9_\-]+)|/(?P<version>\d+))$")


@dataclass(frozen=True)
class ModelRef:
    """``NAME@alias`` or ``NAME/VERSION``."""

    name: str
    alias: str | None = None
    version: int | None = None

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        match = _REF.match(text or "")
        if not match:
            raise FtiError(f"model reference {text!r} is not NAME@alias or NAME/VERSION",
                           hint="e.g. flights_delay@champion or flights_delay/3")
        version = match.group("version")
        return cls(match.group("name"), match.group("alias"), int(version) if version else None)

    def __str__(self) -> str:
        return f"{self.name}@{self.alias}" if self.alias else f"{self.name}/{self.version}"

    @property
    def uri(self) -> str:
        return f"models:/{self.name}@{self.alias}" if self.alias else f"models:/{self.name}/{self.version}"


def mlflow_store_exists(settings: Settings) -> bool:
    """Whether there is a store to ask: a server is; a SQLite store (the embedded one or another) once its file exists."""
    uri = settings.tracking_uri
    return not uri.startswith("sqlite:///") or Path(uri[len("sqlite:///"):]).exists()


def embedded_store_at_home(settings: Settings) -> None:
    """Point the embedded store's artifact locations into the home it is in, once per process.

    MLflow records absolute artifact URIs (experiments, runs, model versions, logged models); in a copied or moved
    home they still name the original folder, so models would load from it and new runs write into it. Every
    location under another ``.../mlflow/artifacts`` is rewritten to this home's, and the default experiment's
    (MLflow puts it under the working folder, ``./mlruns``) into the home too. One SQLite transaction; idempotent,
    so two processes doing it at once agree. A store named by a tracking URI is left alone."""
    if settings.config.mlflow.tracking_uri:
        return
    db = settings.embedded_store
    if str(db) in _AT_HOME or not db.is_file():
        return
    here = settings.artifact_location
    conn = sqlite3.connect(db, timeout=60)
    try:
        with conn:
            tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "experiments" not in tables:
                return  # MLflow has not created its schema yet
            olds = {loc for (loc,) in conn.execute("SELECT artifact_location FROM experiments WHERE experiment_id != 0")
                    if loc and loc.endswith("/mlflow/artifacts") and loc != here}
            moved = 0
            for table, column in _ARTIFACT_COLUMNS:
                if table not in tables:
                    continue
                for rowid, value in conn.execute(f"SELECT rowid, {column} FROM {table}").fetchall():
                    old = next((o for o in olds if value and (value == o or value.startswith(o + "/"))), None)
                    if old:
                        conn.execute(f"UPDATE {table} SET {column} = ? WHERE rowid = ?", (here + value[len(old):], rowid))
                        moved += 1
            default = f"{here}/0"
            moved += conn.execute("UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0 "
                                  "AND artifact_location != ?", (default, default)).rowcount
        if moved:
            log.info("MLflow store %s: %d artifact location(s) now inside this home", db, moved)
        _AT_HOME.add(str(db))
    finally:
        conn.close()


@contextmanager
def using_mlflow(settings: Settings) -> Iterator[None]:
    """MLflow's process-wide tracking and registry URIs set to this home's for the block, then put back.

    ``mlflow.set_tracking_uri`` also writes ``MLFLOW_TRACKING_URI`` into ``os.environ``, and fti reads that variable
    (MLflow from the environment); left set, a second home loaded in the same process (a notebook) would log into
    the first home's store. Restored on exit: the URIs and both variables."""
    import mlflow
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    embedded_store_at_home(settings)
    names = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    environ = {name: os.environ.get(name) for name in names}
    tracking, registry = tracking_utils._tracking_uri, registry_utils._registry_uri
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.registry_uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(tracking)
        registry_utils._registry_uri = registry
        for name, value in environ.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def check_tracking(settings: Settings) -> None:
    """Fail in seconds, with the fix, when the configured MLflow server does not answer."""
    from fti.errors import check_reachable

    uri = settings.tracking_uri
    if uri.startswith(("http://", "https://")):
        check_reachable("the MLflow tracking server", uri,
                        hint="start it (mlflow server --host ... --port ...) or point mlflow.tracking_uri "
                             "(FTI__MLFLOW__TRACKING_URI) at a running one")


def client(settings: Settings) -> MlflowClient:
    from mlflow.tracking import MlflowClient

    embedded_store_at_home(settings)
    uri = settings.tracking_uri
    return MlflowClient(tracking_uri=uri, registry_uri=settings.registry_uri)


def pins(settings: Settings) -> list[Pin]:
    """Every (table, version) pinned by a registered model version (tags ``fti.pin.<table>``).

    Reads every page (a registry holds more than one page of models). Elsewhere one unfiltered search (a model
    name may hold quotes); in Unity Catalog, whose version search takes one model name and returns no tags, each
    model's versions and then each version's tags."""
    if not mlflow_store_exists(settings):
        return []
    mlflow_client = client(settings)
    if settings.unity_catalog:
        versions = [mlflow_client.get_model_version(mv.name, mv.version)
                    for model in _all_pages(lambda t: mlflow_client.search_registered_models(page_token=t))
                    for mv in _all_pages(lambda t, m=model.name: mlflow_client.search_model_versions(
                        f"name = '{m}'", max_results=1000, page_token=t))]
    else:
        versions = _all_pages(lambda t: mlflow_client.search_model_versions(max_results=1000, page_token=t))
    return [Pin(table=table, version=version, owner=f"{mv.name}/{mv.version}")
            for mv in versions for table, version in _pins(mv.tags or {}).items()]


def _all_pages(search: Any) -> list[Any]:
    """Every result of a paged MLflow search: ``search(page_token)`` until no token comes back."""
    out, token = [], None
    while True:
        page = search(token)
        out += list(page)
        token = page.token
        if not token:
            return out


MANIFEST_TAG = "fti.training_set"


@dataclass(frozen=True)
class ModelMetadata:
    """What fti stores on a registered model version (as version tags; the only code that knows their keys).

    Attributes:
        training_set: The training set's table (its manifest lies beside it).
        feature_view: The feature view it was trained on.
        features: Model input columns, in order.
        threshold: The decision threshold (F1-best on the validation window; binary only).
        test_auc: Test AUC at training time (binary; NaN otherwise).
        objective: ``binary``, ``regression`` or ``multiclass`` (:mod:`fti.objectives`).
        metric: The promotion metric it was gated on, and ``test_metric`` its test value.
        test_window: ``START..END`` prediction days of the test window.
        run_id: fti's training run id.
        pins: Delta table -> version the training set read or wrote (vacuum keeps them).
    """

    training_set: str
    feature_view: str = ""
    features: list[str] = field(default_factory=list)
    threshold: float = 0.5
    test_auc: float = float("nan")
    objective: str = "binary"
    metric: str = "auc"
    test_metric: float = float("nan")
    test_window: str = ""
    run_id: str = ""
    pins: dict[str, int] = field(default_factory=dict)

    def tags(self) -> dict[str, str]:
        """The version tags that store it."""
        return {MANIFEST_TAG: self.training_set, "fti.feature_view": self.feature_view,
                "fti.features": json.dumps(self.features), "fti.threshold": repr(self.threshold),
                "fti.test_auc": repr(self.test_auc), "fti.objective": self.objective, "fti.metric": self.metric,
                "fti.test_metric": repr(self.test_metric), "fti.test_window": self.test_window, "fti.run_id": self.run_id,
                **{f"{PIN_TAG}{table}": str(version) for table, version in self.pins.items()}}

    @classmethod
    def of(cls, mv: Any) -> ModelMetadata:
        """The metadata of a registered model version (``mv`` from the MLflow client).

        Raises:
            FtiError: The version has no training-set tag (it was not trained by fti).
        """
        tags = dict(mv.tags or {})
        if not tags.get(MANIFEST_TAG):
            raise FtiError(f"model {mv.name} (version {mv.version}) has no {MANIFEST_TAG} tag: it was not trained "
                           "by fti")
        return cls(training_set=tags[MANIFEST_TAG], feature_view=tags.get("fti.feature_view", ""),
                   features=json.loads(tags.get("fti.features", "[]")),
                   threshold=float(tags.get("fti.threshold", "0.5")),
                   test_auc=float(tags.get("fti.test_auc", "nan")), objective=tags.get("fti.objective", "binary"),
                   metric=tags.get("fti.metric", "auc"),
                   test_metric=float(tags.get("fti.test_metric", tags.get("fti.test_auc", "nan"))), test_window=tags.get("fti.test_window", ""),
                   run_id=tags.get("fti.run_id", ""),
                   pins=_pins(tags))


def _pins(tags: dict[str, str]) -> dict[str, int]:
    """Table -> pinned version from a model version's tags."""
    return {k[len(PIN_TAG):]: int(v) for k, v in tags.items() if k.startswith(PIN_TAG)}


def resolve_version(settings: Settings, ref: ModelRef) -> Any:
    """The registered model version a reference points to.

    Raises:
        FtiError: Unknown model, version or alias (an alias disappears when its version is deleted).
    """
    from mlflow.exceptions import MlflowException

    check_tracking(settings)
    if not mlflow_store_exists(settings):
        raise FtiError(f"no MLflow store at {settings.tracking_uri}: no model {ref} has been registered",
                       hint=f"train one first: fti train --system {settings.system}")
    mlflow_client = client(settings)
    try:
        if ref.alias:
            return mlflow_client.get_model_version_by_alias(ref.name, ref.alias)
        return mlflow_client.get_model_version(ref.name, str(ref.version))
    except MlflowException as exc:
        known = [m.name for m in mlflow_client.search_registered_models()]
        what = f"alias '{ref.alias}'" if ref.alias else f"version {ref.version}"
        if ref.name not in known:
            raise FtiError(f"no registered model named {ref.name!r}",
                           hint=f"registered models: {', '.join(known) or 'none'}") from None
        raise FtiError(f"model {ref.name} has no {what} ({str(exc).splitlines()[0][:120]})",
                       hint=f"list versions and aliases with: fti catalog; promote with fti model promote {ref.name}/N")\
            from None


def manifest_of_model(settings: Settings, ref: ModelRef) -> TrainingSetManifest:
    """The training-set manifest of a registered model version (its path is tagged on the version)."""
    from fti.store.manifest import TrainingSetManifest

    table = ModelMetadata.of(resolve_version(settings, ref)).training_set
    return TrainingSetManifest.read(TrainingSetManifest.path_of(settings.home, table))
