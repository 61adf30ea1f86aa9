"""Ray done right on small machines and clusters, and the Ray Train (V2) XGBoost fit.

- Local Ray gets more CPUs than the trainer has workers, and a temp folder under the system temp folder
  (Unix socket paths are limited to 107 bytes).
- Workers read their rows straight from the training set's pinned parquet files (no Ray Data: its read,
  materialize and split cost ~20 s of fixed time at 1M rows); the booster is reported once, at the end (Ray's
  report callback cost ~2 s per round even when told not to report).
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


Unit = tuple[str, int, int, int]  # (file URI, row group, step, offset): rows offset, offset + step, ... of the group


def plan_shards(files: Sequence[str], *, time_col: str, windows: dict[str, tuple[dt.datetime, dt.datetime]],
                num_workers: int) -> list[list[Unit]]:
    """Which rows of the pinned parquet files each worker reads.

    Whole row groups go to workers (largest first, to the least loaded) when that gives every worker rows of
    every window; otherwise every worker reads every row group and keeps every ``num_workers``-th row, so each
    gets an even share of each window however the files are sorted.

    Raises:
        FtiError: A window with no rows at all.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    utc = pa.timestamp("us", tz="UTC")
    groups = []  # (uri, row group, {window: rows})
    for uri in files:
        with _open(uri) as handle:
            parquet = pq.ParquetFile(handle)
            for rg in range(parquet.num_row_groups):
                times = parquet.read_row_group(rg, columns=[time_col]).column(time_col)
                counts = {name: pc.sum(pc.and_(pc.greater_equal(times, pa.scalar(lo, utc)),
                                               pc.less(times, pa.scalar(hi, utc)))).as_py() or 0
                          for name, (lo, hi) in windows.items()}
                groups.append((uri, rg, counts))
    for name, (lo, hi) in windows.items():
        if sum(g[2][name] for g in groups) == 0:
            raise FtiError(f"the {name} window {lo.date()}..{hi.date()} of the training set has no rows",
                           hint="check training windows in the config against the data landed")
    plan: list[list[Unit]] = [[] for _ in range(num_workers)]
    load = [{name: 0 for name in windows} for _ in range(num_workers)]
    for uri, rg, counts in sorted(groups, key=lambda g: -sum(g[2].values())):
        worker = min(range(num_workers), key=lambda w: sum(load[w].values()))
        plan[worker].append((uri, rg, 1, 0))
        load[worker] = {name: load[worker][name] + counts[name] for name in windows}
    if all(rows[name] > 0 for rows in load for name in windows):
        return plan
    return [[(uri, rg, num_workers, rank) for uri, rg, _ in groups] for rank in range(num_workers)]


def _open(uri: str) -> Any:
    import pyarrow.fs as pafs

    filesystem, path = pafs.FileSystem.from_uri(uri)
    return filesystem.open_input_file(path)


def read_shard(units: Sequence[Unit], *, columns: list[str], time_col: str,
               windows: dict[str, tuple[dt.datetime, dt.datetime]]) -> dict[str, Any]:
    """A worker's rows (see :func:`plan_shards`) as one pandas frame per window, without ``time_col``."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    parts = []
    for uri, rg, step, offset in units:
        with _open(uri) as handle:
            part = pq.ParquetFile(handle).read_row_group(rg, columns=columns + [time_col])
        if step > 1:
            part = part.take(pa.array(range(offset, part.num_rows, step), pa.int64()))
        parts.append(part)
    table = pa.concat_tables(parts)
    utc = pa.timestamp("us", tz="UTC")
    times = table.column(time_col)
    return {name: table.filter(pc.and_(pc.greater_equal(times, pa.scalar(lo, utc)), pc.less(times, pa.scalar(hi, utc))))
            .select(columns).to_pandas() for name, (lo, hi) in windows.items()}


def _train_fn(config: dict[str, Any]) -> None:
    """Runs on every Ray Train worker: its rows of the pinned files -> DMatrix -> xgboost.train (collective set up
    by Ray); rank 0 reports the booster ONCE, at the end, as the run's checkpoint."""
    import os
    import tempfile

    import ray.train
    import xgboost
    from ray.train.xgboost import RayTrainReportCallback

    started = time.perf_counter()
    features, label = config["features"], config["label"]
    rank = ray.train.get_context().get_world_rank()
    frames = read_shard(config["plan"][rank], columns=features + [label], time_col=config["time_col"],
                        windows=config["windows"])
    train, valid = frames["train"], frames["validation"]
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
        if rank == 0:
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
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.xgboost import RayTrainReportCallback, XGBoostTrainer

    cpus = ray.cluster_resources().get("CPU", 0)
    if cpus < num_workers:
        raise FtiError(f"Ray has {cpus:g} CPU(s) but training asks for {num_workers} workers",
                       hint="lower training.num_workers or add Ray nodes")
    if use_gpu and ray.cluster_resources().get("GPU", 0) < num_workers:
        raise FtiError("training.device is cuda but Ray sees no GPU for every worker",
                       hint="set training.device: cpu, or run on a GPU node")
    # Workers read their rows straight from the pinned files: going through Ray Data (read, filter,
    # materialize, split to the workers) cost ~20 s of fixed time for 1M rows here.
    planned = time.perf_counter()
    fit_windows = {name: windows[name] for name in ("train", "validation")}
    plan = plan_shards(files, time_col=time_col, windows=fit_windows, num_workers=num_workers)
    log.info("planned %d worker shard(s) over %d file(s) in %.1f s", num_workers, len(files),
             time.perf_counter() - planned)
    fit_started = time.perf_counter()
    trainer = XGBoostTrainer(
        _train_fn,
        train_loop_config={"features": features, "label": label, "params": params, "num_boost_round": num_boost_round,
                           "early_stopping_rounds": early_stopping_rounds, "cpus_per_worker": 1,
                           "plan": plan, "time_col": time_col, "windows": fit_windows},
        scaling_config=ScalingConfig(num_workers=num_workers, use_gpu=use_gpu, resources_per_worker={"CPU": 1}),
        run_config=RunConfig(name=run_name, storage_path=str(ray_temp_dir() / "results")),
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
