"""Shared by the benchmarks: warm medians, peak memory of the driver, Spark start, results.json."""

from __future__ import annotations

import json
import os
import platform
import statistics
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

RESULTS = Path(__file__).with_name("results.json")


def machine() -> str:
    mem = ""
    try:
        kb = int(next(line for line in open("/proc/meminfo") if line.startswith("MemTotal")).split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB"
    except (OSError, StopIteration):
        pass
    return f"{os.cpu_count()} cores{mem}, {platform.system()} {platform.machine()}, Python {platform.python_version()}"


def _tree_rss_bytes(root: int) -> int:
    """RSS of a process and all its descendants (the Spark driver JVM is a child of this Python)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            pid, ppid = int(entry), int(fields[1])
            rss[pid] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
            children.setdefault(ppid, []).append(pid)
        except (OSError, IndexError, ValueError):
            continue
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


@contextmanager
def peak_memory() -> Iterator[dict[str, float]]:
    """Sample the RSS of this process tree every 0.1 s; ``result["peak_mib"]`` is set on exit."""
    result: dict[str, float] = {"peak_mib": 0.0}
    stop = threading.Event()
    pid = os.getpid()

    def sample() -> None:
        while not stop.is_set():
            result["peak_mib"] = max(result["peak_mib"], _tree_rss_bytes(pid) / 2**20)
            stop.wait(0.1)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield result
    finally:
        stop.set()
        thread.join()
        result["peak_mib"] = max(result["peak_mib"], _tree_rss_bytes(pid) / 2**20)


def median_of(fn: Callable[[], Any], repeat: int) -> tuple[float, list[float], Any]:
    """Run ``fn`` ``repeat`` times; (median seconds, all seconds, the last result)."""
    times, last = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        last = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times, last


def spark_session(home: Path, *, ui: bool = False, **conf: str):
    """A local Spark session like the CLI's; returns (session, seconds it took to start). ``ui`` turns the
    Spark UI on (its REST API gives the stage times of :func:`stage_profile`)."""
    from fti.config import load_config
    from fti.spark import get_spark

    os.environ.setdefault("TZ", "UTC")
    t0 = time.perf_counter()
    spark = get_spark(load_config("flights", home=home), ui=ui, extra_conf=conf or None)
    return spark, time.perf_counter() - t0


def _stages(spark) -> list[dict[str, Any]]:
    from urllib.request import urlopen

    sc = spark.sparkContext
    with urlopen(f"{sc.uiWebUrl}/api/v1/applications/{sc.applicationId}/stages?status=complete", timeout=30) as r:
        return json.load(r)


def stage_profile(spark, fn: Callable[[], Any], top: int = 6) -> dict[str, Any]:
    """Run ``fn`` once and say where its time went, from the Spark UI's stage list: the number of stages,
    their summed wall time and executor run time, and the longest ones."""
    import datetime as dt

    def ts(text: str) -> dt.datetime:
        return dt.datetime.strptime(text.replace("GMT", ""), "%Y-%m-%dT%H:%M:%S.%f")

    before = {s["stageId"] for s in _stages(spark)}
    t0 = time.perf_counter()
    fn()
    wall = time.perf_counter() - t0
    time.sleep(1.0)  # the listener bus is asynchronous
    stages = [s for s in _stages(spark) if s["stageId"] not in before]
    rows = sorted(({"stage": s["stageId"], "name": s["name"].split(" at ")[0][:40], "tasks": s["numTasks"],
                    "wall_s": round((ts(s["completionTime"]) - ts(s["submissionTime"])).total_seconds(), 2),
                    "executor_run_s": round(s["executorRunTime"] / 1000, 2),
                    "shuffle_read_mib": round(s.get("shuffleReadBytes", 0) / 2**20, 1)} for s in stages),
                  key=lambda r: -r["wall_s"])
    return {"wall_s": round(wall, 2), "stages": len(rows), "stage_wall_sum_s": round(sum(r["wall_s"] for r in rows), 2),
            "executor_run_sum_s": round(sum(r["executor_run_s"] for r in rows), 2),
            "tasks": sum(r["tasks"] for r in rows), "longest": rows[:top]}


def record(name: str, result: dict[str, Any], *, goal: str, met: bool) -> None:
    """Print one benchmark's figures and merge them into bench/results.json."""
    result = {**result, "goal": goal, "goal_met": bool(met), "machine": machine(),
              "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    print(json.dumps({name: result}, indent=2, default=str))
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    data[name] = result
    RESULTS.write_text(json.dumps(data, indent=2, default=str))
