"""What notebooks call first: their widgets, then settings, the Spark session (the notebook's own on Databricks)
and the store."""

from __future__ import annotations

import os
from typing import Any, Mapping

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


def open_project(project: Any, config: Mapping[str, Any] | str, *, home: str | None = None,
                 profile: str | None = None) -> tuple[Any, Any, Any]:
    """``(settings, spark, store)`` for a project defined in notebook cells: its definitions (an
    :class:`fti.authoring.Project`) and its configuration, what a project's ``fti.yaml`` holds (a dict or YAML text:
    ``system``, ``feature_views``, ``training``...). The configuration is validated like a project file and kept in
    a local home as ``<home>/projects/<system>.yaml``, so the CLI can run the same project
    (``fti --home HOME --conf HOME/projects/<system>.yaml train``) once the definitions live in a module.

    Example::

        settings, spark, store = open_project(Project(sources=..., parsers=..., groups=..., labels=...),
                                              {"system": "shop", "feature_views": {...}, "training": {...}},
                                              home="/Volumes/main/default/fti/lakehouse")
        pipeline.run(store, settings)            # the feature pipeline of the cells' definitions
    """
    import yaml

    from fti.config import ensure_home, load_config
    from fti.errors import ConfigError
    from fti.location import Location
    from fti.projects import define
    from fti.spark import get_spark
    from fti.store import open_store

    data = yaml.safe_load(config) if isinstance(config, str) else dict(config)
    if not isinstance(data, dict) or not data.get("system"):
        raise ConfigError("a notebook project's configuration needs a 'system' (the project's name)",
                          hint="e.g. {'system': 'shop', 'feature_views': {...}, 'training': {...}}")
    if data.get("definitions"):
        raise ConfigError("a notebook project's configuration names no definitions module: the cells' Project is "
                          "its definitions", hint="drop 'definitions' from the configuration")
    root = Location(home or (DATABRICKS_HOME if on_databricks() else "lakehouse")).resolve()
    if root.local is not None:
        folder = root.local / "projects"
        folder.mkdir(parents=True, exist_ok=True)
    else:  # a home on object storage: the configuration file stays on this machine
        import tempfile
        from pathlib import Path

        folder = Path(tempfile.mkdtemp(prefix="fti-project-"))
    conf = folder / f"{data['system']}.yaml"
    conf.write_text(yaml.safe_dump(data, sort_keys=False))
    settings = load_config(conf=conf, home=str(root), profile=profile or None)
    define(project, settings.system)
    ensure_home(settings)
    spark = get_spark(settings)
    store = open_store(spark, settings)
    if store.backend_name == "native":
        store.register_names(catalog=settings.config.delta.catalog or "")
    return settings, spark, store
