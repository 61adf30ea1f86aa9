"""MLflow registry helpers shared by the pipelines: model references, and the table versions models pin.

A registered model version carries one tag per Delta table version its training set read:
``fti.pin.<table name> = <version>``. Vacuum reads them to refuse breaking a rebuild.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fti.errors import FtiError
from fti.store import Pin

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from fti.config import Settings

PIN_TAG = "fti.pin."
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
    uri = settings.tracking_uri
    return not uri.startswith("sqlite:///") or (settings.home / "mlflow" / "mlflow.db").exists()


def client(settings: Settings) -> MlflowClient:
    from mlflow.tracking import MlflowClient

    uri = settings.tracking_uri
    return MlflowClient(tracking_uri=uri, registry_uri=settings.config.mlflow.registry_uri or uri)


def pins(settings: Settings) -> list[Pin]:
    """Every (table, version) pinned by a registered model version (tags ``fti.pin.<table>``)."""
    if not mlflow_store_exists(settings):
        return []
    mlflow_client = client(settings)
    out = []
    for model in mlflow_client.search_registered_models():
        for mv in mlflow_client.search_model_versions(f"name='{model.name}'"):
            for key, value in (mv.tags or {}).items():
                if key.startswith(PIN_TAG):
                    out.append(Pin(table=key[len(PIN_TAG):], version=int(value), owner=f"{model.name}/{mv.version}"))
    return out
