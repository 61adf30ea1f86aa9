"""Start and stop real services on 127.0.0.1 for cluster tests: Spark standalone master + worker, a Ray head
+ worker node, and an MLflow tracking server. Everything started is stopped, also on failure."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spark_home() -> str:
    import pyspark

    return str(Path(pyspark.__file__).parent)


def wait_for(check, what: str, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            if check():
                return
        except Exception as exc:  # noqa: BLE001 - still starting
            last = exc
        time.sleep(1)
    raise TimeoutError(f"{what} did not come up in {timeout:.0f} s ({last})")


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Cluster:
    folder: Path
    spark_master: str = ""
    ray_address: str = ""
    mlflow_uri: str = ""
    procs: list[subprocess.Popen] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)


@contextmanager
def local_cluster(folder: Path) -> Iterator[Cluster]:
    folder.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, SPARK_HOME=spark_home(), SPARK_LOCAL_IP="127.0.0.1", PYSPARK_PYTHON=sys.executable,
               PYSPARK_DRIVER_PYTHON=sys.executable, SPARK_LOG_DIR=str(folder / "spark-logs"),
               SPARK_WORKER_DIR=str(folder / "spark-work"), RAY_AUTH_MODE="disabled")
    cluster = Cluster(folder=folder, env=env)
    logs = folder / "logs"
    logs.mkdir(exist_ok=True)
    spark_class = str(Path(spark_home()) / "bin" / "spark-class")
    ray_temp = Path("/tmp") / f"ray-cl-{os.getpid()}"
    ray_started = False

    def start(name: str, args: list[str]) -> subprocess.Popen:
        out = open(logs / f"{name}.log", "w")
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        cluster.procs.append(proc)
        return proc

    try:
        master_port, master_ui, worker_ui = free_port(), free_port(), free_port()
        start("spark-master", [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                               "--port", str(master_port), "--webui-port", str(master_ui)])
        wait_for(lambda: port_open(master_port), "Spark master")
        cluster.spark_master = f"spark://127.0.0.1:{master_port}"
        start("spark-worker", [spark_class, "org.apache.spark.deploy.worker.Worker", cluster.spark_master,
                               "--host", "127.0.0.1", "--cores", "2", "--memory", "3g", "--webui-port", str(worker_ui)])
        wait_for(lambda: b"ALIVE" in urllib.request.urlopen(f"http://127.0.0.1:{master_ui}/json/").read()
                 and b'"aliveworkers" : 1' in urllib.request.urlopen(f"http://127.0.0.1:{master_ui}/json/").read(),
                 "Spark worker registration")
        ray_port = free_port()
        ray = str(BIN / "ray")
        ray_started = True
        subprocess.run([ray, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(ray_port),
                        "--num-cpus", "2", "--include-dashboard", "false", "--temp-dir", str(ray_temp),
                        "--disable-usage-stats"], env=env, check=True, capture_output=True, timeout=180)
        subprocess.run([ray, "start", "--address", f"127.0.0.1:{ray_port}", "--node-ip-address", "127.0.0.1",
                        "--num-cpus", "2"], env=env, check=True, capture_output=True, timeout=180)
        cluster.ray_address = f"127.0.0.1:{ray_port}"
        mlflow_port = free_port()
        start("mlflow", [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(mlflow_port),
                         "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
                         "--artifacts-destination", (folder / "mlflow-artifacts").as_uri(), "--workers", "1"])
        wait_for(lambda: urllib.request.urlopen(f"http://127.0.0.1:{mlflow_port}/health").status == 200,
                 "MLflow server", timeout=180)
        cluster.mlflow_uri = f"http://127.0.0.1:{mlflow_port}"
        yield cluster
    finally:
        if ray_started:
            subprocess.run([str(BIN / "ray"), "stop", "--force"], env=env, capture_output=True, timeout=120)
        for proc in reversed(cluster.procs):
            try:
                os.killpg(proc.pid, 15)
                proc.wait(timeout=30)
            except Exception:  # noqa: BLE001 - already gone or stubborn
                try:
                    os.killpg(proc.pid, 9)
                except ProcessLookupError:
                    pass


def spark_submit(cluster: Cluster, job: str, args: list[str], extra_env: dict[str, str], cwd: Path,
                 timeout: int = 900) -> subprocess.CompletedProcess:
    from fti.connector import spark_submit_args

    submit = str(Path(spark_home()) / "bin" / "spark-submit")
    cmd = [submit, "--master", cluster.spark_master, *spark_submit_args(), "--conf", "spark.ui.enabled=false",
           "--conf", "spark.executor.memory=2g", "--conf", "spark.sql.shuffle.partitions=4", job, *args]
    return subprocess.run(cmd, env={**cluster.env, **extra_env}, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)
