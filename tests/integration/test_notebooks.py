"""Every notebook runs locally, in order, on a small synthetic home (the same library calls as the CLI)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import PROJECT
from tests.helpers.notebooks import cells, run_notebook

NOTEBOOKS = sorted((PROJECT / "notebooks").glob("*.py"))
EXPECTED = ["01_feature_pipeline.py", "02_training_pipeline.py", "03_batch_inference.py", "04_exploration.py"]


def test_all_notebooks_are_present_and_in_source_format():
    assert [p.name for p in NOTEBOOKS] == EXPECTED  # fails if the folder is empty or a notebook is missing
    for path in NOTEBOOKS:
        assert len(cells(path)) >= 3, path


def test_notebooks_execute_in_order(spark, home, monkeypatch):
    # the synthetic system, small: 150 entities, six weeks (the training windows of conf/synthetic.yaml)
    monkeypatch.setenv("FTI__INGEST__ENTITIES", "150")
    monkeypatch.setenv("FTI__TRAINING__NUM_BOOST_ROUND", "30")
    common = {"system": "synthetic", "home": str(home)}
    ns = run_notebook(PROJECT / "notebooks" / "01_feature_pipeline.py", {**common, "through": "2024-02-25"})
    assert {o.table for o in ns["report"].outputs} == {"synthetic/activity", "synthetic/canary", "synthetic/labels"}
    ns = run_notebook(PROJECT / "notebooks" / "02_training_pipeline.py", common)
    assert ns["report"].alias == "champion"
    ns = run_notebook(PROJECT / "notebooks" / "03_batch_inference.py", {**common, "as_of": "2024-02-20T00:00"})
    assert ns["report"].scored == ns["report"].population > 0
    assert ns["result"]["runs"][0]["realized_auc"] is not None
    ns = run_notebook(PROJECT / "notebooks" / "04_exploration.py", common)
    assert Path(ns["display_path"]).is_file()
    # tables by name, as on Databricks: every table of the home, also those created after the session opened
    assert ns["latest_labels"] and ns["latest_labels"][0]["rows"] > 0
    store = ns["store"]
    for table in store.list_tables():
        assert spark.table(store.sql_name(table)).count() == store.read(table).count(), table


def test_a_broken_notebook_fails(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("# Databricks notebook source\nx = 1\n# COMMAND ----------\nraise RuntimeError('boom')\n")
    with pytest.raises(AssertionError, match="bad.py cell 1 failed: RuntimeError: boom"):
        run_notebook(bad, {})
