from __future__ import annotations

from pathlib import Path

import pytest

from fti.config import ensure_home, load_config
from fti.errors import ConfigError, NameError_
from fti.names import validate_system_name, validate_table_name


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sys.yaml"
    path.write_text(text)
    return path


def test_flights_config_defaults(tmp_path):
    s = load_config("flights", home=tmp_path, env={})
    assert s.system == "flights"
    assert s.profile == "local"
    assert s.config.timezone == "America/New_York"
    assert s.config.delta.backend == "auto"
    assert s.config.delta.retention_days == 365
    assert s.home == tmp_path.resolve()
    assert s.tracking_uri == f"sqlite:///{tmp_path.resolve()}/mlflow/mlflow.db"


def test_unknown_key_names_key_and_file(tmp_path):
    path = _write(tmp_path, "system: sys\nspark:\n  mastr: local[2]\n")
    with pytest.raises(ConfigError) as err:
        load_config(conf=path, env={})
    assert "unknown key 'spark.mastr'" in str(err.value)
    assert str(path) in str(err.value)


def test_unknown_top_level_key(tmp_path):
    path = _write(tmp_path, "system: sys\nsparkk: {}\n")
    with pytest.raises(ConfigError, match="unknown key 'sparkk'"):
        load_config(conf=path, env={})


def test_bad_value_named(tmp_path):
    path = _write(tmp_path, "system: sys\ndelta:\n  backend: parquet\n")
    with pytest.raises(ConfigError, match="'delta.backend'"):
        load_config(conf=path, env={})


def test_cluster_profile_overrides(tmp_path):
    s = load_config("flights", profile="cluster", home=tmp_path, env={})
    assert s.profile == "cluster"
    assert s.config.ray.address == "auto"
    assert s.config.spark.master == ""
    # untouched keys keep the base values
    assert s.config.delta.retention_days == 365


def test_missing_profile(tmp_path):
    with pytest.raises(ConfigError, match="profile 'prod' is not defined"):
        load_config("flights", profile="prod", home=tmp_path, env={})


def test_env_overrides_and_home_precedence(tmp_path):
    env = {"FTI__SPARK__SHUFFLE_PARTITIONS": "3", "FTI__MLFLOW__TRACKING_URI": "http://127.0.0.1:5000",
           "FTI_HOME": str(tmp_path / "envhome"), "FTI_PROFILE": "cluster"}
    s = load_config("flights", env=env)
    assert s.config.spark.shuffle_partitions == 3
    assert s.tracking_uri == "http://127.0.0.1:5000"
    assert s.home == (tmp_path / "envhome").resolve()
    assert s.profile == "cluster"
    # --home beats FTI_HOME
    assert load_config("flights", env=env, home=tmp_path / "arg").home == (tmp_path / "arg").resolve()


def test_env_override_unknown_key_names_variable(tmp_path):
    with pytest.raises(ConfigError, match="FTI__SPARK__NOPE"):
        load_config("flights", home=tmp_path, env={"FTI__SPARK__NOPE": "1"})


def test_default_home_is_lakehouse_in_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = load_config("flights", env={})
    assert s.home == (tmp_path / "lakehouse").resolve()


def test_home_not_writable(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        s = load_config("flights", home=ro / "home", env={})
        import os
        if os.geteuid() == 0:
            pytest.skip("root can write anywhere; the permission check cannot fail as root")
        with pytest.raises(ConfigError, match="not writable"):
            ensure_home(s)
    finally:
        ro.chmod(0o700)


def test_home_is_a_file(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    s = load_config("flights", home=target, env={})
    with pytest.raises(ConfigError, match="not writable"):
        ensure_home(s)


@pytest.mark.parametrize("name", ["../x", "/abs", "a/../b", "a b", "a;rm", "a/$(x)", "", "a//b", "."])
def test_bad_table_names(name):
    with pytest.raises(NameError_):
        validate_table_name(name)


@pytest.mark.parametrize("name", ["flights/carrier_delay", "raw/flights", "a-b/c_d/e1"])
def test_good_table_names(name):
    assert validate_table_name(name) == name


@pytest.mark.parametrize("name", ["..", "a/b", "x;y", "-x"])
def test_bad_system_names(name):
    with pytest.raises(NameError_):
        validate_system_name(name)


def test_home_check_is_safe_when_runs_start_at_once(tmp_path):
    """Two runs starting together each probe the home: neither may delete the other's probe (CI found this)."""
    import threading

    s = load_config("flights", home=tmp_path / "h")
    errors: list[BaseException] = []

    def probe():
        try:
            for _ in range(300):
                ensure_home(s)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=probe) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert list((tmp_path / "h").iterdir()) == []


@pytest.mark.parametrize("args", [("score", "--as-of", "2013-13-01T00:00"),
                                  ("features", "--start", "2013-02-30"),
                                  ("training-set", "build", "--end", "tomorrow"),
                                  ("lineage", "--prediction", "1", "--as-of", "noon")])
def test_a_bad_time_argument_fails_before_spark_starts(tmp_path, args):
    """A typo in --as-of/--start/--end costs a second, not a Spark start (it used to fail ~20 s in)."""
    import subprocess
    import sys

    fti = Path(sys.executable).with_name("fti")
    proc = subprocess.run([str(fti), *args, "--home", str(tmp_path / "h")], capture_output=True, text=True,
                          timeout=120)
    option = next(a for a in args if a.startswith("--") and a != "--prediction")
    assert proc.returncode == 2, proc.stderr
    assert f"{option} " in proc.stderr and "is not" in proc.stderr, proc.stderr
    assert "starting Spark" not in proc.stderr  # fti.spark logs this line when it builds a session


def test_mlflow_comes_from_the_config_then_the_environment_then_the_home(tmp_path):
    """An explicit mlflow.tracking_uri wins; else MLFLOW_TRACKING_URI / MLFLOW_REGISTRY_URI (what Databricks and
    most MLflow deployments set); else the embedded SQLite store in the home."""
    home = tmp_path / "h"
    embedded = load_config("flights", home=home, env={})
    assert embedded.tracking_uri == f"sqlite:///{home / 'mlflow' / 'mlflow.db'}"
    assert embedded.config.mlflow.registry_uri is None
    from_env = load_config("flights", home=home, env={"MLFLOW_TRACKING_URI": "databricks",
                                                       "MLFLOW_REGISTRY_URI": "databricks-uc",
                                                       "FTI__TRAINING__MODEL_NAME": "main.ml.flights_delay"})
    assert from_env.tracking_uri == "databricks" and from_env.config.mlflow.registry_uri == "databricks-uc"
    explicit = load_config("flights", home=home, env={"MLFLOW_TRACKING_URI": "databricks",
                                                      "FTI__MLFLOW__TRACKING_URI": "http://127.0.0.1:5000"})
    assert explicit.tracking_uri == "http://127.0.0.1:5000" and explicit.config.mlflow.registry_uri is None


def test_a_unity_catalog_registry_takes_three_part_model_names(tmp_path):
    """On Databricks MLflow's registry is Unity Catalog (databricks-uc), whose model names are catalog.schema.model:
    a plain name is refused at load with the key to set; names of one or three parts are accepted elsewhere."""
    from fti.registry import ModelRef

    home = tmp_path / "h"
    assert load_config("flights", home=home, env={}).registry_uri == f"sqlite:///{home / 'mlflow' / 'mlflow.db'}"
    with pytest.raises(ConfigError, match=r"training.model_name 'flights_delay' .* needs catalog.schema.model") as exc:
        load_config("flights", home=home, env={"MLFLOW_TRACKING_URI": "databricks"})
    assert "FTI__TRAINING__MODEL_NAME" in exc.value.hint and "main.ml.flights_delay" in exc.value.hint
    uc = load_config("flights", home=home, env={"MLFLOW_TRACKING_URI": "databricks://prod",
                                                "FTI__TRAINING__MODEL_NAME": "main.ml.flights_delay"})
    assert uc.registry_uri == "databricks-uc://prod" and uc.unity_catalog
    local = load_config("flights", home=home, env={"FTI__TRAINING__MODEL_NAME": "main.ml.flights_delay"})
    assert not local.unity_catalog and local.config.training.model_name == "main.ml.flights_delay"
    for bad in ("ml.flights_delay", "main..flights_delay", "a b"):
        with pytest.raises(ConfigError, match="catalog.schema.model"):
            load_config("flights", home=home, env={"FTI__TRAINING__MODEL_NAME": bad})
    # in a Databricks runtime MLflow is the workspace's, its registry Unity Catalog
    runtime = load_config("flights", home=home, env={"DATABRICKS_RUNTIME_VERSION": "17.3",
                                                     "FTI__TRAINING__MODEL_NAME": "main.ml.flights_delay"})
    assert (runtime.tracking_uri, runtime.registry_uri) == ("databricks", "databricks-uc")
    with pytest.raises(ConfigError, match="the Databricks runtime"):
        load_config("flights", home=home, env={"DATABRICKS_RUNTIME_VERSION": "17.3"})
    ref = ModelRef.parse("main.ml.flights_delay@champion")
    assert (ref.name, ref.alias, ref.uri) == ("main.ml.flights_delay", "champion", "models:/main.ml.flights_delay@champion")
    assert ModelRef.parse("main.ml.flights_delay/3").version == 3
