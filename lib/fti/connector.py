"""The Delta Spark connector: which jars match the installed pyspark and delta-spark, where they live, and
how a Spark session that fti builds loads them.

``make setup`` runs ``fti connector install`` once: Spark's own Ivy resolution (Maven Central, or the
repository in ``FTI_MAVEN_REPO``) fetches ``io.delta:delta-spark_<spark>_<scala>:<delta>`` and its
dependencies into a scratch cache, and the jars that pyspark does not already ship are copied into
``<environment>/share/fti/jars`` with a ``manifest.json``. Every later session loads them from there with
``spark.jars`` (no network, no resolution at start).

Without that folder (fti installed with pip outside our Makefile) a session asks for the connector the
standard way, ``delta.configure_spark_with_delta_pip`` (resolved by Spark at start, cached in ``~/.ivy2``).
If that resolution fails (no network), the session starts without the connector and ``delta.backend: auto``
falls back to the delta-rs bridge, saying so.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from fti.errors import EnvironmentProblem

log = logging.getLogger(__name__)

SCALA = "2.13"
MAVEN_CENTRAL = "https://repo1.maven.org/maven2/"
MANIFEST = "manifest.json"
# The connector's Spark-side settings (what `configure_spark_with_delta_pip` users add by hand).
SESSION_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}


@dataclass(frozen=True)
class Connector:
    """The connector artifact that matches this environment."""

    spark_version: str
    delta_version: str

    @property
    def coordinates(self) -> str:
        major_minor = ".".join(self.spark_version.split(".")[:2])
        return f"io.delta:delta-spark_{major_minor}_{SCALA}:{self.delta_version}"


def expected() -> Connector | None:
    """The connector for the installed pyspark and delta-spark, or None when delta-spark is not installed."""
    try:
        return Connector(metadata.version("pyspark"), metadata.version("delta-spark"))
    except metadata.PackageNotFoundError:
        return None


def jars_dir() -> Path:
    """Where ``fti connector install`` puts the jars: ``FTI_JARS_DIR``, else ``<sys.prefix>/share/fti/jars``."""
    return Path(os.environ.get("FTI_JARS_DIR") or Path(sys.prefix) / "share" / "fti" / "jars")


def installed_jars() -> list[Path]:
    """The installed jars, if they were installed for the connector this environment needs (else [])."""
    want = expected()
    folder = jars_dir()
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return []
    if want is None or manifest.get("coordinates") != want.coordinates:
        return []
    jars = [folder / name for name in manifest.get("jars", [])]
    return jars if jars and all(j.is_file() for j in jars) else []


def session_conf() -> tuple[dict[str, str], str]:
    """Spark settings that load the connector, and where it comes from (for the log and ``fti connector``).

    Returns:
        ``(settings, origin)``; origin is ``installed``, ``packages`` (resolved at session start) or ``none``.
    """
    jars = installed_jars()
    if jars:
        return {"spark.jars": ",".join(str(j) for j in jars), **SESSION_CONF}, "installed"
    want = expected()
    if want is None:
        return {}, "none"
    return {"spark.jars.packages": want.coordinates, **SESSION_CONF}, "packages"


def spark_submit_args() -> list[str]:
    """``spark-submit`` flags that load the connector (a job's driver JVM starts before fti runs, so the jars
    must be on its command line): the installed jars, else ``--packages`` with the matching coordinates."""
    conf, origin = session_conf()
    if origin == "none":
        return []
    jars = ["--jars", conf["spark.jars"]] if origin == "installed" else ["--packages", conf["spark.jars.packages"]]
    return jars + [arg for key, value in SESSION_CONF.items() for arg in ("--conf", f"{key}={value}")]


def _ivy_settings(cache: Path, repository: str) -> str:
    # Only the one repository: Spark's default chain also reads ~/.m2, where a pom without its jar (left by
    # an unrelated `mvn dependency:tree`) makes the whole resolution fail with "download failed".
    return f"""<ivysettings>
  <settings defaultResolver="central"/>
  <caches defaultCacheDir="{cache}"/>
  <resolvers><ibiblio name="central" m2compatible="true" root="{repository}"/></resolvers>
</ivysettings>
"""


_VERSION = re.compile(r"^(.+?)-\d")


def _artifact_of(stem: str) -> str:
    """``parquet-hadoop-1.16.0`` -> ``parquet-hadoop``; ``zstd-jni-1.5.7-3`` -> ``zstd-jni``."""
    match = _VERSION.match(stem)
    return match.group(1) if match else stem


def _provided_by_spark() -> set[str]:
    """Artifact names of the jars Spark ships (a dependency Spark already has is not loaded twice)."""
    return {_artifact_of(jar.stem) for jar in _spark_jars()}


def _ivy_artifact(jar: Path) -> str:
    """Ivy names retrieved jars ``<organisation>_<artifact>-<revision>.jar``."""
    return _artifact_of(jar.stem.split("_", 1)[-1])


def install(*, folder: Path | None = None, repository: str | None = None, force: bool = False) -> list[Path]:
    """Fetch the connector's jars once into ``folder`` (default :func:`jars_dir`).

    Args:
        folder: Destination.
        repository: Maven repository root (default ``FTI_MAVEN_REPO`` or Maven Central).
        force: Fetch again even if the folder already holds the right jars.

    Returns:
        The jars a session loads.

    Raises:
        EnvironmentProblem: delta-spark is not installed, or the resolution failed (the message keeps
            Spark's own error lines).
    """
    want = expected()
    if want is None:
        raise EnvironmentProblem("delta-spark is not installed, so there is no connector to fetch",
                                 hint="pip install 'fti[spark]' (pyspark and delta-spark)")
    folder = folder or jars_dir()
    if not force and folder == jars_dir() and installed_jars():
        return installed_jars()
    keep = _install_packages(want.coordinates, folder, repository)
    log.info("installed %s: %d jars in %s", want.coordinates, len(keep), folder)
    return keep


def _install_packages(coordinates: str, folder: Path, repository: str | None) -> list[Path]:
    """Resolve Maven packages with Spark's Ivy into ``folder`` (replaced whole), minus the jars pyspark ships."""
    repository = repository or os.environ.get("FTI_MAVEN_REPO") or MAVEN_CENTRAL
    with tempfile.TemporaryDirectory(prefix="fti-ivy-") as tmp:
        scratch = Path(tmp)
        (scratch / "ivysettings.xml").write_text(_ivy_settings(scratch / "cache", repository))
        resolved = _resolve(coordinates, scratch)
        provided = _provided_by_spark()
        keep = sorted(j for j in resolved if _ivy_artifact(j) not in provided)
        staging = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for jar in keep:
            shutil.copy2(jar, staging / jar.name)
        (staging / MANIFEST).write_text(json.dumps({
            "coordinates": coordinates, "repository": repository,
            "jars": [j.name for j in keep], "skipped_as_provided_by_spark": sorted(j.name for j in resolved if j not in keep),
        }, indent=2))
        shutil.rmtree(folder, ignore_errors=True)
        staging.replace(folder)
    return [folder / j.name for j in keep]


# ----------------------------------------------------------------------------- object storage (S3A)
def _spark_jars() -> list[Path]:
    """Spark's own jars: ``$SPARK_HOME/jars`` (under spark-submit pyspark is imported from a zip), else pyspark's."""
    import pyspark

    folders = [Path(os.environ["SPARK_HOME"]) / "jars"] if os.environ.get("SPARK_HOME") else []
    folders.append(Path(pyspark.__file__).parent / "jars")
    return next((sorted(f.glob("*.jar")) for f in folders if f.is_dir()), [])


def hadoop_version() -> str:
    """The Hadoop version Spark ships (its ``hadoop-client-api`` jar), which hadoop-aws must match."""
    for jar in _spark_jars():
        if jar.stem.startswith("hadoop-client-api-"):
            return jar.stem[len("hadoop-client-api-"):]
    raise EnvironmentProblem("Spark ships no hadoop-client-api jar: cannot tell which hadoop-aws matches it",
                             hint="set SPARK_HOME to the Spark (or pyspark) installation")


def object_store_coordinates() -> str:
    """Hadoop's S3A connector for the Hadoop that Spark ships (it brings the AWS SDK bundle it was built with)."""
    return f"org.apache.hadoop:hadoop-aws:{hadoop_version()}"


def object_store_jars_dir() -> Path:
    return jars_dir().with_name("object-store-jars")


def installed_object_store_jars() -> list[Path]:
    """The installed S3A jars, if they match this Spark's Hadoop (else [])."""
    folder = object_store_jars_dir()
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        if manifest.get("coordinates") != object_store_coordinates():
            return []
    except (OSError, ValueError, EnvironmentProblem):
        return []
    jars = [folder / name for name in manifest.get("jars", [])]
    return jars if jars and all(j.is_file() for j in jars) else []


def install_object_store(*, repository: str | None = None, force: bool = False) -> list[Path]:
    """Fetch hadoop-aws (and its AWS SDK bundle) once, so that sessions fti builds read and write ``s3a://``
    homes. A session loads them on the driver's class path (see :func:`fti.spark.get_spark`); clusters with
    their own S3 connector (EMR, Databricks) need none of this."""
    if not force and installed_object_store_jars():
        return installed_object_store_jars()
    coordinates = object_store_coordinates()
    keep = _install_packages(coordinates, object_store_jars_dir(), repository)
    log.info("installed %s: %d jars in %s", coordinates, len(keep), object_store_jars_dir())
    return keep


def _resolve(coordinates: str, scratch: Path) -> list[Path]:
    """Let Spark's launcher resolve the package (the same code path as ``--packages``) in a child JVM."""
    import subprocess

    code = (
        "from pyspark.sql import SparkSession\n"
        "s = (SparkSession.builder.master('local[1]').config('spark.ui.enabled', 'false')"
        f".config('spark.jars.packages', {coordinates!r})"
        f".config('spark.jars.ivy', {str(scratch)!r})"
        f".config('spark.jars.ivySettings', {str(scratch / 'ivysettings.xml')!r}).getOrCreate())\n"
        "s.stop()\n"
    )
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    jars = sorted((scratch / "jars").glob("*.jar"))
    if out.returncode != 0 or not jars:
        lines = [ln for ln in (out.stderr + out.stdout).splitlines()
                 if any(k in ln for k in ("download failed", "not found", "UNRESOLVED", "Exception", "Error", "error"))]
        raise EnvironmentProblem(
            f"could not fetch {coordinates}: " + (" | ".join(lines[:6]) or "no jars resolved"),
            hint="check that Maven Central is reachable (or set FTI_MAVEN_REPO to a mirror), then rerun "
                 "`fti connector install`; without the jars fti uses the delta-rs bridge (delta.backend: delta-rs)",
        )
    return jars
