"""``fti catalog`` and the CLI's error handling, run as real subprocesses."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

from pyspark.sql import types as T

from tests.conftest import PROJECT


def fti(*args, cwd=PROJECT):
    return subprocess.run([sys.executable, "-m", "fti", *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_catalog_json_lists_tables_with_exact_rows(spark, store, home):
    schema = T.StructType([T.StructField("k", T.StringType(), False), T.StructField("d", T.DateType(), True)])
    store.create_table("flights/raw_x", schema, kind="raw", partition_by=["d"])
    store.append("flights/raw_x", spark.createDataFrame([("a", dt.date(2013, 1, 1)), ("b", dt.date(2013, 1, 2))], schema))
    store.create_table("flights/labels_x", schema, kind="labels")
    out = fti("catalog", "--json", "--home", str(home))
    assert out.returncode == 0, out.stderr
    cat = json.loads(out.stdout)
    assert cat["schema_version"] == 1
    assert cat["home"] == str(home.resolve())
    assert cat["tracking_uri"].startswith("sqlite:///")
    by_name = {t["name"]: t for t in cat["tables"]}
    assert by_name["flights/raw_x"]["kind"] == "raw"
    assert by_name["flights/raw_x"]["rows"] == 2
    assert by_name["flights/raw_x"]["version"] == 1
    assert by_name["flights/raw_x"]["path"] == str(store.path("flights/raw_x"))
    assert by_name["flights/labels_x"]["rows"] == 0
    dt.datetime.fromisoformat(by_name["flights/raw_x"]["last_commit"].replace("Z", "+00:00"))
    assert cat["feature_groups"] == [] and cat["models"] == []
    # the plain table form names the same tables
    text = fti("catalog", "--home", str(home))
    assert text.returncode == 0 and "flights/raw_x" in text.stdout and "labels" in text.stdout


def test_sql_reads_tables_by_name_in_a_fresh_session(spark, store, home):
    """A new `fti` process (a fresh Spark session with the connector) queries the home's tables by name."""
    schema = T.StructType([T.StructField("k", T.StringType(), False), T.StructField("n", T.LongType(), True)])
    store.create_table("flights/named_x", schema, kind="feature_group")
    store.append("flights/named_x", spark.createDataFrame([("a", 1), ("b", 2), ("b", 3)], schema))
    out = fti("sql", "SELECT k, sum(n) AS total FROM flights.named_x GROUP BY k ORDER BY k", "--home", str(home))
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split("\n")[2:4] == ["a  1", "b  5"], out.stdout
    names = fti("sql", "--home", str(home))
    assert "flights.named_x" in names.stdout.split()


def test_catalog_on_empty_home(tmp_path):
    out = fti("catalog", "--json", "--home", str(tmp_path / "empty"))
    assert out.returncode == 0, out.stderr
    cat = json.loads(out.stdout)
    assert (cat["tables"], cat["feature_groups"], cat["models"]) == ([], [], [])


def test_errors_are_one_line_without_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("system: flights\nspark:\n  mastr: x\n")
    out = fti("catalog", "--conf", str(bad), "--home", str(tmp_path / "h"))
    assert out.returncode == 2
    assert "error: unknown key 'spark.mastr'" in out.stderr and str(bad) in out.stderr
    assert "Traceback" not in out.stderr
    debug = fti("catalog", "--conf", str(bad), "--home", str(tmp_path / "h"), "--debug")
    assert debug.returncode == 2 and "Traceback" in debug.stderr


def test_unknown_system_and_home_not_a_folder(tmp_path):
    out = fti("catalog", "--system", "nope", cwd=tmp_path)
    assert out.returncode == 2 and "no config for system 'nope'" in out.stderr
    afile = tmp_path / "afile"
    afile.write_text("")
    out = fti("catalog", "--home", str(afile))
    assert out.returncode == 2 and "not writable" in out.stderr and "hint: pass --home" in out.stderr


def test_console_script_and_module_agree(tmp_path):
    script = PROJECT / ".venv" / "bin" / "fti"
    exe = str(script) if script.exists() else None
    via_module = fti("catalog", "--json", "--home", str(tmp_path / "h"))
    assert via_module.returncode == 0
    if exe:
        via_script = subprocess.run([exe, "catalog", "--json", "--home", str(tmp_path / "h")], capture_output=True,
                                    text=True, cwd=PROJECT, timeout=300)
        assert json.loads(via_script.stdout) == json.loads(via_module.stdout)
