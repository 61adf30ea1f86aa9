"""The wheel is the product: built from this checkout, installed into a fresh virtual environment outside the
source tree, it runs a small cycle from another folder with the configs it carries (and a user's own with
``--conf``)."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import yaml

from tests.conftest import PROJECT

SMALL = {"FTI__INGEST__ENTITIES": "150", "FTI__TRAINING__NUM_BOOST_ROUND": "30"}


def run(cmd: list[str], *, cwd: Path, env: dict[str, str] | None = None, timeout: int = 600) -> str:
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)
    assert out.returncode == 0, f"{' '.join(cmd)} failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}"
    return out.stdout


def test_the_wheel_installed_elsewhere_runs_a_cycle_with_its_configs(tmp_path):
    from fti.connector import jars_dir

    wheels = tmp_path / "wheels"
    run([sys.executable, "-m", "pip", "wheel", str(PROJECT), "--no-deps", "--no-build-isolation", "-q",
         "-w", str(wheels)], cwd=tmp_path)
    wheel = next(wheels.glob("fti-*.whl"))
    # a fresh environment; its dependencies are the tested set's (seen through a .pth: no network in tests),
    # fti itself only from the wheel (the checkout's editable install is not visible there)
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path)
    python = venv / "bin" / "python"
    site = Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                    cwd=tmp_path).strip())
    (site / "tested-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)], cwd=tmp_path)
    # the declared ranges accept the tested set
    assert "No broken requirements" in run([sys.executable, "-m", "pip", "--python", str(python), "check"],
                                           cwd=tmp_path)

    elsewhere = tmp_path / "elsewhere"  # no conf/ folder, not the checkout
    elsewhere.mkdir()
    where = run([str(python), "-c", "import fti.config as c; print(c.__file__); print(c.find_conf_file('synthetic'))"],
                cwd=elsewhere).split()
    assert all(p.startswith(str(site)) for p in where), where
    # a user's own config: a copy of the shipped one with another model name
    own = yaml.safe_load((PROJECT / "lib" / "fti" / "conf" / "synthetic.yaml").read_text())
    own["training"]["model_name"] = "main.ml.my_purchase"  # three parts, as in Unity Catalog
    (elsewhere / "mine.yaml").write_text(yaml.safe_dump(own))

    env = {**os.environ, **SMALL, "FTI_JARS_DIR": str(jars_dir()), "PYSPARK_PYTHON": str(python),
           "PYSPARK_DRIVER_PYTHON": str(python)}
    fti, home = str(venv / "bin" / "fti"), ["--system", "synthetic", "--home", "home"]
    run([fti, "ingest", *home, "--through", "2024-02-25"], cwd=elsewhere, env=env)
    features = run([fti, "features", *home, "--now", "2024-02-26T00:00Z"], cwd=elsewhere, env=env)
    assert "synthetic/activity  written" in features, features
    trained = run([fti, "train", *home, "--conf", "mine.yaml"], cwd=elsewhere, env=env)
    assert "main.ml.my_purchase/1 -> champion" in trained, trained
    scored = run([fti, "score", *home, "--conf", "mine.yaml", "--as-of", "2024-02-20T00:00Z"], cwd=elsewhere, env=env)
    assert "synthetic/predictions v1" in scored, scored
    assert (elsewhere / "home" / "synthetic" / "predictions" / "_delta_log").is_dir()
