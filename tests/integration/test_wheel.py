"""The wheel is the product: built from this checkout, installed into a fresh virtual environment outside the
source tree, it runs a small cycle from another folder with the configs it carries (and a user's own with
``--conf``)."""

from __future__ import annotations

import sys

import yaml

from fti.config import PACKAGED_CONF
from tests.helpers.wheel import run

SMALL = {"FTI__INGEST__ENTITIES": "150", "FTI__TRAINING__NUM_BOOST_ROUND": "30"}


def test_the_wheel_installed_elsewhere_runs_a_cycle_with_its_configs(installed_wheel, tmp_path):
    python, site = installed_wheel.python, str(installed_wheel.site)
    # the declared ranges accept the tested set
    assert "No broken requirements" in run([sys.executable, "-m", "pip", "--python", python, "check"], cwd=tmp_path)
    elsewhere = tmp_path / "elsewhere"  # no conf/ folder, not the checkout
    elsewhere.mkdir()
    where = run([python, "-c", "import fti.config as c; print(c.__file__); print(c.find_conf_file('synthetic'))"],
                cwd=elsewhere).split()
    assert all(p.startswith(site) for p in where), where
    # a user's own config: a copy of the shipped one with another model name
    own = yaml.safe_load((PACKAGED_CONF / "synthetic.yaml").read_text())
    own["training"]["model_name"] = "main.ml.my_purchase"  # three parts, as in Unity Catalog
    (elsewhere / "mine.yaml").write_text(yaml.safe_dump(own))

    env, fti = installed_wheel.env(**SMALL), installed_wheel.fti
    home = ["--system", "synthetic", "--home", "home"]
    run([fti, "ingest", *home, "--through", "2024-02-25"], cwd=elsewhere, env=env)
    features = run([fti, "features", *home, "--now", "2024-02-26T00:00Z"], cwd=elsewhere, env=env)
    assert "synthetic/activity  written" in features, features
    trained = run([fti, "train", *home, "--conf", "mine.yaml"], cwd=elsewhere, env=env)
    assert "main.ml.my_purchase/1 -> champion" in trained, trained
    scored = run([fti, "score", *home, "--conf", "mine.yaml", "--as-of", "2024-02-20T00:00Z"], cwd=elsewhere, env=env)
    assert "synthetic/predictions v1" in scored, scored
    assert (elsewhere / "home" / "synthetic" / "predictions" / "_delta_log").is_dir()
