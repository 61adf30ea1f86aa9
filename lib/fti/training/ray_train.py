"""Ray done right on small machines and clusters, and the Ray Train (V2) XGBoost fit.

- Local Ray gets more CPUs than the trainer has workers (or Ray Data's read tasks starve and the job
  hangs), and a temp folder under the system temp folder (Unix socket paths are limited to 107 bytes).
- Datasets are materialized before ``fit()``; metrics are reported once, at the end (reporting every
  round made training 7x slower).
- A fit that cannot get its resources fails with a message within ``ray.timeout_s``, never hangs.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import logging
import os
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from fti.errors import FtiError

if TYPE_CHECKING:
    import xgboost

    from fti.config import Settings

log = logging.getLogger(__name__)


def ray_temp_dir() -> Path:
    path = Path(tempfile.gettempdir()) / f"ray-{os.getuid()}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def check_ray(settings: Settings) -> None:
    """Fail in seconds when a configured Ray address (``host:port`` or ``ray://host:port``) does not answer."""
    from fti.errors import check_reachable

    address = settings.config.ray.address
    if address and address != "auto":
        check_reachable("the Ray cluster", address,
                        hint="start it (ray start --head) or fix ray.address (FTI__RAY__ADDRESS); "
                             "leave it empty for a local Ray")


@contextmanager
def ray_session(settings: Settings, *, num_workers: int) -> Iterator[None]:
    """Connect to the configured Ray cluster, or start a local one sized for ``num_workers``; shut down after."""
    import ray

    if ray.is_initialized():
        yield
        return
    address = settings.config.ray.address
    check_ray(settings)
    started = time.perf_counter()
    try:
        if address:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
        else:
            cpus = settings.config.ray.num_cpus or max(num_workers + 2, os.cpu_count() or 1)
            ray.init(num_cpus=cpus, _temp_dir=str(ray_temp_dir()), include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
    except Exception as exc:
        raise FtiError(f"cannot start or reach Ray ({'address ' + address if address else 'local'}): "
                       f"{str(exc).splitlines()[0][:200]}",
                       hint="check ray.address in the config (FTI__RAY__ADDRESS) and that the cluster is up") from None
    log.info("Ray ready in %.1f s (%s)", time.perf_counter() - started, address or "local")
    try:
        yield
    finally:
        ray.shutdown()


def _in_window(batch: Any, *, column: str, lo: Any, hi: Any) -> Any:
    import pyarrow.compute as pc

    times = batch[column]
    return batch.filter(pc.and_(pc.greater_equal(times, lo), pc.less(times, hi)))


def _train_fn(config: dict[str, Any]) -> None:
    """Runs on every Ray Train worker: its shards -> DMatrix -> xgboost.train (collective set up by Ray); rank 0
    reports the booster ONCE, at the end, as the run's checkpoint."""
    import os
    import tempfile

    import ray.train
    import xgboost
    from ray.train.xgboost import RayTrainReportCallback

    started = time.perf_counter()
    features, label = config["features"], config["label"]
    train = ray.train.get_dataset_shard("train").materialize().to_pandas()
    valid = ray.train.get_dataset_shard("validation").materialize().to_pandas()
    # one XGBoost thread per CPU the worker holds, so that workers sharing a node do not oversubscribe it
    params = {"nthread": config["cpus_per_worker"], **config["params"]}
    dtrain = xgboost.DMatrix(train[features], label=train[label], feature_names=features)
    dvalid = xgboost.DMatrix(valid[features], label=valid[label], feature_names=features)
    loaded = time.perf_counter()
    # No RayTrainReportCallback: even with frequency=0 it cost ~2 s per boosting round here (20 rounds on
    # 200k rows: 39.5 s with it, 1.2 s without). Only the validation set is evaluated (early stopping).
    booster = xgboost.train(params, dtrain, num_boost_round=config["num_boost_round"], evals=[(dvalid, "validation")],
                            early_stopping_rounds=config["early_stopping_rounds"], verbose_eval=False)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = None
        if ray.train.get_context().get_world_rank() == 0:
            booster.save_model(os.path.join(tmp, RayTrainReportCallback.CHECKPOINT_NAME))
            checkpoint = ray.train.Checkpoint.from_directory(tmp)
        ray.train.report({"best_iteration": booster.attr("best_iteration"), "rows": dtrain.num_row(),
                          "load_s": loaded - started, "train_s": time.perf_counter() - loaded}, checkpoint=checkpoint)


def fit(files: Sequence[str], *, features: list[str], label: str, time_col: str,
        windows: dict[str, tuple[dt.datetime, dt.datetime]], params: dict[str, Any], num_boost_round: int,
        early_stopping_rounds: int, num_workers: int, use_gpu: bool, timeout_s: int, run_name: str) -> xgboost.Booster:
    """Train XGBoost with Ray Train on the training set's parquet files.

    Returns:
        The booster, cut at its best iteration on the validation window.

    Raises:
        FtiError: Not enough Ray resources, or the fit did not finish within ``timeout_s``.
    """
    import pyarrow as pa
    import ray
    import ray.data
    from ray.train import RunConfig, ScalingConfig
    from ray.train.xgboost import RayTrainReportCallback, XGBoostTrainer

    cpus = ray.cluster_resources().get("CPU", 0)
    if cpus < num_workers:
        raise FtiError(f"Ray has {cpus:g} CPU(s) but training asks for {num_workers} workers",
                       hint="lower training.num_workers or add Ray nodes")
    if use_gpu and ray.cluster_resources().get("GPU", 0) < num_workers:
        raise FtiError("training.device is cuda but Ray sees no GPU for every worker",
                       hint="set training.device: cpu, or run on a GPU node")
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    datasets, rows = {}, {}
    read_started = time.perf_counter()
    utc = pa.timestamp("us", tz="UTC")
    for name in ("train", "validation"):
        lo, hi = windows[name]
        ds = ray.data.read_parquet(list(files), columns=features + [label, time_col])
        ds = ds.map_batches(_in_window, batch_format="pyarrow",
                            fn_kwargs={"column": time_col, "lo": pa.scalar(lo, utc), "hi": pa.scalar(hi, utc)})
        datasets[name] = ds.drop_columns([time_col]).materialize()
        rows[name] = datasets[name].count()
        if rows[name] == 0:
            raise FtiError(f"the {name} window {lo.date()}..{hi.date()} of the training set has no rows",
                           hint="check training windows in the config against the data landed")
    log.info("read %s in %.1f s", ", ".join(f"{n} {name} rows" for name, n in rows.items()),
             time.perf_counter() - read_started)
    fit_started = time.perf_counter()
    trainer = XGBoostTrainer(
        _train_fn,
        train_loop_config={"features": features, "label": label, "params": params, "num_boost_round": num_boost_round,
                           "early_stopping_rounds": early_stopping_rounds, "cpus_per_worker": 1},
        scaling_config=ScalingConfig(num_workers=num_workers, use_gpu=use_gpu, resources_per_worker={"CPU": 1}),
        run_config=RunConfig(name=run_name, storage_path=str(ray_temp_dir() / "results")),
        datasets=datasets,
    )
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    future = pool.submit(trainer.fit)
    try:
        result = future.result(timeout=timeout_s)
    except concurrent.futures.TimeoutError:
        raise FtiError(f"Ray Train did not finish within {timeout_s} s (resources: {ray.available_resources()})",
                       hint="raise ray.timeout_s, or check that the cluster can place every worker") from None
    finally:
        pool.shutdown(wait=False)
    worker = result.metrics or {}
    log.info("Ray Train fit (%d workers) in %.1f s; worker 0: %s train rows loaded in %.1f s, trained in %.1f s",
             num_workers, time.perf_counter() - fit_started, worker.get("rows"), worker.get("load_s", float("nan")),
             worker.get("train_s", float("nan")))
    booster = RayTrainReportCallback.get_model(result.checkpoint)
    best = booster.attr("best_iteration")
    if best is not None:
        booster = booster[: int(best) + 1]
    return booster
