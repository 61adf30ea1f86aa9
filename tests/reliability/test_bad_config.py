"""Bad configuration and bad names: one line saying what and where, a hint with the fix, a non-zero exit, no
traceback unless ``--debug``; and no name can make a command write outside the home."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from conftest import AS_OF, copy_home, fti_env, run_fti

from fti.config import PACKAGED_CONF


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _one_error(proc, message: str, hint: str, code: int = 2) -> None:
    """Exactly ``error: ...`` and ``hint: ...`` on stderr (the fti logger's INFO lines aside)."""
    assert proc.returncode == code, proc.explain()
    lines = [line for line in proc.stderr.splitlines() if not (line[:2].isdigit() and " INFO " in line)]
    assert lines == [f"error: {message}", f"hint: {hint}"], proc.explain()


@pytest.fixture(scope="module")
def model_home(trained_home, tmp_path_factory) -> Path:
    return copy_home(trained_home, tmp_path_factory.mktemp("cfg") / "h")


def test_unknown_keys_in_file_and_environment(tmp_path):
    conf = (PACKAGED_CONF / "synthetic.yaml").read_text().replace("  driver_memory: 4g", "  driver_memory: 4g\n  mastr: x")
    (tmp_path / "bad.yaml").write_text(conf)
    proc = run_fti(tmp_path / "h", "catalog", "--conf", str(tmp_path / "bad.yaml"))
    _one_error(proc, f"unknown key 'spark.mastr' in {tmp_path / 'bad.yaml'} (profile local)",
               "keys allowed in spark: app_name, conf, driver_memory, master, shuffle_partitions, ui")
    proc = run_fti(tmp_path / "h", "catalog", env=fti_env(FTI__TRAINING__NUM_BOOST_ROUNDS="5"))
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[0] == \
        "error: unknown key 'training.num_boost_rounds' in environment variable FTI__TRAINING__NUM_BOOST_ROUNDS"
    assert "num_boost_round," in proc.stderr.splitlines()[1]
    # with --debug the traceback is shown
    debug = run_fti(tmp_path / "h", "catalog", "--debug", env=fti_env(FTI__TRAINING__NUM_BOOST_ROUNDS="5"))
    assert debug.returncode == 2 and "Traceback (most recent call last)" in debug.stderr


def test_missing_model_and_missing_alias(model_home):
    proc = run_fti(model_home, "score", "--as-of", AS_OF, "--model", "nope@champion")
    _one_error(proc, "no registered model named 'nope'", "registered models: synthetic_purchase")
    assert "log4j" not in proc.stderr, "the model is resolved before Spark starts"

    import mlflow
    from conftest import settings_for

    settings = settings_for(model_home)
    client = mlflow.MlflowClient(settings.tracking_uri)
    champion = client.get_model_version_by_alias("synthetic_purchase", "champion")
    client.delete_model_version("synthetic_purchase", champion.version)  # MLflow drops its aliases with it
    proc = run_fti(model_home, "score", "--as-of", AS_OF)
    assert proc.returncode == 2, proc.explain()
    first, hint = proc.stderr.strip().splitlines()[-2:]
    assert first.startswith("error: model synthetic_purchase has no alias 'champion'"), proc.explain()
    assert hint == "hint: list versions and aliases with: fti catalog; promote with fti model promote synthetic_purchase/N"


def test_unreachable_mlflow_and_ray_fail_in_seconds(model_home, tmp_path):
    port = _free_port()
    uri = f"http://127.0.0.1:{port}"
    for args in (("score", "--as-of", AS_OF), ("train",)):
        proc = run_fti(model_home, *args, env=fti_env(FTI__MLFLOW__TRACKING_URI=uri))
        _one_error(proc, f"the MLflow tracking server at {uri} is unreachable: Connection refused",
                   "start it (mlflow server --host ... --port ...) or point mlflow.tracking_uri "
                   "(FTI__MLFLOW__TRACKING_URI) at a running one")
        assert proc.seconds < 30, proc.seconds
    proc = run_fti(tmp_path / "h", "train", env=fti_env(FTI__RAY__ADDRESS=f"127.0.0.1:{port}"))
    _one_error(proc, f"the Ray cluster at 127.0.0.1:{port} is unreachable: Connection refused",
               "start it (ray start --head) or fix ray.address (FTI__RAY__ADDRESS); leave it empty for a local Ray")
    assert proc.seconds < 30, proc.seconds


def test_home_not_writable(tmp_path):
    # /proc refuses new folders even to root, so this holds in CI containers too
    proc = run_fti(Path("/proc/fti-home"), "catalog")
    _one_error(proc, "home folder /proc/fti-home is not writable: No such file or directory",
               "pass --home PATH or set FTI_HOME to a folder you can write")
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    proc = run_fti(blocker / "home", "catalog")
    _one_error(proc, f"home folder {blocker / 'home'} is not writable: Not a directory",
               "pass --home PATH or set FTI_HOME to a folder you can write")


@pytest.mark.parametrize("name", ["../../etc", "/etc/passwd", "a;rm -rf x", "x/../../y", "a b", "$(id)", "`id`"])
def test_table_names_cannot_leave_the_home(tmp_path, name):
    home = tmp_path / "h"
    proc = run_fti(home, "vacuum", "--table", name)
    assert proc.returncode == 2, proc.explain()
    assert proc.stderr.startswith(f"error: table name {name!r} is not allowed"), proc.explain()
    assert proc.stderr.splitlines()[1] in ("hint: no '..', no absolute paths, no spaces or shell metacharacters",
                                           "hint: table names are relative, like 'flights/carrier_delay'")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h"]  # nothing written beside the home


@pytest.mark.parametrize("name", ["../etc", "..", "a/b", "x;y"])
def test_system_names_are_checked(tmp_path, name):
    proc = run_fti(tmp_path / "h", "catalog", "--system", name, system=None)
    _one_error(proc, f"system name {name!r} is not allowed",
               "use letters, digits, '_' and '-' only, starting with a letter or digit")


def test_a_manifest_naming_a_table_outside_the_home_is_refused(spark, featured_home, tmp_path):
    from fti.errors import NameError_
    from fti.store.feature_store import FeatureStore
    from conftest import settings_for, store_for

    home = copy_home(featured_home, tmp_path / "h")
    manifest = {"feature_view": "purchase_v1", "bitemporal": False,
                "spine": {"table": "../../outside", "version": 1, "keys": ["entity_id"], "event_time": "prediction_time",
                          "label": "purchased", "feature_columns": []},
                "features": [], "output": {"table": "synthetic/training_sets/x", "sha256": "0"}}
    (tmp_path / "m.json").write_text(json.dumps(manifest))
    with pytest.raises(NameError_, match=r"table name '\.\./\.\./outside' is not allowed"):
        FeatureStore(store_for(spark, home), settings_for(home)).rebuild(str(tmp_path / "m.json"))
    assert not (tmp_path / "outside").exists()
