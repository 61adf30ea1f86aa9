"""Every notebook runs locally, in order, on a small synthetic home (the same library calls as the CLI)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import PROJECT
from tests.helpers.notebooks import RESULTS, DbutilsStub, cells, run_notebook
from tests.helpers.wheel import run

NOTEBOOKS = sorted((PROJECT / "notebooks").glob("*.py"))
EXPECTED = ["01_feature_pipeline.py", "02_training_pipeline.py", "03_batch_inference.py", "04_exploration.py",
            "05_your_own_feature_group.py"]


def test_all_notebooks_are_present_and_in_source_format():
    assert [p.name for p in NOTEBOOKS] == EXPECTED  # fails if the folder is empty or a notebook is missing
    for path in NOTEBOOKS:
        assert len(cells(path)) >= 3, path


def test_notebooks_execute_in_order_from_the_installed_wheel(installed_wheel, home, tmp_path):
    """The five notebooks, in order, in one Python process of the wheel's environment (fti from the wheel, not
    the checkout), from a folder that is not the checkout, with the widgets stand-in."""
    # the synthetic system, small: 150 entities, six weeks (the training windows of its shipped config)
    env = installed_wheel.env(FTI__INGEST__ENTITIES="150", FTI__TRAINING__NUM_BOOST_ROUND="30")
    common = {"system": "synthetic", "home": str(home)}
    steps = [
        ("01_feature_pipeline.py", {"through": "2024-02-25"},
         {"tables": "sorted(o.table for o in report.outputs)", "fti": "__import__('fti').__file__"}),
        ("02_training_pipeline.py", {}, {"alias": "report.alias"}),
        ("03_batch_inference.py", {"as_of": "2024-02-20T00:00"},
         {"scored": "report.scored", "population": "report.population",
          "realized_auc": "result['runs'][0]['realized_auc']"}),
        ("04_exploration.py", {},
         {"display": "__import__('pathlib').Path(display_path).is_file()",
          "latest_labels": "latest_labels[0]['rows'] if latest_labels else 0",
          # tables by name, as on Databricks: every table of the home, also those created after the session opened
          "tables": "len(store.list_tables())",
          "by_name": "all(spark.table(store.sql_name(t)).count() == store.read(t).count() for t in store.list_tables())"}),
        # a project of the notebook's own: a Delta table read in place, an inserted group, a regression model
        ("05_your_own_feature_group.py", {},
         {"outputs": "sorted(o.table for o in report.outputs)", "inserted": "inserted.rows",
          "spine_rows": "spine_rows", "alias": "trained.alias", "objective": "trained.objective",
          "scored": "scored.scored", "population": "scored.population",
          "labels": "spark.read.format('delta').load(orders_table).groupBy('user_id', F.to_date('ts')).count().count()",
          "spend": "store.read('shop/spend').count()"}),
    ]
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps([{"path": str(PROJECT / "notebooks" / name), "widgets": {**common, **widgets},
                                 "results": results} for name, widgets, results in steps]))
    out = run([installed_wheel.python, str(PROJECT / "tests" / "helpers" / "notebooks.py"), str(spec)],
              cwd=tmp_path, env=env, timeout=900)
    first, second, third, fourth, fifth = json.loads(next(line for line in out.splitlines()
                                                   if line.startswith(RESULTS))[len(RESULTS):])
    assert first["fti"].startswith(str(installed_wheel.site)), first["fti"]
    assert first["tables"] == ["synthetic/activity", "synthetic/canary", "synthetic/labels"]
    assert second["alias"] == "champion"
    assert third["scored"] == third["population"] > 0 and third["realized_auc"] is not None
    assert fourth["display"] and fourth["latest_labels"] > 0
    assert fourth["tables"] >= 5 and fourth["by_name"]
    assert fifth["outputs"] == ["shop/labels", "shop/spend"] and fifth["inserted"] == 25
    assert fifth["spend"] == fifth["labels"] > 300  # one row per user and day with orders
    assert fifth["alias"] == "champion" and fifth["objective"] == "regression"
    assert fifth["scored"] == fifth["population"] > 0 and 0 < fifth["spine_rows"] < fifth["labels"]


def test_notebook_widgets_default_to_a_volume_on_databricks(monkeypatch):
    """On Databricks the home widget defaults to a Unity Catalog volume; here, to ./lakehouse."""
    from fti.notebook import DATABRICKS_HOME, declare_widgets

    local = DbutilsStub({})
    declare_widgets(local)
    assert (local.widgets.get("home"), local.widgets.get("conf")) == ("lakehouse", "")
    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "17.3")
    databricks = DbutilsStub({})
    declare_widgets(databricks)
    assert databricks.widgets.get("home") == DATABRICKS_HOME and DATABRICKS_HOME.startswith("/Volumes/")


def test_a_broken_notebook_fails(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("# Databricks notebook source\nx = 1\n# COMMAND ----------\nraise RuntimeError('boom')\n")
    with pytest.raises(AssertionError, match="bad.py cell 1 failed: RuntimeError: boom"):
        run_notebook(bad, {})
