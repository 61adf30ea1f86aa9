"""The local driver's JVM options: fti picks the throughput collector only when nobody chose one (two collectors
stop the JVM at start: "Multiple garbage collectors selected")."""

from __future__ import annotations

import pytest

from fti.spark import driver_java_options


def test_the_throughput_collector_when_none_is_chosen():
    assert driver_java_options("-Dderby.system.home=/tmp/x", {}) == "-Dderby.system.home=/tmp/x -XX:+UseParallelGC"


@pytest.mark.parametrize("where", ["SPARK_SUBMIT_OPTS", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS"])
def test_a_collector_chosen_in_the_environment_is_kept(where):
    env = {where: "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"}
    assert driver_java_options("-Dderby.system.home=/tmp/x", env) == "-Dderby.system.home=/tmp/x"


def test_a_collector_chosen_in_the_conf_is_kept():
    assert driver_java_options("-XX:+UseG1GC -Dx=1", {}) == "-XX:+UseG1GC -Dx=1"
