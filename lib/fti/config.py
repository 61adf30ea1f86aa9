"""Typed configuration: a project file (``DIR/fti.yaml``, or ``conf/<system>.yaml`` of a shipped example) + a
profile + environment overrides. Which file is read: :mod:`fti.projects`.

Precedence, lowest first: the YAML's top level, the YAML's ``profiles.<name>`` section, environment
variables ``FTI__SECTION__KEY=value`` (values parsed as YAML scalars), then explicit arguments
(``--home``). Unknown keys are errors that name the key and where it came from.
"""

from __future__ import annotations

import copy
import importlib
import datetime as dt
import os
import re
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from fti.errors import ConfigError
from fti.location import Location
from fti.names import validate_system_name

DEFAULT_HOME = "lakehouse"
ENV_PREFIX = "FTI__"
MODEL_NAME_PART = re.compile(r"[A-Za-z0-9_\-]+")
PACKAGED_CONF = Path(importlib.import_module("fti.conf").__file__).resolve().parent  # conf/: the shipped systems


def _iso_text(value: Any) -> Any:
    """A YAML date or timestamp (``2013-12-01`` unquoted) as the text the config keeps."""
    return value.isoformat() if isinstance(value, (dt.date, dt.datetime)) else value


IsoText = Annotated[str, BeforeValidator(_iso_text)]


class StrictModel(BaseModel):
    """A config section that refuses keys it does not know."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class DeltaConfig(StrictModel):
    """Delta Lake storage settings."""

    backend: Literal["auto", "native", "delta-rs"] = "auto"
    retention_days: int = Field(365, ge=1)
    checkpoint_interval: int = Field(10, ge=1)
    compact_above_files: int = Field(24, ge=0)  # compact a table once a write leaves more live files (0: never)
    catalog: str | None = None  # where notebooks register tables by name (null: the session's current catalog)


class PitConfig(StrictModel):
    """The point-in-time join: ``cogroup`` (one shuffle per key set, a vectorized as-of merge per hash bucket)
    or ``window`` (the pure-JVM fallback); ``bucket_rows`` sizes the hash buckets (all feature rows / buckets);
    a key with more than ``split_rows`` feature rows (a hot entity) is split by time into ranges of about that
    size, so one merge call holds at most about ``bucket_rows + split_rows`` feature rows. The hot-key scan (one
    aggregate job) runs only when a key set has more than ``split_rows`` rows in all (Delta log counts)."""

    algorithm: Literal["cogroup", "window"] = "cogroup"
    bucket_rows: int = Field(1_000_000, ge=1000)
    split_rows: int = Field(4_000_000, ge=1000)


class SparkConfig(StrictModel):
    """How the Spark session is built when fti builds it (never under spark-submit or a notebook)."""

    master: str = "local[*]"
    app_name: str = "fti"
    shuffle_partitions: int = Field(8, ge=1)
    driver_memory: str = "4g"
    ui: bool = True
    conf: dict[str, str] = Field(default_factory=dict)


class RayConfig(StrictModel):
    """Ray settings: ``address`` None starts a local Ray inside the process."""

    address: str | None = None
    num_cpus: int | None = Field(None, ge=1)
    timeout_s: int = Field(600, ge=1)
    # how often Ray Train's controller polls its workers; Ray's default (2 s) added up to 2 s to every fit
    poll_interval_s: float = Field(0.2, gt=0)


class MlflowConfig(StrictModel):
    """MLflow settings: no tracking URI means a SQLite store and artifact folder inside the home."""

    tracking_uri: str | None = None
    registry_uri: str | None = None
    experiment: str | None = None


class PredictionConfig(StrictModel):
    """How the prediction time of a row is computed: ``floor(reference - lead, batch_interval)`` locally."""

    lead: str = "2h"
    batch_interval: str = "1d"


class IngestConfig(StrictModel):
    """Raw landing: replay batch size, first day, and the synthetic generator's parameters."""

    batch: Literal["day", "week", "month"] = "week"
    start: IsoText | None = None
    entities: int = Field(1000, ge=1)
    events_per_day: int = Field(3, ge=1)
    seed: int = 7


class FeaturesConfig(StrictModel):
    """Feature pipeline settings."""

    max_bad_share: float = Field(0.05, ge=0, le=1)
    groups: list[str] | None = None
    parallel_outputs: int = Field(3, ge=1, le=32)


class ViewGroupConfig(StrictModel):
    """One feature group inside a feature view."""

    group: str
    keys: dict[str, str]
    features: list[str]
    ttl: str | None = None
    prefix: str = ""


class SpineConfig(StrictModel):
    """The spine of a feature view: the labels table, its keys, prediction time and label."""

    table: str
    keys: list[str]
    event_time: str = "prediction_time"
    label: str
    features: list[str] = Field(default_factory=list)


class FeatureViewConfig(StrictModel):
    """A named list of features from groups plus spine columns."""

    description: str = ""
    spine: SpineConfig
    groups: list[ViewGroupConfig]


class WindowConfig(StrictModel):
    """A time window of prediction days: ``start`` inclusive, ``end`` exclusive (system time zone)."""

    start: IsoText
    end: IsoText


class TrainingConfig(StrictModel):
    """The training pipeline: model name, feature view, time windows, XGBoost and the promotion gate."""

    model_name: str
    feature_view: str | None = None
    train: WindowConfig
    validation: WindowConfig
    test: WindowConfig
    exclude_features: list[str] = Field(default_factory=list)
    # "auto": in this process (Ray Train's local mode) when there is no Ray cluster and the training set has at
    # most in_process_max_rows rows, else one worker per rows_per_worker training rows (at least 1, at most one
    # per Ray CPU). Where the lines are, measured on 2 cores: README, Training.
    num_workers: Annotated[int, Field(ge=1)] | Literal["auto"] = "auto"
    rows_per_worker: int = Field(500_000, ge=1)
    in_process_max_rows: int = Field(6_000_000, ge=0)
    device: Literal["cpu", "cuda"] = "cpu"
    num_boost_round: int = Field(300, ge=1)
    early_stopping_rounds: int = Field(20, ge=1)
    # every checkpoint_every rounds the fit checkpoints its booster (0: never); a Ray Train worker group that fails
    # is restarted up to max_failures times and resumes from the latest checkpoint, to the same model
    checkpoint_every: int = Field(50, ge=0)
    max_failures: int = Field(1, ge=0)
    params: dict[str, Any] = Field(default_factory=lambda: {"max_depth": 6, "eta": 0.1, "subsample": 0.8,
                                                            "colsample_bytree": 0.8, "min_child_weight": 5})
    # binary (today's default), regression or multiclass (labels 0..K-1): fti.objectives lists what each implies
    objective: Literal["binary", "regression", "multiclass"] = "binary"
    # the gate's metric (default: auc / rmse / log_loss by objective); a candidate must beat the champion by the margin
    promotion_metric: str | None = None
    promotion_margin: float = Field(0.002, ge=0)

    @model_validator(mode="after")
    def _metric_of_objective(self) -> "TrainingConfig":
        from fti.objectives import METRICS

        if self.promotion_metric is not None and self.promotion_metric not in METRICS[self.objective]:
            raise ValueError(f"promotion_metric {self.promotion_metric!r} is not a metric of objective "
                             f"{self.objective!r}: one of {', '.join(METRICS[self.objective])}")
        return self

    @property
    def metric(self) -> str:
        """The promotion metric in force."""
        from fti.objectives import default_metric

        return self.promotion_metric or default_metric(self.objective)

    @field_validator("model_name")
    @classmethod
    def _model_name(cls, value: str) -> str:
        parts = value.split(".")
        if len(parts) not in (1, 3) or not all(MODEL_NAME_PART.fullmatch(p) for p in parts):
            raise ValueError(f"{value!r} is neither a model name (letters, digits, _ and -) nor a Unity Catalog "
                             "name catalog.schema.model")
        return value


class MonitoringConfig(StrictModel):
    """``fti monitor``: what each scoring run is compared with, and the drift thresholds.

    ``reference``: ``recent_weeks`` (default) takes the training set's last ``reference_weeks`` weeks, only the
    days with the scored day's weekday (the same weekday mix as a daily batch); ``validation`` the training
    config's validation window; ``training_set`` every row of the set (a year of seasons against one day)."""

    reference: Literal["recent_weeks", "validation", "training_set"] = "recent_weeks"
    reference_weeks: int = Field(8, ge=1)
    psi_threshold: float = Field(0.2, gt=0)
    # a feature with fewer distinct values than this in a scoring run (the weather of 3 airports on one day), or
    # fewer values than min_rows, cannot support the tests: its metrics are stored, marked not testable, not flagged
    min_distinct: int = Field(10, ge=1)
    min_rows: int = Field(50, ge=1)
    null_rate_delta: float = Field(0.1, gt=0)
    out_of_range_share: float = Field(0.05, gt=0)
    # a metric is flagged past the larger of its threshold above and drift_margin times this quantile of the same
    # metric over the reference's own days (each against the rest; its latest max_reference_days days of at least
    # min_rows rows): beyond the feature's normal day-to-day variation
    drift_quantile: float = Field(0.95, gt=0, le=1)
    drift_margin: float = Field(1.5, ge=1)
    max_reference_days: int = Field(28, ge=2)


class ScoringConfig(StrictModel):
    """``fti score``: ``auto`` scores in this process (pyarrow over the pinned Delta files, the same as-of merge,
    ``inplace_predict``, one Delta commit) when the population plus the feature groups' rows (Delta log counts)
    are at most ``local_max_rows``, else with Spark; ``spark`` / ``local`` force one path. ``explain: K`` adds
    reason codes to every prediction, on both paths: the K features that pushed its score most (XGBoost's per-row
    contributions, by absolute value) as ``reason_1``..``reason_K`` with ``reason_i_contribution``; 0: none."""

    engine: Literal["auto", "spark", "local"] = "auto"
    local_max_rows: int = Field(5_000_000, ge=0)
    explain: int = Field(0, ge=0, le=50)


class DemoConfig(StrictModel):
    """``fti demo``: land month by month from ``ingest.start`` through ``through`` with a feature run after each
    month, train, score as of ``score_as_of`` (project zone unless it has an offset), monitor."""

    through: IsoText
    score_as_of: IsoText


class SystemConfig(StrictModel):
    """A project (``system``: its name, the prefix of its tables) and where it runs.

    ``definitions`` names the module (or package) in the project file's folder that builds the project's
    definitions (:mod:`fti.authoring`); without it, the installed package that publishes ``system`` in the
    ``fti.projects`` entry point group does (the shipped examples)."""

    system: str
    definitions: str | None = None
    description: str = ""
    timezone: str = "UTC"
    home: str | None = None
    delta: DeltaConfig = Field(default_factory=DeltaConfig)
    spark: SparkConfig = Field(default_factory=SparkConfig)
    ray: RayConfig = Field(default_factory=RayConfig)
    mlflow: MlflowConfig = Field(default_factory=MlflowConfig)
    prediction: PredictionConfig = Field(default_factory=PredictionConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    features: FeaturesConfig = Field(default_factory=FeaturesConfig)
    pit: PitConfig = Field(default_factory=PitConfig)
    feature_views: dict[str, FeatureViewConfig] = Field(default_factory=dict)
    training: TrainingConfig | None = None
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)
    scoring: ScoringConfig = Field(default_factory=ScoringConfig)
    demo: DemoConfig | None = None


@dataclass(frozen=True)
class Settings:
    """A loaded configuration with its resolved home folder.

    Attributes:
        config: The validated system configuration.
        home: Where every embedded piece of state lives: an absolute local folder, or a URI on object storage
            (see :mod:`fti.store.location`).
        profile: The profile that was applied.
        source: The YAML file the configuration came from.
    """

    config: SystemConfig
    home: Location
    profile: str
    source: Path

    @property
    def system(self) -> str:
        return self.config.system

    @property
    def tracking_uri(self) -> str:
        """MLflow tracking URI: the configured one (YAML, profile, ``FTI__MLFLOW__TRACKING_URI``), else
        ``MLFLOW_TRACKING_URI``, else the workspace's (``databricks``) in a Databricks runtime, else a SQLite file
        inside the home (the embedded store)."""
        if self.config.mlflow.tracking_uri:
            return self.config.mlflow.tracking_uri
        return f"sqlite:///{self.embedded_store}"

    @property
    def embedded_store(self) -> Path:
        """The embedded MLflow store's SQLite file (used when no tracking URI is configured; a home that is not a
        local folder has none, see :func:`load_config`)."""
        return Path(self.home) / "mlflow" / "mlflow.db"

    @property
    def registry_uri(self) -> str:
        """MLflow registry URI: the configured one (or ``MLFLOW_REGISTRY_URI``), else MLflow's default for the
        tracking URI: Unity Catalog (``databricks-uc``) on Databricks, the tracking store elsewhere."""
        if self.config.mlflow.registry_uri:
            return self.config.mlflow.registry_uri
        uri = self.tracking_uri
        if uri == "databricks" or uri.startswith("databricks://"):
            return "databricks-uc" + uri[len("databricks"):]
        return uri

    @property
    def unity_catalog(self) -> bool:
        """Whether models live in a Unity Catalog registry (names are ``catalog.schema.model`` there)."""
        return self.registry_uri.startswith(("databricks-uc", "uc:"))

    @property
    def artifact_location(self) -> str:
        return (self.home / "mlflow" / "artifacts").as_uri()


def find_conf_file(system: str, conf: str | os.PathLike[str] | None = None) -> Path:
    """Locate the YAML of a system: ``conf`` if given, else ``./conf/<system>.yaml`` (a project's own), else the
    one shipped with fti (``conf/`` here, installed as ``fti.conf``: the wheel carries them).

    Args:
        system: System name.
        conf: An explicit path to a YAML file.

    Returns:
        The path of the file.

    Raises:
        ConfigError: If no file exists.
    """
    if conf is not None:
        path = Path(conf).expanduser()
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist", hint="pass --conf PATH to a YAML file")
        return path
    from fti.projects import published_conf

    validate_system_name(system)
    candidates = [Path.cwd() / "conf" / f"{system}.yaml", PACKAGED_CONF / f"{system}.yaml"]
    for path in (candidates[0], published_conf(system), candidates[1]):
        if path is not None and path.is_file():
            return path
    shipped = sorted(p.stem for p in PACKAGED_CONF.glob("*.yaml"))
    raise ConfigError(
        f"no config for system {system!r}: looked in {candidates[0]} and {candidates[1]}",
        hint=f"pass --conf PATH to your own YAML (start from a copy of {PACKAGED_CONF / 'flights.yaml'}); "
             f"systems shipped with fti: {', '.join(shipped)}",
    )


def _deep_merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _env_overrides(env: Mapping[str, str]) -> tuple[dict[str, Any], dict[tuple[str, ...], str]]:
    overrides: dict[str, Any] = {}
    origin: dict[tuple[str, ...], str] = {}
    for name, raw in sorted(env.items()):
        if not name.startswith(ENV_PREFIX):
            continue
        path = tuple(p.lower() for p in name[len(ENV_PREFIX):].split("__") if p)
        if not path:
            continue
        node = overrides
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = yaml.safe_load(raw) if raw != "" else None
        origin[path] = f"environment variable {name}"
    return overrides, origin


def _known_keys(loc: tuple[str, ...]) -> list[str]:
    """The keys allowed beside the unknown key at ``loc`` (empty when the parent is not a fixed section)."""
    import typing

    model: Any = SystemConfig
    for part in loc[:-1]:
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        # a section may be optional (``TrainingConfig | None``): take its model class
        found = [t for t in (field.annotation, *typing.get_args(field.annotation))
                 if isinstance(t, type) and issubclass(t, BaseModel)]
        if not found:
            return []
        model = found[0]
    return sorted(getattr(model, "model_fields", {}))


def _format_validation_error(err: ValidationError, source: str,
                             origin: Mapping[tuple[str, ...], str]) -> tuple[str, str | None]:
    """(message, hint) of a validation error; the hint lists the keys allowed where a key is unknown."""
    lines = []
    hint = None
    for item in err.errors():
        loc = tuple(str(p) for p in item["loc"])
        where = origin.get(loc) or next((v for k, v in origin.items() if k[:len(loc)] == loc), source)
        key = ".".join(loc)
        if item["type"] == "extra_forbidden":
            lines.append(f"unknown key '{key}' in {where}")
            known = _known_keys(loc)
            if known and hint is None:
                section = ".".join(loc[:-1]) or "the top level"
                hint = f"keys allowed in {section}: {', '.join(known)}"
        else:
            lines.append(f"'{key}' in {where}: {item['msg']}")
    return "; ".join(lines), hint or f"see {PACKAGED_CONF / 'flights.yaml'} for every key with a comment"


def load_config(
    system: str | None = None,
    *,
    project: str | os.PathLike[str] | None = None,
    conf: str | os.PathLike[str] | None = None,
    profile: str | None = None,
    home: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Load and validate a system's configuration.

    Args:
        system: Project name (a shipped example, or one an installed package publishes); may be omitted when
            ``project`` or ``conf`` is given, or ``FTI_PROJECT`` / ``./fti.yaml`` names the project.
        project: A project folder (its ``fti.yaml``).
        conf: Path to a YAML file instead of ``conf/<system>.yaml``.
        profile: Profile to apply (``local`` default, ``cluster``); ``FTI_PROFILE`` otherwise.
        home: Home folder; else ``FTI_HOME``, else the YAML's ``home``, else ``./lakehouse``.
        env: Environment to read overrides from (default ``os.environ``).

    Returns:
        The validated settings.

    Raises:
        ConfigError: Unknown keys, bad values, a missing file or profile.
    """
    from fti.projects import implicit_project_file, project_file

    env = os.environ if env is None else env
    if conf is None and project is not None:
        conf = project_file(project, via="--project")
    elif conf is None and system is None:
        conf = implicit_project_file(env)
        if conf is None:
            raise ConfigError("no project given, and the current folder holds no fti.yaml",
                              hint="pass --project DIR (create one with fti init DIR), or --system NAME for a shipped "
                                   "example (flights, synthetic)")
    path = find_conf_file(system or "", conf)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping at the top level")
    data.setdefault("system", system or path.stem)
    if system is not None and data["system"] != system:
        raise ConfigError(f"{path} describes system {data['system']!r}, not {system!r}")
    validate_system_name(data["system"])

    profiles = data.pop("profiles", None) or {}
    if not isinstance(profiles, dict):
        raise ConfigError(f"'profiles' in {path} must be a mapping of profile name to overrides")
    profile = profile or env.get("FTI_PROFILE") or "local"
    if profile != "local" and profile not in profiles:
        raise ConfigError(
            f"profile {profile!r} is not defined in {path}",
            hint=f"use one of: {', '.join(['local', *sorted(profiles)])}",
        )
    origin: dict[tuple[str, ...], str] = {}
    if profile in profiles:
        data = _deep_merge(data, profiles[profile] or {})
    overrides, origin = _env_overrides(env)
    data = _deep_merge(data, overrides)
    # MLflow from the environment (as Databricks and most deployments set it), where the config names none
    mlflow_cfg = data.get("mlflow") if isinstance(data.get("mlflow"), dict) else {}
    for key, variable in (("tracking_uri", "MLFLOW_TRACKING_URI"), ("registry_uri", "MLFLOW_REGISTRY_URI")):
        if not mlflow_cfg.get(key) and env.get(variable):
            mlflow_cfg = {**mlflow_cfg, key: env[variable]}
            origin[("mlflow", key)] = variable
    if not mlflow_cfg.get("tracking_uri") and env.get("DATABRICKS_RUNTIME_VERSION"):
        # in a Databricks notebook or job MLflow tracks to the workspace (its registry is Unity Catalog)
        mlflow_cfg = {**mlflow_cfg, "tracking_uri": "databricks"}
        origin[("mlflow", "tracking_uri")] = "the Databricks runtime (DATABRICKS_RUNTIME_VERSION)"
    if mlflow_cfg:
        data = {**data, "mlflow": mlflow_cfg}
    try:
        config = SystemConfig.model_validate(data)
    except ValidationError as exc:
        message, hint = _format_validation_error(exc, f"{path} (profile {profile})", origin)
        raise ConfigError(message, hint=hint) from None

    home_value = home or env.get("FTI_HOME") or config.home or DEFAULT_HOME
    home_location = Location(home_value)
    if home_location.local is not None and home_location.scheme == "":
        home_location = Location((Path.cwd() / home_location.local).resolve())
    settings = Settings(config=config, home=home_location, profile=profile, source=path)
    if not home_location.is_local and not config.mlflow.tracking_uri:
        raise ConfigError(f"home {home_location.uri} is not a local folder, and the embedded MLflow store (a SQLite "
                          "file in the home) needs one",
                          hint="set MLFLOW_TRACKING_URI (an `mlflow server`, or `databricks`) or mlflow.tracking_uri")
    if settings.unity_catalog and config.training and config.training.model_name.count(".") != 2:
        where = origin.get(("training", "model_name"), f"{path} (profile {profile})")
        via = origin.get(("mlflow", "registry_uri")) or origin.get(("mlflow", "tracking_uri")) or "the config"
        raise ConfigError(f"training.model_name {config.training.model_name!r} in {where} is not a Unity Catalog name: "
                          f"the registry {settings.registry_uri} (from {via}) needs catalog.schema.model",
                          hint="set training.model_name (or FTI__TRAINING__MODEL_NAME) to e.g. "
                               f"main.ml.{config.training.model_name}")
    return settings


def ensure_home(settings: Settings) -> Location:
    """Create the home folder if needed and check that it is writable.

    Args:
        settings: Loaded settings.

    Returns:
        The home path.

    Raises:
        ConfigError: If the folder cannot be created or written.
    """
    home = settings.home
    if not home.is_local:
        return _ensure_remote_home(home)
    try:
        home.mkdir(parents=True, exist_ok=True)
        # a name of its own: two runs starting at once must not delete each other's probe
        with tempfile.NamedTemporaryFile(dir=home, prefix=".fti-write-check-"):
            pass
    except OSError as exc:
        raise ConfigError(
            f"home folder {home} is not writable: {exc.strerror}",
            hint="pass --home PATH or set FTI_HOME to a folder you can write",
        ) from None
    return home


def _ensure_remote_home(home: Location) -> Location:
    """An object-store or DBFS home: write and delete a probe object, so a wrong bucket or missing credentials
    fail here, naming the home, before any Spark work."""
    probe = home / f".fti-write-check-{uuid.uuid4().hex}"
    try:
        probe.write_text("fti")
        probe.unlink()
    except (OSError, TypeError) as exc:
        raise ConfigError(f"home {home.uri} is not writable: {str(exc).strip().splitlines()[0][:300]}",
                          hint="check the bucket, the credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                               "AWS_ENDPOINT_URL for an S3-compatible server) and --home") from None
    return home
