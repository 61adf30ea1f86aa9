"""Docs that cannot rot: the site builds with ``--strict`` (a broken link, anchor or API reference fails), its
tutorial page renders in headless Chromium (a screenshot, checked not to be blank), and the tutorial and the
guides that continue it run as written, in a fresh folder, with the ``fti`` of this environment."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.docs import blocks, run_page

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# the guides whose commands run on the tutorial's project, in this order, in its folder
CONTINUING = ["guides/monitoring.md", "guides/vacuum-and-forget.md"]


def _build(site: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
                           "-d", str(site)], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})


def test_the_site_builds_strict_with_the_generated_references_and_its_tutorial_renders(tmp_path):
    site = tmp_path / "site"
    built = _build(site)
    assert built.returncode == 0, built.stderr[-4000:]
    cli = (site / "reference" / "cli" / "index.html").read_text()
    for command in ("fti features", "fti train", "fti score", "fti forget", "fti init"):
        assert f">{command}<" in cli or f"{command}</h2>" in cli or command in cli, command  # generated from the parser
    assert "--as-of" in cli
    authoring = (site / "reference" / "authoring" / "index.html").read_text()
    assert 'id="fti.authoring.FeatureGroup"' in authoring and "lookback_days" in authoring  # from the docstrings

    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (make test installs it as root): no screenshot")
    shot = tmp_path / "tutorial.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'chrome'}", "--hide-scrollbars", "--window-size=1280,1000",
                    f"--screenshot={shot}", (site / "tutorial" / "index.html").as_uri()],
                   capture_output=True, text=True, timeout=180)
    assert shot.exists(), "chromium wrote no screenshot"
    from PIL import Image

    pixels = Image.open(shot).convert("L").resize((320, 250))
    histogram = pixels.histogram()
    dark = sum(histogram[:128]) / sum(histogram)
    assert len([n for n in histogram if n]) > 20 and dark > 0.02, f"the page looks blank ({dark:.1%} dark pixels)"


def test_every_runnable_block_of_the_tutorial_is_run_and_names_a_real_file_or_command():
    """The runner's contract: file blocks and bash blocks run, output blocks do not (a typo in a fence's
    language would silently skip a step)."""
    runnable = [b for b in blocks(DOCS / "tutorial.md") if b.path or b.language == "bash"]
    assert {b.path for b in runnable if b.path} == {"make_data.py", "shop.py", "fti.yaml", "append_orders.py"}
    assert sum(b.language == "bash" for b in runnable) >= 6
    assert {b.language for b in blocks(DOCS / "tutorial.md")} <= {"bash", "python", "yaml", "console"}


def test_the_tutorial_and_the_guides_that_continue_it_run_as_written(tmp_path):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYSPARK_PYTHON": sys.executable}
    env.pop("FTI_HOME", None)
    env.pop("FTI_PROJECT", None)
    done = run_page(DOCS / "tutorial.md", cwd=tmp_path, env=env)
    out = done.stdout
    assert "shop_spend/1 -> champion" in out and "test rmse (promotion)" in out, out[-3000:]
    assert "up to date" in out.splitlines()[-1], out[-2000:]  # the last run found nothing new
    assert "predicted positive" not in out  # a regression model's scoring summary has no classes to count
    project = tmp_path / "shop"
    assert (project / "lakehouse" / "shop" / "predictions" / "_delta_log").is_dir()
    guides = [run_page(DOCS / page, cwd=project, env=env).stdout for page in CONTINUING]
    assert "1 scoring run(s) monitored" in guides[0] and "realized_rmse" in guides[0], guides[0][-2000:]
    assert "forgot user_id = 'u07'" in guides[1] and "hash MATCHES" in guides[1], guides[1][-2000:]
