"""Browser check: the MLflow UI, started on 127.0.0.1 over a home, shows the registered model and its champion
alias in headless Chromium (Debian's chromium; `make test` installs it when it runs as root)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.cluster import free_port, wait_for

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make test installs it as root: "
                                             "apt-get install chromium)")
def test_model_page_shows_name_and_champion(tmp_path):
    import urllib.request

    import mlflow
    import mlflow.xgboost
    import xgboost
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("ui_check")  # an earlier test's active experiment id belongs to another store
    x = np.random.default_rng(0).normal(size=(200, 3))
    booster = xgboost.train({"objective": "binary:logistic"}, xgboost.DMatrix(x, label=(x[:, 0] > 0)), 5)
    with mlflow.start_run():
        mlflow.xgboost.log_model(booster, name="model", registered_model_name="ui_check_model")
    MlflowClient(uri).set_registered_model_alias("ui_check_model", "champion", "1")

    port = free_port()
    server = subprocess.Popen([str(Path(sys.executable).parent / "mlflow"), "ui", "--host", "127.0.0.1", "--port",
                               str(port), "--backend-store-uri", uri, "--workers", "1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/health").status == 200, "mlflow ui", 180)
        dom = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'chrome'}", "--virtual-time-budget=20000", "--dump-dom",
             f"http://127.0.0.1:{port}/#/models/ui_check_model"],
            capture_output=True, text=True, timeout=180).stdout
    finally:
        import os
        import signal

        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    assert "ui_check_model" in dom
    assert "champion" in dom
