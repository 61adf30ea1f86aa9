"""How a Spark session fti builds gets the Delta connector: installed jars (make setup), the standard pip way
(resolved at session start), or none (the bridge, with a warning). Each case runs in a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from fti.config import PACKAGED_CONF
from tests.conftest import PROJECT

PROBE = """
import json, logging, sys
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
from fti.config import load_config
from fti.spark import delta_jar_available, get_spark
from fti.store import open_store
settings = load_config("flights", home=sys.argv[1], conf=sys.argv[2] if len(sys.argv) > 2 else None)
spark = get_spark(settings, ui=False, extra_conf={"spark.master": "local[1]"})
print(json.dumps({"loaded": delta_jar_available(spark), "backend": open_store(spark, settings).backend_name,
                  "jars": spark.conf.get("spark.jars", ""), "packages": spark.conf.get("spark.jars.packages", "")}))
"""


def probe(tmp_path, **env):
    out = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path / "home"), *env.pop("argv", [])],
                         capture_output=True, text=True, cwd=PROJECT, timeout=600,
                         env={**{k: v for k, v in os.environ.items() if not k.startswith("FTI")}, **env})
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1]), out.stderr


def test_installed_jars_are_loaded_without_resolution(tmp_path):
    from fti.connector import installed_jars

    assert installed_jars(), "make setup installs the connector's jars into the environment"
    got, err = probe(tmp_path)
    assert got["loaded"] and got["backend"] == "native" and not got["packages"]
    assert "delta-spark_4.2_2.13-4.4.0.jar" in got["jars"] and "with the Delta connector (installed)" in err


def test_without_installed_jars_the_standard_resolution_is_used_or_the_bridge(tmp_path):
    """A pip install outside the Makefile: configure_spark_with_delta_pip's package, resolved at start. When the
    repository cannot be reached, the session starts without it and auto falls back to the bridge, saying so."""
    empty = tmp_path / "no-jars"
    empty.mkdir()
    conf = tmp_path / "flights.yaml"
    ivy = tmp_path / "ivysettings.xml"
    ivy.write_text('<ivysettings><settings defaultResolver="down"/><resolvers><ibiblio name="down" '
                   'm2compatible="true" root="http://127.0.0.1:9/maven2/"/></resolvers></ivysettings>')
    text = (PACKAGED_CONF / "flights.yaml").read_text()
    conf.write_text(text.replace("spark:\n  master: local[*]\n",
                                 f"spark:\n  master: local[*]\n  conf:\n    spark.jars.ivySettings: {ivy}\n"
                                 f"    spark.jars.ivy: {tmp_path / 'ivy'}\n", 1))
    got, err = probe(tmp_path, FTI_JARS_DIR=str(empty), argv=[str(conf)])
    assert not got["loaded"] and got["backend"] == "delta-rs"
    assert "io.delta#delta-spark_4.2_2.13" in err  # Spark's resolution asked for configure_spark_with_delta_pip's package
    assert "could not resolve the Delta connector at session start" in err
    assert "using the delta-rs bridge" in err
