"""fti as users get it: the wheel built from this checkout, installed into a fresh virtual environment outside
the source tree. Its dependencies are the tested set's (seen through a .pth file: no network in tests); fti
itself comes only from the wheel (the checkout's editable install is not visible there)."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path


def run(cmd: list[str], *, cwd: Path, env: dict[str, str] | None = None, timeout: int = 600) -> str:
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)
    assert out.returncode == 0, f"{' '.join(cmd)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-5000:]}"
    return out.stdout


@dataclass(frozen=True)
class InstalledWheel:
    wheel: Path
    venv: Path
    site: Path  # the venv's site-packages, where fti was installed

    @property
    def python(self) -> str:
        return str(self.venv / "bin" / "python")

    @property
    def fti(self) -> str:
        return str(self.venv / "bin" / "fti")

    def env(self, **extra: str) -> dict[str, str]:
        """The environment for its commands: Spark workers run its interpreter; the connector's jars are the
        checkout's (fetched once by make setup)."""
        from fti.connector import jars_dir

        return {**os.environ, "FTI_JARS_DIR": str(jars_dir()), "PYSPARK_PYTHON": self.python,
                "PYSPARK_DRIVER_PYTHON": self.python, **extra}


def install(project: Path, folder: Path) -> InstalledWheel:
    wheels = folder / "wheels"
    run([sys.executable, "-m", "pip", "wheel", str(project), "--no-deps", "--no-build-isolation", "-q",
         "-w", str(wheels)], cwd=folder)
    wheel = next(wheels.glob("fti-*.whl"))
    venv = folder / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=folder)
    python = str(venv / "bin" / "python")
    site = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=folder).strip())
    (site / "tested-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "-q", str(wheel)], cwd=folder)
    return InstalledWheel(wheel=wheel, venv=venv, site=site)
