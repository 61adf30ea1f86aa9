"""What notebooks call first: their widgets, then settings, the Spark session (the notebook's own on Databricks)
and the store."""

from __future__ import annotations

import os
from typing import Any

# A Unity Catalog volume: on Databricks it is a folder (/Volumes/<catalog>/<schema>/<volume>) that Spark and
# Python both read and write; create it first (CREATE VOLUME main.default.fti) or point the widget elsewhere.
DATABRICKS_HOME = "/Volumes/main/default/fti/lakehouse"


def on_databricks() -> bool:
    return bool(os.environ.get("DATABRICKS_RUNTIME_VERSION"))


def declare_widgets(dbutils: Any, *, system: str = "flights") -> None:
    """The widgets every notebook has: project folder (empty: the shipped example named by ``system``), system,
    home (a volume on Databricks, ``lakehouse`` here) and config file (empty: the one shipped with fti)."""
    dbutils.widgets.text("project", "", "Project folder (empty: a shipped example)")
    dbutils.widgets.text("system", system, "System")
    dbutils.widgets.text("home", DATABRICKS_HOME if on_databricks() else "lakehouse", "Home folder")
    dbutils.widgets.text("conf", "", "Config YAML (empty: the system's shipped config)")


def session_from_widgets(dbutils: Any) -> tuple[Any, Any, Any]:
    """:func:`open_session` with the values of :func:`declare_widgets`'s widgets."""
    get = dbutils.widgets.get
    project = get("project")
    return open_session(None if project else get("system"), project=project or None, home=get("home"),
                        conf=get("conf"))


def open_session(system: str | None = None, *, project: str | None = None, home: str | None = None,
                 profile: str | None = None, conf: str | None = None) -> tuple[Any, Any, Any]:
    """``(settings, spark, store)`` for a notebook; every table of the home (and every table created later)
    can be queried by name, ``<system>.<table>``, when the Delta connector is loaded.

    Args:
        system: A shipped example or installed project by name (``flights``, ``synthetic``).
        project: A project folder (its ``fti.yaml``) instead.
        home: Home folder (default: config / ``FTI_HOME`` / ``./lakehouse``).
        profile: Config profile.
        conf: Config file path.
    """
    from fti.config import ensure_home, load_config
    from fti.spark import get_spark
    from fti.store import open_store

    settings = load_config(system, project=project or None, home=home or None, profile=profile or None,
                           conf=conf or None)
    ensure_home(settings)
    spark = get_spark(settings)
    store = open_store(spark, settings)
    if store.backend_name == "native":  # `spark.table("flights.carrier_delay")` and %sql work in the notebook
        store.register_names(catalog=settings.config.delta.catalog or "")
    return settings, spark, store
