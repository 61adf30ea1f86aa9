"""A home is a local path or a URI: naming, the settings each reader gets, and the errors for bad homes."""

from __future__ import annotations

from pathlib import Path

import pytest

from fti.config import load_config
from fti.errors import ConfigError
from fti.location import Location, parquet_dataset, relative_posix, spark_hadoop_conf

S3_ENV = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9000", "AWS_ACCESS_KEY_ID": "key", "AWS_SECRET_ACCESS_KEY": "secret",
          "AWS_REGION": "eu-west-1"}


def test_an_s3a_home_names_tables_for_spark_and_deltalake():
    home = Location("s3a://lake/prod/home/")
    table = home / "flights" / "carrier_delay"
    assert (home.is_local, home.is_object_store) == (False, True)
    assert table.uri == table.delta_uri == "s3a://lake/prod/home/flights/carrier_delay"
    assert table.relative_to(home) == "flights/carrier_delay" and table.is_under(home)
    assert not (home / ".." / "other").is_under(home)
    assert (table / "_delta_log").parent == table and table.name == "carrier_delay"
    assert relative_posix("s3a://lake/prod/home/flights/carrier_delay/part-0.parquet", table) == "part-0.parquet"
    with pytest.raises(TypeError, match="object storage"):
        Path(home)


def test_local_and_file_homes_stay_plain_paths(tmp_path):
    assert Location(f"file://{tmp_path}") == Location(tmp_path) == tmp_path
    assert Location(tmp_path).is_local and Path(Location(tmp_path) / "a") == tmp_path / "a"
    dbfs = Location("dbfs:/Volumes/main/fti/home")
    assert (dbfs.uri, dbfs.delta_uri, dbfs.is_local) == ("dbfs:/Volumes/main/fti/home", "/dbfs/Volumes/main/fti/home",
                                                         False)


def test_other_schemes_are_refused_with_the_accepted_ones():
    with pytest.raises(ConfigError, match=r"s3:// is not supported") as err:
        Location("s3://lake/home")
    assert "s3a://" in err.value.hint
    with pytest.raises(ConfigError, match="names no bucket"):
        Location("s3a:///home")


def test_the_s3a_settings_follow_the_environment_per_bucket(monkeypatch):
    for key, value in S3_ENV.items():
        monkeypatch.setenv(key, value)
    conf = spark_hadoop_conf(Location("s3a://lake/home"))
    assert conf == {"fs.s3a.bucket.lake.endpoint": "http://127.0.0.1:9000", "fs.s3a.bucket.lake.endpoint.region": "eu-west-1",
                    "fs.s3a.bucket.lake.path.style.access": "true",
                    "fs.s3a.bucket.lake.connection.ssl.enabled": "false",
                    "fs.s3a.bucket.lake.access.key": "key", "fs.s3a.bucket.lake.secret.key": "secret"}
    assert Location("s3a://lake/home").storage_options() == {
        "AWS_REGION": "eu-west-1", "AWS_ENDPOINT_URL": "http://127.0.0.1:9000", "AWS_ALLOW_HTTP": "true"}
    assert spark_hadoop_conf(Location("/tmp/home")) == {} and Location("/tmp/home").storage_options() == {}


def test_a_home_on_object_storage_needs_a_tracking_uri():
    with pytest.raises(ConfigError, match="embedded MLflow store") as err:
        load_config("flights", home="s3a://lake/home", env={})
    assert "MLFLOW_TRACKING_URI" in err.value.hint
    settings = load_config("flights", home="s3a://lake/home", env={"MLFLOW_TRACKING_URI": "http://127.0.0.1:5000"})
    assert settings.home.uri == "s3a://lake/home" and settings.tracking_uri == "http://127.0.0.1:5000"


def test_a_parquet_dataset_over_local_files(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"a": [1, 2]}), tmp_path / "one.parquet")
    assert parquet_dataset([str(tmp_path / "one.parquet")]).to_table().num_rows == 2
