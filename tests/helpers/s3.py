"""A real S3-compatible server on 127.0.0.1 for the object-storage tests (moto's server mode, from PyPI), and an
``mlflow server`` whose artifacts live in the same bucket: with a home on ``s3a://``, no state is local."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from tests.helpers.cluster import BIN, free_port, port_open, wait_for

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "fti-test", "AWS_SECRET_ACCESS_KEY": "fti-test-secret", "AWS_REGION": "us-east-1"}


@dataclass
class ObjectStore:
    endpoint: str
    bucket: str
    mlflow_uri: str
    env: dict[str, str]

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"], region_name="us-east-1")

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


@contextlib.contextmanager
def object_store(folder: Path) -> Iterator[ObjectStore]:
    """Start the S3 server and an MLflow server (artifacts in the bucket); set the standard AWS variables in
    this process for the duration (what a user exports); stop both and put the variables back after."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = {**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint, "MLFLOW_S3_ENDPOINT_URL": endpoint}
    saved = {k: os.environ.get(k) for k in env}
    procs: list[subprocess.Popen] = []
    logs = []
    try:
        s3_log = open(folder / "s3.log", "w")  # noqa: SIM115 - closed below
        logs.append(s3_log)
        procs.append(subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                      stdout=s3_log, stderr=subprocess.STDOUT))
        wait_for(lambda: port_open(port), "the S3 server", timeout=60)
        os.environ.update(env)
        bucket = f"fti-{uuid.uuid4().hex[:12]}"
        store = ObjectStore(endpoint, bucket, "", env)
        store.client().create_bucket(Bucket=bucket)

        mlflow_port = free_port()
        mlflow_log = open(folder / "mlflow.log", "w")  # noqa: SIM115 - closed below
        logs.append(mlflow_log)
        procs.append(subprocess.Popen(
            [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(mlflow_port),
             "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
             "--artifacts-destination", f"s3://{bucket}/mlflow-artifacts", "--workers", "1"],
            stdout=mlflow_log, stderr=subprocess.STDOUT, env={**os.environ, **env}))
        import urllib.request

        wait_for(lambda: urllib.request.urlopen(f"http://127.0.0.1:{mlflow_port}/health").status == 200,
                 "the MLflow server", timeout=120)
        store.mlflow_uri = f"http://127.0.0.1:{mlflow_port}"
        yield store
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        for handle in logs:
            handle.close()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
