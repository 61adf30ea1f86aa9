"""What notebooks call first: settings, the Spark session (the notebook's own on Databricks) and the store."""

from __future__ import annotations

from typing import Any


def open_session(system: str, *, home: str | None = None, profile: str | None = None,
                 conf: str | None = None) -> tuple[Any, Any, Any]:
    """``(settings, spark, store)`` for a notebook; every table of the home (and every table created later)
    can be queried by name, ``<system>.<table>``, when the Delta connector is loaded.

    Args:
        system: System name (``flights``, ``synthetic``).
        home: Home folder (default: config / ``FTI_HOME`` / ``./lakehouse``).
        profile: Config profile.
        conf: Config file path.
    """
    from fti.config import ensure_home, load_config
    from fti.spark import get_spark
    from fti.store import open_store

    settings = load_config(system, home=home or None, profile=profile or None, conf=conf or None)
    ensure_home(settings)
    spark = get_spark(settings)
    store = open_store(spark, settings)
    if store.backend_name == "native":  # `spark.table("flights.carrier_delay")` and %sql work in the notebook
        store.register_names(catalog=settings.config.delta.catalog or "")
    return settings, spark, store
