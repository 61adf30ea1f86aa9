"""Ray done right on small machines and clusters, and the Ray Train (V2) XGBoost fit.

- Local Ray is sized to the machine (``ray.num_cpus``, default every CPU) and started once per training run,
  in the main thread, while the training set is built (:func:`fti.training.pipeline.run`); its temp folder is
  under the system temp folder (Unix socket paths are limited to 107 bytes).
- The training data reaches the workers as Arrow tables in Ray's object store: the driver reads the pinned
  training set's windows once (pyarrow over the Delta file list), cuts each window into one contiguous slice
  per worker and puts each in the object store (``ray.put``); each worker gets its slices (``ray.get``:
  zero-copy on its node, a transfer across nodes). Measured on 2 cores, 1M rows: Ray Data's parquet read +
  ``get_dataset_shard`` took 10.8 s + 6 s per worker; ``from_arrow`` + ``get_dataset_shard`` 1.5 s + 6-7 s;
  these refs 0.8 s + 1.5-2 s.
  The slices are deterministic, so a rerun trains the same model.
- Workers (:func:`plan_workers`): ``training.num_workers``, or with ``auto`` one per
  ``training.rows_per_worker`` training rows, at most one per Ray CPU, each with an equal share of the CPUs
  (``nthread``) within one node's; and with ``auto``, no Ray cluster configured and at most
  ``training.in_process_max_rows`` rows, Ray Train's local mode (:func:`runs_in_process`): the same trainer
  and training function in this process, and no Ray start at all.
- Metrics are reported once, at the end (reporting every round made training 7x slower); the controller
  polls its workers every ``ray.poll_interval_s`` (Ray's 2 s default added up to 2 s to every fit).
- Resumable (:func:`boost`): every ``training.checkpoint_every`` rounds the workers report the booster as a Ray
  Train checkpoint; a failed worker group is restarted (``training.max_failures``) and resumes from the latest
  one. Every fit, interrupted or not, reloads its booster from that checkpoint's bytes at each such round, so the
  booster's random streams (row and column sampling) restart there the same way in both: the resumed model is
  byte-identical to the uninterrupted one.
- A fit that cannot get its resources fails with a message within ``ray.timeout_s``, never hangs.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import shutil
import tempfile
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping

from fti.errors import FtiError
from fti.store.faults import fault_point

if TYPE_CHECKING:
    import pyarrow as pa
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
def ray_session(settings: Settings) -> Iterator[None]:
    """Connect to the configured Ray cluster, or start a local one sized to the machine; shut down after.

    Call it from the main thread (``ray.init`` from another thread left tasks hanging here).
    """
    import ray

    if ray.is_initialized():
        yield
        return
    address = settings.config.ray.address
    check_ray(settings)
    started = time.perf_counter()
    poll = {"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": str(settings.config.ray.poll_interval_s)}
    try:
        if address:
            ray.init(address=address, log_to_driver=False, configure_logging=False,
                     runtime_env={"env_vars": poll})
        else:
            for key, value in poll.items():  # the local raylet and its workers inherit this process's environment
                os.environ.setdefault(key, value)
            ray.init(num_cpus=settings.config.ray.num_cpus or os.cpu_count() or 1, _temp_dir=str(ray_temp_dir()),
                     include_dashboard=False, log_to_driver=False, configure_logging=False)
    except Exception as exc:
        raise FtiError(f"cannot start or reach Ray ({'address ' + address if address else 'local'}): "
                       f"{str(exc).splitlines()[0][:200]}",
                       hint="check ray.address in the config (FTI__RAY__ADDRESS) and that the cluster is up") from None
    log.info("Ray ready in %.1f s (%s, %g CPUs)", time.perf_counter() - started, address or "local",
             ray.cluster_resources().get("CPU", 0))
    try:
        yield
    finally:
        ray.shutdown()


@dataclass(frozen=True)
class WorkerPlan:
    """How a fit runs: ``num_workers`` Ray Train workers holding ``cpus_per_worker`` CPUs (XGBoost threads)
    each, or, with ``num_workers == 0``, in this process (Ray Train's local mode: the same trainer and training
    function, no Ray processes)."""

    num_workers: int
    cpus_per_worker: int
    reason: str

    @property
    def in_process(self) -> bool:
        return self.num_workers == 0

    def describe(self) -> str:
        where = ("in this process" if self.in_process else
                 f"{self.num_workers} worker{'s' if self.num_workers > 1 else ''}")
        return f"{where}, {self.cpus_per_worker} CPUs each ({self.reason})"


def runs_in_process(settings: Settings, rows: int) -> bool:
    """``training.num_workers: auto`` with no Ray cluster configured trains in this process (Ray Train's local
    mode) when the training set has at most ``training.in_process_max_rows`` rows: on one machine a Ray worker
    only adds its start-up (README, Training: where the line is)."""
    cfg = settings.config.training
    return cfg.num_workers == "auto" and not settings.config.ray.address and rows <= cfg.in_process_max_rows


def plan_workers(settings: Settings, train_rows: int, *, in_process: bool) -> WorkerPlan:
    """The worker count (``auto``: one per ``training.rows_per_worker`` training rows, at most one per Ray CPU)
    and the CPUs each worker gets: an equal share of the cluster's, within one node's. ``in_process``: no Ray
    workers, every CPU of this machine (``ray.num_cpus`` caps it). Needs Ray unless ``in_process``.

    Raises:
        FtiError: A fixed worker count larger than the cluster's CPUs.
    """
    cfg = settings.config.training
    if in_process:
        cpus = settings.config.ray.num_cpus or os.cpu_count() or 1
        return WorkerPlan(0, cpus, f"auto: at most {cfg.in_process_max_rows} rows, no Ray cluster")
    total_cpus, node_cpus = cluster_cpus()
    if cfg.num_workers == "auto":
        wanted = max(1, train_rows // cfg.rows_per_worker)
        workers = max(1, min(wanted, total_cpus))
        reason = (f"auto: {train_rows} rows / {cfg.rows_per_worker} per worker"
                  + (f", capped at {total_cpus} CPUs" if wanted > workers else ""))
    else:
        workers = int(cfg.num_workers)
        if total_cpus < workers:
            raise FtiError(f"Ray has {total_cpus:g} CPU(s) but training asks for {workers} workers",
                           hint="lower training.num_workers (or set it to auto) or add Ray nodes")
        reason = "training.num_workers"
    return WorkerPlan(workers, max(1, min(node_cpus, total_cpus // workers)), reason)


@dataclass
class FitResult:
    """A fit's booster and, per worker, ``{"rank", "node", "rows", "load_s", "train_s"}``; ``resumed_from``: the
    round of the checkpoint the last attempt started from (0: it ran from the start)."""

    booster: xgboost.Booster
    workers: list[dict[str, Any]]
    resumed_from: int = 0

    def timings(self) -> str:
        return "; ".join(f"worker {w['rank']} on node {w['node']}: {w['rows']} rows, load {w['load_s']:.1f} s, "
                         f"train {w['train_s']:.1f} s" for w in self.workers)


def cluster_cpus() -> tuple[int, int]:
    """(CPUs of the whole Ray cluster, CPUs of its largest alive node)."""
    import ray

    nodes = [n.get("Resources", {}).get("CPU", 0) for n in ray.nodes() if n.get("Alive")]
    return int(ray.cluster_resources().get("CPU", 0)), max(1, int(max(nodes, default=0)))


def _slices(table: pa.Table, parts: int) -> list[pa.Table]:
    step = -(-table.num_rows // parts)
    return [table.slice(i * step, step) for i in range(parts)]


# xgboost.callback.EarlyStopping's rule: these metrics (and their "@k" forms) grow as the model gets better
_MAXIMIZED = ("auc", "aucpr", "pre", "map", "ndcg")


def boost(params: dict[str, Any], dtrain: xgboost.DMatrix, dvalid: xgboost.DMatrix, *, num_boost_round: int,
          early_stopping_rounds: int, every: int = 0, model: bytes | bytearray | None = None,
          on_checkpoint: Callable[[bytes, int], None] | None = None) -> tuple[xgboost.Booster, int]:
    """``xgboost.train`` with early stopping on the validation set's last metric, made resumable.

    Every ``every`` rounds (0: never) the booster is saved, handed to ``on_checkpoint(raw, rounds)`` and loaded
    again from those bytes; ``model`` (such bytes) continues a fit from there. The early-stopping state lives in
    the booster itself (``best_iteration`` / ``best_score`` attributes, and its round count), and the reload at
    each checkpoint restarts the booster's random streams at that round, so a fit resumed from a checkpoint gives
    the bytes of one that never stopped (the seed is in ``params``).

    Returns:
        The booster (all its rounds; ``best_iteration`` names the best) and the round it started from.
    """
    import xgboost

    cache = [dtrain, dvalid]
    booster = xgboost.Booster(params, cache, model_file=model) if model else xgboost.Booster(params, cache)
    start = booster.num_boosted_rounds()
    metric = (params.get("eval_metric") or [""])
    metric = metric[-1] if isinstance(metric, (list, tuple)) else metric
    maximize = str(metric).split("@")[0] in _MAXIMIZED
    best = booster.attr("best_iteration")
    best, best_score = (None, None) if best is None else (int(best), float(booster.attr("best_score")))
    for i in range(start, num_boost_round):
        booster.update(dtrain, iteration=i)
        score = float(booster.eval_set([(dvalid, "validation")], iteration=i).split("\t")[-1].rsplit(":", 1)[1])
        if best is None or (score > best_score if maximize else score < best_score):
            best, best_score = i, score
            booster.set_attr(best_iteration=str(i), best_score=str(score))
        if i - best >= early_stopping_rounds:
            break
        if every and (i + 1) % every == 0 and i + 1 < num_boost_round:
            raw = bytes(booster.save_raw("ubj"))
            if on_checkpoint is not None:
                on_checkpoint(raw, i + 1)
            booster = xgboost.Booster(params, cache, model_file=bytearray(raw))
    return booster, start


def _train_fn(config: dict[str, Any]) -> xgboost.Booster | None:
    """Runs on every Ray Train worker: its slices (object refs) -> DMatrix -> :func:`boost` (collective set up
    by Ray), resumed from the group's latest checkpoint when Ray Train restarted it; every worker reports at each
    checkpoint round and once at the end, where rank 0's checkpoint is the final booster."""
    import os
    import tempfile

    import numpy as np
    import ray
    import ray.train
    import xgboost
    from ray.train.xgboost import RayTrainReportCallback

    started = time.perf_counter()
    features, label, nthread = config["features"], config["label"], config["cpus_per_worker"]
    rank = ray.train.get_context().get_world_rank()

    def matrix(name: str) -> xgboost.DMatrix:
        part = config["slices"][name][rank]
        table = ray.get(part) if isinstance(part, ray.ObjectRef) else part  # in-process: the table itself
        x = np.column_stack([table.column(f).to_numpy(zero_copy_only=False).astype("float32", copy=False)
                             for f in features]) if table.num_rows else np.empty((0, len(features)), "float32")
        return xgboost.DMatrix(x, label=table.column(label).to_numpy(zero_copy_only=False), feature_names=features,
                               nthread=nthread)

    dtrain, dvalid = matrix("train"), matrix("validation")
    loaded = time.perf_counter()
    start = None if config["in_process"] else ray.train.get_checkpoint()  # set when a failed group restarts
    model = None
    if start is not None:
        with start.as_directory() as folder:
            model = bytearray(Path(folder, RayTrainReportCallback.CHECKPOINT_NAME).read_bytes())

    def checkpoint(raw: bytes, rounds: int) -> None:  # every worker reports (a barrier); rank 0 carries the model
        if config["in_process"]:
            return
        with tempfile.TemporaryDirectory() as tmp:
            saved = None
            if rank == 0:
                Path(tmp, RayTrainReportCallback.CHECKPOINT_NAME).write_bytes(raw)
                saved = ray.train.Checkpoint.from_directory(tmp)
            ray.train.report({"rounds": rounds}, checkpoint=saved)
        # a report counts once Ray Train's controller has polled it from the worker; one killed right after its
        # report may lose that one (the group then resumes from the checkpoint before)
        fault_point("after_checkpoint", table=f"rank {rank} round {rounds}")

    # No RayTrainReportCallback: even with frequency=0 it cost ~2 s per boosting round here (20 rounds on
    # 200k rows: 39.5 s with it, 1.2 s without). Only the validation set is evaluated (early stopping).
    booster, resumed_from = boost({**config["params"], "nthread": nthread}, dtrain, dvalid,
                                  num_boost_round=config["num_boost_round"],
                                  early_stopping_rounds=config["early_stopping_rounds"],
                                  every=config["checkpoint_every"], model=model, on_checkpoint=checkpoint)
    # every worker's node, rows and times, gathered over XGBoost's collective (rank 0 reports them all); the
    # node id (28 bytes) travels as numbers
    world = ray.train.get_context().get_world_size()
    # (in this process Ray is not started, and asking for the runtime context would start it from this thread)
    node = bytes(28) if config["in_process"] else bytes.fromhex(ray.get_runtime_context().get_node_id())
    table = np.zeros((world, 3 + len(node)))
    table[rank] = [dtrain.num_row(), loaded - started, time.perf_counter() - loaded, *node]
    if xgboost.collective.is_distributed():
        table = xgboost.collective.allreduce(table, xgboost.collective.Op.SUM).reshape(table.shape)  # comes back flat
    metrics = {"best_iteration": booster.attr("best_iteration"), "rows": dtrain.num_row(), "load_s": loaded - started,
               "resumed_from": resumed_from,
               "train_s": float(table[rank][2]),
               "workers": [{"rank": i, "node": bytes(int(b) for b in row[3:]).hex()[:8] if not config["in_process"]
                            else "local", "rows": int(row[0]),
                            "load_s": round(float(row[1]), 2), "train_s": round(float(row[2]), 2)}
                           for i, row in enumerate(table)]}
    if config["in_process"]:  # Ray Train's local mode: the booster is the function's return value
        ray.train.report(metrics)
        return booster
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = None
        if rank == 0:
            booster.save_model(os.path.join(tmp, RayTrainReportCallback.CHECKPOINT_NAME))
            checkpoint = ray.train.Checkpoint.from_directory(tmp)
        ray.train.report(metrics, checkpoint=checkpoint)
    return None


def fit(tables: Mapping[str, pa.Table], *, features: list[str], label: str, params: dict[str, Any],
        num_boost_round: int, early_stopping_rounds: int, workers: WorkerPlan, use_gpu: bool, timeout_s: int,
        run_name: str, checkpoint_every: int = 0, max_failures: int = 0) -> FitResult:
    """Train XGBoost with Ray Train on the ``train`` and ``validation`` tables (features and label columns).

    ``checkpoint_every`` rounds the workers checkpoint the booster (0: at the end only); a failed worker group is
    restarted up to ``max_failures`` times and resumes from the latest checkpoint (see :func:`boost`).

    Returns:
        The booster, cut at its best iteration on the validation window, and each worker's node, rows and times.

    Raises:
        FtiError: Not enough Ray resources, or the fit did not finish within ``timeout_s``.
    """
    import ray
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.xgboost import RayTrainReportCallback, XGBoostTrainer

    if use_gpu and not workers.in_process and ray.cluster_resources().get("GPU", 0) < workers.num_workers:
        raise FtiError("training.device is cuda but Ray sees no GPU for every worker",
                       hint="set training.device: cpu, or run on a GPU node")
    put_started = time.perf_counter()
    columns = features + [label]
    in_process = workers.in_process
    slices = {name: [tables[name].select(columns)] if in_process else
              [ray.put(part) for part in _slices(tables[name].select(columns), workers.num_workers)]
              for name in ("train", "validation")}
    if not in_process:
        log.info("training data in Ray's object store in %.1f s", time.perf_counter() - put_started)
    fit_started = time.perf_counter()
    storage, name = ray_temp_dir() / "results", f"{run_name}-{uuid.uuid4().hex[:8]}"
    trainer = XGBoostTrainer(
        _train_fn,
        train_loop_config={"features": features, "label": label, "params": params, "num_boost_round": num_boost_round,
                           "early_stopping_rounds": early_stopping_rounds, "cpus_per_worker": workers.cpus_per_worker,
                           "slices": slices, "in_process": in_process, "checkpoint_every": checkpoint_every},
        scaling_config=ScalingConfig(num_workers=workers.num_workers, use_gpu=use_gpu,
                                     resources_per_worker={"CPU": workers.cpus_per_worker}),
        # a name of its own: Ray Train resumes a run of the same name and storage from its latest checkpoint, and
        # a fit must never start from another fit's model (a second --reproduce of one version, say)
        run_config=RunConfig(name=name, storage_path=str(storage), failure_config=FailureConfig(max_failures=max_failures)),
    )
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    future = pool.submit(trainer.fit)
    try:
        result = future.result(timeout=timeout_s)
        booster = result.return_value if in_process else RayTrainReportCallback.get_model(result.checkpoint)
    except concurrent.futures.TimeoutError:
        raise FtiError(f"Ray Train did not finish within {timeout_s} s (resources: {ray.available_resources()})",
                       hint="raise ray.timeout_s, or check that the cluster can place every worker") from None
    finally:
        pool.shutdown(wait=False)
        if future.done():  # the checkpoints served this fit's recovery only
            shutil.rmtree(storage / name, ignore_errors=True)
    metrics = result.metrics or {}
    best = booster.attr("best_iteration")
    if best is not None:
        booster = booster[: int(best) + 1]
    fitted = FitResult(booster=booster, workers=list(metrics.get("workers", [])),
                       resumed_from=int(metrics.get("resumed_from") or 0))
    if fitted.resumed_from:
        log.warning("a Ray Train worker failed: the fit resumed from its checkpoint at round %d", fitted.resumed_from)
    log.info("Ray Train fit (%s) in %.1f s; %s", workers.describe(), time.perf_counter() - fit_started,
             fitted.timings())
    return fitted
